// lmq's one tokenizer interface over the two families today's models ship:
//   - SentencePiece (libsentencepiece), from a tokenizer.model file or its serialized bytes
//     (Llama-2-style models; lmq's and GGUF's SentencePiece vocabularies);
//   - byte-level BPE from a Hugging Face tokenizer.json (tokenizer/bpe.h: Llama-3, Qwen, ...).
// Everything else in lmq (run, eval, calibration, the writers) talks to this class only.
//
// Whether a BOS starts a sequence is the tokenizer's rule: the BPE post-processor's template, or
// for SentencePiece the `add_bos_token` of tokenizer_config.json / GGUF's add_bos_token (given by
// the loader through set_bos); never config.json's bos_token_id alone.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lmq/tokenizer/bpe.h"
#include "lmq/tokenizer/utf8.h"

namespace sentencepiece { class SentencePieceProcessor; }

namespace lmq {

enum class TokenizerKind { SentencePiece, Bpe };
const char* tokenizer_kind_name(TokenizerKind k);  // "sentencepiece", "bpe"

class Tokenizer {
 public:
  // SentencePiece from a tokenizer.model file or its bytes; `origin` names them in errors.
  static Tokenizer from_file(const std::string& path);
  static Tokenizer from_bytes(std::string bytes, const std::string& origin);
  // Byte-level BPE from a tokenizer.json file or its text.
  static Tokenizer from_bpe_file(const std::string& path);
  static Tokenizer from_bpe_json(std::string json_text, const std::string& origin);
  // Either kind from what serialized() returned.
  static Tokenizer from_serialized(TokenizerKind kind, std::string bytes, const std::string& origin);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  TokenizerKind kind() const { return bpe_ ? TokenizerKind::Bpe : TokenizerKind::SentencePiece; }
  // The text's ids without any special token added (special tokens written in a BPE text are
  // still matched as single tokens, as tokenizers does).
  std::vector<int> encode(std::string_view text) const;
  // prefix_ids() + encode(text) + suffix_ids(): what HF's tokenizer(text) gives.
  std::vector<int> encode_with_specials(std::string_view text) const;
  const std::vector<int>& prefix_ids() const;  // [BOS] when the tokenizer adds one, else empty
  const std::vector<int>& suffix_ids() const;
  bool adds_bos() const { return !prefix_ids().empty(); }
  int bos_id() const { return adds_bos() ? prefix_ids().front() : -1; }
  // SentencePiece only (BPE's rule is its template): whether and which BOS is added.
  void set_bos(bool add, int id);

  // Special tokens are kept (tokenizers' skip_special_tokens=False).
  std::string decode(const std::vector<int>& ids) const;
  // Text of a token stream, one token at a time: the pieces join to decode(ids) (a BPE token may
  // end inside a UTF-8 character; the stream holds it until the next token completes it).
  class Stream {
   public:
    std::string push(int id);
    std::string flush();

   private:
    friend class Tokenizer;
    Stream(const Tokenizer& t, int prev) : tok_(&t), prev_(prev) {}
    const Tokenizer* tok_;
    int prev_;
    Utf8Stream utf8_;
  };
  // `prev`: the last token before the stream (the prompt's), for SentencePiece's spacing.
  Stream stream(int prev) const { return Stream(*this, prev); }

  int vocab_size() const;
  // The vocabulary entry `id` (0 <= id < vocab_size()): its piece (BPE: byte-level string), score
  // (SentencePiece's; 0 for BPE), and its type in llama.cpp's numbering (1 normal, 2 unknown,
  // 3 control, 4 user-defined, 5 unused, 6 byte; SentencePiece's user-defined read as normal).
  const std::string& piece(int id) const;
  float score(int id) const;
  int token_type(int id) const;
  // What lmq's file stores to rebuild it: tokenizer.model bytes or tokenizer.json text.
  const std::string& serialized() const { return bytes_; }
  // The BPE tokenizer itself (merges, ...), null for SentencePiece.
  const BpeTokenizer* bpe() const { return bpe_ ? &*bpe_ : nullptr; }

 private:
  Tokenizer();
  // The SentencePiece text one token adds after `prev`.
  std::string spm_piece_text(int prev, int id) const;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::optional<BpeTokenizer> bpe_;
  std::string bytes_;
  std::vector<int> spm_prefix_;  // SentencePiece: {bos} when it adds one
};

}  // namespace lmq
