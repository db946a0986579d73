#include "lmq/model/tokenizer.h"

#include <sentencepiece_processor.h>

#include "lmq/error.h"
#include "lmq/mapped_file.h"

namespace lmq {

Tokenizer::Tokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::from_file(const std::string& path) { return from_bytes(read_text_file(path), path); }

Tokenizer Tokenizer::from_bytes(std::string bytes, const std::string& origin) {
  Tokenizer t;
  sentencepiece::util::Status st;
  try {
    st = t.sp_->LoadFromSerializedProto(bytes);
  } catch (const std::exception& e) {
    // libsentencepiece's trie builder (darts-clone) throws on some malformed vocabularies.
    fail("{}: not a SentencePiece model: {}", origin, e.what());
  }
  if (!st.ok()) fail("{}: not a SentencePiece model: {}", origin, st.ToString());
  t.bytes_ = std::move(bytes);
  return t;
}

std::vector<int> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  auto st = sp_->Encode(text, &ids);
  if (!st.ok()) fail("tokenizer: cannot encode text: {}", st.ToString());
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  std::string out;
  auto st = sp_->Decode(ids, &out);
  if (!st.ok()) fail("tokenizer: cannot decode ids: {}", st.ToString());
  return out;
}

std::string Tokenizer::piece_text(int prev, int id) const {
  // Decoding the pair and dropping the prefix keeps SentencePiece's whitespace rules right.
  std::string a = decode({prev});
  std::string ab = decode({prev, id});
  return ab.size() >= a.size() && ab.compare(0, a.size(), a) == 0 ? ab.substr(a.size()) : decode({id});
}

int Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

const std::string& Tokenizer::piece(int id) const { return sp_->IdToPiece(id); }
float Tokenizer::score(int id) const { return sp_->GetScore(id); }
int Tokenizer::token_type(int id) const {
  if (sp_->IsUnknown(id)) return 2;
  if (sp_->IsControl(id)) return 3;
  if (sp_->IsByte(id)) return 6;
  if (sp_->IsUnused(id)) return 5;
  return 1;
}

}  // namespace lmq
