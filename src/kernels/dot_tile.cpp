// The float dot-product tile of the linear layer, written once with Highway and compiled for
// every x86 target Highway knows (AVX-512, AVX2, SSE4, scalar); the best one is chosen at run
// time. A 4×4 tile keeps 16 accumulators in registers: 8 loads feed 16 FMAs.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/dot_tile.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstring>

#include "lmq/half.h"
#include "lmq/kernels/matmul.h"

HWY_BEFORE_NAMESPACE();
namespace lmq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Weight loaders: float rows as they are, bfloat16 rows widened in registers (a bf16 is the
// top half of a float32, so widening is a 16-bit shift: exact and free of rounding).
struct LoadF32 {
  template <class D>
  HWY_INLINE hn::Vec<D> operator()(D d, const float* HWY_RESTRICT p) const { return hn::LoadU(d, p); }
  static float scalar(const float* p) { return *p; }
};
struct LoadBF16 {
  template <class D>
  HWY_INLINE hn::Vec<D> operator()(D d, const uint16_t* HWY_RESTRICT p) const {
    const hn::Rebind<uint16_t, D> d16;
    const hn::Rebind<uint32_t, D> d32;
    return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(d32, hn::LoadU(d16, p))));
  }
  static float scalar(const uint16_t* p) {
    uint32_t u = uint32_t(*p) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

struct LoadF16 {
  template <class D>
  HWY_INLINE hn::Vec<D> operator()(D d, const uint16_t* HWY_RESTRICT p) const {
    const hn::Rebind<hwy::float16_t, D> d16;
    return hn::PromoteTo(d, hn::LoadU(d16, reinterpret_cast<const hwy::float16_t*>(p)));
  }
  static float scalar(const uint16_t* p) { return f16_to_f32(*p); }
};

#if HWY_TARGET != HWY_SCALAR
// The 128-bit blocks of v added together (4 lanes).
template <class D>
HWY_INLINE auto SumBlocks(D d, hn::Vec<D> v) {
  if constexpr (hn::MaxLanes(d) <= 4) {
    return v;
  } else {
    const hn::Half<D> dh;
    return SumBlocks(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
  }
}

// out[r] = Σ of a_r's lanes, the four at once: a transpose-and-add tree that needs a third of
// the shuffles of four SumOfLanes. A tile's dot products over a short K (attention's head
// dimension of 64: 4 vector steps) spend most of their time here.
template <class D>
HWY_INLINE void Sum4(D d, hn::Vec<D> a0, hn::Vec<D> a1, hn::Vec<D> a2, hn::Vec<D> a3, float* out) {
  // per 128-bit block, lanes (x0, x1, x2, x3): t01 = (a0_0+a0_2, a1_0+a1_2, a0_1+a0_3, a1_1+a1_3)
  const auto t01 = hn::Add(hn::InterleaveLower(d, a0, a1), hn::InterleaveUpper(d, a0, a1));
  const auto t23 = hn::Add(hn::InterleaveLower(d, a2, a3), hn::InterleaveUpper(d, a2, a3));
  const hn::Repartition<uint64_t, D> du;
  const auto lo = hn::InterleaveLower(du, hn::BitCast(du, t01), hn::BitCast(du, t23));
  const auto hi = hn::InterleaveUpper(du, hn::BitCast(du, t01), hn::BitCast(du, t23));
  const auto s = SumBlocks(d, hn::Add(hn::BitCast(d, lo), hn::BitCast(d, hi)));  // lane r: row r
  const hn::Full128<float> d4;
  hn::StoreU(s, d4, out);
}
#else
template <class D>
HWY_INLINE void Sum4(D d, hn::Vec<D> a0, hn::Vec<D> a1, hn::Vec<D> a2, hn::Vec<D> a3, float* out) {
  (void)d;  // one lane: the sums are the lanes
  out[0] = hn::GetLane(a0), out[1] = hn::GetLane(a1), out[2] = hn::GetLane(a2), out[3] = hn::GetLane(a3);
}
#endif

// out[r] = Σ of the lanes of acc[r][t] for every row r of a tile (the 4-row tree when NR = 4).
template <int NR, int NT, class D>
HWY_INLINE void LaneSums(D d, const hn::Vec<D> (&acc)[NR][NT], int t, float* out) {
  if constexpr (NR == 4) {
    Sum4(d, acc[0][t], acc[1][t], acc[2][t], acc[3][t], out);
  } else {
    for (int r = 0; r < NR; ++r) out[r] = hn::GetLane(hn::SumOfLanes(d, acc[r][t]));
  }
}

// Rows of w are ldw apart, rows of x ldx apart.
template <int NR, int NT, class Load, typename W>
HWY_INLINE void Tile(const W* HWY_RESTRICT w, int64_t ldw, const float* HWY_RESTRICT x, int64_t ldx, int64_t K,
                     float* HWY_RESTRICT y, int64_t ldy) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  hn::Vec<decltype(d)> acc[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) acc[r][t] = hn::Zero(d);
  int64_t k = 0;
  for (; k + N <= K; k += N) {
    hn::Vec<decltype(d)> xv[NT];
    for (int t = 0; t < NT; ++t) xv[t] = hn::LoadU(d, x + t * ldx + k);
    for (int r = 0; r < NR; ++r) {
      const auto wv = Load()(d, w + r * ldw + k);
      for (int t = 0; t < NT; ++t) acc[r][t] = hn::MulAdd(wv, xv[t], acc[r][t]);
    }
  }
  for (int t = 0; t < NT; ++t) {
    float s[NR];
    LaneSums(d, acc, t, s);
    for (int r = 0; r < NR; ++r) {
      for (int64_t kk = k; kk < K; ++kk) s[r] += Load::scalar(w + r * ldw + kk) * x[t * ldx + kk];
      y[t * ldy + r] = s[r];
    }
  }
}

template <int NR, class Load, typename W>
HWY_INLINE void RowBlock(const W* w, int64_t ldw, const float* x, int64_t ldx, int64_t nt, int64_t K, float* y,
                         int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= nt; t += 4) Tile<NR, 4, Load>(w, ldw, x + t * ldx, ldx, K, y + t * ldy, ldy);
  for (; t < nt; ++t) Tile<NR, 1, Load>(w, ldw, x + t * ldx, ldx, K, y + t * ldy, ldy);
}

