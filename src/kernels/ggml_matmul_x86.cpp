// AVX-512 VNNI kernel of the K-quant matmul (lmq/kernels/ggml_matmul.h): tiles of 4 weight rows
// × up to 4 tokens. Per half super-block (128 values) the codes of the 4 rows are expanded to
// bytes once (Q4_K: a nibble mask; Q6_K: low nibbles | 2 high bits from qh) and fed to vpdpbusd
// against each token's int8 activations; reduce_rows4 then puts the int32 sums of the 4 rows
// side by side (lane 4j + r = row r, 16-value lane j), and the float epilogue runs on vectors of
// 4 activation blocks × 4 rows with exactly the specification's operations and order, so the
// result equals rows_scalar bit for bit. Compiled with -ffp-contract=off.
#include <algorithm>

#include "ggml_matmul_internal.h"
#include "lmq/half.h"
#include "x86_intrinsics.h"

namespace lmq::ggk {

bool have_vnni() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  return ok;
}

#define LMQ_VNNI __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace {

constexpr int64_t kQ4KBytes = 144, kQ6KBytes = 210;

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

float f16_at(const uint8_t* p) { return f16_to_f32(uint16_t(p[0] | p[1] << 8)); }

struct Tile {
  const uint8_t* row[4];
  int nr;
};

LMQ_VNNI inline __m512 u8_to_ps(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)); }

// 4 rows' bytes b[r][0..16) → lane 4j + r = b[r][j] for j < 4 (lo) and b[r][j + 8] (hi) — the
// Q4_K scale bytes sc (0..7) and m (8..15) of each row, unpacked to 32 bits as floats.
LMQ_VNNI inline void transpose_q4k_scales(const uint8_t (*s)[16], __m512* sc, __m512* m) {
  const __m128i o0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s[0]));
  const __m128i o1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s[1]));
  const __m128i o2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s[2]));
  const __m128i o3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s[3]));
  const __m128i t0 = _mm_unpacklo_epi8(o0, o1), t1 = _mm_unpacklo_epi8(o2, o3);  // sc: j-major, r0 r1 / r2 r3
  const __m128i u0 = _mm_unpackhi_epi8(o0, o1), u1 = _mm_unpackhi_epi8(o2, o3);  // m
  sc[0] = u8_to_ps(_mm_unpacklo_epi16(t0, t1)), sc[1] = u8_to_ps(_mm_unpackhi_epi16(t0, t1));
  m[0] = u8_to_ps(_mm_unpacklo_epi16(u0, u1)), m[1] = u8_to_ps(_mm_unpackhi_epi16(u0, u1));
}

