#include "lmq/model/tokenizer.h"

#include <sentencepiece_processor.h>

#include "lmq/error.h"
#include "lmq/mapped_file.h"
#include "lmq/model/spm_proto.h"

namespace lmq {

const char* tokenizer_kind_name(TokenizerKind k) {
  return k == TokenizerKind::Bpe ? "bpe" : "sentencepiece";
}

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::from_file(const std::string& path) { return from_bytes(read_text_file(path), path); }

Tokenizer Tokenizer::from_bytes(std::string bytes, const std::string& origin) {
  check_spm_model_bytes(bytes, origin);
  Tokenizer t;
  t.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  sentencepiece::util::Status st;
  try {
    st = t.sp_->LoadFromSerializedProto(bytes);
  } catch (const std::exception& e) {
    // libsentencepiece's trie builder (darts-clone) throws on some malformed vocabularies.
    fail("{}: not a SentencePiece model: {}", origin, e.what());
  }
  if (!st.ok()) fail("{}: not a SentencePiece model: {}", origin, st.ToString());
  t.bytes_ = std::move(bytes);
  t.spm_prefix_ = {1};  // lmq's default until the loader says otherwise (set_bos)
  return t;
}

Tokenizer Tokenizer::from_bpe_file(const std::string& path) { return from_bpe_json(read_text_file(path), path); }

Tokenizer Tokenizer::from_bpe_json(std::string json_text, const std::string& origin) {
  Tokenizer t;
  t.bpe_.emplace(BpeTokenizer::from_json_text(json_text, origin));
  t.bytes_ = std::move(json_text);
  return t;
}

Tokenizer Tokenizer::from_serialized(TokenizerKind kind, std::string bytes, const std::string& origin) {
  return kind == TokenizerKind::Bpe ? from_bpe_json(std::move(bytes), origin) : from_bytes(std::move(bytes), origin);
}

void Tokenizer::set_bos(bool add, int id) {
  if (bpe_) return;  // the template decides
  spm_prefix_.clear();
  if (add) spm_prefix_.push_back(id);
}

std::vector<int> Tokenizer::encode(std::string_view text) const {
  if (bpe_) return bpe_->encode(text, false);
  std::vector<int> ids;
  auto st = sp_->Encode(text, &ids);
  if (!st.ok()) fail("tokenizer: cannot encode text: {}", st.ToString());
  return ids;
}

std::vector<int> Tokenizer::encode_with_specials(std::string_view text) const {
  if (bpe_) return bpe_->encode(text, true);
  std::vector<int> ids = prefix_ids();
  const std::vector<int> body = encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

const std::vector<int>& Tokenizer::prefix_ids() const { return bpe_ ? bpe_->prefix_ids() : spm_prefix_; }

const std::vector<int>& Tokenizer::suffix_ids() const {
  static const std::vector<int> none;
  return bpe_ ? bpe_->suffix_ids() : none;
}

std::string Tokenizer::decode(const std::vector<int>& ids) const {
  if (bpe_) return bpe_->decode(ids);
  std::string out;
  auto st = sp_->Decode(ids, &out);
  if (!st.ok()) fail("tokenizer: cannot decode ids: {}", st.ToString());
  return out;
}

std::string Tokenizer::spm_piece_text(int prev, int id) const {
  // Decoding the pair and dropping the prefix keeps SentencePiece's whitespace rules right.
  std::string a = decode({prev});
  std::string ab = decode({prev, id});
  return ab.size() >= a.size() && ab.compare(0, a.size(), a) == 0 ? ab.substr(a.size()) : decode({id});
}

std::string Tokenizer::Stream::push(int id) {
  if (const BpeTokenizer* b = tok_->bpe()) {
    if (id < 0 || id >= b->vocab_size()) fail("tokenizer: id {} is outside the vocabulary of {}", id, b->vocab_size());
    return utf8_.push(b->token_bytes(id));
  }
  std::string s = tok_->spm_piece_text(prev_, id);
  prev_ = id;
  return s;
}

std::string Tokenizer::Stream::flush() { return tok_->bpe() ? utf8_.flush() : std::string(); }

int Tokenizer::vocab_size() const { return bpe_ ? bpe_->vocab_size() : sp_->GetPieceSize(); }

const std::string& Tokenizer::piece(int id) const { return bpe_ ? bpe_->piece(id) : sp_->IdToPiece(id); }
float Tokenizer::score(int id) const { return bpe_ ? 0.0f : sp_->GetScore(id); }
int Tokenizer::token_type(int id) const {
  if (bpe_) return bpe_->token_type(id);
  if (sp_->IsUnknown(id)) return 2;
  if (sp_->IsControl(id)) return 3;
  if (sp_->IsByte(id)) return 6;
  if (sp_->IsUnused(id)) return 5;
  return 1;
}

}  // namespace lmq
