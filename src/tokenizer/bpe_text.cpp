// Text-level parts of the BPE pipeline: the ByteLevel byte table, Unicode normalization
// (libutf8proc) and the added-token matcher.
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "bpe_internal.h"
#include "lmq/error.h"

namespace lmq::bpe {

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table = [] {
    // GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
    // take the code points 256, 257, ... in byte order.
    ByteLevelTable t;
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      t.char_of[size_t(b)] = char32_t(printable ? b : next++);
      t.byte_of[t.char_of[size_t(b)]] = uint8_t(b);
    }
    return t;
  }();
  return table;
}

namespace {

// One normalization form over valid UTF-8. Normalization never reaches across an ASCII
// character (it has combining class 0, is never the second half of a composition and
// decomposes to itself), so only the runs of non-ASCII text, each with the ASCII character before
// it (which may compose with a following mark), go through utf8proc.
std::string normalize_form(std::string_view text, int options) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      out += text[i++];
      continue;
    }
    size_t begin = i;
    if (begin > 0) --begin, out.pop_back();  // the ASCII character before the run
    size_t end = i;
    while (end < text.size() && static_cast<unsigned char>(text[end]) >= 0x80) ++end;
    utf8proc_uint8_t* dst = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + begin),
                                            utf8proc_ssize_t(end - begin), &dst, utf8proc_option_t(options));
    std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(dst, &std::free);
    if (n < 0) fail("tokenizer: Unicode normalization failed: {}", utf8proc_errmsg(n));
    out.append(reinterpret_cast<const char*>(dst), size_t(n));
    i = end;
  }
  return out;
}

char32_t decode_at(std::string_view s, size_t i) {
  utf8proc_int32_t cp = 0;
  utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i), utf8proc_ssize_t(s.size() - i), &cp);
  return char32_t(cp < 0 ? 0xFFFD : cp);
}

size_t char_len(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

size_t prev_char(std::string_view s, size_t i) {
  do --i;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80);
  return i;
}

// Unicode White_Space (what tokenizers' \s means).
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// A \w character: letters, marks, decimal and letter numbers, connector punctuation.
bool is_word_char(char32_t c) {
  switch (utf8proc_category(utf8proc_int32_t(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return c == 0x200C || c == 0x200D;  // Join_Control
  }
}

}  // namespace

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const int options : utf8proc_options) s = normalize_form(s, options);
  return s;
}

int AddedMatcher::child(int node, uint8_t b) const {
  const auto& next = nodes_[size_t(node)].next;
  const auto it = std::lower_bound(next.begin(), next.end(), std::pair<uint8_t, int>{b, 0},
                                   [](const auto& x, const auto& y) { return x.first < y.first; });
  return it != next.end() && it->first == b ? it->second : -1;
}

void AddedMatcher::add(std::string pattern, const AddedToken* token) {
  int node = 0;
  for (const char ch : pattern) {
    const auto b = static_cast<uint8_t>(ch);
    int c = child(node, b);
    if (c < 0) {
      c = int(nodes_.size());
      nodes_.emplace_back();
      auto& next = nodes_[size_t(node)].next;
      next.insert(std::upper_bound(next.begin(), next.end(), std::pair<uint8_t, int>{b, 0},
                                   [](const auto& x, const auto& y) { return x.first < y.first; }),
                  {b, c});
    }
    node = c;
  }
  nodes_[size_t(node)].token = token;
  if (!pattern.empty()) first_[static_cast<uint8_t>(pattern[0])] = true;
}

void AddedMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  size_t start_offset = 0, i = 0;
  while (i < text.size()) {
    // Leftmost match: the first position where the trie reaches a token; longest there.
    const AddedToken* token = nullptr;
    size_t begin = i, end = i;
    for (; begin < text.size() && !token; ++begin) {
      if (!first_[static_cast<uint8_t>(text[begin])]) continue;
      for (int node = 0, k = 0; begin + size_t(k) < text.size(); ++k) {
        node = child(node, static_cast<uint8_t>(text[begin + size_t(k)]));
        if (node < 0) break;
        if (nodes_[size_t(node)].token) token = nodes_[size_t(node)].token, end = begin + size_t(k) + 1;
      }
      if (token) break;
    }
    if (!token) break;
    i = end;  // the search goes on after this match even when the rules below discard it
    if (token->single_word) {
      const bool word_before = begin > 0 && is_word_char(decode_at(text, prev_char(text, begin)));
      const bool word_after = end < text.size() && is_word_char(decode_at(text, end));
      if (word_before || word_after) continue;
    }
    size_t b = begin, e = end;
    if (token->lstrip) {
      while (b > 0 && is_white_space(decode_at(text, prev_char(text, b)))) b = prev_char(text, b);
      b = std::max(b, start_offset);
    }
    if (token->rstrip)
      while (e < text.size() && is_white_space(decode_at(text, e))) e += char_len(text, e);
    if (start_offset < b) out.push_back({start_offset, b, -1});
    out.push_back({b, e, token->id});
    start_offset = e;
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace lmq::bpe
