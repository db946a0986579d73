// RoPE settings in llama.cpp's GGUF files. Llama-3 scaling is not stored as keys: the converter
// (convert_hf_to_gguf.py, LlamaModel.generate_extra_tensors) writes a `rope_freqs.weight` tensor
// of rotary_dim/2 per-frequency divisors, and llama.cpp's RoPE divides each frequency
// θ^(−2i/d) by its entry (ggml_rope_ext's freq_factors). YaRN is stored as keys
// (`<arch>.rope.scaling.*`).
#pragma once
#include <vector>

#include "lmq/model/rope.h"

namespace lmq {

// The rope_freqs divisors of a llama3 RoPE, computed as the converter does (float32 arithmetic,
// as torch does it there): 1 for wavelengths below original_max/high_freq_factor, `factor`
// above original_max/low_freq_factor, the smoothed divisor between.
std::vector<float> llamacpp_rope_freqs(const RopeParams& p, int head_dim);

}  // namespace lmq
