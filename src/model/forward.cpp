#include "lmq/model/forward.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "lmq/error.h"
#include "lmq/kernels/gemm.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/kernels/matmul.h"
#include "lmq/kernels/vec.h"
#include "lmq/model/memory_limit.h"

namespace lmq {

namespace {

// Rotates each head's vector by its position's angles. HF layout pairs i with i + d/2
// (rotate_half); llama.cpp's permuted weights pair 2i with 2i+1.
void rope(float* v, int heads, int d, const float* cos, const float* sin, bool interleaved) {
  const int half = d / 2;
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

// One query row of causal attention: row[j] = softmax_j(row[j] · scale) over the visible
// positions j < visible, 0 for the masked ones up to len.
void softmax_causal(float* row, int visible, int len, float scale) {
  float mx = -INFINITY;
  for (int j = 0; j < visible; ++j) mx = std::max(mx, row[j] *= scale);
  const float inv = float(1.0 / exp_shifted(row, visible, mx, row));  // the vector exp
  for (int j = 0; j < visible; ++j) row[j] *= inv;
  std::fill(row + visible, row + len, 0.f);
}

// Small 1-D weights (norms, biases) as float32, whatever their storage.
std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> v(size_t(t.numel()));
  dequantize_rows(t, 0, t.rows(), v.data());
  return v;
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
  return max_seq;
}

}  // namespace

Runner::Runner(const Model& model, int max_seq)
    : model_(model),
      static_(load_static_linears(model)),
      c_(model.config()),
      max_seq_(checked_max_seq(model, max_seq)),
      kv_(c_.n_layers, max_seq_, c_.n_kv_heads, c_.head_dim, default_kv_type()) {
  const auto act = model.metadata().find("lmq.activations");
  if (act != model.metadata().end() && act->second == "int8:dynamic" && act_quant_ == ActQuant::None)
    act_quant_ = ActQuant::DynamicAbsmax;
  // RoPE angles as transformers computes them in float32: inv_freq = 1 / θ^(2i/d), angle = pos · inv_freq.
  const int half = c_.head_dim / 2;
  rope_cos_.resize(size_t(max_seq) * half);
  rope_sin_.resize(size_t(max_seq) * half);
  for (int i = 0; i < half; ++i) {
    const float expo = float(2 * i) / float(c_.head_dim);
    const float inv_freq = 1.0f / float(std::pow(c_.rope_theta, double(expo)));
    for (int p = 0; p < max_seq; ++p) {
      const float angle = float(p) * inv_freq;
      rope_cos_[size_t(p) * half + i] = float(std::cos(double(angle)));
      rope_sin_[size_t(p) * half + i] = float(std::sin(double(angle)));
    }
  }
}

void Runner::set_kv_type(KvType t) {
  kv_ = KvCache(c_.n_layers, max_seq_, c_.n_kv_heads, c_.head_dim, t);
  pos_ = 0;
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
void Runner::attention(int layer, int n) {
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

Runner::HeldActs Runner::int_route(const Tensor& w) {
  if (const auto it = static_.find(&w); it != static_.end()) return {int_plan(w).unit(), -1, it->second.s_x};
  if (act_quant_ != ActQuant::None && int_matmul_supported(w, act_block_))
    return {int_plan(w).unit(), int(act_quant_), 0.f};
  return {};
}

void Runner::quantize_input(const HeldActs& want, const float* x, int n, int64_t K, HeldActs& held) {
  if (held == want) return;
  if (want.rule == -1) quantize_activations_static(x, n, K, want.s_x, want.unit, xq_);
  else quantize_activations(x, n, K, ActQuant(want.rule), act_block_, want.unit, xq_);
  held = want;
}

const float* Runner::int_bias(const Tensor& w, const Tensor* bias) {
  if (const auto it = static_.find(&w); it != static_.end()) return it->second.bias.empty() ? nullptr : it->second.bias.data();
  if (!bias) return nullptr;
  return small_f32(*bias);
}

const float* Runner::small_f32(const Tensor& t) {
  auto it = small_.find(&t);
  if (it == small_.end()) it = small_.emplace(&t, to_f32(t)).first;
  return it->second.data();
}

void Runner::linear(const Tensor& w, const Tensor* bias, const float* x, int n, float* y, HeldActs& held) {
  if (observer_) observer_(w, x, n);
  if (const HeldActs want = int_route(w); want.unit != 0) {
    quantize_input(want, x, n, w.cols(), held);
    return int_matmul_q(int_plan(w), xq_, y, int_bias(w, bias));
  }
  const float* bp = bias ? small_f32(*bias) : nullptr;
  if (blas_ && w.format == Format::F32 && reinterpret_cast<uintptr_t>(w.data) % alignof(float) == 0) {
    const int64_t N = w.rows(), K = w.cols();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, int(N), int(K), 1.0f, x, int(K),
                reinterpret_cast<const float*>(w.data), int(K), 0.0f, y, int(N));
    if (bp)
      for (int64_t t = 0; t < n; ++t)
        for (int64_t r = 0; r < N; ++r) y[t * N + r] += bp[r];
    return;
  }
  matmul(w, x, n, y, bp);
}

void Runner::linears(std::span<const LinearOut> outs, const float* x, int n) {
  const HeldActs want = int_route(*outs[0].w);
  bool fused = want.unit != 0;
  for (const LinearOut& o : outs) fused = fused && int_route(*o.w) == want && o.w->cols() == outs[0].w->cols();
  HeldActs held;
  if (!fused) {
    for (const LinearOut& o : outs) linear(*o.w, o.bias, x, n, o.y, held);
    return;
  }
  IntMatmulJob jobs[kMaxFused];
  if (outs.size() > kMaxFused) fail("internal: {} fused linears, at most {}", outs.size(), kMaxFused);
  for (size_t i = 0; i < outs.size(); ++i) {
    if (observer_) observer_(*outs[i].w, x, n);
    jobs[i] = {&int_plan(*outs[i].w), outs[i].y, int_bias(*outs[i].w, outs[i].bias)};
  }
  quantize_input(want, x, n, outs[0].w->cols(), held);
  int_matmul_q(std::span<const IntMatmulJob>(jobs, outs.size()), xq_);
}

// attention() through sgemm, reading Q straight from q_ and writing into att_. Queries go in
// chunks of 128 so each chunk's products stop at the last position it can see (a prefill from
// position 0 then does ~5/8 of the full square's work).
void Runner::attention_blas(int layer, int n) {
  constexpr int kChunk = 128;
  const int H = c_.n_heads, d = c_.head_dim, Qd = c_.q_dim(), group = c_.n_heads / c_.n_kv_heads;
  const int len = pos_ + n;
  const float scale = 1.0f / std::sqrt(float(d));
#pragma omp parallel for schedule(dynamic, 1)
  for (int h = 0; h < H; ++h) {
    const int64_t ldk = KvCache::padded(len);
    std::vector<float> kt(size_t(d) * ldk), v(size_t(len) * d), sc(size_t(std::min(n, kChunk)) * len);
    kv_.read_head(layer, h / group, len, kt.data(), ldk, v.data());
    for (int i0 = 0; i0 < n; i0 += kChunk) {
      const int m = std::min(kChunk, n - i0), vis = pos_ + i0 + m;  // positions the chunk's last query sees
      const float* q = q_.data() + size_t(i0) * Qd + size_t(h) * d;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, vis, d, scale, q, Qd, kt.data(), int(ldk), 0.0f,
                  sc.data(), vis);
      for (int i = 0; i < m; ++i) softmax_causal(sc.data() + size_t(i) * vis, pos_ + i0 + i + 1, vis, 1.0f);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, vis, 1.0f, sc.data(), vis, v.data(), d, 0.0f,
                  att_.data() + size_t(i0) * Qd + size_t(h) * d, Qd);
    }
  }
}

