// llama-quantize's type recipe (see the header). Reimplemented from reading llama.cpp b4748's
// src/llama-quant.cpp (llama_tensor_get_type, the fallback at its end, the ftype switch of
// llama_model_quantize_impl); the branches keep llama.cpp's order, because the first matching
// rule wins there too. Falcon's branches are left out (lmq exports no Falcon); the expert
// conditions are kept (n_expert is 0 for every model lmq exports).
#include "lmq/quant/gguf_recipe.h"

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <numeric>

#include <fmt/format.h>

#include "lmq/error.h"

namespace lmq {
namespace {
namespace T = ggml_type;

struct TypeInfo {
  uint32_t id;
  const char* label;
  int64_t block;  // ggml_blck_size
};
constexpr TypeInfo kTypes[] = {
    {T::F32, "F32", 1},         {T::F16, "F16", 1},       {T::BF16, "BF16", 1},      {T::Q4_0, "Q4_0", 32},
    {T::Q4_1, "Q4_1", 32},      {T::Q5_0, "Q5_0", 32},    {T::Q5_1, "Q5_1", 32},     {T::Q8_0, "Q8_0", 32},
    {T::Q2_K, "Q2_K", 256},     {T::Q3_K, "Q3_K", 256},   {T::Q4_K, "Q4_K", 256},    {T::Q5_K, "Q5_K", 256},
    {T::Q6_K, "Q6_K", 256},     {T::IQ2_XXS, "IQ2_XXS", 256}, {T::IQ2_XS, "IQ2_XS", 256}, {T::IQ2_S, "IQ2_S", 256},
    {T::IQ3_XXS, "IQ3_XXS", 256}, {T::IQ3_S, "IQ3_S", 256}, {T::IQ1_S, "IQ1_S", 256},  {T::IQ1_M, "IQ1_M", 256},
    {T::IQ4_NL, "IQ4_NL", 32},  {T::IQ4_XS, "IQ4_XS", 256}, {T::TQ1_0, "TQ1_0", 256}, {T::TQ2_0, "TQ2_0", 256},
};

const TypeInfo& info(uint32_t id) {
  for (const TypeInfo& t : kTypes)
    if (t.id == id) return t;
  LMQ_UNREACHABLE("ggml type {} is not in the recipe's table", id);
}
int64_t block_of(uint32_t id) { return info(id).block; }

// llama_ftype numbers (llama.h) and the default type of each (llama_model_quantize_impl).
constexpr LlamaFtype kFtypes[] = {
    {"f32", 0, T::F32},         {"f16", 1, T::F16},        {"bf16", 32, T::BF16},      {"q4_0", 2, T::Q4_0},
    {"q4_1", 3, T::Q4_1},       {"q5_0", 8, T::Q5_0},      {"q5_1", 9, T::Q5_1},       {"q8_0", 7, T::Q8_0},
    {"q2_k", 10, T::Q2_K},      {"q2_k_s", 21, T::Q2_K},   {"q3_k_s", 11, T::Q3_K},    {"q3_k_m", 12, T::Q3_K},
    {"q3_k_l", 13, T::Q3_K},    {"q4_k_s", 14, T::Q4_K},   {"q4_k_m", 15, T::Q4_K},    {"q5_k_s", 16, T::Q5_K},
    {"q5_k_m", 17, T::Q5_K},    {"q6_k", 18, T::Q6_K},     {"q3_k", 12, T::Q3_K},      {"q4_k", 15, T::Q4_K},
    {"q5_k", 17, T::Q5_K},      {"iq2_xxs", 19, T::IQ2_XXS}, {"iq2_xs", 20, T::IQ2_XS}, {"iq2_s", 28, T::IQ2_XS},
    {"iq2_m", 29, T::IQ2_S},    {"iq3_xxs", 23, T::IQ3_XXS}, {"iq3_xs", 22, T::IQ3_S},  {"iq3_s", 26, T::IQ3_S},
    {"iq3_m", 27, T::IQ3_S},    {"iq4_nl", 25, T::IQ4_NL}, {"iq4_xs", 30, T::IQ4_XS},  {"iq1_s", 24, T::IQ1_S},
    {"iq1_m", 31, T::IQ1_M},    {"tq1_0", 36, T::TQ1_0},   {"tq2_0", 37, T::TQ2_0},
};

// llama_ftype values the rules test.
enum Ftype : uint32_t {
  Q4_0 = 2, Q5_0 = 8, Q2_K = 10, Q3_K_S = 11, Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_M = 17,
  IQ2_XXS = 19, IQ2_XS = 20, Q2_K_S = 21, IQ3_XS = 22, IQ3_XXS = 23, IQ1_S = 24, IQ4_NL = 25, IQ3_S = 26,
  IQ3_M = 27, IQ2_S = 28, IQ2_M = 29, IQ4_XS = 30, IQ1_M = 31, TQ1_0 = 36, TQ2_0 = 37,
};

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// quantize_state_impl: what llama_tensor_get_type counts while it walks the tensors.
struct State {
  RecipeHparams hp;
  uint32_t ftype = 0;
  bool imatrix = false, has_output = false, is_70b = false;
  int n_attention_wv = 0, n_ffn_down = 0, n_ffn_gate = 0, n_ffn_up = 0;
  int i_attention_wv = 0, i_ffn_down = 0, i_ffn_gate = 0, i_ffn_up = 0;
  int n_gqa() const { return hp.n_head_kv > 0 ? hp.n_head / hp.n_head_kv : 0; }
  bool is(std::initializer_list<uint32_t> fs) const { return std::find(fs.begin(), fs.end(), ftype) != fs.end(); }
};

// The output matrix (or the token embedding a model without output.weight shares with it).
uint32_t output_type(const State& s, uint32_t t, int64_t nx) {
  if (nx % block_of(t) != 0) return T::Q8_0;
  if (s.is({IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ2_S, IQ2_M, IQ1_M})) return T::Q5_K;
  return t != T::Q8_0 ? T::Q6_K : t;
}

uint32_t token_embd_type(const State& s, uint32_t t) {
  if (s.is({IQ2_XXS, IQ2_XS, IQ1_S, IQ1_M})) return T::Q2_K;
  if (s.is({IQ2_S, IQ2_M, IQ3_XXS})) return T::IQ3_S;
  if (s.is({TQ1_0, TQ2_0})) return T::Q4_K;
  return t;
}

// The 2-bit i-quant mixtures share one branch of their own.
uint32_t iq2_type(State& s, uint32_t t, const std::string& n) {
  const bool s_or_m = s.is({IQ2_S, IQ2_M});
  if (has(n, "attn_v.weight")) {
    t = s.n_gqa() >= 4 || s.hp.n_expert >= 4 ? T::Q4_K : s_or_m ? T::IQ3_S : T::Q2_K;
    ++s.i_attention_wv;
  } else if (s.hp.n_expert == 8 && has(n, "attn_k.weight")) {
    t = T::Q4_K;
  } else if (has(n, "ffn_down")) {
    if (s.i_ffn_down < s.n_ffn_down / 8) t = s_or_m ? T::IQ3_S : T::Q2_K;
    ++s.i_ffn_down;
  } else if (has(n, "attn_output.weight")) {
    if (s.hp.n_expert == 8) t = T::Q5_K;
    else if (s.is({IQ1_S, IQ1_M})) t = T::IQ2_XXS;
    else if (s_or_m) t = T::IQ3_S;
  }
  return t;
}

uint32_t attn_v_type(State& s, uint32_t t) {
  const int gqa = s.n_gqa();
  if (s.ftype == Q2_K) t = gqa >= 4 ? T::Q4_K : T::Q3_K;
  else if (s.ftype == Q2_K_S && gqa >= 4) t = T::Q4_K;
  else if (s.ftype == IQ3_XXS) t = gqa >= 4 ? T::Q4_K : !s.imatrix ? T::IQ3_S : T::IQ3_XXS;
  else if (s.is({IQ3_XS, IQ3_S}) && gqa >= 4) t = T::Q4_K;
  else if (s.ftype == IQ3_M) t = T::Q4_K;
  else if (s.ftype == Q3_K_M) t = s.i_attention_wv < 2 ? T::Q5_K : T::Q4_K;
  else if (s.ftype == Q3_K_L) t = T::Q5_K;
  else if (s.is({IQ4_NL, IQ4_XS}) && gqa >= 4) t = T::Q5_K;
  else if (s.is({Q4_K_M, Q5_K_M}) && use_more_bits(s.i_attention_wv, s.n_attention_wv)) t = T::Q6_K;
  else if (s.ftype == Q4_K_S && s.i_attention_wv < 4) t = T::Q5_K;
  // 70B: 8 heads share each attn_v, so more bits there cost little
  if (s.is_70b && (t == T::Q3_K || t == T::Q4_K)) t = T::Q5_K;
  if (s.hp.n_expert == 8) t = T::Q8_0;
  ++s.i_attention_wv;
  return t;
}

uint32_t ffn_down_type(State& s, uint32_t t) {
  // Without experts llama.cpp's layer_info is the counter itself, not the layer of the name.
  const int i = s.i_ffn_down, n = s.n_ffn_down;
  if (s.ftype == Q2_K) t = T::Q3_K;
  else if (s.ftype == Q2_K_S) {
    if (i < n / 8) t = T::Q4_K;
  } else if (s.ftype == IQ3_XXS && !s.imatrix) t = i < n / 8 ? T::Q4_K : T::Q3_K;
  else if (s.ftype == Q3_K_M) t = i < n / 16 ? T::Q5_K : T::Q4_K;  // not Falcon: Q4_K past the first 16th
  else if (s.ftype == IQ3_M && (i < n / 8 || (s.hp.n_expert == 8 && use_more_bits(i, n)))) t = T::Q4_K;
  else if (s.ftype == Q3_K_L) t = T::Q5_K;
  else if (s.ftype == Q4_K_M) {
    if (use_more_bits(i, n)) t = T::Q6_K;
  } else if (i < n / 8 && s.is({IQ4_NL, IQ4_XS}) && !s.imatrix) t = T::Q5_K;
  else if (s.ftype == Q5_K_M && use_more_bits(i, n)) t = T::Q6_K;
  else if (s.ftype == Q4_K_S && i < n / 8) t = T::Q5_K;
  else if (s.is({Q4_0, Q5_0}) && s.imatrix && i < n / 8) t = s.ftype == Q4_0 ? T::Q4_1 : T::Q5_1;
  ++s.i_ffn_down;
  return t;
}

uint32_t attn_output_type(const State& s, uint32_t t) {
  if (s.hp.n_expert == 8) {
    if (s.is({Q2_K, IQ3_XS, IQ3_XXS, Q3_K_S, Q3_K_M, IQ4_NL, Q4_K_S, Q4_K_M, IQ3_S, IQ3_M, IQ4_XS})) t = T::Q5_K;
  } else if (s.ftype == Q2_K) t = T::Q3_K;
  else if (s.ftype == IQ3_XXS) t = T::IQ3_S;
  else if (s.ftype == Q3_K_M) t = T::Q4_K;
  else if (s.ftype == Q3_K_L) t = T::Q5_K;
  else if (s.ftype == IQ3_M) t = T::Q4_K;
  return t;
}

// llama_tensor_get_type without its fallback step.
uint32_t rule_type(State& s, uint32_t t, const std::string& n, int64_t nx) {
  if (n == "output.weight" || (!s.has_output && n == "token_embd.weight")) return output_type(s, t, nx);
  if (n == "token_embd.weight") return token_embd_type(s, t);
  if (s.is({IQ2_XXS, IQ2_XS, IQ1_S, IQ2_S, IQ2_M, IQ1_M})) return iq2_type(s, t, n);
  if (has(n, "attn_v.weight")) return attn_v_type(s, t);
  if (has(n, "attn_k.weight")) {
    if (s.hp.n_expert == 8) return T::Q8_0;
    if (s.ftype == IQ3_XS) return T::IQ3_XXS;
    if (s.ftype == IQ3_XXS) return T::IQ2_S;
    return t;
  }
  if (has(n, "attn_q.weight")) {
    if (s.ftype == IQ3_XS) return T::IQ3_XXS;
    if (s.ftype == IQ3_XXS) return T::IQ2_S;
    return t;
  }
  if (has(n, "ffn_down")) return ffn_down_type(s, t);
  if (has(n, "attn_output.weight")) return attn_output_type(s, t);
  if (has(n, "attn_qkv.weight")) {
    if (s.is({Q3_K_M, Q3_K_L, IQ3_M})) return T::Q4_K;
    if (s.ftype == Q4_K_M) return T::Q5_K;
    if (s.ftype == Q5_K_M) return T::Q6_K;
    return t;
  }
  // ffn_gate, then ffn_up: only IQ3_XS changes them, in the middle three quarters of the layers
  struct Ffn {
    const char* part;
    int* i;
    int n;
  };
  for (const Ffn& f : {Ffn{"ffn_gate", &s.i_ffn_gate, s.n_ffn_gate}, Ffn{"ffn_up", &s.i_ffn_up, s.n_ffn_up}}) {
    if (!has(n, f.part)) continue;
    if (s.ftype == IQ3_XS && *f.i >= f.n / 8 && *f.i < 7 * f.n / 8) t = T::IQ3_XXS;
    ++*f.i;
    return t;
  }
  return t;
}

// llama_model_quantize_impl's test of which tensors it converts (those of lmq's architectures).
bool converted(const RecipeTensor& t) {
  const std::string& n = t.name;
  return n.size() >= 6 && n.compare(n.size() - 6, 6, "weight") == 0 && t.n_dims >= 2 && !has(n, "_norm.weight") &&
         !has(n, "ffn_gate_inp.weight");
}

// weight_name_comparer of llama_model_loader: by layer (-1 outside blocks), then by name.
int layer_of(const std::string& n) {
  int l = -1;
  if (std::sscanf(n.c_str(), "blk.%d.", &l) != 1) l = -1;
  return l;
}

}  // namespace

std::string ggml_type_label(uint32_t id) {
  for (const TypeInfo& t : kTypes)
    if (t.id == id) return t.label;
  return fmt::format("type {}", id);
}

std::span<const LlamaFtype> llama_ftypes() { return kFtypes; }

const LlamaFtype* find_llama_ftype(std::string_view name) {
  for (const LlamaFtype& f : kFtypes)
    if (f.name == name) return &f;
  return nullptr;
}

uint32_t llama_fallback_type(uint32_t type, int64_t ncols) {
  if (ncols % block_of(type) == 0) return type;
  uint32_t r = type;
  switch (type) {
    case T::TQ1_0:
    case T::TQ2_0: r = T::Q4_0; break;
    case T::IQ2_XXS:
    case T::IQ2_XS:
    case T::IQ2_S:
    case T::IQ3_XXS:
    case T::IQ3_S:
    case T::IQ1_S:
    case T::IQ1_M:
    case T::Q2_K:
    case T::Q3_K:
    case T::IQ4_XS: r = T::IQ4_NL; break;
    case T::Q4_K: r = T::Q5_0; break;
    case T::Q5_K: r = T::Q5_1; break;
    case T::Q6_K: r = T::Q8_0; break;
    default: break;  // llama.cpp gives up here ("Unsupported tensor size"); lmq stores F16 below
  }
  return ncols % block_of(r) == 0 ? r : T::F16;
}

std::vector<RecipeType> llama_recipe(const LlamaFtype& ft, bool pure, bool imatrix, const RecipeHparams& hp,
                                     const std::vector<RecipeTensor>& tensors) {
  State s;
  s.hp = hp;
  s.ftype = ft.ftype;
  s.imatrix = imatrix;
  // LLM_TYPE_70B (llama_model::load_hparams): 80 layers, and for llama grouped-query attention
  s.is_70b = hp.n_layer == 80 && ((hp.arch == "llama" && hp.n_head != hp.n_head_kv) || hp.arch == "qwen2");
  for (const RecipeTensor& t : tensors) {
    if (has(t.name, "attn_v.weight") || has(t.name, "attn_qkv.weight") || has(t.name, "attn_kv_b.weight"))
      ++s.n_attention_wv;
    else if (t.name == "output.weight") s.has_output = true;
  }
  s.n_ffn_down = s.n_ffn_gate = s.n_ffn_up = hp.n_layer;

  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int la = layer_of(tensors[a].name), lb = layer_of(tensors[b].name);
    return la != lb ? la < lb : tensors[a].name < tensors[b].name;
  });
  const bool quantized_ftype = block_of(ft.default_type) > 1;
  std::vector<RecipeType> out(tensors.size());
  for (size_t k : order) {
    const RecipeTensor& t = tensors[k];
    RecipeType& r = out[k];
    if (!converted(t)) continue;  // F32, as lmq writes norms and biases
    r.quantized = true;
    r.chosen = ft.default_type;
    if (quantized_ftype && !pure) r.chosen = rule_type(s, r.chosen, t.name, t.ncols);
    r.type = quantized_ftype ? llama_fallback_type(r.chosen, t.ncols) : r.chosen;
  }
  return out;
}

}  // namespace lmq
