// GGUF byte-level BPE vocabularies (include/lmq/tokenizer/gguf_vocab.h). The regexes and the
// name → regexes mapping are llama.cpp's (src/llama-vocab.cpp, b4748 and later: llm_tokenizer_bpe
// and llama_vocab::impl::load); the tokenizer.json forms are those its comments quote and the
// files of the models it names hold.
#include "lmq/tokenizer/gguf_vocab.h"

#include <algorithm>

#include "lmq/error.h"

namespace lmq {

namespace {

// GPT-2's pattern as llama.cpp runs it (without tokenizers' final `|\s+`: llama.cpp keeps the
// text between matches as pieces, so trailing whitespace becomes a piece either way).
constexpr std::string_view kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
// GPT-2's pattern as tokenizers' ByteLevel(use_regex) runs it.
constexpr std::string_view kGpt2Hf = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// llama.cpp spells tokenizers' case-insensitive contractions `(?i:'s|...)` with character classes.
constexpr std::string_view kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Hf =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Hf =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const std::vector<LlamaCppPre> kPres = {
    // llama.cpp's fallback for an absent name; no tokenizer.json is written this way.
    {"default", {}, {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}, {}, false, false},
    {"llama-bpe", {"llama3", "llama-v3", "falcon3"}, {kLlama3}, {{kLlama3Hf}, {kLlama3}}, true, true},
    {"qwen2", {"deepseek-r1-qwen"}, {kQwen2}, {{kQwen2Hf}, {kQwen2}}, false, false},
    {"gpt-2", {"phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de"}, {kGpt2}, {{kGpt2Hf}, {kGpt2}}, false, false},
    // SmolLM's tokenizer.json has Digits(individual_digits) before ByteLevel(use_regex); lmq
    // reads that digit split written as a Split of \p{N}.
    {"smollm", {}, {R"(\p{N})", kGpt2}, {{R"(\p{N})", kGpt2Hf}, {R"(\p{N})", kGpt2}}, false, false},
};

std::string names() {
  std::string s;
  for (const LlamaCppPre& p : kPres) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

int token_type_at(const GgufFile& f, const std::vector<GgufValue>& types, size_t i) {
  const GgufValue& v = types[i];
  if (!v.is_integer()) fail("{}: tokenizer.ggml.token_type must hold integers", f.path());
  const int64_t t = v.is_unsigned() ? int64_t(std::min<uint64_t>(std::get<uint64_t>(v.v), 1000)) : std::get<int64_t>(v.v);
  if (t == 0) return 1;  // undefined → normal, as llama.cpp reads it
  if (t == 6) fail("{}: token {} is a byte token (type 6), which only SentencePiece vocabularies have", f.path(), i);
  if (t < 1 || t > 5) fail("{}: token {} has unknown token type {}", f.path(), i, t);
  return int(t);
}

int id_of(const GgufFile& f, const char* key, size_t n) {
  const uint32_t v = f.get_u32(key);
  if (v >= n) fail("{}: {} = {} is outside the vocabulary of {} tokens", f.path(), key, v, n);
  return int(v);
}

}  // namespace

const std::vector<LlamaCppPre>& llamacpp_pres() { return kPres; }

const LlamaCppPre* find_llamacpp_pre(std::string_view name) {
  for (const LlamaCppPre& p : kPres)
    if (p.name == name || std::find(p.aliases.begin(), p.aliases.end(), name) != p.aliases.end()) return &p;
  return nullptr;
}

const LlamaCppPre* llamacpp_pre_of_regexes(const std::vector<std::string>& regexes) {
  for (const LlamaCppPre& p : kPres)
    for (const auto& form : p.hf_regexes)
      if (std::equal(form.begin(), form.end(), regexes.begin(), regexes.end())) return &p;
  return nullptr;
}

BpeParts bpe_parts_from_gguf(const GgufFile& f) {
  const std::string& model = f.get_string("tokenizer.ggml.model");
  if (model != "gpt2") fail("{}: tokenizer.ggml.model is '{}', not a byte-level BPE ('gpt2')", f.path(), model);
  BpeParts p;
  p.origin = f.path() + ": tokenizer.ggml";
  p.tokens = f.get_string_array("tokenizer.ggml.tokens");
  const size_t n = p.tokens.size();
  if (n == 0) fail("{}: tokenizer.ggml.tokens is empty", f.path());
  p.token_types.assign(n, 1);
  if (f.has("tokenizer.ggml.token_type")) {
    const GgufValue& v = f.get("tokenizer.ggml.token_type");
    if (v.type != GgufType::ARRAY) fail("{}: tokenizer.ggml.token_type is not an array", f.path());
    const auto& types = std::get<std::vector<GgufValue>>(v.v);
    if (types.size() != n)
      fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", f.path(), types.size(), n);
    for (size_t i = 0; i < n; ++i) p.token_types[i] = token_type_at(f, types, i);
  }
  if (!f.has("tokenizer.ggml.merges")) fail("{}: tokenizer.ggml.merges is missing (a gpt2 vocabulary needs it)", f.path());
  p.merges = f.get_string_array("tokenizer.ggml.merges");
  // llama.cpp falls back to "default" (with a warning) when the name is absent.
  const std::string pre = f.has("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "default";
  const LlamaCppPre* entry = find_llamacpp_pre(pre);
  if (!entry) fail("{}: tokenizer.ggml.pre '{}' is not a pre-tokenizer lmq knows ({})", f.path(), pre, names());
  p.split_regexes.assign(entry->regexes.begin(), entry->regexes.end());
  p.ignore_merges = entry->ignore_merges;
  const bool add_bos = f.has("tokenizer.ggml.add_bos_token") ? f.get_bool("tokenizer.ggml.add_bos_token") : entry->add_bos;
  const bool add_eos = f.has("tokenizer.ggml.add_eos_token") && f.get_bool("tokenizer.ggml.add_eos_token");
  if (add_bos) {
    if (!f.has("tokenizer.ggml.bos_token_id")) fail("{}: tokenizer.ggml.add_bos_token is set but there is no bos_token_id", f.path());
    p.prefix.push_back(id_of(f, "tokenizer.ggml.bos_token_id", n));
  }
  if (add_eos) {
    if (!f.has("tokenizer.ggml.eos_token_id")) fail("{}: tokenizer.ggml.add_eos_token is set but there is no eos_token_id", f.path());
    p.suffix.push_back(id_of(f, "tokenizer.ggml.eos_token_id", n));
  }
  return p;
}

BpeTokenizer bpe_from_gguf(const GgufFile& f) { return BpeTokenizer::from_parts(bpe_parts_from_gguf(f)); }

GgufBpeVocab gguf_bpe_vocab(const BpeTokenizer& tok, int vocab_rows, int bos_id, int eos_id) {
  GgufBpeVocab out;
  const int n = tok.vocab_size();
  if (n > vocab_rows) fail("{}: the tokenizer has {} tokens, the embedding only {} rows", tok.origin(), n, vocab_rows);
  const LlamaCppPre* entry = nullptr;
  if (const auto regexes = tok.split_regexes()) {
    entry = llamacpp_pre_of_regexes(*regexes);
    if (!entry) {
      out.warning = "the pre-tokenizer regex";
      for (const std::string& re : *regexes) out.warning += " '" + re + "'";
      out.warning += " matches none of llama.cpp's (" + names() + ")";
    }
  } else {
    out.warning = "the pre-tokenizer is not a list of regex splits (Isolated) that llama.cpp can express";
  }
  if (!entry) {
    out.warning += "; writing tokenizer.ggml.pre = 'default', which llama.cpp tokenizes differently";
    entry = find_llamacpp_pre("default");
  }
  std::vector<GgufValue> tokens, types;
  tokens.reserve(size_t(vocab_rows));
  types.reserve(size_t(vocab_rows));
  for (int id = 0; id < vocab_rows; ++id) {
    // Rows past the tokenizer: llama.cpp's converter pads with "[PAD<id>]" tokens of type UNUSED.
    tokens.push_back(GgufValue::str(id < n ? tok.piece(id) : "[PAD" + std::to_string(id) + "]"));
    types.push_back(GgufValue::i32(id < n ? tok.token_type(id) : 5));
  }
  auto& m = out.metadata;
  m.emplace_back("tokenizer.ggml.model", GgufValue::str("gpt2"));
  m.emplace_back("tokenizer.ggml.pre", GgufValue::str(std::string(entry->name)));
  m.emplace_back("tokenizer.ggml.tokens", GgufValue::array(GgufType::STRING, std::move(tokens)));
  m.emplace_back("tokenizer.ggml.token_type", GgufValue::array(GgufType::INT32, std::move(types)));
  m.emplace_back("tokenizer.ggml.merges", GgufValue::string_array(tok.merges()));
  if (tok.adds_bos()) bos_id = tok.bos_id();
  if (bos_id >= 0) m.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::u32(uint32_t(bos_id)));
  if (eos_id >= 0) m.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::u32(uint32_t(eos_id)));
  m.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(tok.adds_bos()));
  m.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::boolean(!tok.suffix_ids().empty()));
  return out;
}

}  // namespace lmq
