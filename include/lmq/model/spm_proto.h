// A serialized SentencePiece ModelProto, written by hand (no protobuf dependency), so that a
// vocabulary stored elsewhere (GGUF's tokenizer.ggml.* arrays) can be loaded by libsentencepiece.
//
// Only the fields lmq needs are written (field numbers from sentencepiece_model.proto):
//   ModelProto      1: repeated SentencePiece pieces, 2: TrainerSpec, 3: NormalizerSpec
//   SentencePiece   1: piece (string), 2: score (float), 3: type (enum)
//   TrainerSpec     3: model_type (1 UNIGRAM, 2 BPE), 35: byte_fallback,
//                   40: unk_id, 41: bos_id, 42: eos_id, 43: pad_id (int32)
//   NormalizerSpec  1: name, 2: precompiled_charsmap, 3: add_dummy_prefix,
//                   4: remove_extra_whitespaces, 5: escape_whitespaces
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmq {

class GgufFile;

// SentencePiece piece types; GGUF's tokenizer.ggml.token_type uses the same numbers
// (0 = undefined, which is written as NORMAL).
enum class SpmType : int { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct SpmPiece {
  std::string piece;
  float score = 0.f;
  SpmType type = SpmType::Normal;
};

struct SpmModelSpec {
  std::vector<SpmPiece> pieces;
  bool bpe = true;  // else UNIGRAM
  bool byte_fallback = false;
  int unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string normalizer = "identity";
  std::string precompiled_charsmap;  // <uint32 trie bytes><darts-clone trie><NUL-terminated strings>; "" = none
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = false;
  bool escape_whitespaces = true;
};

// The wire-format bytes of the ModelProto (what a tokenizer.model file holds).
std::string serialize_spm_model(const SpmModelSpec& spec);

// The SentencePiece model (serialized) of a GGUF's tokenizer.ggml.* arrays; SPM ("llama")
// vocabularies only. Throws lmq::Error naming the file (model/load_gguf.cpp).
std::string gguf_tokenizer_model(const GgufFile& f);

// Refuses (lmq::Error naming `origin`) a ModelProto whose precompiled_charsmap (normalizer or
// denormalizer) libsentencepiece would read out of bounds: it loads the darts-clone trie
// inside unchecked. Other malformations are left to libsentencepiece, which reports them
// (model/spm_check.cpp).
void check_spm_model_bytes(std::string_view bytes, const std::string& origin);

}  // namespace lmq
