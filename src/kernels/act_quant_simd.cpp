// The per-value loops of dynamic activation quantization (lmq/kernels/act_quant.h), written once
// with Highway and dispatched at run time. Both are exact restatements of the scalar rules:
//   absmax:   max |x| over the values, NaN counted as 0 (so a NaN cannot make the scale NaN);
//   quantize: q = clamp(round(x·inv), ±127) with round half away from zero, NaN → 0; returns Σq.
// Rounding half away from zero is built from truncation: t = trunc(v), v − t is exact, and
// |v − t| ≥ 0.5 moves t one step away from zero (adding 0.5 first would misround 0.49999997).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/act_quant_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>
#include <cstdint>

#include "act_quant_simd.h"

HWY_BEFORE_NAMESPACE();
namespace lmq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

float AbsMax(const float* HWY_RESTRICT x, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  auto m = hn::Zero(d);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto v = hn::LoadU(d, x + i);
    m = hn::Max(m, hn::IfThenElseZero(hn::Eq(v, v), hn::Abs(v)));
  }
  float r = hn::GetLane(hn::MaxOfLanes(d, m));
  for (; i < n; ++i)
    if (std::fabs(x[i]) > r) r = std::fabs(x[i]);  // false for NaN
  return r;
}

int32_t QuantizeI8(const float* HWY_RESTRICT x, int64_t n, float inv, int8_t* HWY_RESTRICT q) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::Rebind<int8_t, decltype(d)> d8;
  const int64_t L = int64_t(hn::Lanes(d));
  const auto vinv = hn::Set(d, inv), half = hn::Set(d, 0.5f), one = hn::Set(d, 1.0f);
  const auto lo = hn::Set(d, -127.0f), hi = hn::Set(d, 127.0f);
  auto sum = hn::Zero(di);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto v = hn::Mul(hn::LoadU(d, x + i), vinv);
    const auto t = hn::Trunc(v);
    const auto away = hn::IfThenElseZero(hn::Ge(hn::Abs(hn::Sub(v, t)), half), hn::CopySign(one, v));
    const auto r = hn::Min(hn::Max(hn::Add(t, away), lo), hi);
    const auto qi = hn::ConvertTo(di, hn::IfThenElseZero(hn::Eq(v, v), r));
    sum = hn::Add(sum, qi);
    hn::StoreU(hn::DemoteTo(d8, qi), d8, q + i);
  }
  int32_t s = hn::GetLane(hn::SumOfLanes(di, sum));
  for (; i < n; ++i) {
    const float v = x[i] * inv;
    const int8_t c = v == v ? int8_t(std::fmin(std::fmax(std::round(v), -127.0f), 127.0f)) : int8_t(0);
    q[i] = c;
    s += c;
  }
  return s;
}

}  // namespace HWY_NAMESPACE
}  // namespace lmq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lmq {
HWY_EXPORT(AbsMax);
HWY_EXPORT(QuantizeI8);
float simd_absmax(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(AbsMax)(x, n); }
int32_t simd_quantize_i8(const float* x, int64_t n, float inv, int8_t* q) {
  return HWY_DYNAMIC_DISPATCH(QuantizeI8)(x, n, inv, q);
}
}  // namespace lmq
#endif