void Runner::linear(const Tensor& w, const Tensor* bias, const float* x, int n, float* y) {
  HeldActs none;
  linear(w, bias, x, n, y, none);
}

const IntMatmulPlan& Runner::int_plan(const Tensor& w) {
  auto it = plans_.find(&w);
  // a static input scale is one per tensor: those plans never use activation blocks
  if (it == plans_.end()) it = plans_.emplace(&w, IntMatmulPlan(w, static_.contains(&w) ? 0 : act_block_)).first;
  return it->second;
}

void Runner::embed_tokens(const int* tokens, int n, float* x) const {
  const int D = c_.hidden;
  for (int i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= c_.vocab)
      fail("{}: token id {} is outside the vocabulary of {}", model_.path(), tokens[i], c_.vocab);
    dequantize_rows(model_.embed(), tokens[i], 1, x + size_t(i) * D);
  }
}

void Runner::forward_layers(float* x, int n, int first, int last) {
  if (n <= 0) return;
  if (pos_ + n > max_seq_)
    fail("{}: {} tokens exceed the context of {} tokens", model_.path(), pos_ + n, max_seq_);
  if (first < 0 || last > c_.n_layers || first > last)
    fail("internal: layers [{}, {}) out of range of {}", first, last, c_.n_layers);
  ensure_scratch(n);
  std::copy_n(x, size_t(n) * c_.hidden, x_.data());
  for (int l = first; l < last; ++l) layer(l, n, inputs_only_ && l == last - 1);
  std::copy_n(x_.data(), size_t(n) * c_.hidden, x);
  pos_ += n;
}

