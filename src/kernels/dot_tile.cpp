// The float dot-product tile of the linear layer, written once with Highway and compiled for
// every x86 target Highway knows (AVX-512, AVX2, SSE4, scalar); the best one is chosen at run
// time. A 4×4 tile keeps 16 accumulators in registers: 8 loads feed 16 FMAs.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/dot_tile.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "lmq/kernels/matmul.h"

HWY_BEFORE_NAMESPACE();
namespace lmq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <int NR, int NT>
HWY_INLINE void Tile(const float* HWY_RESTRICT w, const float* HWY_RESTRICT x, int64_t K, float* HWY_RESTRICT y,
                     int64_t ldy) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  hn::Vec<decltype(d)> acc[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) acc[r][t] = hn::Zero(d);
  int64_t k = 0;
  for (; k + N <= K; k += N) {
    hn::Vec<decltype(d)> xv[NT];
    for (int t = 0; t < NT; ++t) xv[t] = hn::LoadU(d, x + t * K + k);
    for (int r = 0; r < NR; ++r) {
      const auto wv = hn::LoadU(d, w + r * K + k);
      for (int t = 0; t < NT; ++t) acc[r][t] = hn::MulAdd(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) {
      float s = hn::GetLane(hn::SumOfLanes(d, acc[r][t]));
      for (int64_t kk = k; kk < K; ++kk) s += w[r * K + kk] * x[t * K + kk];
      y[t * ldy + r] = s;
    }
}

template <int NR>
HWY_INLINE void RowBlock(const float* w, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= nt; t += 4) Tile<NR, 4>(w, x + t * K, K, y + t * ldy, ldy);
  for (; t < nt; ++t) Tile<NR, 1>(w, x + t * K, K, y + t * ldy, ldy);
}

void DotTileF32(const float* w, int64_t nr, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy) {
  int64_t r = 0;
  for (; r + 4 <= nr; r += 4) RowBlock<4>(w + r * K, x, nt, K, y + r, ldy);
  for (; r < nr; ++r) RowBlock<1>(w + r * K, x, nt, K, y + r, ldy);
}

}  // namespace HWY_NAMESPACE
}  // namespace lmq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lmq {
HWY_EXPORT(DotTileF32);
void dot_tile_f32(const float* w, int64_t nr, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(DotTileF32)(w, nr, x, nt, K, y, ldy);
}
}  // namespace lmq
#endif
