#include "lmq/tokenizer/utf8.h"

namespace lmq {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Well-formed sequences (Unicode Table 3-7): the length a lead byte starts and the range its
// first continuation byte must lie in (the later ones are always 80..BF). 0 = not a lead byte.
struct Lead {
  int len;
  unsigned char lo, hi;
};
Lead lead_of(unsigned char b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};  // no surrogates
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};  // at most U+10FFFF
  return {0, 0, 0};
}

}  // namespace

void Utf8Stream::step(unsigned char b, std::string& out) {
  if (have_ > 0) {
    if (b >= lo_ && b <= hi_) {
      pending_[have_++] = char(b);
      lo_ = 0x80, hi_ = 0xBF;
      if (have_ == need_) out.append(pending_, size_t(need_)), have_ = 0;
      return;
    }
    // The pending bytes are a maximal subpart of a sequence: one U+FFFD, then b starts afresh.
    out += kReplacement;
    have_ = 0;
  }
  const Lead l = lead_of(b);
  if (l.len == 1) {
    out += char(b);
  } else if (l.len == 0) {
    out += kReplacement;
  } else {
    pending_[0] = char(b);
    have_ = 1, need_ = l.len, lo_ = l.lo, hi_ = l.hi;
  }
}

std::string Utf8Stream::push(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + 3);
  for (const char c : bytes) step(static_cast<unsigned char>(c), out);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  if (have_ > 0) out = kReplacement;
  have_ = 0;
  return out;
}

std::string utf8_lossy(std::string_view bytes) {
  Utf8Stream s;
  std::string out = s.push(bytes);
  return out + s.flush();
}

bool utf8_valid(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    const Lead l = lead_of(b);
    if (l.len == 0 || i + size_t(l.len) > bytes.size()) return false;
    for (int k = 1; k < l.len; ++k) {
      const auto c = static_cast<unsigned char>(bytes[i + size_t(k)]);
      if (c < (k == 1 ? l.lo : 0x80) || c > (k == 1 ? l.hi : 0xBF)) return false;
    }
    i += size_t(l.len);
  }
  return true;
}

}  // namespace lmq
