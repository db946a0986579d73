// AVX-512 VNNI kernel of the in-place matmul (lmq/kernels/ggml_matmul.h): tiles of 4 weight rows
// × up to 4 tokens. Q8_0 / Q4_0 / IQ4_NL: see q32_chunk; IQ4_XS: iq4xs_tile; the X16 layouts
// (Q4_0_X16, Q8_0_X16, Q4_K_X16, Q6_K_X16): x16_group, groups of 16 rows. K-quants: per half
// super-block (128 values) the codes of the 4 rows are expanded to
// bytes once (Q4_K: a nibble mask; Q5_K / Q6_K: low nibbles | 1 / 2 high bits from qh; Q3_K: 2 bits | hmask's; Q2_K: 2 bits) and fed to vpdpbusd
// against each token's int8 activations; reduce_rows4 then puts the int32 sums of the 4 rows
// side by side (lane 4j + r = row r, 16-value lane j), and the float epilogue runs on vectors of
// 4 activation blocks × 4 rows with exactly the specification's operations and order, so the
// result equals rows_scalar bit for bit. Compiled with -ffp-contract=off.
#include <algorithm>
#include <cstddef>

#include "ggml_matmul_lattice.h"
#include "ggml_vnni.h"
#include "lmq/codecs/ggml_interleave.h"
#include "lmq/codecs/iquant_blocks.h"

namespace lmq::ggk {

bool have_vnni() {
  // F16C (the super-scales' conversion) is on every AVX-512 CPU; clang 14 cannot test it here.
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  return ok;
}

namespace {

constexpr int64_t kQ80Bytes = 34, kQ40Bytes = 18;
constexpr int64_t kQ2KBytes = 84, kQ3KBytes = 110, kQ4KBytes = 144, kQ5KBytes = 176, kQ6KBytes = 210;
constexpr int64_t kIQ4XSBytes = 136;

LMQ_VNNI inline __m512 u8_to_ps(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)); }

// q4k_scale_bytes: ggml_x86.h.

// 4 rows' scale bytes o[r] (sc 0..7, m 8..15) → lane 4j + r = sc[j] of row r (sc[0]: j < 4,
// sc[1]: j >= 4), and the same for m, as floats.
LMQ_VNNI inline void transpose_q4k_scales(const __m128i* o, __m512* sc, __m512* m) {
  const __m128i t0 = _mm_unpacklo_epi8(o[0], o[1]), t1 = _mm_unpacklo_epi8(o[2], o[3]);  // sc: j-major, r0 r1 / r2 r3
  const __m128i u0 = _mm_unpackhi_epi8(o[0], o[1]), u1 = _mm_unpackhi_epi8(o[2], o[3]);  // m
  sc[0] = u8_to_ps(_mm_unpacklo_epi16(t0, t1)), sc[1] = u8_to_ps(_mm_unpackhi_epi16(t0, t1));
  m[0] = u8_to_ps(_mm_unpacklo_epi16(u0, u1)), m[1] = u8_to_ps(_mm_unpackhi_epi16(u0, u1));
}

// 16-bit lanes: lo in the low 256 bits, hi in the high ones.
LMQ_VNNI inline __m512i halves16(int lo, int hi) {
  return _mm512_inserti64x4(_mm512_set1_epi16(short(lo)), _mm256_set1_epi16(short(hi)), 1);
}

// Q4_K, and Q5_K (Q5: the same block with a 5th bit per code in qh).
template <int NT, bool Q5>
LMQ_VNNI inline void q4k_tile(const Args& a, const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2]) {
  constexpr int64_t kBytes = Q5 ? kQ5KBytes : kQ4KBytes, kQs = Q5 ? 48 : 16;
  const int64_t nsb = a.K / 256;
  const __m512i low4 = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
  // Q5_K: the 5th bit of value 64c + l is bit 2c of qh[l], of 64c + 32 + l bit 2c + 1; in half h
  // the low nibbles of bytes 0..31 / 32..63 are chunks 2h / 2h + 1 (bits 4h / 4h + 2), the high
  // ones bits 4h + 1 / 4h + 3.
  const __m512i sh_lo[2] = {halves16(0, 2), halves16(4, 6)}, sh_hi[2] = {halves16(1, 3), halves16(5, 7)};
  for (int64_t b = 0; b < nsb; ++b) {
    prefetch_next(tl, b * kBytes, Q5 ? 4 : 3);
    __m128i head[4], sm[4];
    for (int r = 0; r < 4; ++r) {
      head[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tl.row[r] + b * kBytes));
      sm[r] = q4k_scale_bytes(head[r]);
    }
    __m512 sc[2], mn[2];
    transpose_q4k_scales(sm, sc, mn);
    // d, dmin of the 4 rows: f16 pairs (d | dmin << 16) → [d0, m0, d1, m1, …] → [d0..d3 | m0..m3]
    const __m128i dm4 = _mm_unpacklo_epi64(_mm_unpacklo_epi32(head[0], head[1]), _mm_unpacklo_epi32(head[2], head[3]));
    const __m256 dd = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(dm4), _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    const __m512 d4 = _mm512_broadcast_f32x4(_mm256_castps256_ps128(dd));
    const __m512 m4 = _mm512_broadcast_f32x4(_mm256_extractf128_ps(dd, 1));
    const __m512 ds[2] = {_mm512_mul_ps(d4, sc[0]), _mm512_mul_ps(d4, sc[1])};
    const __m512 dm[2] = {_mm512_mul_ps(m4, mn[0]), _mm512_mul_ps(m4, mn[1])};
    for (int h = 0; h < 2; ++h) {  // values 128h .. 128h + 127: sub-blocks 4h .. 4h + 3
      __m512i lo[4], hi[4];
      for (int r = 0; r < 4; ++r) {
        const __m512i w = _mm512_loadu_si512(tl.row[r] + b * kBytes + kQs + 64 * h);
        lo[r] = _mm512_and_si512(w, low4);
        hi[r] = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
        if constexpr (Q5) {  // bit s of each qh byte → bit 4 (16-bit shifts: the & keeps each byte's own bit)
          const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tl.row[r] + b * kBytes + 16)));
          lo[r] = _mm512_or_si512(lo[r], _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_lo[h]), one), 4));
          hi[r] = _mm512_or_si512(hi[r], _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_hi[h]), one), 4));
        }
      }
      const int64_t a0 = b * 8 + 4 * h;  // first activation block
      for (int t = 0; t < NT; ++t) {
        __m512i L[4], H[4];
        dot_rows4(lo, hi, x.q4k + (t0 + t) * a.K + b * 256 + 128 * h, L, H);
        // L: 128-bit lanes 0, 1 = sub-block 4h, 2, 3 = 4h + 2; H: 4h + 1 and 4h + 3
        const __m512i I = sum_lane_pairs(reduce_rows4(L), reduce_rows4(H), true);
        const __m512 sx = _mm512_loadu_ps(x.sx4 + (t0 + t) * x.ld4 + a0 * 4);
        const __m512 xs = _mm512_cvtepi32_ps(_mm512_loadu_si512(x.xs4 + (t0 + t) * x.ld4 + a0 * 4));
        const __m512 v = _mm512_sub_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(I), ds[h]), _mm512_mul_ps(xs, dm[h]));
        slot[t][h] = _mm512_add_ps(slot[t][h], _mm512_mul_ps(sx, v));
      }
    }
  }
}