template <class Load, typename W>
HWY_INLINE void Rows(const W* w, int64_t ldw, int64_t nr, const float* x, int64_t ldx, int64_t nt, int64_t K,
                     float* y, int64_t ldy) {
  int64_t r = 0;
  for (; r + 4 <= nr; r += 4) RowBlock<4, Load>(w + r * ldw, ldw, x, ldx, nt, K, y + r, ldy);
  for (; r < nr; ++r) RowBlock<1, Load>(w + r * ldw, ldw, x, ldx, nt, K, y + r, ldy);
}

// Integer weight codes as bytes (rows ldu apart) against float activations, the codes widened
// in registers: y[t·ldy + r] = Σ_g s[r·ng + g] · Σ_{k∈g} (u[r][k] − z[r·ng + g]) · x[t][k], groups
// of G values (G % 16 == 0, K = ng·G). u − z is exact in int32, so each product is what the
// dequantized weight s·(u − z) gives up to the one rounding of where s is applied. ahead > 0:
// each row's line `ahead` bytes on is fetched into L2 as each 64 codes are read.
template <int NR, int NT>
HWY_INLINE void CodeTile(const uint8_t* HWY_RESTRICT u, int64_t ldu, const float* HWY_RESTRICT x, int64_t K,
                         int64_t G, const float* HWY_RESTRICT s, const int32_t* HWY_RESTRICT z, float* HWY_RESTRICT y,
                         int64_t ldy, int64_t ahead) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<uint8_t, decltype(d)> d8;
  const int64_t N = int64_t(hn::Lanes(d)), ng = K / G;
  hn::Vec<decltype(d)> tot[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) tot[r][t] = hn::Zero(d);
  for (int64_t g = 0; g < ng; ++g) {
    hn::Vec<decltype(d)> acc[NR][NT];
    hn::Vec<decltype(di)> zv[NR];
    for (int r = 0; r < NR; ++r) {
      zv[r] = hn::Set(di, z[r * ng + g]);
      for (int t = 0; t < NT; ++t) acc[r][t] = hn::Zero(d);
    }
    for (int64_t k = g * G; k < (g + 1) * G; k += N) {
      hn::Vec<decltype(d)> xv[NT];
      for (int t = 0; t < NT; ++t) xv[t] = hn::LoadU(d, x + t * K + k);
      if (ahead > 0 && k % 64 == 0)
        for (int r = 0; r < NR; ++r) __builtin_prefetch(u + r * ldu + k + ahead, 0, 2);
      for (int r = 0; r < NR; ++r) {
        const auto wv = hn::ConvertTo(d, hn::Sub(hn::PromoteTo(di, hn::LoadU(d8, u + r * ldu + k)), zv[r]));
        for (int t = 0; t < NT; ++t) acc[r][t] = hn::MulAdd(wv, xv[t], acc[r][t]);
      }
    }
    for (int r = 0; r < NR; ++r) {
      const auto sv = hn::Set(d, s[r * ng + g]);
      for (int t = 0; t < NT; ++t) tot[r][t] = hn::MulAdd(sv, acc[r][t], tot[r][t]);
    }
  }
  for (int t = 0; t < NT; ++t) {
    float out[NR];
    LaneSums(d, tot, t, out);
    for (int r = 0; r < NR; ++r) y[t * ldy + r] = out[r];
  }
}

