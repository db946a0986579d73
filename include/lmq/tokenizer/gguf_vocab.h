// Byte-level BPE vocabularies in GGUF, as llama.cpp reads and writes them
// (`tokenizer.ggml.model` = "gpt2"): tokens, token types, merges, the pre-tokenizer by name
// (`tokenizer.ggml.pre`), BOS/EOS ids and whether they are added.
//
// llama.cpp does not store the pre-tokenizer's regexes; it maps the name to regexes of its own
// (src/llama-vocab.cpp, llm_tokenizer_bpe; names in llama_vocab::impl::load). lmq keeps that
// table for the names below: reading runs llama.cpp's regexes, writing picks the name whose
// tokenizer.json regexes equal the file's (docs/tokenizers.md).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lmq/formats/gguf.h"
#include "lmq/tokenizer/bpe.h"

namespace lmq {

struct LlamaCppPre {
  std::string_view name;                      // what llama.cpp's converter writes
  std::vector<std::string_view> aliases;      // other names llama.cpp maps to the same regexes
  std::vector<std::string_view> regexes;      // what llama.cpp runs, in order
  // The same pre-tokenizer as tokenizer.json files write it (Split patterns, then the
  // ByteLevel step's GPT-2 regex when use_regex), for choosing the name when writing.
  std::vector<std::vector<std::string_view>> hf_regexes;
  bool ignore_merges = false;  // llama.cpp sets it for these names
  bool add_bos = false;        // llama.cpp's default when tokenizer.ggml.add_bos_token is absent
};

// The entry for a tokenizer.ggml.pre name (or alias); nothing for a name lmq does not know.
const LlamaCppPre* find_llamacpp_pre(std::string_view name);
// The entry whose tokenizer.json regexes are exactly `regexes`; nothing when none is.
const LlamaCppPre* llamacpp_pre_of_regexes(const std::vector<std::string>& regexes);
// Every entry (for docs and tests).
const std::vector<LlamaCppPre>& llamacpp_pres();

// The tokenizer of a GGUF file whose tokenizer.ggml.model is "gpt2". Throws lmq::Error naming
// the file for an unknown tokenizer.ggml.pre, token_type or merges that do not fit the tokens,
// ids outside the vocabulary, and everything BpeTokenizer::from_parts refuses.
BpeTokenizer bpe_from_gguf(const GgufFile& f);
// The parts it is built from (BpeTokenizer::json_of gives the equivalent tokenizer.json).
BpeParts bpe_parts_from_gguf(const GgufFile& f);

// The tokenizer.ggml.* metadata that writes `tok` for llama.cpp, with `vocab_rows` rows in the
// embedding (llama.cpp pads the token list to it as the converter does). The pre-tokenizer name
// comes from the regexes; when they match no entry, `warning` says so (naming the regexes) and
// "default" is written (llama.cpp's own fallback, which tokenizes differently).
struct GgufBpeVocab {
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::string warning;  // empty when the pre-tokenizer was recognized
};
// bos_id and eos_id come from the model config (-1: none); a tokenizer that adds a BOS gives its own.
GgufBpeVocab gguf_bpe_vocab(const BpeTokenizer& tok, int vocab_rows, int bos_id, int eos_id);

}  // namespace lmq