// q3k_scale_bytes: ggml_x86.h.

// Q6_K, and Q3_K (Q3): symmetric 16-value sub-blocks with int8 scales, x = d·sc·(q − off).
template <int NT, bool Q3>
LMQ_VNNI inline void q6k_tile(const Args& a, const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2]) {
  constexpr int64_t kBytes = Q3 ? kQ3KBytes : kQ6KBytes, kD = Q3 ? 108 : 208;
  const int64_t nsb = a.K / 256;
  const __m512i low4 = _mm512_set1_epi8(0x0F), hi2 = _mm512_set1_epi8(0x30);
  const __m512i three = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
  // Q6_K: qh bits 2s, 2s + 1 → bits 4, 5: shift left 4 (s = 0) / 2 (s = 1) for the low nibbles'
  // values (bytes 0..31 / 32..63 of the vector), right 0 (s = 2) / 2 (s = 3) for the high ones'.
  const __m512i shl = halves16(4, 2), shr = halves16(0, 2);
  // Q3_K: value 128h + 32j + l has its 2 low bits at bit 2j of qs[32h + l] (bytes 0..31 / 32..63
  // of the low vector: j = 0 / 1, of the high one: 2 / 3) and its high bit at bit 4h + j of hmask[l].
  const __m512i q3lo = halves16(0, 2), q3hi = halves16(4, 6);
  const __m512i q3h[2][2] = {{halves16(0, 1), halves16(2, 3)}, {halves16(4, 5), halves16(6, 7)}};
  for (int64_t b = 0; b < nsb; ++b) {
    prefetch_next(tl, b * kBytes, Q3 ? 3 : 4);
    __m512i sc[4];
    {
      __m128i v[4];
      for (int r = 0; r < 4; ++r)
        v[r] = Q3 ? q3k_scale_bytes(tl.row[r] + b * kBytes + 96)
                  : _mm_loadu_si128(reinterpret_cast<const __m128i*>(tl.row[r] + b * kBytes + 192));
      transpose_scales16(v, sc);
    }
    auto d_of = [&](int r) { return short(tl.row[r][b * kBytes + kD] | tl.row[r][b * kBytes + kD + 1] << 8); };
    const __m512 d4 = _mm512_broadcast_f32x4(_mm_cvtph_ps(_mm_setr_epi16(d_of(0), d_of(1), d_of(2), d_of(3), 0, 0, 0, 0)));
    for (int h = 0; h < 2; ++h) {  // values 128h .. 128h + 127: sub-blocks 8h .. 8h + 7
      __m512i lo[4], hi[4];
      for (int r = 0; r < 4; ++r) {
        const uint8_t* blk = tl.row[r] + b * kBytes;
        if constexpr (Q3) {  // 16-bit shifts: the byte masks keep each byte's own bits
          const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 32 + 32 * h)));
          const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
          lo[r] = _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi16(q, q3lo), three),
                                  _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hm, q3h[h][0]), one), 2));
          hi[r] = _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi16(q, q3hi), three),
                                  _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hm, q3h[h][1]), one), 2));
        } else {
          const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
          const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h)));
          lo[r] = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_and_si512(_mm512_sllv_epi16(qh, shl), hi2));
          hi[r] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                  _mm512_and_si512(_mm512_srlv_epi16(qh, shr), hi2));
        }
      }
      sym16_half<NT, Q3 ? 4 : 32>(a, x, t0, b, h, lo, hi, sc, d4, slot);
    }
  }
}

