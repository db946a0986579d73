// AVX-512 VNNI kernel of the lattice i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S,
// IQ1_M), one part of ggml_matmul_x86.cpp's tiles of 4 rows × up to 4 tokens. Per row and 64
// values (two sub-blocks of 32) the weights are built once as bytes u = w + 64 ∈ [2, 126]: the
// grid entries gathered by their indices (8 entries of 8 bytes, or 16 of 4), each byte's sign
// from the stored sign bits (IQ2_S, IQ3_S: as they are; the others: ksigns_iq2xs[s] = s |
// parity(s) << 7) as a byte mask that turns 64 + g into 64 − g (the IQ1s, whose grid bytes are
// signed: 64 + 8g ± 1, the delta's sign as a byte mask). vpdpbusd against each token's int8 activations, then
// Σw·q_x = Σu·q_x − 64·Σq_x per 16 values, the 16-value multipliers and the float epilogue as
// Q6_K's (sym16_half, ggml_vnni.h): every integer exact, the float operations those of the scalar
// specification (ggml_matmul_lattice.cpp) in its order, so the results equal it bit for bit.
// Compiled with -ffp-contract=off.
#include "ggml_matmul_lattice.h"
#include "ggml_vnni.h"
#include "lmq/codecs/ggml_blocks.h"

namespace lmq::ggml::iq {
#include "../codecs/iquant_grids.inc"
}  // namespace lmq::ggml::iq

