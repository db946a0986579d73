// llama-quantize's per-tensor type choice, as llama.cpp b4748 (commit c392e509) makes it in
// src/llama-quant.cpp: the file type's default type (the ftype → type map of
// llama_model_quantize_impl), llama_tensor_get_type's per-tensor rules with their counters, and
// the fallback for rows that are not a whole number of blocks. Written over ggml type ids
// (GGML_TYPE_* numbers), so it can name types lmq does not implement: the caller maps each id to
// an lmq Format (format_by_gguf_type) and refuses what it cannot write.
// For the architectures lmq exports (llama, qwen2, qwen3): no experts, not Falcon, no fused QKV
// in practice (the attn_qkv rules are kept, they cost nothing).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lmq {

// GGML_TYPE_* ids (ggml.h), the ones llama-quantize's recipes use.
namespace ggml_type {
enum : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
};
}  // namespace ggml_type
// "IQ2_XS", "Q4_K", "F32"; "type N" for an id not listed above.
std::string ggml_type_label(uint32_t id);

// One llama-quantize file type (its QUANT_OPTIONS names, lower case; Q3_K/Q4_K/Q5_K are its
// aliases of the _M mixtures).
struct LlamaFtype {
  std::string_view name;   // "q4_k_m"
  uint32_t ftype;          // llama_ftype (llama.h): general.file_type
  uint32_t default_type;   // the type every quantized tensor starts from
};
std::span<const LlamaFtype> llama_ftypes();
const LlamaFtype* find_llama_ftype(std::string_view lower_name);  // null when unknown

// What llama_tensor_get_type reads of the model.
struct RecipeHparams {
  std::string arch;  // "llama", "qwen2", "qwen3"
  int n_layer = 0, n_head = 0, n_head_kv = 0, n_expert = 0;
};
struct RecipeTensor {
  std::string name;  // GGUF name: "blk.3.ffn_down.weight"
  int n_dims = 2;
  int64_t ncols = 0;  // ne[0], the row length
};
struct RecipeType {
  uint32_t type = ggml_type::F32;  // what llama-quantize stores
  uint32_t chosen = ggml_type::F32;  // the rules' choice before the fallback (== type unless it fell back)
  bool quantized = false;          // llama-quantize converts it (2-D weights, not norms)
};

// The type of each tensor (same order as `tensors`) for file type `ftype`, the tensors being
// those of one model (the counters — attn_v, ffn_down — and "is there an output.weight" are over
// the whole list, visited in llama.cpp's order: by layer, then by name). Tensors llama-quantize
// leaves alone (1-D, norms) get F32, as lmq writes them. `pure`: llama-quantize --pure (the
// default type everywhere, output and token embedding included; where its block does not divide
// the row, lmq applies the same fallback, where llama-quantize --pure would abort). `imatrix`:
// llama-quantize was given an importance matrix (a few rules depend on it).
std::vector<RecipeType> llama_recipe(const LlamaFtype& ftype, bool pure, bool imatrix, const RecipeHparams& hp,
                                     const std::vector<RecipeTensor>& tensors);

// tensor_type_fallback of llama.cpp b4748: the type used when `type`'s block does not divide a
// row of `ncols` (Q2_K/Q3_K/IQ* → IQ4_NL, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; then F16
// when even that block does not divide). Throws for a type without one.
uint32_t llama_fallback_type(uint32_t type, int64_t ncols);

}  // namespace lmq