// Q2_K: 16-value sub-blocks, x = d·sc·q − dmin·m with 4-bit sc, m and 2-bit codes (bit 2j of
// qs[32h + l] for value 128h + 32j + l, as Q3_K's low bits).
template <int NT>
LMQ_VNNI inline void q2k_tile(const Args& a, const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2]) {
  const int64_t nsb = a.K / 256;
  const __m512i three = _mm512_set1_epi8(3);
  const __m512i shlo = halves16(0, 2), shhi = halves16(4, 6);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  for (int64_t b = 0; b < nsb; ++b) {
    prefetch_next(tl, b * kQ2KBytes, 2);
    __m512i sc[4], mn[4];
    {
      __m128i v[4], vs[4], vm[4];
      for (int r = 0; r < 4; ++r) {
        v[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(tl.row[r] + b * kQ2KBytes));
        vs[r] = _mm_and_si128(v[r], low4), vm[r] = _mm_and_si128(_mm_srli_epi16(v[r], 4), low4);
      }
      transpose_scales16(vs, sc);
      transpose_scales16(vm, mn);
    }
    // d, dmin of the 4 rows (f16 at 80, 82) → [d0..d3 | m0..m3]
    int32_t w[4];
    for (int r = 0; r < 4; ++r) __builtin_memcpy(&w[r], tl.row[r] + b * kQ2KBytes + 80, 4);
    const __m256 dd = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(_mm_setr_epi32(w[0], w[1], w[2], w[3])),
                                               _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    const __m512 d4 = _mm512_broadcast_f32x4(_mm256_castps256_ps128(dd));
    const __m512 m4 = _mm512_broadcast_f32x4(_mm256_extractf128_ps(dd, 1));
    for (int h = 0; h < 2; ++h) {  // values 128h .. 128h + 127: sub-blocks 8h .. 8h + 7
      __m512i lo[4], hi[4];
      for (int r = 0; r < 4; ++r) {  // 16-bit shifts: the byte mask keeps each byte's own bits
        const __m512i q = _mm512_broadcast_i64x4(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tl.row[r] + b * kQ2KBytes + 16 + 32 * h)));
        lo[r] = _mm512_and_si512(_mm512_srlv_epi16(q, shlo), three);
        hi[r] = _mm512_and_si512(_mm512_srlv_epi16(q, shhi), three);
      }
      const int64_t s0 = b * 16 + 8 * h, a0 = b * 8 + 4 * h;  // first 16-value sub-block, activation block
      for (int t = 0; t < NT; ++t) {
        __m512i L[4], H[4];
        dot_rows4(lo, hi, x.q + (t0 + t) * a.K + b * 256 + 128 * h, L, H);
        const int32_t* c = x.x16s4 + (t0 + t) * x.ld16 + s0 * 4;
        const __m512i cl = x16_sums_times<1>(c), ch = x16_sums_times<1>(c + 16);
        const __m512i I = sum_lane_pairs(_mm512_mullo_epi32(reduce_rows4(L), sc[2 * h]),
                                         _mm512_mullo_epi32(reduce_rows4(H), sc[2 * h + 1]), false);
        const __m512i M = sum_lane_pairs(_mm512_mullo_epi32(cl, mn[2 * h]), _mm512_mullo_epi32(ch, mn[2 * h + 1]), false);
        const __m512 sx = _mm512_loadu_ps(x.sx4 + (t0 + t) * x.ld4 + a0 * 4);
        const __m512 v = _mm512_sub_ps(_mm512_mul_ps(d4, _mm512_cvtepi32_ps(I)), _mm512_mul_ps(m4, _mm512_cvtepi32_ps(M)));
        slot[t][h] = _mm512_add_ps(slot[t][h], _mm512_mul_ps(sx, v));
      }
    }
  }
}

// Q8_0 and Q4_0 (Q4): blocks of 32, one per activation block, taken 4 at a time (a chunk of 128
// values: slots 4h .. 4h + 3, h = chunk mod 2, lane 4j + r = block j of row r). nb < 4 only in a
// last chunk (K not a multiple of 128): its missing blocks are never read, their lanes not added.
// Per row two vectors whose 128-bit lane j holds values 0..15 / 16..31 of block j as u8 (Q4_0:
// the 4 blocks' nibble bytes side by side, low / high nibbles; Q8_0: the int8 codes flipped to
// q + 128), against the activations in q40's order, both into one accumulator: one reduce_rows4.
// 32 bytes at p and 32 at p + step, side by side.
LMQ_VNNI inline __m512i load_pair(const uint8_t* p, int64_t step) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + step)), 1);
}

// The f16 d of blocks j = 0..3 (from byte `at` of each row) of the 4 rows → lane 4j + r, as
// floats. A whole chunk: 16-bit permutes of 64-byte loads (a gather costs more); a last one
// (nb < 4) word by word, reading only its blocks.
template <bool Q4>
LMQ_VNNI inline __m512 q32_scales(const Tile& tl, int64_t at, int nb) {
  constexpr int64_t kBytes = Q4 ? kQ40Bytes : kQ80Bytes;
  if (nb < 4) {
    alignas(32) uint16_t w[16] = {};
    for (int j = 0; j < nb; ++j)
      for (int r = 0; r < 4; ++r) __builtin_memcpy(&w[4 * j + r], tl.row[r] + at + j * kBytes, 2);
    return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(w)));
  }
  __m512i dv;
  if constexpr (Q4) {  // d_j at word 9j of a row's first 64 bytes: rows 0, 1 then 2, 3 (second source: +32)
    const __m512i i01 = _mm512_setr_epi32(0 | 32 << 16, 0, 9 | 41 << 16, 0, 18 | 50 << 16, 0, 27 | 59 << 16, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i i23 = _mm512_setr_epi32(0, 0 | 32 << 16, 0, 9 | 41 << 16, 0, 18 | 50 << 16, 0, 27 | 59 << 16, 0, 0, 0, 0, 0, 0, 0, 0);
    dv = _mm512_mask_blend_epi16(__mmask32(0xCCCCCCCC), _mm512_permutex2var_epi16(_mm512_loadu_si512(tl.row[0] + at), i01, _mm512_loadu_si512(tl.row[1] + at)),
                                 _mm512_permutex2var_epi16(_mm512_loadu_si512(tl.row[2] + at), i23, _mm512_loadu_si512(tl.row[3] + at)));
  } else {  // d_j at byte 34j: words 0 and 17 of bytes [0, 64), 2 and 19 of [64, 128) (second source: +32)
    dv = _mm512_setzero_si512();
    for (int r = 0; r < 4; ++r) {
      alignas(64) int16_t idx[32] = {};
      const int16_t src[4] = {0, 17, 34, 51};
      for (int j = 0; j < 4; ++j) idx[4 * j + r] = src[j];
      const __m512i v = _mm512_permutex2var_epi16(_mm512_loadu_si512(tl.row[r] + at), _mm512_load_si512(idx),
                                                       _mm512_loadu_si512(tl.row[r] + at + 64));
      dv = _mm512_mask_blend_epi16(__mmask32(0x11111111u << r), dv, v);
    }
  }
  return _mm512_cvtph_ps(_mm512_castsi512_si256(dv));
}

