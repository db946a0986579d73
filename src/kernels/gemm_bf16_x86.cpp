// The AVX-512 BF16 kernel of gemm_bf16 (lmq/kernels/gemm_bf16.h), compiled with target
// attributes and chosen at run time. A tile is up to 12 rows of x × 2 panels of 16 weight rows:
// per pair of k, two panel loads and per row one broadcast feed 24 independent vdpbf16ps
// accumulators (vdpbf16ps: per lane acc += x_odd·w_odd, then += x_even·w_even, each step
// rounded once; the portable kernel does the same).
#include <array>
#include <utility>

#include "gemm_bf16_internal.h"
#include "x86_intrinsics.h"

#define LMQ_BF16 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512bf16")))

namespace lmq::bf16k {

namespace {

LMQ_BF16 inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

template <int R, int NP>
LMQ_BF16 void tile_t(const Tile& t) {
  __m512 acc[R][NP];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();
  const uint32_t* xb = t.xb;
  for (int64_t j = 0; j < t.kc; ++j) {
    __m512bh b[NP];
    for (int p = 0; p < NP; ++p) b[p] = as_bh(_mm512_load_si512(t.w + p * t.pstride + j * PackedBf16::kPanel));
    for (int r = 0; r < R; ++r) {
      const __m512bh a = as_bh(_mm512_set1_epi32(int(xb[r * kKB + j])));
      for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_dpbf16_ps(acc[r][p], a, b[p]);
    }
  }
  for (int p = 0; p < NP; ++p) {
    const int c = std::min(PackedBf16::kPanel, t.cols - p * PackedBf16::kPanel);
    const __mmask16 m = __mmask16((1u << c) - 1);
    for (int r = 0; r < R; ++r) {
      float* y = t.y + r * t.ldy + p * PackedBf16::kPanel;
      const __m512 v = t.first ? acc[r][p] : _mm512_add_ps(_mm512_maskz_loadu_ps(m, y), acc[r][p]);
      _mm512_mask_storeu_ps(y, m, v);
    }
  }
}

using TileFn = void (*)(const Tile&);

template <int... R>
constexpr auto tile_table(std::integer_sequence<int, R...>) {
  return std::array<std::array<TileFn, 2>, sizeof...(R)>{{{&tile_t<R + 1, 1>, &tile_t<R + 1, 2>}...}};
}
constexpr auto kTiles = tile_table(std::make_integer_sequence<int, kRows>{});

struct Avx512 {
  // 32 floats → 16 pairs per step (cvtne2ps_pbh: the second operand gives the low half).
  LMQ_BF16 static void convert(const float* x, int rows, int64_t K, int64_t j0, int64_t kc, uint32_t* xb) {
    const int64_t k0 = 2 * j0, k1 = std::min(K, 2 * (j0 + kc));
    for (int r = 0; r < rows; ++r) {
      const float* row = x + r * K;
      for (int64_t k = k0; k < k1; k += 32) {
        const int64_t n = std::min<int64_t>(32, k1 - k);
        const __mmask16 mlo = __mmask16(n >= 16 ? 0xffffu : (1u << n) - 1);
        const __mmask16 mhi = __mmask16(n >= 32 ? 0xffffu : n > 16 ? (1u << (n - 16)) - 1 : 0u);
        const __m512 lo = _mm512_maskz_loadu_ps(mlo, row + k), hi = _mm512_maskz_loadu_ps(mhi, row + k + 16);
        _mm512_store_si512(xb + r * kKB + (k - k0) / 2, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
      }
    }
  }
  static void tile(const Tile& t) { kTiles[size_t(t.rows - 1)][size_t(t.panels - 1)](t); }
};

}  // namespace

void gemm_avx512(const float* x, int64_t M, const PackedBf16& w, float* y) { gemm_blocks<Avx512>(x, M, w, y); }

}  // namespace lmq::bf16k
