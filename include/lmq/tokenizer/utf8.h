// UTF-8 helpers shared by the tokenizers: lossy conversion of bytes to valid UTF-8 and a stream
// buffer for printing tokens one at a time.
//
// A byte-level BPE token can end in the middle of a character, so text cannot be produced token
// by token; Utf8Stream holds the incomplete tail until the next bytes complete it. Invalid bytes
// become U+FFFD, one per "maximal subpart" (Unicode §3.9, the rule Rust's from_utf8_lossy and
// Python's errors="replace" follow), so streaming the bytes of a token sequence gives exactly
// utf8_lossy() of their concatenation, which is what Hugging Face's ByteLevel decoder returns.
#pragma once
#include <string>
#include <string_view>

namespace lmq {

class Utf8Stream {
 public:
  // Appends bytes; returns the text that is complete so far (never a partial character).
  std::string push(std::string_view bytes);
  // Ends the stream: a pending incomplete character becomes U+FFFD.
  std::string flush();

 private:
  void step(unsigned char b, std::string& out);
  char pending_[4] = {};
  int have_ = 0;  // bytes of the pending character seen so far
  int need_ = 0;  // its total length
  unsigned char lo_ = 0x80, hi_ = 0xBF;  // allowed range of the next continuation byte
};

// `bytes` with every invalid sequence replaced by U+FFFD (as Utf8Stream does).
std::string utf8_lossy(std::string_view bytes);
// Whether `bytes` is well-formed UTF-8 (no surrogates, no overlong forms, at most U+10FFFF).
bool utf8_valid(std::string_view bytes);

}  // namespace lmq