void q4k_scale_bytes(const uint8_t* s, uint8_t* out) {  // sc[0..8), m[0..8) (codecs/ggml_blocks.h)
  for (int j = 0; j < 4; ++j) {
    out[j] = s[j] & 63;
    out[8 + j] = s[j + 4] & 63;
    out[j + 4] = uint8_t((s[j + 8] & 15) | (s[j] >> 6) << 4);
    out[8 + j + 4] = uint8_t((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
  }
}

template <int NT>
LMQ_VNNI inline void q4k_tile(const Args& a, const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2]) {
  const int64_t nsb = a.K / 256;
  const __m512i low4 = _mm512_set1_epi8(0x0F), zero = _mm512_setzero_si512();
  for (int64_t b = 0; b < nsb; ++b) {
    alignas(16) uint8_t sm[4][16];
    alignas(16) float d[4], dmin[4];
    for (int r = 0; r < 4; ++r) {
      const uint8_t* blk = tl.row[r] + b * kQ4KBytes;
      d[r] = f16_at(blk), dmin[r] = f16_at(blk + 2);
      q4k_scale_bytes(blk + 4, sm[r]);
    }
    __m512 sc[2], mn[2];
    transpose_q4k_scales(sm, sc, mn);
    const __m512 d4 = _mm512_broadcast_f32x4(_mm_load_ps(d)), m4 = _mm512_broadcast_f32x4(_mm_load_ps(dmin));
    const __m512 ds[2] = {_mm512_mul_ps(d4, sc[0]), _mm512_mul_ps(d4, sc[1])};
    const __m512 dm[2] = {_mm512_mul_ps(m4, mn[0]), _mm512_mul_ps(m4, mn[1])};
    for (int h = 0; h < 2; ++h) {  // values 128h .. 128h + 127: sub-blocks 4h .. 4h + 3
      __m512i lo[4], hi[4];
      for (int r = 0; r < 4; ++r) {
        const __m512i w = _mm512_loadu_si512(tl.row[r] + b * kQ4KBytes + 16 + 64 * h);
        lo[r] = _mm512_and_si512(w, low4);
        hi[r] = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
      }
      const int64_t a0 = b * 8 + 4 * h;  // first activation block
      for (int t = 0; t < NT; ++t) {
        const int8_t* xp = x.q4k + (t0 + t) * a.K + b * 256 + 128 * h;
        const __m512i xl = _mm512_loadu_si512(xp), xh = _mm512_loadu_si512(xp + 64);
        __m512i L[4], H[4];
        for (int r = 0; r < 4; ++r) L[r] = _mm512_dpbusd_epi32(zero, lo[r], xl), H[r] = _mm512_dpbusd_epi32(zero, hi[r], xh);
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

template <int NT>
LMQ_VNNI inline void q6k_tile(const Args& a, const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2]) {
  const int64_t nsb = a.K / 256;
  const __m512i low4 = _mm512_set1_epi8(0x0F), hi2 = _mm512_set1_epi8(0x30), zero = _mm512_setzero_si512();
  // qh bits 2s, 2s + 1 → bits 4, 5: shift left 4 (s = 0) / 2 (s = 1) for the low nibbles' values
  // (bytes 0..31 / 32..63 of the vector), right 0 (s = 2) / 2 (s = 3) for the high ones'.
  const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i shr = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  // bytes 4r + j → 4j + r: 4 rows' 4 scales to the lanes of reduce_rows4
  const __m128i tr = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  for (int64_t b = 0; b < nsb; ++b) {
    alignas(16) float d[4];
    for (int r = 0; r < 4; ++r) d[r] = f16_at(tl.row[r] + b * kQ6KBytes + 208);
    const __m512 d4 = _mm512_broadcast_f32x4(_mm_load_ps(d));
    for (int h = 0; h < 2; ++h) {  // values 128h .. 128h + 127: sub-blocks 8h .. 8h + 7
      __m512i lo[4], hi[4];
      int32_t s4[2][4];
      for (int r = 0; r < 4; ++r) {
        const uint8_t* blk = tl.row[r] + b * kQ6KBytes;
        const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h)));
        lo[r] = _mm512_or_si512(_mm512_and_si512(ql, low4), _mm512_and_si512(_mm512_sllv_epi16(qh, shl), hi2));
        hi[r] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                _mm512_and_si512(_mm512_srlv_epi16(qh, shr), hi2));
        __builtin_memcpy(&s4[0][r], blk + 192 + 8 * h, 4);
        __builtin_memcpy(&s4[1][r], blk + 192 + 8 * h + 4, 4);
      }
      const __m512i sc0 = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s4[0])), tr));
      const __m512i sc1 = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s4[1])), tr));
      const int64_t s0 = b * 16 + 8 * h, a0 = b * 8 + 4 * h;  // first 16-value sub-block, activation block
      for (int t = 0; t < NT; ++t) {
        const int8_t* xp = x.q + (t0 + t) * a.K + b * 256 + 128 * h;
        const __m512i xl = _mm512_loadu_si512(xp), xh = _mm512_loadu_si512(xp + 64);
        __m512i L[4], H[4];
        for (int r = 0; r < 4; ++r) L[r] = _mm512_dpbusd_epi32(zero, lo[r], xl), H[r] = _mm512_dpbusd_epi32(zero, hi[r], xh);
        const int32_t* c = x.x16s4 + (t0 + t) * x.ld16 + s0 * 4;  // Σ(q − 32)·q_x = Σq·q_x − 32·Σq_x
        const __m512i DL = _mm512_sub_epi32(reduce_rows4(L), _mm512_loadu_si512(c));
        const __m512i DH = _mm512_sub_epi32(reduce_rows4(H), _mm512_loadu_si512(c + 16));
        const __m512i I = sum_lane_pairs(_mm512_mullo_epi32(DL, sc0), _mm512_mullo_epi32(DH, sc1), false);
        const __m512 sx = _mm512_loadu_ps(x.sx4 + (t0 + t) * x.ld4 + a0 * 4);
        slot[t][h] = _mm512_add_ps(slot[t][h], _mm512_mul_ps(sx, _mm512_mul_ps(d4, _mm512_cvtepi32_ps(I))));
      }
    }
  }
}

template <int NT>
LMQ_VNNI void tile_t(const Args& a, const VnniActs& x, const Tile& tl, int64_t o, int64_t t0) {
  __m512 slot[NT][2];  // lane 4·(j mod 4) + r of slot[t][j / 4]: slot j of row r
  for (int t = 0; t < NT; ++t) slot[t][0] = slot[t][1] = _mm512_setzero_ps();
  if (a.f == Format::Q4_K) q4k_tile<NT>(a, x, tl, t0, slot);
  else q6k_tile<NT>(a, x, tl, t0, slot);
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

}  // namespace

void tiles_vnni(const Args& a, const VnniActs& x, int64_t tile0, int64_t tile1) {
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    Tile tl;
    const int64_t o = tile * 4;
    for (int r = 0; r < 4; ++r) tl.row[r] = a.w + std::min(o + r, a.N - 1) * a.row_bytes;
    tl.nr = int(std::min<int64_t>(4, a.N - o));
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
