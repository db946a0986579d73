// The pieces of the in-place kernels' AVX-512 VNNI code (lmq/kernels/ggml_matmul.h) that more
// than one file uses: ggml_matmul_x86.cpp (Q8_0, Q4_0, K-quants) and ggml_matmul_lattice_x86.cpp
// (the lattice i-quants). Only for files compiled with -ffp-contract=off.
#pragma once
#include <bit>
#include <cstdint>

#include "ggml_matmul_internal.h"
#include "ggml_x86.h"

#define LMQ_VNNI __attribute__((target("avx2,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace lmq::ggk {

struct Tile {
  const uint8_t* row[4];
  int nr;
  int64_t prefetch;  // bytes from row[r] to the same row of the next tile (0: none)
};

// Decode reads each weight byte once: fetch the next tile's super-block b while this one computes,
// into L2 (T1: more misses in flight than into L1; BM_GgmlDecodeStream at 2 threads, medians:
// Q4_K 27.1-29.1 GiB/s against T0's 21.4-25.4, Q6_K 28.6-28.7 against 22.9-23.1).
LMQ_VNNI inline void prefetch_next(const Tile& tl, int64_t at, int lines) {
  if (!tl.prefetch) return;
  for (int r = 0; r < 4; ++r)
    for (int l = 0; l < lines; ++l) _mm_prefetch(reinterpret_cast<const char*>(tl.row[r] + tl.prefetch + at + 64 * l), _MM_HINT_T1);
}

// Σ over each 128-bit lane j of a[r] → lane 4j + r.
LMQ_VNNI inline __m512i reduce_rows4(const __m512i* a) {
  const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[0], a[1]), _mm512_unpackhi_epi32(a[0], a[1]));
  const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2], a[3]), _mm512_unpackhi_epi32(a[2], a[3]));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}

// The 128-bit lanes of A and B summed in pairs, into the result's lanes 0..3:
// interleave: A0 + A1, B0 + B1, A2 + A3, B2 + B3; else A0 + A1, A2 + A3, B0 + B1, B2 + B3.
LMQ_VNNI inline __m512i sum_lane_pairs(__m512i A, __m512i B, bool interleave) {
  // 32-bit lane indices: < 16 from A, >= 16 from B
  const __m512i ia = interleave ? _mm512_set_epi32(27, 26, 25, 24, 11, 10, 9, 8, 19, 18, 17, 16, 3, 2, 1, 0)
                                : _mm512_set_epi32(27, 26, 25, 24, 19, 18, 17, 16, 11, 10, 9, 8, 3, 2, 1, 0);
  const __m512i ib = interleave ? _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 23, 22, 21, 20, 7, 6, 5, 4)
                                : _mm512_set_epi32(31, 30, 29, 28, 23, 22, 21, 20, 15, 14, 13, 12, 7, 6, 5, 4);
  return _mm512_add_epi32(_mm512_permutex2var_epi32(A, ia, B), _mm512_permutex2var_epi32(A, ib, B));
}

// 4 rows' 16 int8 sub-block scales v[r] → sc[g] lane 4j + r = scale 4g + j of row r, as int32.
LMQ_VNNI inline void transpose_scales16(const __m128i* v, __m512i* sc) {
  const __m128i t0 = _mm_unpacklo_epi8(v[0], v[1]), t1 = _mm_unpacklo_epi8(v[2], v[3]);
  const __m128i u0 = _mm_unpackhi_epi8(v[0], v[1]), u1 = _mm_unpackhi_epi8(v[2], v[3]);
  sc[0] = _mm512_cvtepi8_epi32(_mm_unpacklo_epi16(t0, t1)), sc[1] = _mm512_cvtepi8_epi32(_mm_unpackhi_epi16(t0, t1));
  sc[2] = _mm512_cvtepi8_epi32(_mm_unpacklo_epi16(u0, u1)), sc[3] = _mm512_cvtepi8_epi32(_mm_unpackhi_epi16(u0, u1));
}

// One token's 128 int8 activations at xp against the 4 rows' u8 codes of 128 values (lo[r]:
// values 0..63, hi[r]: 64..127): L[r], H[r] the int32 sums of each 4 values (for reduce_rows4).
LMQ_VNNI inline void dot_rows4(const __m512i* lo, const __m512i* hi, const int8_t* xp, __m512i* L, __m512i* H) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i xl = _mm512_loadu_si512(xp), xh = _mm512_loadu_si512(xp + 64);
  for (int r = 0; r < 4; ++r) L[r] = _mm512_dpbusd_epi32(zero, lo[r], xl), H[r] = _mm512_dpbusd_epi32(zero, hi[r], xh);
}

// M·Σq_x per 16 values from the 32·Σq_x that x16s4 holds (M a power of two, 1..64: exact).
template <int M>
LMQ_VNNI inline __m512i x16_sums_times(const int32_t* c) {
  static_assert(M >= 1 && M <= 64 && std::has_single_bit(unsigned(M)));
  constexpr int k = std::countr_zero(unsigned(M));
  const __m512i s = _mm512_loadu_si512(c);
  if constexpr (k > 5) return _mm512_slli_epi32(s, k - 5);
  else if constexpr (k < 5) return _mm512_srai_epi32(s, 5 - k);
  else return s;
}

// Half h (values 128h .. 128h + 127) of super-block b for the formats with symmetric 16-value
// sub-blocks, x = d·sc·(u − Off) for u8 codes u (Q6_K: Off 32, Q3_K: 4, the lattice i-quants:
// 64): Σ(u − Off)·q_x = Σu·q_x − Off·Σq_x per 16 values, times the int32 multipliers sc[2h],
// sc[2h + 1] (transpose_scales16), then slot[t][h] += sx·(d4·I), the specification's float
// operations in its order.
template <int NT, int Off>
LMQ_VNNI inline void sym16_half(const Args& a, const VnniActs& x, int64_t t0, int64_t b, int h, const __m512i* lo,
                                const __m512i* hi, const __m512i* sc, __m512 d4, __m512 (*slot)[2]) {
  const int64_t s0 = b * 16 + 8 * h, a0 = b * 8 + 4 * h;  // first 16-value sub-block, activation block
  for (int t = 0; t < NT; ++t) {
    __m512i L[4], H[4];
    dot_rows4(lo, hi, x.q + (t0 + t) * a.K + b * 256 + 128 * h, L, H);
    const int32_t* c = x.x16s4 + (t0 + t) * x.ld16 + s0 * 4;
    const __m512i cl = x16_sums_times<Off>(c), ch = x16_sums_times<Off>(c + 16);
    const __m512i DL = _mm512_sub_epi32(reduce_rows4(L), cl);
    const __m512i DH = _mm512_sub_epi32(reduce_rows4(H), ch);
    const __m512i I = sum_lane_pairs(_mm512_mullo_epi32(DL, sc[2 * h]), _mm512_mullo_epi32(DH, sc[2 * h + 1]), false);
    const __m512 sx = _mm512_loadu_ps(x.sx4 + (t0 + t) * x.ld4 + a0 * 4);
    slot[t][h] = _mm512_add_ps(slot[t][h], _mm512_mul_ps(sx, _mm512_mul_ps(d4, _mm512_cvtepi32_ps(I))));
  }
}

// The lattice i-quants' part of a tile (ggml_matmul_lattice_x86.cpp): slot as tile_t's.
template <int NT>
LMQ_VNNI void lattice_tile(const Args& a, const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2]);

}  // namespace lmq::ggk
