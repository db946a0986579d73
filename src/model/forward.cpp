#include "lmq/model/forward.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "lmq/error.h"
#include "lmq/kernels/gemm.h"
#include "lmq/kernels/vec.h"
#include "lmq/model/memory_limit.h"

namespace lmq {

namespace {

// Rotates the first `rot` dims of each head's vector (stride d) by its position's angles. HF
// layout pairs i with i + rot/2 (rotate_half); llama.cpp's permuted weights pair 2i with 2i+1.
void rope(float* v, int heads, int d, int rot, const float* cos, const float* sin, bool interleaved) {
  const int half = rot / 2;
  for (int h = 0; h < heads; ++h) {
    float* p = v + int64_t(h) * d;
    for (int i = 0; i < half; ++i) {
      const int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
      const float x0 = p[a], x1 = p[b];
      p[a] = x0 * cos[i] - x1 * sin[i];
      p[b] = x1 * cos[i] + x0 * sin[i];
    }
  }
}

// Checked before anything is allocated for it: the context, and the memory of the KV cache
// (as f32, the larger type) plus the RoPE tables; the config's sizes are bounded (validate), so
// the product does not overflow.
int checked_max_seq(const Model& m, int max_seq) {
  const ModelConfig& c = m.config();
  if (max_seq <= 0 || max_seq > c.max_pos)
    fail("{}: sequence length {} exceeds the model's context of {} tokens", m.path(), max_seq, c.max_pos);
  const size_t cache = size_t(c.n_layers) * size_t(max_seq) * size_t(c.kv_dim());
  require_memory(2 * cache * sizeof(float) + size_t(max_seq) * size_t(c.head_dim) * sizeof(float),
                 fmt::format("{}: the KV cache of {} tokens", m.path(), max_seq));
  if (c.sliding_window > 0 && max_seq > c.sliding_window)
    fail("{}: sliding_window {} of config.json is smaller than the {} tokens of this run (lmq has no sliding-window "
         "attention; use a shorter --ctx or fewer tokens)",
         m.path(), c.sliding_window, max_seq);
  return max_seq;
}

// The inverse frequencies of the rotated pairs, as transformers computes them in float32.
std::vector<float> inverse_frequencies(const ModelConfig& c, int max_seq) {
  const int rot = c.rope.rotary_dim(c.head_dim);
  std::vector<float> inv(size_t(rot / 2));
  if (c.rope.type == RopeType::Default || !c.rope_freq_factors.empty()) {
    // 1 / θ^(2i/d) with the exponent rounded to float first, as torch's arange(0, d, 2).float() / d.
    for (int i = 0; i < rot / 2; ++i) {
      const float expo = float(2 * i) / float(rot);
      inv[size_t(i)] = 1.0f / float(std::pow(c.rope.theta, double(expo)));
      if (!c.rope_freq_factors.empty()) inv[size_t(i)] /= c.rope_freq_factors[size_t(i)];
    }
    return inv;
  }
  return rope_frequencies(c.rope, c.head_dim, max_seq).inv_freq;
}

// RunOptions::threads for the parallel regions of one call, the caller's setting restored after.
class ThreadScope {
 public:
  explicit ThreadScope(int threads) : saved_(threads > 0 ? omp_get_max_threads() : 0) {
    if (threads > 0) omp_set_num_threads(threads);
  }
  ~ThreadScope() {
    if (saved_ > 0) omp_set_num_threads(saved_);
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int saved_;
};

}  // namespace

Runner::Runner(const Model& model, int max_seq, const RunOptions& opts)
    : model_(model),
      c_(model.config()),
      opts_(opts),
      router_(model, opts),
      max_seq_(checked_max_seq(model, max_seq)),
      kv_(c_.n_layers, max_seq_, c_.n_kv_heads, c_.head_dim, opts.kv) {
  // RoPE angles as transformers computes them in float32: angle = pos · inv_freq, then cos and
  // sin times the attention scaling (yarn's attention factor, else 1).
  const std::vector<float> inv = inverse_frequencies(c_, max_seq_);
  const float scaling = c_.rope.type == RopeType::Default || !c_.rope_freq_factors.empty()
                            ? 1.0f
                            : rope_frequencies(c_.rope, c_.head_dim, max_seq_).attention_scaling;
  const size_t half = inv.size();
  rope_cos_.resize(size_t(max_seq_) * half);
  rope_sin_.resize(size_t(max_seq_) * half);
  for (size_t i = 0; i < half; ++i)
    for (int p = 0; p < max_seq_; ++p) {
      const float angle = float(p) * inv[i];
      rope_cos_[size_t(p) * half + i] = float(std::cos(double(angle))) * scaling;
      rope_sin_[size_t(p) * half + i] = float(std::sin(double(angle))) * scaling;
    }
}

void Runner::ensure_scratch(int n) {
  if (n <= cap_) return;
  cap_ = n;
  const size_t N = size_t(n);
  x_.resize(N * c_.hidden);
  h_.resize(N * c_.hidden);
  q_.resize(N * c_.q_dim());
  k_.resize(N * c_.kv_dim());
  v_.resize(N * c_.kv_dim());
  att_.resize(N * c_.q_dim());
  gate_.resize(N * c_.ffn);
  up_.resize(N * c_.ffn);
}

// Causal attention of the n new positions over the whole cache, one (kv head, query block) per
// task. Per query head the work is two small matrix products (kernels/gemm.h): scores = Q·Kᵀ
// with the keys transposed, then out = softmax(scores)·V, both with B's rows along C's columns.
// An f32 cache is read in place (KvCache::keys_t / values); an int8 one is widened once per
// task. A decode step (one query) runs the query heads that share a kv head (GQA) as the rows
// of one product, so each key and value is loaded once for all of them.
void Runner::attend(int layer, int n) {
  const int KVH = c_.n_kv_heads, d = c_.head_dim, Qd = c_.q_dim(), group = c_.n_heads / c_.n_kv_heads;
  const float scale = 1.0f / std::sqrt(float(d));
  const bool in_place = kv_.type() == KvType::F32;
  // Queries in blocks of kQB: a block needs keys only up to its last query (causal), which
  // halves a long prefill's work against scoring every query over the whole cache.
  constexpr int kQB = 64;
  const int nqb = (n + kQB - 1) / kQB;
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
  for (int kvh = 0; kvh < KVH; ++kvh)
    for (int b = 0; b < nqb; ++b) {
      const int i0 = b * kQB, nq = std::min(kQB, n - i0);
      const int len = pos_ + i0 + nq;                  // positions the block's last query sees
      const int64_t ldk = KvCache::padded(len);        // scores are computed this wide, used to len
      thread_local std::vector<float> kbuf, vbuf, sc;
      const float *kt, *v;
      int64_t ldkt;
      if (in_place) {
        kt = kv_.keys_t(layer, kvh), v = kv_.values(layer, kvh), ldkt = kv_.keys_t_stride();
      } else {
        kbuf.resize(size_t(d) * ldk);
        vbuf.resize(size_t(len) * d);
        kv_.read_head(layer, kvh, len, kbuf.data(), ldk, vbuf.data());
        kt = kbuf.data(), v = vbuf.data(), ldkt = ldk;
      }
      // rows of queries: nq positions of one head (ld Qd), or in decode the group's heads (ld d)
      const bool fuse = nq == 1;
      const int heads = fuse ? 1 : group, rows = fuse ? group : nq;
      const int64_t ldq = fuse ? d : Qd;
      sc.resize(size_t(rows) * ldk);
      for (int hg = 0; hg < heads; ++hg) {
        const int64_t at = int64_t(i0) * Qd + int64_t(kvh * group + hg) * d;  // first row's q and out
        // sc[r][j] = q_r · k_j, the queries read in place from q_
        gemm_f32(rows, ldk, d, q_.data() + at, ldq, kt, ldkt, sc.data(), ldk);
        for (int r = 0; r < rows; ++r)
          softmax_causal(sc.data() + size_t(r) * ldk, pos_ + i0 + (fuse ? 0 : r) + 1, len, scale);
        // out[r][e] = Σ_j p[r][j] · v[j][e], written straight into att_'s head slots
        gemm_f32(rows, d, len, sc.data(), ldk, v, d, att_.data() + at, ldq);
      }
    }
}

void Runner::embed_tokens(const int* tokens, int n, float* x) const {
  const int D = c_.hidden;
  for (int i = 0; i < n; ++i) {
    model_.check_token(tokens[i]);
    dequantize_rows(model_.embed(), tokens[i], 1, x + size_t(i) * D);
  }
}

void Runner::check_room(int n) const {
  if (pos_ + n > max_seq_)
    fail("{}: {} tokens exceed the context of {} tokens", model_.path(), pos_ + n, max_seq_);
}

void Runner::forward(const int* tokens, int n, float* logits, bool all_logits) {
  if (n <= 0) return;
  check_room(n);
  const ThreadScope threads(opts_.threads);
  ensure_scratch(n);
  const int D = c_.hidden;
  embed_tokens(tokens, n, x_.data());
  for (int l = 0; l < c_.n_layers; ++l) {
    attention_block(l, n);
    mlp_hidden(l, n);
    mlp_down(l, n);
  }
  const int first = all_logits ? 0 : n - 1;
  const int rows = n - first;
  rms_norm(x_.data() + size_t(first) * D, router_.small_f32(model_.final_norm()), h_.data(), rows, D, c_.norm_eps);
  router_.linear(model_.lm_head(), nullptr, h_.data(), rows, logits);
  // NaN/Inf in weights (or an overflow) must surface as an error, not as made-up text or scores.
  const size_t count = size_t(rows) * size_t(c_.vocab);
  if (!all_finite(logits, int64_t(count)))
    for (size_t i = 0; i < count; ++i)
      if (!std::isfinite(logits[i]))
        fail("{}: the forward pass produced a non-finite logit at position {} (NaN/Inf in the weights or an "
             "overflow in the activations)",
             model_.path(), pos_ + first + int(i / size_t(c_.vocab)));
  pos_ += n;
}

void Runner::attention_block(int l, int n) {
  const int D = c_.hidden, Q = c_.q_dim(), KV = c_.kv_dim(), d = c_.head_dim;
  const size_t half = rope_cos_.size() / size_t(max_seq_);
  const LayerWeights& w = model_.layers()[l];
  rms_norm(x_.data(), router_.small_f32(*w.attn_norm), h_.data(), n, D, c_.norm_eps);
  const LinearRouter::LinearOut qkv[] = {{w.wq, w.bq, q_.data()}, {w.wk, w.bk, k_.data()}, {w.wv, w.bv, v_.data()}};
  router_.linears(qkv, h_.data(), n);
  if (w.q_norm) {  // Qwen3: RMSNorm over each head's q and k, before RoPE (in place, row by row)
    rms_norm(q_.data(), router_.small_f32(*w.q_norm), q_.data(), int64_t(n) * c_.n_heads, d, c_.norm_eps);
    rms_norm(k_.data(), router_.small_f32(*w.k_norm), k_.data(), int64_t(n) * c_.n_kv_heads, d, c_.norm_eps);
  }
  for (int i = 0; i < n; ++i) {
    const size_t p = size_t(pos_ + i);
    const float* cs = rope_cos_.data() + p * half;
    const float* sn = rope_sin_.data() + p * half;
    rope(q_.data() + size_t(i) * Q, c_.n_heads, d, int(2 * half), cs, sn, c_.rope_interleaved);
    rope(k_.data() + size_t(i) * KV, c_.n_kv_heads, d, int(2 * half), cs, sn, c_.rope_interleaved);
    kv_.store(l, int(p), k_.data() + size_t(i) * KV, v_.data() + size_t(i) * KV);
  }
  attend(l, n);
  router_.linear(*w.wo, nullptr, att_.data(), n, h_.data());
  for (size_t i = 0; i < size_t(n) * D; ++i) x_[i] += h_[i];
}

void Runner::mlp_hidden(int l, int n) {
  const LayerWeights& w = model_.layers()[l];
  rms_norm(x_.data(), router_.small_f32(*w.ffn_norm), h_.data(), n, c_.hidden, c_.norm_eps);
  const LinearRouter::LinearOut gate_up[] = {{w.w_gate, nullptr, gate_.data()}, {w.w_up, nullptr, up_.data()}};
  router_.linears(gate_up, h_.data(), n);
  silu_mul(gate_.data(), up_.data(), int64_t(n) * c_.ffn);
}

void Runner::mlp_down(int l, int n) {
  router_.linear(*model_.layers()[l].w_down, nullptr, gate_.data(), n, h_.data());
  for (size_t i = 0; i < size_t(n) * c_.hidden; ++i) x_[i] += h_[i];
}

}  // namespace lmq
