// The architecture hyper-parameters of a causal LM, read from a Hugging Face config.json
// (or from GGUF metadata / lmq's file, which carry the same facts).
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "lmq/model/rope.h"

namespace lmq {

// qwen3: per-head RMSNorm of q and k (q_norm/k_norm, [head_dim]) before RoPE, no biases;
// mistral: the Llama layout (sliding_window refused when it would matter).
enum class Arch { Llama, Qwen2, Qwen3, Mistral };
const char* arch_name(Arch a);

struct ModelConfig {
  Arch arch = Arch::Llama;
  int hidden = 0;       // hidden_size
  int n_layers = 0;     // num_hidden_layers
  int n_heads = 0;      // num_attention_heads
  int n_kv_heads = 0;   // num_key_value_heads (GQA when < n_heads)
  int head_dim = 0;     // head_dim, else hidden / n_heads (Qwen3: independent of both)
  int ffn = 0;          // intermediate_size
  int vocab = 0;        // vocab_size
  int max_pos = 0;      // max_position_embeddings: the context limit
  float norm_eps = 1e-5f;
  RopeParams rope;      // RoPE type, θ and scaling (model/rope.h); rope.theta is the base
  // llama.cpp's rope_freqs (GGUF): when not empty, one factor per rotated pair that divides the
  // default frequency θ^(-2i/d); replaces rope's type-specific frequencies.
  std::vector<float> rope_freq_factors;
  bool tied_embeddings = false;
  bool qkv_bias = false;      // Qwen2 has q/k/v biases
  bool qk_norm = false;       // Qwen3: q_norm/k_norm weights [head_dim] per layer
  int sliding_window = 0;     // Mistral's sliding_window (0: none); a run may not exceed it
  bool rope_interleaved = false;  // RoPE on adjacent pairs (llama.cpp's permuted Q/K rows)
  // SentencePiece only (a BPE tokenizer's template decides): the BOS id and whether it is added
  // (tokenizer_config.json's add_bos_token, GGUF's add_bos_token; default true).
  int bos_id = 1, eos_id = 2;
  bool add_bos = true;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }

  // Parses a Hugging Face config.json; `path` names the file in errors.
  static ModelConfig from_hf_json(const std::string& text, const std::string& path);
  // The same facts as a Hugging Face style config (what lmq's own file stores).
  std::string to_hf_json() const;
  // Checks the numbers are consistent and not absurd; throws naming `path`.
  void validate(const std::string& path) const;
};

}  // namespace lmq
