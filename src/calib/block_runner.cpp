#include "lmq/calib/block_runner.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "lmq/error.h"
#include "lmq/kernels/matmul.h"
#include "lmq/kernels/vec.h"

namespace lmq::calib {

namespace {
// y = x·wᵀ (+ bias) through sgemm for aligned F32 weights, else lmq::matmul.
void blas_linear(const Tensor& w, const float* bias, const float* x, int n, float* y) {
  if (w.format != Format::F32 || reinterpret_cast<uintptr_t>(w.data) % alignof(float) != 0)
    return matmul(w, x, n, y, bias);
  const int64_t N = w.rows(), K = w.cols();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, int(N), int(K), 1.0f, x, int(K),
              reinterpret_cast<const float*>(w.data), int(K), 0.0f, y, int(N));
  if (bias)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = 0; r < N; ++r) y[t * N + r] += bias[r];
}
}  // namespace

void BlockRunner::set_blas(bool on, const PackedLinears* bf16) {
  blas_ = on;
  if (!on) return router_.set_float_linear(nullptr);
  if (!bf16) return router_.set_float_linear(&blas_linear);
  router_.set_float_linear([bf16](const Tensor& w, const float* bias, const float* x, int n, float* y) {
    if (const auto it = bf16->find(&w); it != bf16->end()) return gemm_bf16(x, n, it->second, y, bias);
    blas_linear(w, bias, x, n, y);
  });
}

void BlockRunner::forward_layers(float* x, int n, int first, int last) {
  if (n <= 0) return;
  check_room(n);
  LMQ_CHECK(first >= 0 && last <= c_.n_layers && first <= last, "layers [{}, {}) out of range of {}", first, last,
            c_.n_layers);
  ensure_scratch(n);
  std::copy_n(x, size_t(n) * c_.hidden, x_.data());
  for (int l = first; l < last; ++l) {
    attention_block(l, n);
    mlp_hidden(l, n);
    if (inputs_only_ && l == last - 1) router_.observe(*model_.layers()[l].w_down, gate_.data(), n);
    else mlp_down(l, n);
  }
  std::copy_n(x_.data(), size_t(n) * c_.hidden, x);
  pos_ += n;
}

void BlockRunner::attend(int l, int n) {
  if (blas_) attend_blas(l, n);
  else Runner::attend(l, n);
}

// Runner::attend through sgemm, reading Q straight from q_ and writing into att_. Queries go in
// chunks of 128 so each chunk's products stop at the last position it can see (a prefill from
// position 0 then does ~5/8 of the full square's work).
void BlockRunner::attend_blas(int layer, int n) {
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

}  // namespace lmq::calib