// IQ4 (IQ4_NL, IQ4_XS): nibbles → their levels kv[q] + 128 as u8, by vpshufb in each 128-bit lane.
LMQ_VNNI inline __m512i iq4_table() {
  const __m128i kv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ggml::kIq4nlValues));
  return _mm512_broadcast_i32x4(_mm_xor_si128(kv, _mm_set1_epi8(char(0x80))));
}

template <int NT, bool Q4, bool IQ = false>
LMQ_VNNI inline void q32_chunk(const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2], int64_t c, int nb) {
  constexpr int64_t kBytes = Q4 ? kQ40Bytes : kQ80Bytes;
  const int64_t at = 4 * c * kBytes;
  // Decode: the next tile's 4 rows are one contiguous range (4 · row_bytes from row 0); fetch it
  // front to back, 16 blocks' bytes per chunk, so memory sees one sequential stream (per-row
  // prefetches, as the K-quants', ran Q4_0 decode ~1.5x slower; Q8_0 ran faster fetching into
  // L2 than into L1: measured on the shared host, docs/results.md).
  if (tl.prefetch)
    for (int64_t l = 0; l < 16 * kBytes; l += 64)
      _mm_prefetch(reinterpret_cast<const char*>(tl.row[0] + tl.prefetch + 16 * kBytes * c + l),
                   Q4 ? _MM_HINT_T0 : _MM_HINT_T1);
  const __m512i zero = _mm512_setzero_si512();
  const __mmask16 lanes = __mmask16((1u << (4 * nb)) - 1);
  const __m512 d = q32_scales<Q4>(tl, at, nb);
  __m512i lo[4], hi[4];  // 128-bit lane j: values 0..15 / 16..31 of block j
  for (int r = 0; r < 4; ++r) {
    const uint8_t* p = tl.row[r] + at + 2;
    if constexpr (Q4) {
      __m512i w;
      if (nb == 4) {
        w = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        w = _mm512_inserti32x4(w, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kBytes)), 1);
        w = _mm512_inserti32x4(w, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * kBytes)), 2);
        w = _mm512_inserti32x4(w, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 3 * kBytes)), 3);
      } else {
        alignas(64) uint8_t buf[64] = {};
        for (int j = 0; j < nb; ++j) __builtin_memcpy(buf + 16 * j, p + j * kBytes, 16);
        w = _mm512_load_si512(buf);
      }
      const __m512i low4 = _mm512_set1_epi8(0x0F);
      lo[r] = _mm512_and_si512(w, low4);
      hi[r] = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
      if constexpr (IQ) lo[r] = _mm512_shuffle_epi8(iq4_table(), lo[r]), hi[r] = _mm512_shuffle_epi8(iq4_table(), hi[r]);
    } else {
      if (nb == 4) {  // [b0 | b1], [b2 | b3] → lanes b0..b3 low halves, then high halves
        const __m512i b01 = load_pair(p, kBytes), b23 = load_pair(p + 2 * kBytes, kBytes);
        lo[r] = _mm512_shuffle_i64x2(b01, b23, _MM_SHUFFLE(2, 0, 2, 0));
        hi[r] = _mm512_shuffle_i64x2(b01, b23, _MM_SHUFFLE(3, 1, 3, 1));
      } else {
        alignas(64) uint8_t buf[128] = {};
        for (int j = 0; j < nb; ++j) __builtin_memcpy(buf + 16 * j, p + j * kBytes, 16), __builtin_memcpy(buf + 64 + 16 * j, p + j * kBytes + 16, 16);
        lo[r] = _mm512_load_si512(buf), hi[r] = _mm512_load_si512(buf + 64);
      }
      const __m512i flip = _mm512_set1_epi8(char(0x80));
      lo[r] = _mm512_xor_si512(lo[r], flip), hi[r] = _mm512_xor_si512(hi[r], flip);
    }
  }
  for (int t = 0; t < NT; ++t) {
    const int8_t* xp = x.q40 + (t0 + t) * x.ld40 + 128 * c;
    const __m512i xl = _mm512_loadu_si512(xp), xh = _mm512_loadu_si512(xp + 64);
    __m512i acc[4];  // 128-bit lane j: block j's 32 products, 4 per int32
    for (int r = 0; r < 4; ++r) acc[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, lo[r], xl), hi[r], xh);
    const int64_t a4 = (t0 + t) * x.ld4 + 16 * c;  // block 4c's lanes in sx4 / xs4
    const __m512i xs = _mm512_maskz_loadu_epi32(lanes, x.xs4 + a4);
    // Σ(q − c)·q_x = Σu·q_x − c'·Σq_x: Q4_0's u = q (c' = 8), Q8_0's u = q + 128 (c' = 128),
    // IQ4_NL's u = kv[q] + 128 (c' = 128)
    const __m512i I = _mm512_sub_epi32(reduce_rows4(acc), _mm512_slli_epi32(xs, Q4 && !IQ ? 3 : 7));
    const __m512 sx = _mm512_maskz_loadu_ps(lanes, x.sx4 + a4);
    const __m512 v = _mm512_mul_ps(sx, _mm512_mul_ps(d, _mm512_cvtepi32_ps(I)));
    const int h = int(c & 1);
    slot[t][h] = _mm512_mask_add_ps(slot[t][h], lanes, slot[t][h], v);
  }
}

template <int NT, bool Q4, bool IQ = false>
LMQ_VNNI inline void q32_tile(const Args& a, const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2]) {
  const int64_t na = a.K / 32;
  int64_t c = 0;
  for (; 4 * c + 4 <= na; ++c) q32_chunk<NT, Q4, IQ>(x, tl, t0, slot, c, 4);
  if (4 * c < na) q32_chunk<NT, Q4, IQ>(x, tl, t0, slot, c, int(na - 4 * c));
}

