// The pieces of the in-place kernels' AVX-512 VNNI code (lmq/kernels/ggml_matmul.h) that more
// than one file uses: ggml_matmul_x86.cpp (Q8_0, Q4_0, K-quants) and ggml_matmul_lattice_x86.cpp
// (the lattice i-quants). Only for files compiled with -ffp-contract=off.
#pragma once
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

// Decode reads each weight byte once: fetch the next tile's super-block b while this one computes.
LMQ_VNNI inline void prefetch_next(const Tile& tl, int64_t at, int lines) {
  if (!tl.prefetch) return;
  for (int r = 0; r < 4; ++r)
    for (int l = 0; l < lines; ++l) _mm_prefetch(reinterpret_cast<const char*>(tl.row[r] + tl.prefetch + at + 64 * l), _MM_HINT_T0);
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

// The lattice i-quants' part of a tile (ggml_matmul_lattice_x86.cpp): slot as tile_t's.
template <int NT>
LMQ_VNNI void lattice_tile(const Args& a, const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2]);

}  // namespace lmq::ggk
