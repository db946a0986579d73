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
// A batch of T tokens (prefill) and one token (decode) take the same path. Every linear layer
// goes through the LinearRouter (model/linear_router.h): lmq::matmul for any weight format, or
// the integer kernels (dynamic int8 activations per RunOptions, static ones in W8A8 files).
// Norms, RoPE, attention (softmax), SiLU and the residual adds always run in float; the KV
// cache may store int8 (model/kv_cache.h). Calibration's piece-wise passes live in
// calib/block_runner.h, which overrides the two protected hooks below.
#pragma once
#include <vector>

#include "lmq/model/kv_cache.h"
#include "lmq/model/linear_router.h"
#include "lmq/model/model.h"
#include "lmq/model/run_options.h"

namespace lmq {

class Runner {
 public:
  // max_seq: the longest sequence this runner will hold (≤ the model's context).
  Runner(const Model& model, int max_seq, const RunOptions& opts = {});
  virtual ~Runner() = default;
  Runner(Runner&&) = default;

  // Runs tokens at positions [pos(), pos()+n) and appends them to the KV cache. Writes logits
  // for all n positions (n × vocab) when all_logits, else for the last position only.
  void forward(const int* tokens, int n, float* logits, bool all_logits);
  // x[n × hidden] = the embeddings of the tokens.
  void embed_tokens(const int* tokens, int n, float* x) const;
  int pos() const { return pos_; }
  int max_seq() const { return max_seq_; }
  void reset() { pos_ = 0; }
  const Model& model() const { return model_; }
  const RunOptions& options() const { return opts_; }
  ActQuant act_quant() const { return router_.act_quant(); }
  int64_t act_block() const { return router_.act_block(); }  // 0: one activation scale per token
  const KvCache& kv_cache() const { return kv_; }

 protected:
  // The two halves of a decoder layer on the n positions in x_ at pos_.., and the MLP split at
  // its last product (calibration may stop before it).
  void attention_block(int l, int n);  // x += attention(rmsnorm(x))·Woᵀ, the KV cache filled
  void mlp_hidden(int l, int n);       // gate_ = silu(h·Wgateᵀ) ⊙ h·Wupᵀ, h = rmsnorm(x)
  void mlp_down(int l, int n);         // x += gate_·Wdownᵀ
  // The attention of the n new positions over the cache into att_ (q_ holds their queries).
  virtual void attend(int l, int n);
  void check_room(int n) const;  // pos_ + n fits the context
  void ensure_scratch(int n);

  const Model& model_;
  const ModelConfig& c_;
  RunOptions opts_;
  LinearRouter router_;
  int max_seq_;
  int pos_ = 0;
  KvCache kv_;
  std::vector<float> rope_cos_, rope_sin_;  // [pos][head_dim/2]
  // scratch, sized for the largest batch seen
  int cap_ = 0;
  std::vector<float> x_, h_, q_, k_, v_, att_, gate_, up_;
};

}  // namespace lmq
