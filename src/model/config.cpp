#include "lmq/model/config.h"

#include <nlohmann/json.hpp>

#include "lmq/error.h"

namespace lmq {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Llama: return "llama";
    case Arch::Qwen2: return "qwen2";
    case Arch::Qwen3: return "qwen3";
    case Arch::Mistral: return "mistral";
  }
  return "?";
}

namespace {
using json = nlohmann::json;

const json& need(const json& j, const char* key, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) fail("{}: missing config key '{}'", path, key);
  return *it;
}

int need_int(const json& j, const char* key, const std::string& path) {
  const json& v = need(j, key, path);
  if (!v.is_number_integer()) fail("{}: config key '{}' must be an integer", path, key);
  int64_t x = v.get<int64_t>();
  if (x <= 0 || x > (int64_t(1) << 30)) fail("{}: config key '{}' = {} is out of range", path, key, x);
  return int(x);
}

double get_number(const json& j, const char* key, double dflt, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_number()) fail("{}: config key '{}' must be a number", path, key);
  return it->get<double>();
}

int get_token_id(const json& j, const char* key, int dflt, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  const json& v = it->is_array() && !it->empty() ? (*it)[0] : *it;  // eos may be a list: the first
  if (!v.is_number_integer()) fail("{}: config key '{}' must be an integer token id", path, key);
  if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(1) << 30 : v.get<int64_t>() < 0)
    fail("{}: config key '{}' = {} is not a token id", path, key, v.dump());
  return int(v.get<int64_t>());
}
}  // namespace

namespace {
// lmq's own keys in the config an lmq file embeds, for a model read from GGUF: llama.cpp's
// permuted Q/K rows (RoPE on adjacent pairs) and its rope_freqs divisors. A Hugging Face
// config.json never has them.
void read_lmq_rope_keys(const json& j, const std::string& path, ModelConfig& c) {
  if (auto it = j.find("lmq_rope_interleaved"); it != j.end()) {
    if (!it->is_boolean()) fail("{}: lmq_rope_interleaved must be true or false", path);
    c.rope_interleaved = it->get<bool>();
  }
  if (auto it = j.find("lmq_rope_freq_factors"); it != j.end()) {
    if (!it->is_array() || it->size() > 65536) fail("{}: lmq_rope_freq_factors must be an array of numbers", path);
    for (const json& x : *it) {
      const double v = x.is_number() ? x.get<double>() : -1;
      if (!(v > 0 && v < 1e6)) fail("{}: lmq_rope_freq_factors holds {}, not a frequency divisor", path, x.dump());
      c.rope_freq_factors.push_back(float(v));
    }
  }
}
}  // namespace

ModelConfig ModelConfig::from_hf_json(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
  if (!j.is_object()) fail("{}: not a JSON object", path);
  ModelConfig c;
  const json& mt = need(j, "model_type", path);
  if (!mt.is_string()) fail("{}: model_type must be a string", path);
  const std::string type = mt.get<std::string>();
  if (type == "llama") c.arch = Arch::Llama;
  else if (type == "qwen2") c.arch = Arch::Qwen2;
  else if (type == "qwen3") c.arch = Arch::Qwen3;
  else if (type == "mistral") c.arch = Arch::Mistral;
  else fail("{}: unknown model_type '{}' (lmq supports llama, mistral, qwen2 and qwen3)", path, type);

  c.hidden = need_int(j, "hidden_size", path);
  c.n_layers = need_int(j, "num_hidden_layers", path);
  c.n_heads = need_int(j, "num_attention_heads", path);
  c.n_kv_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                     ? need_int(j, "num_key_value_heads", path) : c.n_heads;
  c.head_dim = j.contains("head_dim") && !j["head_dim"].is_null() ? need_int(j, "head_dim", path)
                                                                  : c.hidden / c.n_heads;
  c.ffn = need_int(j, "intermediate_size", path);
  c.vocab = need_int(j, "vocab_size", path);
  c.max_pos = need_int(j, "max_position_embeddings", path);
  c.norm_eps = float(get_number(j, "rms_norm_eps", 1e-6, path));
  // Both config styles (rope_parameters; legacy rope_theta + rope_scaling), as transformers reads them.
  c.rope = RopeParams::from_config(j, path);
  (void)c.rope.rotary_dim(c.head_dim);  // a factor that leaves no rotary dims is the config's error
  auto tie = j.find("tie_word_embeddings");
  c.tied_embeddings = tie != j.end() && tie->is_boolean() && tie->get<bool>();
  c.qkv_bias = c.arch == Arch::Qwen2 ||
               (j.contains("attention_bias") && j["attention_bias"].is_boolean() && j["attention_bias"].get<bool>());
  c.qk_norm = c.arch == Arch::Qwen3;
  if (auto sw = j.find("sliding_window"); sw != j.end() && !sw->is_null() && c.arch == Arch::Mistral) {
    // Qwen2/3 configs name a window that use_sliding_window (false) switches off; Mistral's is live.
    if (!sw->is_number_integer() || sw->get<int64_t>() <= 0 || sw->get<int64_t>() > (int64_t(1) << 30))
      fail("{}: config key 'sliding_window' = {} must be null or a positive integer", path, sw->dump());
    c.sliding_window = int(sw->get<int64_t>());
  }
  if (auto act = j.find("hidden_act"); act != j.end() && act->is_string() && *act != "silu")
    fail("{}: hidden_act '{}' is not supported (only silu)", path, act->get<std::string>());
  c.bos_id = get_token_id(j, "bos_token_id", 1, path);
  if (auto ab = j.find("add_bos_token"); ab != j.end() && ab->is_boolean()) c.add_bos = ab->get<bool>();
  c.eos_id = get_token_id(j, "eos_token_id", 2, path);
  read_lmq_rope_keys(j, path, c);
  c.validate(path);
  return c;
}

