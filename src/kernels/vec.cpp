#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/vec.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>

#include "lmq/kernels/vec.h"

HWY_BEFORE_NAMESPACE();
namespace lmq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

float MaxOf(const float* x, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  float m = -INFINITY;
  int64_t i = 0;
  if (n >= N) {
    auto v = hn::LoadU(d, x);
    for (i = N; i + N <= n; i += N) v = hn::Max(v, hn::LoadU(d, x + i));
    m = hn::GetLane(hn::MaxOfLanes(d, v));
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

// Σ exp(x_i − shift), optionally storing each term. Lane sums stay short (n/N terms each),
// and the lanes are added in double.
double ExpShifted(const float* x, int64_t n, float shift, float* out) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  const auto s = hn::Set(d, shift);
  auto acc = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), s));
    if (out) hn::StoreU(e, d, out + i);
    acc = hn::Add(acc, e);
  }
  HWY_ALIGN float lanes[hn::MaxLanes(d)];
  hn::Store(acc, d, lanes);
  double total = 0;
  for (int64_t k = 0; k < N; ++k) total += lanes[k];
  for (; i < n; ++i) {
    const float e = std::exp(x[i] - shift);
    if (out) out[i] = e;
    total += e;
  }
  return total;
}

double LogSumExp(const float* x, int64_t n) {
  const float m = MaxOf(x, n);
  return double(m) + std::log(ExpShifted(x, n, m, nullptr));
}

double Dot(const float* a, const float* b, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  auto acc = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) acc = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc);
  HWY_ALIGN float lanes[hn::MaxLanes(d)];
  hn::Store(acc, d, lanes);
  double total = 0;
  for (int64_t k = 0; k < N; ++k) total += lanes[k];
  for (; i < n; ++i) total += double(a[i]) * b[i];
  return total;
}

void SiluMul(float* g, const float* up, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(d, g + i);
    const auto silu = hn::Div(v, hn::Add(one, hn::Exp(d, hn::Neg(v))));
    hn::StoreU(hn::Mul(silu, hn::LoadU(d, up + i)), d, g + i);
  }
  for (; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * up[i];
}

// y = x / sqrt(mean(x²) + eps) · w per row, as transformers' RMSNorm in float32: the squares
// summed in float lanes (a tree, as PyTorch's reduction is), the lanes added in double.
void RmsNorm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float inv = 1.0f / std::sqrt(float(Dot(xr, xr, n)) / float(n) + eps);
    const auto vi = hn::Set(d, inv);
    int64_t i = 0;
    for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, w + i), hn::Mul(hn::LoadU(d, xr + i), vi)), d, yr + i);
    for (; i < n; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

bool AllFinite(const float* x, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  auto ok = hn::Eq(hn::Zero(d), hn::Zero(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) ok = hn::And(ok, hn::IsFinite(hn::LoadU(d, x + i)));
  if (!hn::AllTrue(d, ok)) return false;
  for (; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

}  // namespace HWY_NAMESPACE
}  // namespace lmq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lmq {
HWY_EXPORT(LogSumExp);
HWY_EXPORT(Dot);
HWY_EXPORT(ExpShifted);
HWY_EXPORT(SiluMul);
HWY_EXPORT(RmsNorm);
HWY_EXPORT(AllFinite);
void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) {
  HWY_DYNAMIC_DISPATCH(RmsNorm)(x, w, y, rows, n, eps);
}
bool all_finite(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(AllFinite)(x, n); }
void silu_mul(float* g, const float* up, int64_t n) { HWY_DYNAMIC_DISPATCH(SiluMul)(g, up, n); }
double log_sum_exp(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(LogSumExp)(x, n); }
double dot(const float* a, const float* b, int64_t n) { return HWY_DYNAMIC_DISPATCH(Dot)(a, b, n); }
double exp_shifted(const float* x, int64_t n, float shift, float* out) {
  return HWY_DYNAMIC_DISPATCH(ExpShifted)(x, n, shift, out);
}
void softmax_causal(float* row, int visible, int len, float scale) {
  float mx = -INFINITY;
  for (int j = 0; j < visible; ++j) mx = std::max(mx, row[j] *= scale);
  const float inv = float(1.0 / exp_shifted(row, visible, mx, row));  // the vector exp
  for (int j = 0; j < visible; ++j) row[j] *= inv;
  std::fill(row + visible, row + len, 0.f);
}
}  // namespace lmq
#endif
