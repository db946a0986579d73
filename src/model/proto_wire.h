// Protobuf's wire format, the part lmq needs for SentencePiece's ModelProto (no protobuf
// dependency): spm_proto.cpp writes one, spm_check.cpp reads one, the fuzz seed tool trims one.
// Wire types: 0 varint (ints, enums, bools), 1 fixed64, 2 length-delimited (strings, messages),
// 5 fixed32 (float). A negative int is written as its 64-bit two's complement (10 bytes), as
// protobuf does.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace lmq::proto {

class Writer {
 public:
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(char(uint8_t(v) | 0x80));
      v >>= 7;
    }
    out_.push_back(char(uint8_t(v)));
  }
  void tag(int field, int wire) { varint(uint64_t(field) << 3 | uint64_t(wire)); }
  void int_field(int field, int64_t v) {
    tag(field, 0);
    varint(uint64_t(v));  // sign-extended for negatives
  }
  void bool_field(int field, bool v) { int_field(field, v ? 1 : 0); }
  void bytes_field(int field, std::string_view s) {
    tag(field, 2);
    varint(s.size());
    out_ += s;
  }
  void float_field(int field, float f) {
    tag(field, 5);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    for (int i = 0; i < 4; ++i) out_.push_back(char(uint8_t(u >> (8 * i))));
  }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

// Bounds-checked reading of a message's fields; false on malformed wire (a reader that must
// refuse it says so, or leaves it to libsentencepiece's parser).
struct Reader {
  std::string_view in;
  size_t pos = 0;

  bool varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= in.size()) return false;
      const uint8_t b = uint8_t(in[pos++]);
      *v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  // The next field; for wire type 2 `bytes` is its payload. False at the end or on bad wire.
  bool next(uint64_t* field, std::string_view* bytes) {
    uint64_t tag = 0, len = 0;
    if (pos >= in.size() || !varint(&tag)) return false;
    *field = tag >> 3;
    *bytes = {};
    switch (tag & 7) {
      case 0: return varint(&len);
      case 1: return skip(8);
      case 5: return skip(4);
      case 2:
        if (!varint(&len) || len > in.size() - pos) return false;
        *bytes = in.substr(pos, len);
        pos += len;
        return true;
      default: return false;  // groups: not in sentencepiece_model.proto
    }
  }
  bool skip(size_t n) {
    if (n > in.size() - pos) return false;
    pos += n;
    return true;
  }
};

}  // namespace lmq::proto
