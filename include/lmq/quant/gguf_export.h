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
#include "lmq/quant/quant_plan.h"

namespace lmq {

// A --scheme for GGUF output.
//  - a ggml type name: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k: every 2-D
//    weight in that type, except llama.cpp's rule for the output matrix (output.weight, or the
//    token embedding when tied): Q6_K unless the type is Q8_0 (or not quantized);
//  - a llama.cpp mixture: q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m: llama-quantize's
//    per-tensor choices for that file type (attn_v / ffn_down / attn_output promoted in the
//    layers llama_tensor_get_type picks).
// Then llama.cpp's fallback for rows that are not a whole number of blocks: Q6_K→Q8_0,
// Q5_K→Q5_1, Q4_K→Q5_0, Q3_K/Q2_K→Q4_0 (llama.cpp b4748 used IQ4_NL there, which lmq does not
// implement; current llama.cpp uses Q4_0 too), and F16 when even 32 does not divide the row.
struct GgufScheme {
  std::string name;
  Format base = Format::Q8_0;
  char mix = 0;            // 0: plain type; 'S', 'M', 'L': llama.cpp mixture
  uint32_t file_type = 7;  // general.file_type (llama_ftype)
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
  std::string name;  // general.name; empty: from the model's path ("lmq-llama-25m" → "Lmq Llama 25m")
  // The plan (quant/quant_plan.h), by HF tensor name: each tensor's ggml type (unset: from
  // these options) and what a calibrated method decided: bytes of the target type in HF row
  // order; values that replace the checkpoint's (AWQ's folded norms, scaled biases and float
  // linears), stored in the tensor's type; importance per input column for the weighted fit
  // that plan->weighted asks for.
  const QuantPlan* plan = nullptr;
};

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
