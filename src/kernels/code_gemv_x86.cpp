// Weight-only decode of 4-bit LMQ_INT codes, AVX-512F (code_gemv.h). 4 rows a tile share each
// activation load; every row reads its codes straight from the weight.
//
// A 64-byte step holds 128 codes, 8 per 32-bit lane (nibble m of lane j is code 8j + m).
// Shifting the step right by 4m puts code 8j + m in the low 4 bits of lane j, and vpermps, which
// reads only those 4 bits of each index, looks it up in a 16-float table of the group's
// dequantized values s·(c − z) (computed as quant::dequant_code does, so every product is the
// dequantized weight times x). Per 128 codes and row: 1 load, 7 shifts, 8 lookups, 8 FMAs;
// code_gemv_prepare_x4 put x in the matching order.
//
// Why: decode streams every weight once, and the Highway tile kernel (dot_tile_codes) needs
// packed codes unpacked into a buffer first, fetched ahead in a burst before each tile, which
// left the weight-only int4 path at 27–30% of the read bandwidth (docs/results.md).
#include "code_gemv.h"
#include "x86_intrinsics.h"

namespace lmq::codek {

bool code_gemv_available() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

bool code_gemv_fits(int bits, int64_t K, int64_t G) {
  if (K <= 0 || G <= 0 || K % G != 0) return false;
  return bits == 4 && G % 128 == 0;
}

void code_gemv_prepare_x4(const float* x, int64_t K, float* xp) {
  for (int64_t b = 0; b < K; b += 128)
    for (int m = 0; m < 8; ++m)
      for (int j = 0; j < 16; ++j) xp[b + 16 * m + j] = x[b + 8 * j + m];
}

#define LMQ_AVX512F __attribute__((target("avx2,avx512f")))

namespace {

template <int NR>
LMQ_AVX512F void rows_b4(const CodeGemvArgs& a, float* y) {
  const int64_t ng = a.K / a.G;
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512 acc[NR][2];
  for (int r = 0; r < NR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    __m512 tab[NR];  // tab[r][c] = s · (c − z): the dequantized value of code c in this group
    for (int r = 0; r < NR; ++r)
      tab[r] = _mm512_mul_ps(_mm512_set1_ps(a.s[r * ng + g]),
                             _mm512_sub_ps(iota, _mm512_set1_ps(float(a.z[r * ng + g]))));
    for (int64_t k = g * a.G; k < (g + 1) * a.G; k += 128) {
      __m512 xv[8];
      for (int m = 0; m < 8; ++m) xv[m] = _mm512_loadu_ps(a.xp + k + 16 * m);
      for (int r = 0; r < NR; ++r) {
        const uint8_t* p = a.u + r * a.ldu + k / 2;
        _mm_prefetch(reinterpret_cast<const char*>(p + a.ahead), _MM_HINT_T1);
        const __m512i c = _mm512_loadu_si512(p);
#pragma GCC unroll 8
        for (int m = 0; m < 8; ++m)  // code 8j + m of lane j, looked up; two sums, every other m
          acc[r][m % 2] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(c, 4 * m), tab[r]), xv[m], acc[r][m % 2]);
      }
    }
  }
  for (int r = 0; r < NR; ++r) y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
}

}  // namespace

void code_gemv_rows(const CodeGemvArgs& a, int nr, float* y) {
  switch (nr) {
    case 4: return rows_b4<4>(a, y);
    case 3: return rows_b4<3>(a, y);
    case 2: return rows_b4<2>(a, y);
    default: return rows_b4<1>(a, y);
  }
}

}  // namespace lmq::codek
