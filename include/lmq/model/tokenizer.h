// The SentencePiece tokenizer (libsentencepiece), loaded from a tokenizer.model file or from
// the serialized model bytes stored inside lmq's file.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece { class SentencePieceProcessor; }

namespace lmq {

class Tokenizer {
 public:
  static Tokenizer from_file(const std::string& path);
  // `origin` names where the bytes came from, for errors.
  static Tokenizer from_bytes(std::string bytes, const std::string& origin);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  std::vector<int> encode(std::string_view text) const;  // no BOS
  std::string decode(const std::vector<int>& ids) const;
  // The text one token adds after `prev` (for streaming output).
  std::string piece_text(int prev, int id) const;
  int vocab_size() const;
  // The vocabulary entry `id` (0 <= id < vocab_size()): its piece, score, and its type in
  // llama.cpp's numbering (1 normal, 2 unknown, 3 control, 5 unused, 6 byte; user-defined
  // pieces read as normal: SentencePiece's API does not tell them apart).
  const std::string& piece(int id) const;
  float score(int id) const;
  int token_type(int id) const;
  const std::string& serialized() const { return bytes_; }

 private:
  Tokenizer();
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string bytes_;
};

}  // namespace lmq