void ModelConfig::validate(const std::string& path) const {
  if (head_dim < 2 || head_dim % 2 != 0) fail("{}: head_dim {} must be even and positive for RoPE", path, head_dim);
  if (n_heads % n_kv_heads != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", path, n_heads, n_kv_heads);
  // q_dim() and kv_dim() are int products; kv_dim <= q_dim as n_kv_heads divides n_heads.
  if (int64_t(n_heads) * head_dim > (1 << 20))
    fail("{}: num_attention_heads {} x head_dim {} is absurd", path, n_heads, head_dim);
  if (vocab > (1 << 24)) fail("{}: vocab_size {} is absurd", path, vocab);
  if (hidden > (1 << 20) || ffn > (1 << 22) || n_layers > 4096 || max_pos > (1 << 24))
    fail("{}: dimensions are absurd (hidden {}, ffn {}, layers {}, context {})", path, hidden, ffn, n_layers, max_pos);
  if (!(norm_eps > 0) || !(rope.theta > 0)) fail("{}: rms_norm_eps and rope_theta must be positive", path);
  if (!rope_freq_factors.empty() && int(rope_freq_factors.size()) != rope.rotary_dim(head_dim) / 2)
    fail("{}: {} RoPE frequency factors, expected {} (one per rotated pair)", path, rope_freq_factors.size(),
         rope.rotary_dim(head_dim) / 2);
  if (bos_id < 0 || bos_id >= vocab || eos_id < 0 || eos_id >= vocab)
    fail("{}: bos/eos token ids must lie in the vocabulary", path);
}

std::string ModelConfig::to_hf_json() const {
  json j;
  j["model_type"] = arch_name(arch);
  j["hidden_size"] = hidden;
  j["num_hidden_layers"] = n_layers;
  j["num_attention_heads"] = n_heads;
  j["num_key_value_heads"] = n_kv_heads;
  j["head_dim"] = head_dim;
  j["intermediate_size"] = ffn;
  j["vocab_size"] = vocab;
  j["max_position_embeddings"] = max_pos;
  j["rms_norm_eps"] = norm_eps;
  rope.to_config(j);
  if (sliding_window > 0) j["sliding_window"] = sliding_window;
  if (!add_bos) j["add_bos_token"] = false;  // lmq's own record of the SentencePiece rule
  j["tie_word_embeddings"] = tied_embeddings;
  j["attention_bias"] = qkv_bias;
  j["hidden_act"] = "silu";
  j["bos_token_id"] = bos_id;
  j["eos_token_id"] = eos_id;
  // What a GGUF source holds beyond a Hugging Face config (see read_lmq_rope_keys).
  if (rope_interleaved) j["lmq_rope_interleaved"] = true;
  if (!rope_freq_factors.empty()) j["lmq_rope_freq_factors"] = rope_freq_factors;
  return j.dump();
}

}  // namespace lmq