namespace lmq::ggk {
namespace {

namespace iq = ggml::iq;
using ggml::u32_at, ggml::u64_at;

constexpr int64_t block_bytes(Format f) {
  switch (f) {
    case Format::IQ2_XXS: return 66;
    case Format::IQ2_XS: return 74;
    case Format::IQ2_S: return 82;
    case Format::IQ3_XXS: return 98;
    case Format::IQ1_S: return 50;
    case Format::IQ1_M: return 56;
    default: return 110;  // IQ3_S
  }
}

// Magnitudes g (bytes) and sign bits m (bit v: value v negative) → u = 64 ± g.
LMQ_VNNI inline __m512i offset_codes(__m512i g, __mmask64 m) {
  const __m512i c = _mm512_set1_epi8(64);
  return _mm512_mask_sub_epi8(_mm512_add_epi8(g, c), m, c, g);
}

// 8 sign indices s (7 bits, 32-bit lanes) → the 64 sign bits ksigns_iq2xs[s], byte l for group l.
LMQ_VNNI inline __mmask64 ksigns8(__m256i s) {
  __m256i p = _mm256_xor_si256(s, _mm256_srli_epi32(s, 4));
  p = _mm256_xor_si256(p, _mm256_srli_epi32(p, 2));
  p = _mm256_xor_si256(p, _mm256_srli_epi32(p, 1));
  const __m256i b = _mm256_or_si256(s, _mm256_slli_epi32(_mm256_and_si256(p, _mm256_set1_epi32(1)), 7));
  return _cvtu64_mask64(uint64_t(_mm_cvtsi128_si64(_mm256_cvtepi32_epi8(b))));
}
// IQ2_XXS / IQ3_XXS: the sign indices of two sub-blocks, bits 7l..7l+6 of their words w0, w1.
LMQ_VNNI inline __mmask64 ksigns_of_words(uint32_t w0, uint32_t w1) {
  const __m256i v = _mm256_inserti128_si256(_mm256_set1_epi32(int(w0)), _mm_set1_epi32(int(w1)), 1);
  const __m256i s = _mm256_srlv_epi32(v, _mm256_setr_epi32(0, 7, 14, 21, 0, 7, 14, 21));
  return ksigns8(_mm256_and_si256(s, _mm256_set1_epi32(127)));
}

// The IQ1s: 8 grid entries g (bytes −1, 0, 1) and a mask of the bytes whose delta is −1/8 →
// u = 64 + 8g ± 1 (8g by a 16-bit shift, the bits carried into the next byte masked off).
LMQ_VNNI inline __m512i iq1_codes(__m512i g, __mmask64 negative) {
  const __m512i g8 = _mm512_and_si512(_mm512_slli_epi16(g, 3), _mm512_set1_epi8(int8_t(0xf8)));
  return _mm512_add_epi8(g8, _mm512_mask_blend_epi8(negative, _mm512_set1_epi8(65), _mm512_set1_epi8(63)));
}

// Values 64p .. 64p + 63 of a super-block (sub-blocks 2p, 2p + 1) as u = w + 64
// (codecs/iquant_blocks.h has the layouts).
template <Format F>
LMQ_VNNI inline __m512i codes64(const uint8_t* blk, int p) {
  if constexpr (F == Format::IQ2_XXS) {  // per sub-block: 4 index bytes, then a1 (signs, scale)
    const uint8_t* q = blk + 2 + 16 * p;
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    const __m128i ix = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, -1, -1, -1, -1, -1, -1, -1, -1));
    const __m512i g = _mm512_i64gather_epi64(_mm512_cvtepu8_epi64(ix), iq::iq2xxs_grid, 8);
    return offset_codes(g, ksigns_of_words(u32_at(q + 4), u32_at(q + 12)));
  } else if constexpr (F == Format::IQ2_XS) {  // 8 uint16: 9 bits of index, 7 of sign index
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2 + 16 * p));
    const __m512i g = _mm512_i64gather_epi64(_mm512_cvtepu16_epi64(_mm_and_si128(q, _mm_set1_epi16(511))), iq::iq2xs_grid, 8);
    return offset_codes(g, ksigns8(_mm256_cvtepu16_epi32(_mm_srli_epi16(q, 9))));
  } else if constexpr (F == Format::IQ2_S) {  // index k: qs[k] | (qh >> 2k & 3) << 8 (qh of both sub-blocks)
    const int64_t qh = blk[66 + 2 * p] | blk[67 + 2 * p] << 8;
    const __m512i hi = _mm512_and_si512(_mm512_srlv_epi64(_mm512_set1_epi64(qh), _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14)),
                                        _mm512_set1_epi64(3));
    const __m512i ix = _mm512_or_si512(_mm512_cvtepu8_epi64(_mm_cvtsi64_si128(int64_t(u64_at(blk + 2 + 8 * p)))),
                                       _mm512_slli_epi64(hi, 8));
    const __m512i g = _mm512_i64gather_epi64(ix, iq::iq2s_grid, 8);
    return offset_codes(g, _cvtu64_mask64(u64_at(blk + 34 + 8 * p)));
  } else if constexpr (F == Format::IQ3_XXS) {  // 16 index bytes; a words (signs, scale) at 66
    const __m512i ix = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2 + 16 * p)));
    const __m512i g = _mm512_i32gather_epi32(ix, iq::iq3xxs_grid, 4);
    return offset_codes(g, ksigns_of_words(u32_at(blk + 66 + 8 * p), u32_at(blk + 70 + 8 * p)));
  } else if constexpr (F == Format::IQ1_S) {  // group k: qs[k] | (qh >> 3(k%4) & 7) << 8, delta sign qh bit 15
    const uint8_t* qs = blk + 2 + 8 * p;
    const int qh0 = blk[34 + 4 * p] | blk[35 + 4 * p] << 8, qh1 = blk[36 + 4 * p] | blk[37 + 4 * p] << 8;
    const __m512i ix = _mm512_setr_epi64(qs[0] | (qh0 << 8 & 0x700), qs[1] | (qh0 << 5 & 0x700), qs[2] | (qh0 << 2 & 0x700),
                                         qs[3] | (qh0 >> 1 & 0x700), qs[4] | (qh1 << 8 & 0x700), qs[5] | (qh1 << 5 & 0x700),
                                         qs[6] | (qh1 << 2 & 0x700), qs[7] | (qh1 >> 1 & 0x700));
    const uint64_t neg = (qh0 & 0x8000 ? 0xffffffffull : 0) | (qh1 & 0x8000 ? 0xffffffffull << 32 : 0);
    return iq1_codes(_mm512_i64gather_epi64(ix, iq::iq1s_grid, 8), _cvtu64_mask64(neg));
  } else if constexpr (F == Format::IQ1_M) {  // group k: qs[k] | (nibble k & 7) << 8, nibble bit 3 the delta sign
    const uint8_t* qs = blk + 8 * p;
    const uint32_t h = u32_at(blk + 32 + 4 * p);  // 8 nibbles, group k's at 4k
    alignas(64) int64_t idx[8];
    uint64_t neg = 0;
    for (int k = 0; k < 8; ++k) {
      idx[k] = qs[k] | int64_t(h >> 4 * k & 7) << 8;
      if (h >> (4 * k + 3) & 1) neg |= 0xffull << 8 * k;
    }
    return iq1_codes(_mm512_i64gather_epi64(_mm512_load_si512(idx), iq::iq1s_grid, 8), _cvtu64_mask64(neg));
  } else {  // IQ3_S: index k: qs[k] | (qh >> k & 1) << 8; sign bits at 74 as they are
    const int qh = blk[66 + 2 * p] | blk[67 + 2 * p] << 8;
    const __m512i hi = _mm512_and_si512(
        _mm512_srlv_epi32(_mm512_set1_epi32(qh), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
        _mm512_set1_epi32(1));
    const __m512i ix = _mm512_or_si512(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2 + 16 * p))),
                                       _mm512_slli_epi32(hi, 8));
    const __m512i g = _mm512_i32gather_epi32(ix, iq::iq3s_grid, 4);
    return offset_codes(g, _cvtu64_mask64(u64_at(blk + 74 + 8 * p)));
  }
}

