// Internals of BpeTokenizer (include/lmq/tokenizer/bpe.h): one struct per component of the
// tokenizer.json pipeline. bpe_load.cpp builds them from the JSON, bpe.cpp runs them.
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lmq/tokenizer/bpe.h"

typedef struct pcre2_real_code_8 pcre2_code_8;

namespace lmq::bpe {

// Heterogeneous lookup (a string_view finds a std::string key without a copy).
struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StrMap = std::unordered_map<std::string, V, StrHash, std::equal_to<>>;

// A regex of the file, compiled by PCRE2 (UTF + Unicode properties, JIT when available). The
// file's patterns are written for Oniguruma (what tokenizers uses); to_pcre2_syntax() rewrites
// the one construct whose meaning differs (\s, see bpe_regex.cpp).
class Regex {
 public:
  // `what` names the file and component for errors (bad pattern now, match limit later).
  Regex(std::string_view pattern, bool literal, std::string what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Appends the matches in `text` as Oniguruma's find_iter gives them: leftmost-first, each
  // search starting where the last match ended, an empty match right after a match skipped.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  pcre2_code_8* code_ = nullptr;
  std::string what_;
};
std::string to_pcre2_syntax(std::string_view onig_pattern);

// GPT-2's byte ↔ character table of the ByteLevel components.
struct ByteLevelTable {
  std::array<char32_t, 256> char_of{};
  std::unordered_map<char32_t, uint8_t> byte_of;
};
const ByteLevelTable& byte_level_table();

struct AddedToken {
  std::string content;
  int id = 0;
  bool lstrip = false, rstrip = false, single_word = false, normalized = false, special = false;
};

// Leftmost-longest matching of added tokens in a text (a byte trie), with tokenizers' rules for
// single_word, lstrip and rstrip.
class AddedMatcher {
 public:
  struct Segment {
    size_t begin, end;
    int id;  // the added token's id, or -1 for text between tokens
  };
  void add(std::string pattern, const AddedToken* token);
  bool empty() const { return nodes_.size() <= 1; }
  // Covers all of `text` with segments (empty text gives none).
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int>> next;  // sorted by byte
    const AddedToken* token = nullptr;          // a pattern ends here
  };
  int child(int node, uint8_t b) const;
  std::vector<Node> nodes_{1};
  std::array<bool, 256> first_{};  // bytes that start some pattern
};

// Unicode normalization forms applied in order (a Sequence of NFC/NFD/NFKC/NFKD).
struct Normalizer {
  std::vector<int> utf8proc_options;
  bool active() const { return !utf8proc_options.empty(); }
  std::string apply(std::string_view text) const;  // text is valid UTF-8
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreStep {
  enum class Kind { Split, ByteLevel } kind = Kind::Split;
  const Regex* regex = nullptr;  // Split's pattern; ByteLevel's GPT-2 regex if use_regex, else null
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
  std::string pattern;            // the regex's text as the file wrote it (GGUF export)
  bool literal = false;           // Split with a String pattern
};

// The BPE model over the raw bytes of one pre-token (the ByteLevel mapping is implicit: byte b
// is the vocabulary entry of the character char_of[b]).
class BpeModel {
 public:
  std::array<int, 256> byte_id{};  // -1 where the byte's character is not in the vocabulary
  // (left id, right id) → (rank, merged id); a later duplicate of a merge replaces the earlier,
  // as in tokenizers.
  std::unordered_map<uint64_t, std::pair<int, int>> merges;
  StrMap<int> raw_vocab;  // raw bytes of every byte-level vocabulary entry → id
  bool ignore_merges = false;
  int unk_id = -1;
  bool fuse_unk = false;

  void encode_word(std::string_view bytes, std::vector<int>& ids) const;

 private:
  void merge_word(std::string_view bytes, std::vector<int>& ids) const;
  // Words already merged (tokenizers keeps a cache as well); bounded, filled until full.
  mutable std::mutex cache_mutex_;
  mutable StrMap<std::vector<int>> cache_;
};

}  // namespace lmq::bpe

namespace lmq {

struct BpeTokenizer::Impl {
  std::string origin;
  std::vector<std::string> pieces;  // per id: vocabulary string or added token content
  std::vector<std::string> bytes;   // per id: what the ByteLevel decoder makes of it
  std::vector<int8_t> types;        // per id: llama.cpp token type
  bpe::StrMap<int> ids;             // piece → id (added tokens win, as in tokenizers)

  std::vector<bpe::AddedToken> added;
  bpe::AddedMatcher raw_added, normalized_added;
  bpe::Normalizer normalizer;
  std::vector<std::unique_ptr<bpe::Regex>> regexes;  // owned here, used by pre_steps
  std::vector<bpe::PreStep> pre_steps;               // ByteLevel is the last
  bpe::BpeModel model;
  std::vector<int> prefix, suffix;  // post-processor template around the text
};

}  // namespace lmq
