// Exporting a model as a GGUF file (version 3) that llama.cpp loads: llama.cpp's metadata keys
// and tensor names, the SentencePiece vocabulary as tokenizer.ggml.*, llama's Q/K rows
// permuted as convert_hf_to_gguf.py does, norms and biases in F32, 2-D weights in a ggml type
// chosen as llama-quantize chooses it (see GgufScheme), quantized by lmq's byte-exact copies of
// llama.cpp's reference quantizers. Streamed: one tensor in memory at a time, written through
// GgufWriter's streamed mode into an atomic file (temp file, fsync, rename). The plan
// (quant/quant_plan.h) gives each tensor's type and what a calibrated method (calib/pipeline.h)
// decided: the bytes it chose (in HF row order: the Q/K permutation moves whole quantized rows),
// importance for weighted fits, or float values that replace the checkpoint's (AWQ's folds).
#pragma once
#include <functional>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "lmq/model/model.h"
#include "lmq/quant/gguf_recipe.h"
#include "lmq/quant/quant_plan.h"

namespace lmq {

// A --scheme for GGUF output: a llama-quantize file type, named as llama-quantize names it
// (quant/gguf_recipe.h), and every tensor gets the type llama-quantize (b4748) would give it:
//  - f32 f16 bf16: every 2-D weight in that type;
//  - q8_0 q4_0 q4_1 q5_0 q5_1 q6_k: that type, the output matrix (output.weight, or the token
//    embedding when tied) Q6_K unless the type is Q8_0, llama.cpp's ffn_down rule for Q4_0/Q5_0
//    with an importance matrix;
//  - the mixtures q2_k q2_k_s q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m, and q3_k q4_k
//    q5_k (llama-quantize's aliases of the _m ones): llama_tensor_get_type's per-tensor choices;
//  - the i-quant mixtures iq2_xxs iq2_xs iq2_s iq2_m iq3_xxs iq3_xs iq3_s iq3_m iq4_nl iq4_xs
//    iq1_s iq1_m: the same, refused when a tensor needs a type lmq cannot write yet.
//  - pure-NAME (NAME any of the above): llama-quantize --pure: the file type's one type for every
//    2-D weight, output and token embedding included (pure-q4_k_m = pure-q4_k: all Q4_K).
// Then llama.cpp's fallback for rows that are not a whole number of blocks: Q6_K→Q8_0,
// Q5_K→Q5_1, Q4_K→Q5_0, Q3_K/Q2_K/i-quants→IQ4_NL, and F16 when even 32 does not divide the row;
// while lmq cannot write IQ4_NL, Q3_K/Q2_K fall back to Q4_0 as later llama.cpp does (noted in
// the tensor's note).
struct GgufScheme {
  std::string name = "q8_0";                 // as given, lower case ("q4_k_m", "pure-q2_k")
  LlamaFtype ftype = *find_llama_ftype("q8_0");  // its file type (general.file_type) and default type
  bool pure = false;                         // llama-quantize --pure
};
GgufScheme parse_gguf_scheme(const std::string& s);  // throws listing the accepted names
Format parse_ggml_type(const std::string& s);          // "q4_k", "Q6_K", "f16" ...; throws

struct GgufTypeOverride {
  std::string pattern;  // ECMAScript regex, searched in the GGUF name and in the HF name
  std::regex re;
  Format type;
};
GgufTypeOverride parse_gguf_override(const std::string& s);  // "REGEX=TYPE"

struct GgufExportOptions {
  GgufScheme scheme;
  std::vector<GgufTypeOverride> overrides;  // first match wins; then the fallback applies
  // llama-quantize's has_imatrix: the block fits are weighted by calibrated importance (--method
  // awmse, awq, awq+gptq, or --hessian-fit); a few of its rules depend on it.
  bool imatrix = false;
  std::string name;  // general.name; empty: from the model's path ("lmq-llama-25m" → "Lmq Llama 25m")
  // The plan (quant/quant_plan.h), by HF tensor name: each tensor's ggml type (unset: from
  // these options) and what a calibrated method decided: bytes of the target type in HF row
  // order; values that replace the checkpoint's (AWQ's folded norms, scaled biases and float
  // linears), stored in the tensor's type; importance per input column for the weighted fit
  // that plan->weighted asks for.
  const QuantPlan* plan = nullptr;
};

// llama-quantize's recipe for `src` under these options' scheme (overrides not applied), by HF
// tensor name: the GGUF name and the ggml type ids (quant/gguf_recipe.h). Computes types only.
struct GgufRecipeEntry {
  std::string gguf_name;
  RecipeType type;
};
std::map<std::string, GgufRecipeEntry> gguf_recipe(const Model& src, const GgufExportOptions& o);

// The plan's first step: the ggml type of each tensor of `src` (by HF name) under these options
// (llama.cpp's recipe, the overrides, the fallback, noted in the target); plan.gguf is set.
QuantPlan plan_gguf_targets(const Model& src, const GgufExportOptions& o);

struct GgufTensorReport {
  std::string name, hf_name, type, note;  // note: "fallback from q4_K" etc.
  // A tensor the source holds quantized (LMQ_INT, e.g. read from a GPTQ checkpoint) into a
  // quantized type: "carried" (its codes and scales as they are) or "requantized" (from its
  // dequantized weights); empty for float sources.
  std::string path;
  std::vector<int64_t> shape;
  uint64_t params = 0, bytes = 0;
  double rel_rms = 0;  // ‖w − dequant(quant(w))‖ / ‖w‖
};
struct GgufExportReport {
  std::vector<GgufTensorReport> tensors;
  uint64_t params = 0, tensor_bytes = 0, file_bytes = 0;
  double bpw = 0, rel_rms = 0, seconds = 0;
  int n_fallback = 0;
  int n_carried = 0, n_requantized = 0;  // GgufTensorReport::path counts
  // What llama.cpp will do differently from the model (a pre-tokenizer regex it does not know),
  // one line each, for the caller to print.
  std::vector<std::string> warnings;
};

// The ggml name of an HF tensor name ("model.layers.3.mlp.down_proj.weight" → "blk.3.ffn_down.weight");
// throws for names lmq does not know.
std::string gguf_tensor_name(const std::string& hf_name);

// The GGUF hand-off without a second rounding: for every tensor that `src` holds as LMQ_INT
// and whose planned ggml type holds its codes and scales exactly, fills the plan's bytes with
// them and marks the tensor carried. Exact means group 32, fp16 scales, inputs in order (no
// act-order permutation), and
//   symmetric 4-bit → Q4_0   (d = s, q = u),
//   symmetric 8-bit → Q8_0   (d = s, q = u − 128),
//   4-bit           → Q4_1   (d = s, m = −s·z, when m is exact in fp16 in every block);
// ggml's dequantization then gives s·(u − z) bit for bit. Tensors a method already decided
// (bytes, values, folding) and plans with the weighted fit are left to the writer, which
// requantizes the rest from the dequantized weights.
void carry_exact_blocks(const Model& src, QuantPlan& plan);

using GgufProgress = std::function<void(size_t done, size_t total, const std::string& name)>;
GgufExportReport export_gguf(const Model& src, const std::string& out, const GgufExportOptions& o,
                             const GgufProgress& progress = {});

}  // namespace lmq