// IQ4_XS's 8 sub-block scales ls − 32 of the block at p, as int8 in bytes 0..7 (codecs/iquant_blocks.h):
// (scales_l[j/2] >> 4·(j mod 2) & 15) | (scales_h >> 2j & 3) << 4.
LMQ_VNNI inline __m128i iq4xs_scale_bytes(const uint8_t* p) {
  const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));  // d, scales_h, scales_l
  const __m128i l = _mm_shuffle_epi8(v, _mm_setr_epi8(4, 4, 5, 5, 6, 6, 7, 7, -1, -1, -1, -1, -1, -1, -1, -1));
  const __m128i lo = _mm_and_si128(_mm_mask_blend_epi8(0xAAAA, l, _mm_srli_epi16(l, 4)), _mm_set1_epi8(0x0F));
  const __m128i h = _mm_and_si128(_mm_srlv_epi16(_mm_set1_epi16(short(p[2] | p[3] << 8)), _mm_setr_epi16(0, 2, 4, 6, 8, 10, 12, 14)),
                                  _mm_set1_epi16(3));
  return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(_mm_packus_epi16(h, h), 4)), _mm_set1_epi8(32));
}

// IQ4_XS: per half super-block (128 values, sub-blocks 4h .. 4h + 3) the 64 nibble bytes of a
// row hold the 4 sub-blocks in 128-bit lanes, nibbles as IQ4_NL's: looked up and fed to vpdpbusd
// as q32_chunk does, against the activations in q40's order; the int32 sums times ls − 32.
template <int NT>
LMQ_VNNI inline void iq4xs_tile(const Args& a, const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2]) {
  const int64_t nsb = a.K / 256;
  const __m512i zero = _mm512_setzero_si512(), low4 = _mm512_set1_epi8(0x0F), kv = iq4_table();
  for (int64_t b = 0; b < nsb; ++b) {
    if (tl.prefetch)  // decode: the next tile's 4 rows as one sequential range (as q32_chunk)
      for (int64_t l = 0; l < 4 * kIQ4XSBytes; l += 64)
        _mm_prefetch(reinterpret_cast<const char*>(tl.row[0] + tl.prefetch + 4 * kIQ4XSBytes * b + l), _MM_HINT_T0);
    __m512i sc[4];
    {
      __m128i v[4];
      for (int r = 0; r < 4; ++r) v[r] = iq4xs_scale_bytes(tl.row[r] + b * kIQ4XSBytes);
      transpose_scales16(v, sc);  // sc[h]: sub-blocks 4h .. 4h + 3
    }
    auto d_of = [&](int r) { return short(tl.row[r][b * kIQ4XSBytes] | tl.row[r][b * kIQ4XSBytes + 1] << 8); };
    const __m512 d4 = _mm512_broadcast_f32x4(_mm_cvtph_ps(_mm_setr_epi16(d_of(0), d_of(1), d_of(2), d_of(3), 0, 0, 0, 0)));
    for (int h = 0; h < 2; ++h) {
      __m512i lo[4], hi[4];
      for (int r = 0; r < 4; ++r) {
        const __m512i w = _mm512_loadu_si512(tl.row[r] + b * kIQ4XSBytes + 8 + 64 * h);
        lo[r] = _mm512_shuffle_epi8(kv, _mm512_and_si512(w, low4));
        hi[r] = _mm512_shuffle_epi8(kv, _mm512_and_si512(_mm512_srli_epi16(w, 4), low4));
      }
      const int64_t c = 2 * b + h;  // chunk of 128 values
      for (int t = 0; t < NT; ++t) {
        const int8_t* xp = x.q40 + (t0 + t) * x.ld40 + 128 * c;
        const __m512i xl = _mm512_loadu_si512(xp), xh = _mm512_loadu_si512(xp + 64);
        __m512i acc[4];
        for (int r = 0; r < 4; ++r) acc[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(zero, lo[r], xl), hi[r], xh);
        const int64_t a4 = (t0 + t) * x.ld4 + 16 * c;
        // Σkv[q]·q_x = Σ(kv[q] + 128)·q_x − 128·Σq_x, times ls − 32
        const __m512i S = _mm512_sub_epi32(reduce_rows4(acc), _mm512_slli_epi32(_mm512_loadu_si512(x.xs4 + a4), 7));
        const __m512i I = _mm512_mullo_epi32(S, sc[h]);
        const __m512 sx = _mm512_loadu_ps(x.sx4 + a4);
        slot[t][h] = _mm512_add_ps(slot[t][h], _mm512_mul_ps(sx, _mm512_mul_ps(d4, _mm512_cvtepi32_ps(I))));
      }
    }
  }
}

template <int NT>
LMQ_VNNI void tile_t(const Args& a, const VnniActs& x, const Tile& tl, int64_t o, int64_t t0) {
  __m512 slot[NT][2];  // lane 4·(j mod 4) + r of slot[t][j / 4]: slot j of row r
  for (int t = 0; t < NT; ++t) slot[t][0] = slot[t][1] = _mm512_setzero_ps();
  if (a.f == Format::Q8_0) q32_tile<NT, false>(a, x, tl, t0, slot);
  else if (a.f == Format::Q4_0) q32_tile<NT, true>(a, x, tl, t0, slot);
  else if (a.f == Format::IQ4_NL) q32_tile<NT, true, true>(a, x, tl, t0, slot);
  else if (a.f == Format::IQ4_XS) iq4xs_tile<NT>(a, x, tl, t0, slot);
  else if (a.f == Format::Q4_K) q4k_tile<NT, false>(a, x, tl, t0, slot);
  else if (a.f == Format::Q5_K) q4k_tile<NT, true>(a, x, tl, t0, slot);
  else if (a.f == Format::Q3_K) q6k_tile<NT, true>(a, x, tl, t0, slot);
  else if (a.f == Format::Q2_K) q2k_tile<NT>(a, x, tl, t0, slot);
  else if (lattice_format(a.f)) lattice_tile<NT>(a, x, tl, t0, slot);
  else q6k_tile<NT, false>(a, x, tl, t0, slot);
  const __mmask8 rows = __mmask8((1u << tl.nr) - 1);
  const __m128 bias = a.bias ? _mm_maskz_loadu_ps(rows, a.bias + o) : _mm_setzero_ps();
  for (int t = 0; t < NT; ++t) {
    const __m512 p = _mm512_add_ps(slot[t][0], slot[t][1]);  // 128-bit lane j: s_j + s_{j+4}
    const __m512 q = _mm512_add_ps(p, _mm512_shuffle_f32x4(p, p, _MM_SHUFFLE(3, 2, 3, 2)));
    __m128 y = _mm_add_ps(_mm512_castps512_ps128(q), _mm512_extractf32x4_ps(q, 1));
    if (a.bias) y = _mm_add_ps(y, bias);
    _mm_mask_storeu_ps(a.y + (t0 + t) * a.N + o, rows, y);
  }
}

