// llama.cpp's rope_freqs tensor (include/lmq/model/gguf_rope.h).
#include "lmq/model/gguf_rope.h"

#include <cmath>
#include <numbers>

#include "lmq/error.h"

namespace lmq {

// Every step in float, in the converter's order: torch runs these tensor ops in float32 with the
// Python numbers rounded to float32, so this gives its bytes.
std::vector<float> llamacpp_rope_freqs(const RopeParams& p, int head_dim) {
  LMQ_CHECK(p.type == RopeType::Llama3, "rope_freqs of a {} RoPE", rope_type_name(p.type));
  const int dim = p.rotary_dim(head_dim);
  const float base = float(p.theta), factor = float(p.factor);
  const float low = float(p.low_freq_factor), high = float(p.high_freq_factor);
  const float old_len = float(p.original_max_position_embeddings);
  const float low_wavelen = old_len / low, high_wavelen = old_len / high;
  std::vector<float> out;
  for (int i = 0; i < dim; i += 2) {
    const float freq = 1.0f / std::pow(base, float(i) / float(dim));
    const float wavelen = float(2 * std::numbers::pi) / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(factor);
    } else {
      const float smooth = (old_len / wavelen - low) / (high - low);
      out.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return out;
}

}  // namespace lmq
