#include "lmq/formats/gguf_names.h"

#include <string_view>

namespace lmq {

namespace {

struct NamePair {
  std::string_view hf, gguf;
};
constexpr NamePair kWhole[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};
// after "model.layers.N." and "blk.N."
constexpr NamePair kPerLayer[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    // Qwen3's per-head RMSNorm of q and k (llama.cpp: LLM_TENSOR_ATTN_Q_NORM / _K_NORM)
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

}  // namespace

std::optional<std::string> hf_name_of_gguf(const std::string& g) {
  for (const NamePair& p : kWhole)
    if (g == p.gguf) return std::string(p.hf);
  if (g.rfind("blk.", 0) != 0) return std::nullopt;
  const size_t dot = g.find('.', 4);
  if (dot == std::string::npos || dot == 4) return std::nullopt;
  const std::string layer = g.substr(4, dot - 4);
  for (char ch : layer)
    if (ch < '0' || ch > '9') return std::nullopt;
  if (layer.size() > 1 && layer[0] == '0') return std::nullopt;
  const std::string_view rest = std::string_view(g).substr(dot + 1);
  for (const NamePair& p : kPerLayer)
    if (rest == p.gguf) return "model.layers." + layer + "." + std::string(p.hf);
  return std::nullopt;
}

std::optional<std::string> gguf_name_of_hf(const std::string& hf) {
  for (const NamePair& p : kWhole)
    if (hf == p.hf) return std::string(p.gguf);
  static constexpr std::string_view pre = "model.layers.";
  if (hf.rfind(pre, 0) != 0) return std::nullopt;
  const size_t dot = hf.find('.', pre.size());
  if (dot == std::string::npos) return std::nullopt;
  const std::string layer = hf.substr(pre.size(), dot - pre.size());
  const std::string_view rest = std::string_view(hf).substr(dot + 1);
  for (const NamePair& p : kPerLayer)
    if (rest == p.hf) return "blk." + layer + "." + std::string(p.gguf);
  return std::nullopt;
}

}  // namespace lmq