template <int NT, Format F>
LMQ_VNNI inline void tile_f(const Args& a, const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2]) {
  constexpr int64_t kBytes = block_bytes(F);
  const int64_t nsb = a.K / 256;
  const __m128 c = _mm_set1_ps(lattice_c(F));
  for (int64_t b = 0; b < nsb; ++b) {
    prefetch_next(tl, b * kBytes, 2);
    __m512i sc[4];  // the 16-value multipliers 2s + 1, lane 4j + r (transpose_scales16)
    {
      alignas(16) uint8_t s[4][16];
      __m128i v[4];
      for (int r = 0; r < 4; ++r) {
        lattice_scales16(F, tl.row[r] + b * kBytes, s[r]);
        v[r] = _mm_load_si128(reinterpret_cast<const __m128i*>(s[r]));
      }
      transpose_scales16(v, sc);
    }
    auto d_of = [&](int r) { return short(lattice_d_bits(F, tl.row[r] + b * kBytes)); };
    const __m128 d = _mm_cvtph_ps(_mm_setr_epi16(d_of(0), d_of(1), d_of(2), d_of(3), 0, 0, 0, 0));
    const __m512 D4 = _mm512_broadcast_f32x4(_mm_mul_ps(d, c));  // D = d·c, exact
    for (int h = 0; h < 2; ++h) {  // values 128h .. 128h + 127: 16-value sub-blocks 8h .. 8h + 7
      __m512i lo[4], hi[4];
      for (int r = 0; r < 4; ++r) {
        lo[r] = codes64<F>(tl.row[r] + b * kBytes, 2 * h);
        hi[r] = codes64<F>(tl.row[r] + b * kBytes, 2 * h + 1);
      }
      sym16_half<NT, 64>(a, x, t0, b, h, lo, hi, sc, D4, slot);
    }
  }
}

}  // namespace

template <int NT>
LMQ_VNNI void lattice_tile(const Args& a, const VnniActs& x, const Tile& tl, int64_t t0, __m512 (*slot)[2]) {
  switch (a.f) {
    case Format::IQ2_XXS: return tile_f<NT, Format::IQ2_XXS>(a, x, tl, t0, slot);
    case Format::IQ2_XS: return tile_f<NT, Format::IQ2_XS>(a, x, tl, t0, slot);
    case Format::IQ2_S: return tile_f<NT, Format::IQ2_S>(a, x, tl, t0, slot);
    case Format::IQ3_XXS: return tile_f<NT, Format::IQ3_XXS>(a, x, tl, t0, slot);
    case Format::IQ1_S: return tile_f<NT, Format::IQ1_S>(a, x, tl, t0, slot);
    case Format::IQ1_M: return tile_f<NT, Format::IQ1_M>(a, x, tl, t0, slot);
    default: return tile_f<NT, Format::IQ3_S>(a, x, tl, t0, slot);
  }
}
template void lattice_tile<1>(const Args&, const VnniActs&, const Tile&, int64_t, __m512 (*)[2]);
template void lattice_tile<2>(const Args&, const VnniActs&, const Tile&, int64_t, __m512 (*)[2]);
template void lattice_tile<3>(const Args&, const VnniActs&, const Tile&, int64_t, __m512 (*)[2]);
template void lattice_tile<4>(const Args&, const VnniActs&, const Tile&, int64_t, __m512 (*)[2]);

}  // namespace lmq::ggk
