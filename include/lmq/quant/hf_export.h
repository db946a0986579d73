// The third sink of the quantization plan: a Hugging Face directory in the layouts the GPU
// tool-chains write and vLLM / transformers load (docs/serving-formats.md):
//   gptq                AutoGPTQ / GPTQModel: qweight, qzeros, scales, g_idx (checkpoint_format
//                       "gptq" when every group is symmetric, else "gptq_v2");
//   awq                 AutoAWQ "gemm": qweight, qzeros, scales, AWQ's nibble order;
//   compressed-tensors  llm-compressor: "pack-quantized" (weight-only int4/int8) or
//                       "int-quantized" (lmq's W8A8 with dynamic per-token activations).
// The packed layouts are codecs/hf_packing.h's. Quantized are the decoder blocks' linear
// layers (what the tools quantize: vLLM replaces every Linear of the blocks); embeddings,
// lm_head, norms and biases stay in the source's float dtype (a tied lm_head stays tied).
// Every quantized linear must share one scheme (the formats' config holds one; vLLM fuses q/k/v
// and gate/up, so those must agree in any case). A scheme the format cannot hold is refused
// before anything is quantized (check_hf_targets); a legal one that misses vLLM's Marlin
// kernels gives a warning.
// The tensors come from quantize_stream (quant/quantize_model.h): the very bytes lmq's file would
// hold, repacked — no second rounding — and streamed into safetensors shards
// (formats/safetensors_writer.h) in a temporary directory renamed into place at the end
// (formats/atomic_dir.h).
#pragma once
#include <string>
#include <vector>

#include "lmq/formats/safetensors_writer.h"
#include "lmq/model/model.h"
#include "lmq/quant/quant_plan.h"
#include "lmq/quant/quantize_model.h"

namespace lmq {

enum class HfFormat { Gptq, Awq, CompressedTensors };
bool is_hf_format(const std::string& s);  // gptq | awq | compressed-tensors
HfFormat parse_hf_format(const std::string& s);
const char* hf_format_name(HfFormat f);

struct HfExportOptions {
  HfFormat format = HfFormat::Gptq;
  // scheme (of every quantized linear), threads, and the plan from plan_hf_targets (calibrated)
  QuantizeOptions q;
  bool act_order = false;  // GPTQ --act-order (static groups): desc_act / actorder, g_idx written
  double damp = 0.01;      // GPTQ damping, recorded as damp_percent
  bool w8a8 = false;       // compressed-tensors int-quantized: dynamic per-token int8 activations
  std::string method;      // recorded in the config's meta
  std::string source_dir;  // the Hugging Face directory whose config and tokenizer are carried over
  uint64_t shard_bytes = kDefaultShardBytes;
};

// True for the linears of the decoder blocks (model.layers.N.{self_attn,mlp}.X_proj.weight).
bool is_block_linear(const std::string& name);
// The plan's first step: the decoder linears get o.q.scheme, every other tensor the source's
// float dtype; the first matching --override replaces either (a float one only for the others:
// throws for an integer scheme on an embedding or lm_head; 1-D tensors keep theirs).
QuantPlan plan_hf_targets(const Model& src, const HfExportOptions& o);
// Throws (one line, saying what the format holds) for a scheme or shape the format cannot hold;
// returns the warnings (vLLM's Marlin kernels missed), one line each.
std::vector<std::string> check_hf_targets(const Model& src, const QuantPlan& plan, const HfExportOptions& o);

struct HfExportReport {
  QuantizeReport q;
  std::vector<std::string> warnings;
  std::string detail;  // "gptq (checkpoint_format gptq_v2)", "compressed-tensors pack-quantized"
  std::vector<std::string> files;
  uint64_t dir_bytes = 0;
};

// Writes the directory `out` from `src` (the model to quantize: the source, or W8A8's folded
// overlay of it); o.source_dir must be a Hugging Face directory: its config, generation config
// and tokenizer files are carried over. Atomic: a temporary directory
// renamed into place.
HfExportReport export_hf(const Model& src, const std::string& out, const HfExportOptions& o,
                         const TensorProgress& progress = {});

}  // namespace lmq