void DotTileCodes(const uint8_t* u, int64_t ldu, int64_t nr, const float* x, int64_t nt, int64_t K, int64_t G,
                  const float* s, const int32_t* z, float* y, int64_t ldy, int64_t ahead) {
  const int64_t ng = K / G;
  int64_t r = 0;
  for (; r + 4 <= nr; r += 4) {
    int64_t t = 0;
    for (; t + 4 <= nt; t += 4) CodeTile<4, 4>(u + r * ldu, ldu, x + t * K, K, G, s + r * ng, z + r * ng, y + t * ldy + r, ldy, ahead);
    for (; t < nt; ++t) CodeTile<4, 1>(u + r * ldu, ldu, x + t * K, K, G, s + r * ng, z + r * ng, y + t * ldy + r, ldy, ahead);
  }
  for (; r < nr; ++r) {
    int64_t t = 0;
    for (; t + 4 <= nt; t += 4) CodeTile<1, 4>(u + r * ldu, ldu, x + t * K, K, G, s + r * ng, z + r * ng, y + t * ldy + r, ldy, ahead);
    for (; t < nt; ++t) CodeTile<1, 1>(u + r * ldu, ldu, x + t * K, K, G, s + r * ng, z + r * ng, y + t * ldy + r, ldy, ahead);
  }
}

void DotTileF32(const float* w, int64_t nr, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy) {
  Rows<LoadF32>(w, K, nr, x, K, nt, K, y, ldy);
}
void DotTileBF16(const uint16_t* w, int64_t nr, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy) {
  Rows<LoadBF16>(w, K, nr, x, K, nt, K, y, ldy);
}
void DotTileF16(const uint16_t* w, int64_t nr, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy) {
  Rows<LoadF16>(w, K, nr, x, K, nt, K, y, ldy);
}

}  // namespace HWY_NAMESPACE
}  // namespace lmq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lmq {
HWY_EXPORT(DotTileF32);
HWY_EXPORT(DotTileBF16);
HWY_EXPORT(DotTileF16);
HWY_EXPORT(DotTileCodes);
void dot_tile_codes(const uint8_t* u, int64_t ldu, int64_t nr, const float* x, int64_t nt, int64_t K, int64_t G,
                    const float* s, const int32_t* z, float* y, int64_t ldy, int64_t ahead) {
  HWY_DYNAMIC_DISPATCH(DotTileCodes)(u, ldu, nr, x, nt, K, G, s, z, y, ldy, ahead);
}
void dot_tile_f32(const float* w, int64_t nr, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(DotTileF32)(w, nr, x, nt, K, y, ldy);
}
void dot_tile_bf16(const uint16_t* w, int64_t nr, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(DotTileBF16)(w, nr, x, nt, K, y, ldy);
}
void dot_tile_f16(const uint16_t* w, int64_t nr, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(DotTileF16)(w, nr, x, nt, K, y, ldy);
}
}  // namespace lmq
#endif
