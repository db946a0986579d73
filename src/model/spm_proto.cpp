// A minimal protobuf wire-format writer for SentencePiece's ModelProto (see spm_proto.h).
// Wire types used: 0 varint (ints, enums, bools), 2 length-delimited (strings, messages),
// 5 fixed32 (float). A negative int32 is written as its 64-bit two's complement (10 bytes),
// as protobuf does.
#include "lmq/model/spm_proto.h"

#include <cstring>

namespace lmq {

namespace {

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
  void bytes_field(int field, const std::string& s) {
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

}  // namespace

std::string serialize_spm_model(const SpmModelSpec& spec) {
  Writer model;
  for (const SpmPiece& p : spec.pieces) {
    Writer piece;
    piece.bytes_field(1, p.piece);
    piece.float_field(2, p.score);
    piece.int_field(3, int(p.type));
    model.bytes_field(1, piece.str());
  }
  Writer trainer;
  trainer.int_field(3, spec.bpe ? 2 : 1);
  trainer.bool_field(35, spec.byte_fallback);
  trainer.int_field(40, spec.unk_id);
  trainer.int_field(41, spec.bos_id);
  trainer.int_field(42, spec.eos_id);
  trainer.int_field(43, spec.pad_id);
  model.bytes_field(2, trainer.str());
  Writer norm;
  norm.bytes_field(1, spec.normalizer);
  if (!spec.precompiled_charsmap.empty()) norm.bytes_field(2, spec.precompiled_charsmap);
  norm.bool_field(3, spec.add_dummy_prefix);
  norm.bool_field(4, spec.remove_extra_whitespaces);
  norm.bool_field(5, spec.escape_whitespaces);
  model.bytes_field(3, norm.str());
  return std::move(model.str());
}

}  // namespace lmq