// Q4_0_X16 / Q8_0_X16, group of 16 rows (codecs/ggml_interleave.h) × NT tokens. A record's loads
// of 64 bytes hold, in 32-bit lane r, 4 code bytes of row r: Q4_0_X16's 4 loads masked and
// shifted are values 4c..4c + 3 (low nibbles) and 16 + 4c.. (high) of each row, Q8_0_X16's 8
// loads (flipped to q + 128) values 4c..4c + 3; so vpdpbusd against the token's 4 activations at
// those values broadcast to every lane sums straight into lane r: after 8 of them lane r holds
// row r's Σu·q_x of the block, no reduction across lanes. Then the specification's operations on
// 16 rows at once: I = Σu·q_x − c'·Σq_x (Q4_0: u = q, c' = 8; Q8_0: u = q + 128, c' = 128),
// f = s_x·(d·float(I)), slot[a mod 8] += f, the slots combined in intk::combine_slots's order.
LMQ_VNNI inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// One record (block ia of the group's 16 rows) into slot j of each token. u[c]: the codes as u8
// of values 4c..4c + 3 (Q8_0) / in the order lo[0..3], hi[0..3] (Q4_0: values 4c.., 16 + 4c..).
template <int NT, bool Q8>
LMQ_VNNI inline void x16_block(const Args& a, const VnniActs& x, const uint8_t* rec, int64_t ia, int64_t t0,
                               __m512* slot_j) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec)));
  __m512i u[8];
  for (int c = 0; c < 4; ++c) {
    if constexpr (Q8) {
      const __m512i flip = _mm512_set1_epi8(char(0x80));
      const uint8_t* qs = rec + offsetof(ggml::block_q8_0x16, qs);
      u[c] = _mm512_xor_si512(_mm512_loadu_si512(qs + 64 * c), flip);
      u[c + 4] = _mm512_xor_si512(_mm512_loadu_si512(qs + 64 * (c + 4)), flip);
    } else {
      const __m512i low4 = _mm512_set1_epi8(0x0F), w = _mm512_loadu_si512(rec + offsetof(ggml::block_q4_0x16, qs) + 64 * c);
      u[c] = _mm512_and_si512(w, low4);
      u[c + 4] = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
    }
  }
  const int64_t na = a.K / 32;
  for (int t = 0; t < NT; ++t) {
    const int8_t* xp = x.q + (t0 + t) * a.K + 32 * ia;
    __m512i s0 = zero, s1 = zero;  // two chains: values 0..15, values 16..31
    for (int c = 0; c < 4; ++c) {
      s0 = _mm512_dpbusd_epi32(s0, u[c], bcast4(xp + 4 * c));
      s1 = _mm512_dpbusd_epi32(s1, u[c + 4], bcast4(xp + 16 + 4 * c));
    }
    const int64_t ba = (t0 + t) * na + ia;
    const __m512i I = _mm512_sub_epi32(_mm512_add_epi32(s0, s1), _mm512_set1_epi32((Q8 ? 128 : 8) * x.xs[ba]));
    const __m512 v = _mm512_mul_ps(_mm512_set1_ps(x.sx[ba]), _mm512_mul_ps(d, _mm512_cvtepi32_ps(I)));
    slot_j[t * 8] = _mm512_add_ps(slot_j[t * 8], v);
  }
}

// Bytes ahead of the record being read that are fetched into L2: the groups of a thread's share
// are one sequential range, and the hardware's prefetchers stop at 4 KiB pages. Into L2 (T1), far
// ahead: more misses in flight than L1's buffers allow. Measured (BM_GgmlDecodeStream, medians of
// 5, the shared 2-core host): T1 at 8 KiB 19.4-20.4 GiB/s on one thread and 28.7-35.6 on two,
// against T0 at 2 KiB's 13.7-14.5 and 22.6-22.9 (docs/results.md).
constexpr int64_t kX16Ahead = 8192;

// Byte k of the 16 rows' Q4_K scales in a Q4_K_X16 record, one int32 lane a row.
LMQ_VNNI inline __m512i q4kx16_scale_byte(const uint8_t* rec, int k) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + offsetof(ggml::block_q4_kx16, scales) + 16 * k)));
}

