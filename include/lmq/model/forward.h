// The forward pass of a Llama/Qwen2 decoder in float32, read top to bottom like llama2.c:
//   x = embed[token]
//   for each layer:
//     h = rmsnorm(x) · attn_norm
//     q, k, v = h·Wqᵀ (+bq), h·Wkᵀ (+bk), h·Wvᵀ (+bv);  rotate q, k by RoPE at their positions
//     append k, v to the layer's KV cache
//     a = softmax(q·kᵀ / √d over positions ≤ own) · v, per head; GQA: head h reads kv head h/(H/KV)
//     x += a·Woᵀ
//     h = rmsnorm(x) · ffn_norm
//     x += (silu(h·Wgateᵀ) ⊙ h·Wupᵀ)·Wdownᵀ
//   logits = rmsnorm(x) · final_norm · lm_headᵀ
// A batch of T tokens (prefill) and one token (decode) take the same path; every linear layer
// goes through lmq::matmul, which accepts any weight format, or through the integer kernels
// (dynamic int8 activations with --act-quant, static ones in W8A8 files: model/static_acts.h).
// Norms, RoPE, attention (softmax), SiLU and the residual adds always run in float; the KV
// cache may store int8 (model/kv_cache.h).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "lmq/kernels/act_quant.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/model/kv_cache.h"
#include "lmq/model/model.h"
#include "lmq/model/static_acts.h"

namespace lmq {

class Runner {
 public:
  // max_seq: the longest sequence this runner will hold (≤ the model's context).
  Runner(const Model& model, int max_seq);

  // Runs tokens at positions [pos(), pos()+n) and appends them to the KV cache. Writes logits
  // for all n positions (n × vocab) when all_logits, else for the last position only.
  void forward(const int* tokens, int n, float* logits, bool all_logits);
  // The same pass in pieces, for calibration that keeps the hidden states between layers:
  // x[n × hidden] = the embeddings of the tokens; then layers [first, last) applied to x in place
  // at positions [pos(), pos()+n) (the KV cache of those layers is filled), and pos() advances
  // by n. forward() is embed_tokens + forward_layers(all) + the final norm and lm_head.
  void embed_tokens(const int* tokens, int n, float* x) const;
  void forward_layers(float* x, int n, int first, int last);
  int pos() const { return pos_; }
  int max_seq() const { return max_seq_; }
  void reset() { pos_ = 0; }
  const Model& model() const { return model_; }

  // Calibration hook: sees the input activations of every linear layer before it runs.
  // `which` is the weight's name ("model.layers.3.mlp.down_proj.weight"); x is n × K floats.
  // Layers that share an input (q/k/v, gate/up) are reported once each.
  using LinearObserver = std::function<void(const Tensor& weight, const float* x, int n)>;
  void set_observer(LinearObserver obs) { observer_ = std::move(obs); }

  // Dynamic int8 activation quantization: LMQ_INT 8/4-bit weights with a supported layout then
  // run on the integer kernels (kernels/int_matmul.h); other weights keep the float path.
  // Starts at lmq::default_act_quant(), or dynamic:absmax for a file made with
  // --activations int8:dynamic. Linears with a static input scale (W8A8 files,
  // model/static_acts.h) always run on the integer kernels with that scale.
  void set_act_quant(ActQuant a) { act_quant_ = a; }
  ActQuant act_quant() const { return act_quant_; }

  // KV cache storage (model/kv_cache.h); starts at lmq::default_kv_type(). Changing it empties
  // the cache (pos() = 0).
  void set_kv_type(KvType t);
  const KvCache& kv_cache() const { return kv_; }

  // BLAS mode, for calibration's long batches: linears whose weights are F32 (aligned) and the
  // attention products run through OpenBLAS sgemm, the attention computing only the causally
  // visible part of each 128-query chunk. Several times faster than the tile kernels at
  // hundreds of tokens, but the summation order differs (results differ in the last bits and
  // may depend on BLAS's threading), so inference keeps the default (off).
  void set_blas(bool on) { blas_ = on; }
  // For calibration that only gathers the linears' inputs of the layers it runs: the last
  // layer's down_proj is observed but not computed, so forward_layers then leaves x unfinished
  // (not that layer's output).
  void set_inputs_only(bool on) { inputs_only_ = on; }

 private:
  void ensure_scratch(int n);
  void attention(int layer, int n);
  void attention_blas(int layer, int n);
  void layer(int l, int n, bool skip_down = false);

  void linear(const Tensor& w, const Tensor* bias, const float* x, int n, float* y);
  // Linears that read the same x (q/k/v, gate/up). x is quantized once when their units and
  // activation rules agree, and on the integer kernels they then run as one fused product
  // (one parallel region: decode pays ~60 fork/joins per token otherwise).
  struct LinearOut {
    const Tensor* w;
    const Tensor* bias;  // nullable
    float* y;
  };
  void linears(std::span<const LinearOut> outs, const float* x, int n);
  // What xq_ holds of the input x: unit 0 for nothing (or, from int_route, the float path).
  struct HeldActs {
    int64_t unit = 0;
    int rule = 0;  // ActQuant, or -1 for a static scale
    float s_x = 0;
    bool operator==(const HeldActs&) const = default;
  };
  HeldActs int_route(const Tensor& w);  // how w's input is quantized for the integer kernels
  void linear(const Tensor& w, const Tensor* bias, const float* x, int n, float* y, HeldActs& held);
  void quantize_input(const HeldActs& want, const float* x, int n, int64_t K, HeldActs& held);
  static constexpr size_t kMaxFused = 4;
  // The float bias of an integer linear: the static one of a W8A8 file, else small_f32(*bias).
  const float* int_bias(const Tensor& w, const Tensor* bias);
  // A norm or bias as float32, widened on first use and kept (weights never change under a Runner).
  const float* small_f32(const Tensor& t);
  const IntMatmulPlan& int_plan(const Tensor& w);  // made on first use, kept for the runner's life

  const Model& model_;
  LinearObserver observer_;
  ActQuant act_quant_ = default_act_quant();
  int64_t act_block_ = default_act_block();  // 0: per token, else 32 or 64 values per scale
  bool blas_ = false, inputs_only_ = false;
  StaticLinears static_;
  std::unordered_map<const Tensor*, IntMatmulPlan> plans_;
  std::unordered_map<const Tensor*, std::vector<float>> small_;
  QuantizedActs xq_;  // the int8 activations of the linear being run
  const ModelConfig& c_;
  int max_seq_;
  int pos_ = 0;
  KvCache kv_;
  std::vector<float> rope_cos_, rope_sin_;  // [pos][head_dim/2]
  // scratch, sized for the largest batch seen
  int cap_ = 0;
  std::vector<float> x_, h_, q_, k_, v_, att_, gate_, up_;
};

}  // namespace lmq
