// Byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` (the format of the
// `tokenizers` library), encoding and decoding exactly as `tokenizers` does for the components it
// supports; every other component is refused at load time with one lmq::Error naming the file
// and the component (docs/tokenizers.md lists both).
//
// Pipeline of encode(), as in tokenizers: added tokens are cut out of the raw text first (each
// becomes its own id), the rest is normalized (NFC/NFD/NFKC/NFKD), pre-tokenized (regex Split,
// ByteLevel), and each pre-token is merged by the BPE model; the post-processor's template then
// adds its special tokens (Llama-3's BOS) when `add_special` is set.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmq {

// A byte-level BPE given by its parts rather than a tokenizer.json: what a GGUF vocabulary holds
// (include/lmq/tokenizer/gguf_vocab.h). Pre-tokenization is the regexes in order, each splitting
// the pieces of the one before and keeping the text between matches as pieces too (tokenizers'
// Split with Isolated, llama.cpp's unicode_regex_split), then the byte-level mapping.
struct BpeParts {
  std::string origin;                      // the file, for errors
  std::vector<std::string> tokens;         // id → byte-level string ("Ġthe") or added token text
  std::vector<int> token_types;            // llama.cpp's, per id: 3 control and 4 user-defined are
                                           // added tokens (3 special), the rest the BPE vocabulary
  std::vector<std::string> merges;         // "a b", highest priority first
  std::vector<std::string> split_regexes;  // Oniguruma syntax, as tokenizer.json writes them
  bool ignore_merges = false;              // a word that is a vocabulary entry is one token
  std::vector<int> prefix, suffix;         // put around the text when add_special (BOS, EOS)
};

class BpeTokenizer {
 public:
  static BpeTokenizer from_file(const std::string& path);
  // Checked as a tokenizer.json is (the same loader reads the equivalent document).
  static BpeTokenizer from_parts(const BpeParts& parts);
  // That equivalent tokenizer.json (what lmq's file stores for a tokenizer read from GGUF);
  // from_json_text of it gives the same tokenizer. Checks as from_parts does.
  static std::string json_of(const BpeParts& parts);
  // `origin` names where the text came from (a path), for errors.
  static BpeTokenizer from_json_text(std::string_view json_text, const std::string& origin);

  // Text that is not valid UTF-8 is read as utf8_lossy(text) (invalid bytes become U+FFFD).
  // Special tokens written in the text are matched as single tokens. Throws lmq::Error when the
  // file's regex exceeds PCRE2's match limit on this text (catastrophic backtracking).
  std::vector<int> encode(std::string_view text, bool add_special = true) const;
  // The text of the ids, special tokens included (as tokenizers' decode with
  // skip_special_tokens=False). Throws lmq::Error for an id outside [0, vocab_size()).
  std::string decode(const std::vector<int>& ids) const;

  // The raw bytes token `id` stands for (what the ByteLevel decoder makes of it): concatenated and
  // passed through utf8_lossy, or through a Utf8Stream one token at a time, they give decode().
  const std::string& token_bytes(int id) const;
  // The vocabulary entry: the model's string for the id (byte-level characters, e.g. "Ġthe"), or
  // an added token's content.
  const std::string& piece(int id) const;
  // llama.cpp's token types: 1 normal, 3 control (special added tokens), 4 user-defined (other
  // added tokens).
  int token_type(int id) const;
  bool is_special(int id) const { return token_type(id) == 3; }
  // Ids 0..vocab_size()-1: the model's vocabulary followed by the added tokens.
  int vocab_size() const;
  // The id of a vocabulary entry or added token given by its string, if any.
  std::optional<int> token_id(std::string_view piece) const;

  // What the post-processor's template puts around the text when add_special is set.
  const std::vector<int>& prefix_ids() const;
  const std::vector<int>& suffix_ids() const;
  bool adds_bos() const { return !prefix_ids().empty(); }
  int bos_id() const { return adds_bos() ? prefix_ids().front() : -1; }

  const std::string& origin() const;

  // For writers of other formats (GGUF): the merges as "a b" by rank, ignore_merges, and the
  // pre-tokenizer as a list of Isolated regex splits (BpeParts::split_regexes; the ByteLevel
  // step's own regex counts as the last one) — nothing when it is not such a list (an inverted
  // or non-Isolated Split, a literal pattern, add_prefix_space).
  std::vector<std::string> merges() const;
  bool ignore_merges() const;
  std::optional<std::vector<std::string>> split_regexes() const;

  struct Impl;

 private:
  explicit BpeTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace lmq