// Q4_K_X16: record b (super-block b of the group's 16 rows) into slots 0..7 of each token. Per
// sub-block pair (2c, 2c + 1) 8 loads of 64 bytes whose low nibbles are values 64c + 4k .. + 3
// and high nibbles values 64c + 32 + 4k .. (k = 0..7) of every row; vpdpbusd against the
// token's activations there, broadcast, gives each row's i of the two sub-blocks in its lane,
// then Q4_K's epilogue on 16 rows at once: f = s_x·(float(i)·ds − float(Σq_x)·dm), ds = d·sc[j],
// dm = dmin·m[j] (sc, m unpacked as q4k_scales from the record's scale bytes, one lane a row).
template <int NT>
LMQ_VNNI inline void q4kx16_block(const Args& a, const VnniActs& x, const uint8_t* rec, int64_t b, int64_t t0,
                                  __m512 (*slot)[8]) {
  const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec)));
  const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + offsetof(ggml::block_q4_kx16, dmin))));
  const __m512i m63 = _mm512_set1_epi32(63), m15 = _mm512_set1_epi32(15);
  const __m512i low4 = _mm512_set1_epi8(0x0F), zero = _mm512_setzero_si512();
  const int64_t na = a.K / 32;
  for (int c = 0; c < 4; ++c) {
    __m512 ds[2], dm[2];
    for (int e = 0; e < 2; ++e) {
      const int j = 2 * c + e;
      __m512i sc, mn;
      if (j < 4) {
        sc = _mm512_and_si512(q4kx16_scale_byte(rec, j), m63), mn = _mm512_and_si512(q4kx16_scale_byte(rec, j + 4), m63);
      } else {
        const __m512i s8 = q4kx16_scale_byte(rec, j + 4);
        sc = _mm512_or_si512(_mm512_and_si512(s8, m15), _mm512_slli_epi32(_mm512_srli_epi32(q4kx16_scale_byte(rec, j - 4), 6), 4));
        mn = _mm512_or_si512(_mm512_srli_epi32(s8, 4), _mm512_slli_epi32(_mm512_srli_epi32(q4kx16_scale_byte(rec, j), 6), 4));
      }
      ds[e] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc)), dm[e] = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(mn));
    }
    __m512i lo[8], hi[8];
    for (int k = 0; k < 8; ++k) {
      const __m512i w = _mm512_loadu_si512(rec + offsetof(ggml::block_q4_kx16, qs) + 64 * (8 * c + k));
      lo[k] = _mm512_and_si512(w, low4), hi[k] = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
    }
    for (int t = 0; t < NT; ++t) {
      const int8_t* xp = x.q + (t0 + t) * a.K + 256 * b + 64 * c;
      __m512i l0 = zero, l1 = zero, h0 = zero, h1 = zero;  // two chains per sub-block
      for (int k = 0; k < 8; k += 2) {
        l0 = _mm512_dpbusd_epi32(l0, lo[k], bcast4(xp + 4 * k));
        l1 = _mm512_dpbusd_epi32(l1, lo[k + 1], bcast4(xp + 4 * k + 4));
        h0 = _mm512_dpbusd_epi32(h0, hi[k], bcast4(xp + 32 + 4 * k));
        h1 = _mm512_dpbusd_epi32(h1, hi[k + 1], bcast4(xp + 32 + 4 * k + 4));
      }
      const __m512i I[2] = {_mm512_add_epi32(l0, l1), _mm512_add_epi32(h0, h1)};
      for (int e = 0; e < 2; ++e) {
        const int j = 2 * c + e;
        const int64_t ba = (t0 + t) * na + 8 * b + j;
        const __m512 v = _mm512_sub_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(I[e]), ds[e]),
                                       _mm512_mul_ps(_mm512_set1_ps(float(x.xs[ba])), dm[e]));
        slot[t][j] = _mm512_add_ps(slot[t][j], _mm512_mul_ps(_mm512_set1_ps(x.sx[ba]), v));
      }
    }
  }
}

// Q6_K_X16: record b into slots 0..7 of each token. Per half h and pair p (values 128h + 32p ..
// + 31: activation block 8b + 4h + p, 16-value sub-blocks 8h + 2p and + 1) 8 words of 4 codes a
// row, built as u8 from the ql and qh words (codecs/ggml_interleave.h: p = 0, 2 from ql words
// 16h + k, p = 1, 3 from 16h + 8 + k, their 2 high bits from qh words 8h + k), vpdpbusd into one
// sum per 16 values, then Q6_K's operations on 16 rows at once: Σ(q − 32)·q_x = Σq·q_x −
// 32·Σq_x, i = sc[2j]·(that of the first 16) + sc[2j + 1]·(the second's), f = s_x·(d·float(i)).
LMQ_VNNI inline __m512i q6kx16_scales(const uint8_t* rec, int k) {  // scales[k] of the 16 rows, int32 lanes
  return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + offsetof(ggml::block_q6_kx16, scales) + 16 * k)));
}

template <int NT>
LMQ_VNNI inline void q6kx16_block(const Args& a, const VnniActs& x, const uint8_t* rec, int64_t b, int64_t t0,
                                  __m512 (*slot)[8]) {
  const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec)));
  const uint8_t* ql = rec + offsetof(ggml::block_q6_kx16, ql);
  const uint8_t* qh = rec + offsetof(ggml::block_q6_kx16, qh);
  const __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30), zero = _mm512_setzero_si512();
  const int64_t na = a.K / 32;
  for (int h = 0; h < 2; ++h)
    for (int pb = 0; pb < 2; ++pb) {  // pairs p = pb and pb + 2: the low and high nibbles of the same ql words
      __m512i lo[8], hi[8];  // codes of values 128h + 32pb + 4k .. and 128h + 32(pb + 2) + 4k ..
      for (int k = 0; k < 8; ++k) {
        const __m512i w = _mm512_loadu_si512(ql + 64 * (16 * h + 8 * pb + k));
        const __m512i hb = _mm512_loadu_si512(qh + 64 * (8 * h + k));
        // qh bits 2pb, 2pb + 1 (low nibbles) and 2pb + 4, 2pb + 5 (high ones) → bits 4, 5: 16-bit
        // shifts, the byte mask keeps each byte's own bits
        const __m512i hl = pb == 0 ? _mm512_slli_epi16(hb, 4) : _mm512_slli_epi16(hb, 2);
        const __m512i hh = pb == 0 ? hb : _mm512_srli_epi16(hb, 2);
        lo[k] = _mm512_or_si512(_mm512_and_si512(w, low4), _mm512_and_si512(hl, bits45));
        hi[k] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(w, 4), low4), _mm512_and_si512(hh, bits45));
      }
      for (int t = 0; t < NT; ++t)
        for (int e = 0; e < 2; ++e) {
          const int p = pb + 2 * e, j = 4 * h + p;
          const __m512i* u = e ? hi : lo;
          const int8_t* xp = x.q + (t0 + t) * a.K + 256 * b + 32 * j;
          __m512i s0 = zero, s1 = zero;  // the first 16 values, the second 16
          for (int k = 0; k < 4; ++k) {
            s0 = _mm512_dpbusd_epi32(s0, u[k], bcast4(xp + 4 * k));
            s1 = _mm512_dpbusd_epi32(s1, u[k + 4], bcast4(xp + 16 + 4 * k));
          }
          const int64_t ba = (t0 + t) * na + 8 * b + j;
          const int32_t* c = x.x16s4 + (t0 + t) * x.ld16 + (8 * b + j) * 8;  // 32·Σq_x of the two 16s, each ×4
          const __m512i D0 = _mm512_sub_epi32(s0, _mm512_set1_epi32(c[0])), D1 = _mm512_sub_epi32(s1, _mm512_set1_epi32(c[4]));
          const __m512i I = _mm512_add_epi32(_mm512_mullo_epi32(D0, q6kx16_scales(rec, 2 * j)),
                                             _mm512_mullo_epi32(D1, q6kx16_scales(rec, 2 * j + 1)));
          const __m512 v = _mm512_mul_ps(_mm512_set1_ps(x.sx[ba]), _mm512_mul_ps(d, _mm512_cvtepi32_ps(I)));
          slot[t][j] = _mm512_add_ps(slot[t][j], v);
        }
    }
}

