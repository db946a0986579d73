// RoPE settings of a Hugging Face config.json and the inverse frequencies they give, computed as
// transformers' modeling_rope_utils does (default, linear, dynamic, yarn, llama3).
//
// Both config styles are read: transformers 5's `rope_parameters` {rope_type, rope_theta, ...}
// and the legacy top-level `rope_theta` + `rope_scaling` (with `type` or `rope_type`) most hub
// configs still use; as in transformers, `rope_scaling` wins over `rope_parameters`, and a
// top-level `partial_rotary_factor` or `original_max_position_embeddings` over the dict's.
// Any other RoPE type, a missing parameter or an absurd value is one lmq::Error naming the file
// and the key.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace lmq {

enum class RopeType { Default, Linear, Dynamic, Yarn, Llama3 };
const char* rope_type_name(RopeType t);

struct RopeParams {
  RopeType type = RopeType::Default;
  double theta = 10000.0;
  double partial_rotary_factor = 1.0;    // the share of each head's dims that rotates
  double factor = 1.0;                   // linear, dynamic, yarn, llama3
  int64_t max_position_embeddings = 0;   // dynamic: NTK scaling past this length; yarn's default factor
  int64_t original_max_position_embeddings = 0;  // yarn, llama3
  double low_freq_factor = 0, high_freq_factor = 0;  // llama3
  double beta_fast = 32, beta_slow = 1;              // yarn
  std::optional<double> attention_factor, mscale, mscale_all_dim;  // yarn
  bool truncate = true;                                            // yarn: round the ramp's ends
  std::string origin;  // the config's path, for errors found later (rotary_dim)

  // `config` is a parsed config.json; `origin` names it for errors.
  static RopeParams from_config(const nlohmann::json& config, const std::string& origin);
  static RopeParams from_config_text(std::string_view config_json, const std::string& origin);
  // Writes these settings into a config.json object in the legacy style (top-level rope_theta,
  // rope_scaling with rope_type; partial_rotary_factor when not 1), which from_config reads back.
  void to_config(nlohmann::json& config) const;
  // The number of rotated dims of a head of `head_dim` (even; checked against the factor).
  int rotary_dim(int head_dim) const;
};

struct RopeFrequencies {
  std::vector<float> inv_freq;    // rotary_dim / 2 entries
  float attention_scaling = 1.0f;  // multiplies cos and sin (yarn's attention factor)
};

// The frequencies for a sequence of `seq_len` tokens (only `dynamic` depends on it: NTK scaling
// once seq_len exceeds max_position_embeddings, as transformers' dynamic update does).
// Computed in double and rounded once; transformers computes in float32, within 1 ulp of this.
RopeFrequencies rope_frequencies(const RopeParams& p, int head_dim, int64_t seq_len = 0);

}  // namespace lmq
