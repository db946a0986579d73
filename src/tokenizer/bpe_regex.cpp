// The pre-tokenizer regexes of tokenizer.json on PCRE2.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "bpe_internal.h"
#include "lmq/error.h"

namespace lmq::bpe {

namespace {

// Oniguruma's \s (what tokenizers matches with) is Unicode White_Space; PCRE2's \s under
// PCRE2_UCP is \p{Z} plus \t..\r, which lacks U+0085 (NEXT LINE). Spelled out it is the same set
// in both engines.
constexpr std::string_view kSpaceSet = "\\t-\\r\\x{20}\\x{85}\\p{Z}";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

// Per-thread match state: the limits (set per call), the JIT stack, one ovector pair (the whole
// match is all we need; captures are ignored).
struct Scratch {
  pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr);
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  Scratch() {
    if (!ctx || !md) throw std::bad_alloc();
    if (jit_stack) pcre2_jit_stack_assign(ctx, nullptr, jit_stack);
    pcre2_set_heap_limit(ctx, 64 * 1024);  // KiB, for the interpreter when JIT is unavailable
  }
  ~Scratch() {
    pcre2_match_data_free(md);
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(ctx);
  }
};

size_t utf8_len_at(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

}  // namespace

std::string to_pcre2_syntax(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 32);
  int class_depth = 0;  // Oniguruma allows classes nested in classes
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char d = p[++i];
      if (d == 's') {
        out += class_depth ? std::string(kSpaceSet) : "[" + std::string(kSpaceSet) + "]";
      } else if (d == 'S' && !class_depth) {
        out += "[^" + std::string(kSpaceSet) + "]";
      } else {
        out += c;
        out += d;
      }
      continue;
    }
    if (c == '[') {
      if (class_depth && i + 1 < p.size() && p[i + 1] == ':') {  // [:alpha:] inside a class
        const size_t end = p.find(":]", i + 2);
        if (end != std::string_view::npos) {
          out.append(p.substr(i, end + 2 - i));
          i = end + 1;
          continue;
        }
      }
      ++class_depth;
      out += c;
      // A ']' right after '[' or '[^' is a literal, not the end of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && class_depth) --class_depth;
    out += c;
  }
  return out;
}

Regex::Regex(std::string_view pattern, bool literal, std::string what) : what_(std::move(what)) {
  // PCRE2_LITERAL admits no PCRE2_UCP (nothing in a literal depends on it).
  const std::string translated = literal ? std::string(pattern) : to_pcre2_syntax(pattern);
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  int err = 0;
  PCRE2_SIZE offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), options, &err, &offset,
                        nullptr);
  if (!code_) fail("{}: invalid regex \"{}\": {}", what_, pattern, pcre2_message(err));
  pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter where unsupported
}

Regex::~Regex() { pcre2_code_free(code_); }

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  thread_local Scratch s;
  // Oniguruma's default retry limit is 10^7 per search; legitimate patterns backtrack at most
  // linearly in the text, so the limit grows with it, and catastrophic backtracking ends in an
  // error instead of a hang.
  pcre2_set_match_limit(s.ctx, uint32_t(std::min<size_t>(10'000'000 + 64 * text.size(), UINT32_MAX)));
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0, last_match_end = SIZE_MAX;
  while (pos <= text.size()) {
    const int rc = pcre2_match(code_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, s.md, s.ctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0)
      fail("{}: the regex gave up on a {}-byte piece of the text ({}): catastrophic backtracking", what_,
           text.size(), pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.md);
    const size_t b = ov[0], e = ov[1];
    if (e < b || b < pos) fail("{}: the regex reports a match that is not a forward range (\\K?)", what_);
    if (b == e && e == last_match_end) {  // no empty match right after the previous one
      pos = b < text.size() ? b + utf8_len_at(text, b) : text.size() + 1;
      continue;
    }
    out.emplace_back(b, e);
    pos = last_match_end = e;
  }
}

}  // namespace lmq::bpe
