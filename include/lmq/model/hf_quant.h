// Reading the quantized Hugging Face checkpoints of the GPU tool-chains (AutoGPTQ/GPTQModel
// "gptq", AutoAWQ "awq" gemm, llm-compressor "compressed-tensors"): config.json's
// quantization_config, and the packed linears turned into ordinary LMQ_INT tensors (layouts in
// codecs/hf_packing.h). The codes are repacked into codecs/int_format.h's layout at load, the
// scales keep their stored dtype (so every value is exact), and a linear is symmetric when every
// zero point is 2^(b−1), else asymmetric. 4/8-bit ones then run on lmq's integer kernels; other
// widths through the generic path.
//
// Act-order (a g_idx that is not i / group_size): the inputs are sorted by group (stably), the
// weight is stored over the permuted inputs and Tensor::in_perm names the permutation, which
// the LinearRouter applies to the activation (model/linear_router.h); dequantize_rows gives the
// original input order, so export and evaluation see the true weight.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "lmq/codecs/hf_packing.h"
#include "lmq/formats/safetensors.h"
#include "lmq/model/model.h"

namespace lmq {

enum class HfQuantMethod {
  Gptq,     // quant_method "gptq"
  Awq,      // quant_method "awq", version "gemm"
  CtPacked, // compressed-tensors, format "pack-quantized" (weight-only)
  CtInt8,   // compressed-tensors, format "int-quantized" (W8A8: int8 weights, dynamic int8 activations)
};
const char* hf_quant_method_name(HfQuantMethod m);

struct HfQuantConfig {
  HfQuantMethod method = HfQuantMethod::Gptq;
  int bits = 4;
  int group_size = -1;  // inputs per group; -1 per output channel
  bool sym = true;      // as stated (lmq decides from the zero points themselves)
  bool desc_act = false;
  hf::GptqVersion version = hf::GptqVersion::V1;  // GPTQ's checkpoint_format
  bool dynamic_acts = false;  // compressed-tensors W8A8: dynamic per-token int8 input activations
};

// The quantization_config of a config.json, if it has one; throws naming `path` for an unknown
// quant_method, bits the format does not allow, or a block lmq cannot read.
std::optional<HfQuantConfig> parse_quantization_config(const std::string& config_text, const std::string& path);

// One tensor of a checkpoint with the shard that holds it (for messages).
struct HfTensor {
  const StTensor* st;
  std::string file;
};
// Replaces each quantized linear's stored parts (qweight/qzeros/scales/g_idx, weight_packed/
// weight_scale/..., or int8 weight + weight_scale) by one LMQ_INT tensor "<prefix>.weight"
// appended to parts.tensors (bytes and permutations kept in parts.storage), and returns the
// tensors that are not part of a quantized linear, for the caller to take as they are. Throws
// naming the file and the problem: missing parts, wrong dtypes, shapes that disagree with
// bits/group_size, g_idx out of range, zero points outside the code range.
std::vector<HfTensor> load_hf_quantized(const HfQuantConfig& q, const std::vector<HfTensor>& tensors,
                                        Model::Parts& parts);

}  // namespace lmq