void Runner::layer(int l, int n, bool skip_down) {
  const int D = c_.hidden, Q = c_.q_dim(), KV = c_.kv_dim(), F = c_.ffn, half = c_.head_dim / 2;
  {
    const LayerWeights& w = model_.layers()[l];
    // attention block
    rms_norm(x_.data(), small_f32(*w.attn_norm), h_.data(), n, D, c_.norm_eps);
    const LinearOut qkv[] = {{w.wq, w.bq, q_.data()}, {w.wk, w.bk, k_.data()}, {w.wv, w.bv, v_.data()}};
    linears(qkv, h_.data(), n);
    for (int i = 0; i < n; ++i) {
      const size_t p = size_t(pos_ + i);
      const float* cs = rope_cos_.data() + p * half;
      const float* sn = rope_sin_.data() + p * half;
      rope(q_.data() + size_t(i) * Q, c_.n_heads, c_.head_dim, cs, sn, c_.rope_interleaved);
      rope(k_.data() + size_t(i) * KV, c_.n_kv_heads, c_.head_dim, cs, sn, c_.rope_interleaved);
      kv_.store(l, int(p), k_.data() + size_t(i) * KV, v_.data() + size_t(i) * KV);
    }
    if (blas_) attention_blas(l, n);
    else attention(l, n);
    linear(*w.wo, nullptr, att_.data(), n, h_.data());
    for (size_t i = 0; i < size_t(n) * D; ++i) x_[i] += h_[i];

    // MLP block (SwiGLU)
    rms_norm(x_.data(), small_f32(*w.ffn_norm), h_.data(), n, D, c_.norm_eps);
    const LinearOut gate_up[] = {{w.w_gate, nullptr, gate_.data()}, {w.w_up, nullptr, up_.data()}};
    linears(gate_up, h_.data(), n);
    silu_mul(gate_.data(), up_.data(), int64_t(n) * F);
    if (skip_down) {
      if (observer_) observer_(*w.w_down, gate_.data(), n);
      return;
    }
    linear(*w.w_down, nullptr, gate_.data(), n, h_.data());
    for (size_t i = 0; i < size_t(n) * D; ++i) x_[i] += h_[i];
  }
}

void Runner::forward(const int* tokens, int n, float* logits, bool all_logits) {
  if (n <= 0) return;
  if (pos_ + n > max_seq_)
    fail("{}: {} tokens exceed the context of {} tokens", model_.path(), pos_ + n, max_seq_);
  ensure_scratch(n);
  const int D = c_.hidden;
  embed_tokens(tokens, n, x_.data());
  for (int l = 0; l < c_.n_layers; ++l) layer(l, n);

  const int first = all_logits ? 0 : n - 1;
  const int rows = n - first;
  rms_norm(x_.data() + size_t(first) * D, small_f32(model_.final_norm()), h_.data(), rows, D, c_.norm_eps);
  linear(model_.lm_head(), nullptr, h_.data(), rows, logits);
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

}  // namespace lmq