// The X16 layouts' bytes per record (codecs/ggml_interleave.h) and values per record.
constexpr int64_t x16_record_bytes(Format f) {
  return f == Format::Q4_0_X16   ? sizeof(ggml::block_q4_0x16)
         : f == Format::Q8_0_X16 ? sizeof(ggml::block_q8_0x16)
         : f == Format::Q4_K_X16 ? sizeof(ggml::block_q4_kx16)
                                 : sizeof(ggml::block_q6_kx16);
}
constexpr int64_t x16_record_values(Format f) { return f == Format::Q4_0_X16 || f == Format::Q8_0_X16 ? 32 : 256; }

// Group g (rows 16g .. 16g + 15) of an X16 layout F × tokens t0 .. t0 + NT − 1: its records in
// increasing order, each prefetched kX16Ahead bytes ahead, into the 8 slots of each token, then y.
template <int NT, Format F>
LMQ_VNNI void x16_group(const Args& a, const VnniActs& x, int64_t g, int64_t t0) {
  constexpr int64_t kRec = x16_record_bytes(F);
  const int64_t nrec = a.K / x16_record_values(F);
  const uint8_t* w = a.w + g * nrec * kRec;
  __m512 slot[NT][8];  // lane r: row 16g + r
  for (int t = 0; t < NT; ++t)
    for (int j = 0; j < 8; ++j) slot[t][j] = _mm512_setzero_ps();
  auto prefetch = [](const uint8_t* rec) {
    for (int64_t l = 0; l < kRec; l += 64) _mm_prefetch(reinterpret_cast<const char*>(rec + kX16Ahead + l), _MM_HINT_T1);
  };
  if constexpr (F == Format::Q4_K_X16 || F == Format::Q6_K_X16) {
    for (int64_t b = 0; b < nrec; ++b) {
      prefetch(w + b * kRec);
      if constexpr (F == Format::Q4_K_X16) q4kx16_block<NT>(a, x, w + b * kRec, b, t0, slot);
      else q6kx16_block<NT>(a, x, w + b * kRec, b, t0, slot);
    }
  } else {
    for (int64_t ia0 = 0; ia0 < nrec; ia0 += 8) {
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const int64_t ia = ia0 + j;
        if (ia >= nrec) break;
        prefetch(w + ia * kRec);
        x16_block<NT, F == Format::Q8_0_X16>(a, x, w + ia * kRec, ia, t0, &slot[0][j]);
      }
    }
  }
  const int64_t o = 16 * g;
  const __m512 bias = a.bias ? _mm512_loadu_ps(a.bias + o) : _mm512_setzero_ps();
  for (int t = 0; t < NT; ++t) {
    const __m512* s = slot[t];  // intk::combine_slots, lane by lane
    __m512 y = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[4]), _mm512_add_ps(s[2], s[6])),
                             _mm512_add_ps(_mm512_add_ps(s[1], s[5]), _mm512_add_ps(s[3], s[7])));
    if (a.bias) y = _mm512_add_ps(y, bias);
    _mm512_storeu_ps(a.y + (t0 + t) * a.N + o, y);
  }
}

template <Format F>
void groups_x16(const Args& a, const VnniActs& x, int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t t0 = 0; t0 < a.T; t0 += 4) {
      switch (std::min<int64_t>(4, a.T - t0)) {
        case 1: x16_group<1, F>(a, x, g, t0); break;
        case 2: x16_group<2, F>(a, x, g, t0); break;
        case 3: x16_group<3, F>(a, x, g, t0); break;
        default: x16_group<4, F>(a, x, g, t0); break;
      }
    }
}

}  // namespace

void groups_x16_vnni(const Args& a, const VnniActs& x, int64_t g0, int64_t g1) {
  if (a.f == Format::Q8_0_X16) groups_x16<Format::Q8_0_X16>(a, x, g0, g1);
  else if (a.f == Format::Q4_K_X16) groups_x16<Format::Q4_K_X16>(a, x, g0, g1);
  else if (a.f == Format::Q6_K_X16) groups_x16<Format::Q6_K_X16>(a, x, g0, g1);
  else groups_x16<Format::Q4_0_X16>(a, x, g0, g1);
}

void tiles_vnni(const Args& a, const VnniActs& x, int64_t tile0, int64_t tile1) {
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    Tile tl;
    const int64_t o = tile * 4;
    for (int r = 0; r < 4; ++r) tl.row[r] = a.w + std::min(o + r, a.N - 1) * a.row_bytes;
    tl.nr = int(std::min<int64_t>(4, a.N - o));
    tl.prefetch = a.T == 1 && tile + 1 < tile1 ? 4 * a.row_bytes : 0;
    for (int64_t t0 = 0; t0 < a.T; t0 += 4) {
      switch (std::min<int64_t>(4, a.T - t0)) {
        case 1: tile_t<1>(a, x, tl, o, t0); break;
        case 2: tile_t<2>(a, x, tl, o, t0); break;
        case 3: tile_t<3>(a, x, tl, o, t0); break;
        default: tile_t<4>(a, x, tl, o, t0); break;
      }
    }
  }
}

LMQ_VNNI void reorder_q4k_vnni(const int8_t* x, int64_t n, int8_t* out) {
  for (int64_t i = 0; i < n; i += 128) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 32));
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 64));
    const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 96));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 32), c);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 64), b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 96), d);
  }
}

}  // namespace lmq::ggk
