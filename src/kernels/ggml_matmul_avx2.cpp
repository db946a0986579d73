// AVX2 kernel of the in-place matmul (lmq/kernels/ggml_matmul.h) for CPUs without AVX-512 VNNI:
// Q8_0, Q4_0, IQ4_NL, Q2_K .. Q6_K and IQ4_XS (avx2_format); the lattice i-quants run the scalar
// specification. One (row, token) keeps its 8 slots in the 8 lanes of one float vector
// (activation block a in lane a mod 8), so 256 values (8 activation blocks: one K-quant
// super-block) are one vector step: the int32 sums i[a] of the 8 blocks are reduced into lanes
// 0..7 (hsum8) and the float epilogue runs lane-wise with exactly the specification's operations
// in its order, so the result equals rows_scalar bit for bit. A row's codes are expanded once per
// 4 tokens. Compiled with -ffp-contract=off.
//
// AVX2 has no u8 × s8 → int32 dot (vpdpbusd): vpmaddubsw multiplies u8 by s8 and adds pairs into
// int16 with saturation, vpmaddwd(·, 1) then widens to int32. No pair sum may leave
// [−32768, 32767]; the activation codes q_x are in [−127, 127] (quantize_activations clamps to ±127):
//   Q4_K, Q4_0: codes 0..15                 → |pair| ≤ 2·15·127 = 3810
//   Q5_K:       codes 0..31                 → ≤ 2·31·127 = 7874
//   Q2_K:       codes 0..3 → ≤ 2·3·127 = 762; its Σq_x pairs (vpmaddubsw(1, q_x)) ≤ 254
//   Q3_K:       codes 0..7 → ≤ 2·7·127 = 1778, the (q − 4)·q_x pairs as Q6_K's ≤ 2·4·127 = 1016
//   Q6_K:       codes 0..63                 → ≤ 2·63·127 = 16002; the offset's 32·q_x pairs ≤ 8128,
//               and their difference, the (q − 32)·q_x pairs, ≤ 2·32·127 = 8128: exact in int16
//               before vpmaddwd by the int8 scales (int32: ≤ 2·8128·128)
//   Q8_0, IQ4_NL, IQ4_XS: int8 codes / levels w (the IQ4 levels kv[q] by vpshufb, |kv| ≤ 127)
//               → vpmaddubsw(|w|, sign(w)·q_x) as llama.cpp does: |w| ≤ 128 read as u8,
//               sign(w)·q_x = ±q_x in [−127, 127] → ≤ 2·128·127 = 32512. (vpsignb would wrap a
//               −128 activation; quantize_activations never writes one.)
#include <algorithm>

#include "ggml_matmul_internal.h"
#include "ggml_x86.h"
#include "int_matmul_internal.h"
#include "lmq/codecs/iquant_blocks.h"

namespace lmq::ggk {

bool have_avx2() { return intk::have_avx2(); }  // F16C: with every AVX2 CPU (ggml_x86.h)

bool avx2_format(Format f) {
  switch (f) {
    case Format::Q8_0:
    case Format::Q4_0:
    case Format::IQ4_NL:
    case Format::Q4_K:
    case Format::Q5_K:
    case Format::Q2_K:
    case Format::Q3_K:
    case Format::Q6_K:
    case Format::IQ4_XS: return true;
    default: return false;
  }
}

namespace {

constexpr int64_t kQ80Bytes = 34, kQ40Bytes = 18, kQ4KBytes = 144, kQ5KBytes = 176, kQ6KBytes = 210, kIQ4XSBytes = 136;
constexpr int64_t kQ2KBytes = 84, kQ3KBytes = 110;

LMQ_GGML_AVX2 inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
LMQ_GGML_AVX2 inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// Σ u[k]·s[k] over pairs, then over pairs of pairs: 8 int32 partial sums (bounds: file header).
LMQ_GGML_AVX2 inline __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
// Σ w[k]·s[k] for int8 w (|w| ≤ 128 as u8 against ±s).
LMQ_GGML_AVX2 inline __m256i dot_s8s8(__m256i w, __m256i s) {
  return dot_u8s8(_mm256_abs_epi8(w), _mm256_sign_epi8(s, w));
}

// Lane j = the sum of v[j]'s 8 lanes (integer: exact in any order).
LMQ_GGML_AVX2 inline __m256i hsum8(const __m256i* v) {
  const __m256i a = _mm256_hadd_epi32(v[0], v[1]), b = _mm256_hadd_epi32(v[2], v[3]);
  const __m256i c = _mm256_hadd_epi32(v[4], v[5]), d = _mm256_hadd_epi32(v[6], v[7]);
  const __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);  // 128-bit lanes: low / high halves' sums
  return _mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20), _mm256_permute2x128_si256(ab, cd, 0x31));
}

// The f16 at p, broadcast.
LMQ_GGML_AVX2 inline __m256 f16_splat(const uint8_t* p) {
  return _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(p[0] | p[1] << 8)));
}

// 32 nibble-coded values (byte j: value j low, value j + 16 high) → 32 bytes in value order.
LMQ_GGML_AVX2 inline __m256i nibbles32(const uint8_t* p) {
  const __m128i w = load128(p);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(w, 4), w), _mm256_set1_epi8(0x0F));
}

// The IQ4 levels kv[q] (int8) in both 128-bit lanes, for vpshufb.
LMQ_GGML_AVX2 inline __m256i iq4_levels() {
  return _mm256_broadcastsi128_si256(load128(ggml::kIq4nlValues));
}

// Q4_K and Q5_K (Q5: a 5th bit per code in qh): x = d·sc[j]·q − dmin·m[j] per 32 values.
template <int NT, bool Q5>
LMQ_GGML_AVX2 inline void q4k_rows(const Args& a, const Acts& x, const uint8_t* row, int64_t t0, __m256* slot) {
  constexpr int64_t kBytes = Q5 ? kQ5KBytes : kQ4KBytes, kQs = Q5 ? 48 : 16;
  const int64_t nsb = a.K / 256, na = a.K / 32;
  const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  for (int64_t b = 0; b < nsb; ++b) {
    const uint8_t* blk = row + b * kBytes;
    const __m128i head = load128(blk);
    const __m128i sm = q4k_scale_bytes(head);               // sc in bytes 0..7, m in 8..15
    const __m128 dd = _mm_cvtph_ps(head);                   // d, dmin
    const __m256 ds = _mm256_mul_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
    const __m256 dm = _mm256_mul_ps(_mm256_broadcastss_ps(_mm_shuffle_ps(dd, dd, 1)),
                                    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(sm, sm))));
    __m256i q[8];  // values 32j .. 32j + 31: low nibbles of qs[32c ..] for j = 2c, high ones for 2c + 1
    for (int c = 0; c < 4; ++c) {
      const __m256i w = load256(blk + kQs + 32 * c);
      q[2 * c] = _mm256_and_si256(w, low4);
      q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(w, 4), low4);
      if constexpr (Q5) {  // bit 2c / 2c + 1 of qh[l] → bit 4 (16-bit shifts: the & keeps each byte's own bit)
        const __m256i qh = load256(blk + 16);
        q[2 * c] = _mm256_or_si256(q[2 * c], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
        q[2 * c + 1] =
            _mm256_or_si256(q[2 * c + 1], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
      }
    }
    for (int t = 0; t < NT; ++t) {
      const int8_t* xp = x.q + (t0 + t) * a.K + b * 256;
      __m256i s[8];
      for (int j = 0; j < 8; ++j) s[j] = dot_u8s8(q[j], load256(xp + 32 * j));
      const int64_t ia = (t0 + t) * na + b * 8;
      const __m256 sx = _mm256_loadu_ps(x.sx + ia), xs = _mm256_cvtepi32_ps(load256(x.xs + ia));
      // f = s_x · (float(i)·ds − float(Σq_x)·dm)
      const __m256 v = _mm256_sub_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(hsum8(s)), ds), _mm256_mul_ps(xs, dm));
      slot[t] = _mm256_add_ps(slot[t], _mm256_mul_ps(sx, v));
    }
  }
}

// The 16 sub-block scales s8 (int8) → sc[j]: int16 lanes 0..7 = s8[2j], 8..15 = s8[2j + 1].
LMQ_GGML_AVX2 inline void scale_pairs(__m128i s8, __m256i* sc) {
  for (int j = 0; j < 8; ++j) {
    const __m128i pick = _mm_set_epi64x(0x0101010101010101LL * (2 * j + 1), 0x0101010101010101LL * (2 * j));
    sc[j] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s8, pick));
  }
}

// Q6_K, Q3_K (x = d·sc[s]·(q − c), int8 sc, c = 32 / 4) and Q2_K (x = d·sc[s]·q − dmin·m[s],
// 4-bit sc, m): 16-value sub-blocks s = 2j, 2j + 1 in activation block j.
enum class Sub16 { Q6_K, Q3_K, Q2_K };

// A super-block's 256 codes in value order, 32 per vector (16-bit shifts: the byte masks keep
// each byte's own bits).
template <Sub16 F>
LMQ_GGML_AVX2 inline void sub16_codes(const uint8_t* blk, __m256i* q) {
  if constexpr (F == Sub16::Q6_K) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), hi2 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {  // values 128h ..: ql at 64h, qh at 128 + 32h
      const __m256i l0 = load256(blk + 64 * h), l1 = load256(blk + 64 * h + 32), qh = load256(blk + 128 + 32 * h);
      q[4 * h] = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), hi2));
      q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), hi2));
      q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(qh, hi2));
      q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                     _mm256_and_si256(_mm256_srli_epi16(qh, 2), hi2));
    }
  } else {  // value 128h + 32j + l: 2 bits at bit 2j of qs[32h + l]; Q3_K's 3rd at bit 4h + j of hmask[l]
    const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    const uint8_t* qs = blk + (F == Sub16::Q3_K ? 32 : 16);
    for (int h = 0; h < 2; ++h) {
      const __m256i w = load256(qs + 32 * h);
      for (int j = 0; j < 4; ++j) {
        q[4 * h + j] = _mm256_and_si256(_mm256_srli_epi16(w, 2 * j), three);
        if constexpr (F == Sub16::Q3_K)
          q[4 * h + j] = _mm256_or_si256(
              q[4 * h + j], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(load256(blk), 4 * h + j), one), 2));
      }
    }
  }
}

template <int NT, Sub16 F>
LMQ_GGML_AVX2 inline void sub16_rows(const Args& a, const Acts& x, const uint8_t* row, int64_t t0, __m256* slot) {
  constexpr int64_t kBytes = F == Sub16::Q6_K ? kQ6KBytes : F == Sub16::Q3_K ? kQ3KBytes : kQ2KBytes;
  constexpr int64_t kD = F == Sub16::Q6_K ? 208 : F == Sub16::Q3_K ? 108 : 80;
  const int64_t nsb = a.K / 256, na = a.K / 32;
  // Q6_K, Q3_K: Σ(q − c)·q_x per pair in int16 (bounds: file header); Q2_K: the Σq_x pairs
  const __m256i c = _mm256_set1_epi8(F == Sub16::Q6_K ? 32 : F == Sub16::Q3_K ? 4 : 1);
  for (int64_t b = 0; b < nsb; ++b) {
    const uint8_t* blk = row + b * kBytes;
    const __m256 d = f16_splat(blk + kD);
    __m256i q[8], sc[8], mn[8];
    sub16_codes<F>(blk, q);
    if constexpr (F == Sub16::Q6_K) scale_pairs(load128(blk + 192), sc);
    else if constexpr (F == Sub16::Q3_K) scale_pairs(q3k_scale_bytes(blk + 96), sc);
    else {
      const __m128i s = load128(blk), low4 = _mm_set1_epi8(0x0F);
      scale_pairs(_mm_and_si128(s, low4), sc);
      scale_pairs(_mm_and_si128(_mm_srli_epi16(s, 4), low4), mn);
    }
    for (int t = 0; t < NT; ++t) {
      const int8_t* xp = x.q + (t0 + t) * a.K + b * 256;
      __m256i s[8], m[8];
      for (int j = 0; j < 8; ++j) {
        const __m256i xv = load256(xp + 32 * j);
        if constexpr (F == Sub16::Q2_K) {
          s[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(q[j], xv), sc[j]);
          m[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(c, xv), mn[j]);
        } else {
          s[j] = _mm256_madd_epi16(_mm256_sub_epi16(_mm256_maddubs_epi16(q[j], xv), _mm256_maddubs_epi16(c, xv)), sc[j]);
        }
      }
      const __m256 sx = _mm256_loadu_ps(x.sx + (t0 + t) * na + b * 8);
      __m256 v = _mm256_mul_ps(d, _mm256_cvtepi32_ps(hsum8(s)));  // d·float(i)
      if constexpr (F == Sub16::Q2_K)                               // − dmin·float(mi)
        v = _mm256_sub_ps(v, _mm256_mul_ps(f16_splat(blk + 82), _mm256_cvtepi32_ps(hsum8(m))));
      slot[t] = _mm256_add_ps(slot[t], _mm256_mul_ps(sx, v));
    }
  }
}

// IQ4_XS: super-blocks of 256 with a 6-bit scale ls per 32 values, x = d·(ls − 32)·kv[q].
template <int NT>
LMQ_GGML_AVX2 inline void iq4xs_rows(const Args& a, const Acts& x, const uint8_t* row, int64_t t0, __m256* slot) {
  const int64_t nsb = a.K / 256, na = a.K / 32;
  const __m256i kv = iq4_levels();
  for (int64_t b = 0; b < nsb; ++b) {
    const uint8_t* blk = row + b * kIQ4XSBytes;
    const __m256 d = f16_splat(blk);
    alignas(32) int32_t ls[8];
    for (int j = 0; j < 8; ++j) ls[j] = ggml::iq4_xs_scale(blk, j) - 32;
    const __m256i sc = _mm256_load_si256(reinterpret_cast<const __m256i*>(ls));
    __m256i q[8];
    for (int j = 0; j < 8; ++j) q[j] = _mm256_shuffle_epi8(kv, nibbles32(blk + 8 + 16 * j));
    for (int t = 0; t < NT; ++t) {
      const int8_t* xp = x.q + (t0 + t) * a.K + b * 256;
      __m256i s[8];
      for (int j = 0; j < 8; ++j) s[j] = dot_s8s8(q[j], load256(xp + 32 * j));
      const __m256i i = _mm256_mullo_epi32(hsum8(s), sc);  // (ls − 32)·Σkv[q]·q_x
      const __m256 sx = _mm256_loadu_ps(x.sx + (t0 + t) * na + b * 8);
      slot[t] = _mm256_add_ps(slot[t], _mm256_mul_ps(sx, _mm256_mul_ps(d, _mm256_cvtepi32_ps(i))));
    }
  }
}

// Q8_0, Q4_0, IQ4_NL: blocks of 32 (one per activation block) taken 8 at a time (lane j = block
// 8g + j); a last group of nb < 8 blocks (K not a multiple of 256) reads only its blocks and
// leaves the other slots as they are.
enum class Q32 { Q8_0, Q4_0, IQ4_NL };

// Group g: NB = 8 blocks, or 0 for a last group of nb < 8 (masked loads, the other slots kept).
template <int NT, Q32 F, int NB>
LMQ_GGML_AVX2 inline void q32_group(const Args& a, const Acts& x, const uint8_t* row, int64_t t0, __m256* slot,
                                    int64_t g, int nb) {
  constexpr int64_t kBytes = F == Q32::Q8_0 ? kQ80Bytes : kQ40Bytes;
  if constexpr (NB == 8) nb = 8;
  const int64_t na = a.K / 32;
  const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(nb), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  alignas(16) uint16_t dh[8] = {};
  __m256i q[8];
  for (int j = 0; j < 8; ++j) {
    q[j] = _mm256_setzero_si256();
    if (j >= nb) continue;
    const uint8_t* blk = row + (8 * g + j) * kBytes;
    dh[j] = uint16_t(blk[0] | blk[1] << 8);
    if constexpr (F == Q32::Q8_0) q[j] = load256(blk + 2);
    else if constexpr (F == Q32::Q4_0) q[j] = nibbles32(blk + 2);
    else q[j] = _mm256_shuffle_epi8(iq4_levels(), nibbles32(blk + 2));
  }
  const __m256 d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(dh)));
  for (int t = 0; t < NT; ++t) {
    const int8_t* xp = x.q + (t0 + t) * a.K + g * 256;
    __m256i s[8];
    for (int j = 0; j < 8; ++j)
      s[j] = j >= nb ? _mm256_setzero_si256()
             : F == Q32::Q4_0 ? dot_u8s8(q[j], load256(xp + 32 * j))
                              : dot_s8s8(q[j], load256(xp + 32 * j));
    const int64_t ia = (t0 + t) * na + g * 8;
    __m256i i = hsum8(s);
    if constexpr (F == Q32::Q4_0) {  // Σ(q − 8)·q_x = Σq·q_x − 8·Σq_x
      const __m256i xs = NB == 8 ? load256(x.xs + ia) : _mm256_maskload_epi32(x.xs + ia, lanes);
      i = _mm256_sub_epi32(i, _mm256_slli_epi32(xs, 3));
    }
    const __m256 sx = NB == 8 ? _mm256_loadu_ps(x.sx + ia) : _mm256_maskload_ps(x.sx + ia, lanes);
    const __m256 v = _mm256_add_ps(slot[t], _mm256_mul_ps(sx, _mm256_mul_ps(d, _mm256_cvtepi32_ps(i))));  // + s_x·(d·float(i))
    slot[t] = NB == 8 ? v : _mm256_blendv_ps(slot[t], v, _mm256_castsi256_ps(lanes));
  }
}

template <int NT, Q32 F>
LMQ_GGML_AVX2 inline void q32_rows(const Args& a, const Acts& x, const uint8_t* row, int64_t t0, __m256* slot) {
  const int64_t na = a.K / 32;
  int64_t g = 0;
  for (; 8 * g + 8 <= na; ++g) q32_group<NT, F, 8>(a, x, row, t0, slot, g, 8);
  if (8 * g < na) q32_group<NT, F, 0>(a, x, row, t0, slot, g, int(na - 8 * g));
}

// ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)), as intk::combine_slots.
LMQ_GGML_AVX2 inline float combine(__m256 s) {
  const __m128 p = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));  // s_j + s_{j+4}
  const __m128 q = _mm_add_ps(p, _mm_movehl_ps(p, p));                                  // p0 + p2, p1 + p3
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)));
}

template <int NT>
LMQ_GGML_AVX2 void row_t(const Args& a, const Acts& x, int64_t o, int64_t t0) {
  __m256 slot[NT];
  for (int t = 0; t < NT; ++t) slot[t] = _mm256_setzero_ps();
  const uint8_t* row = a.w + o * a.row_bytes;
  switch (a.f) {
    case Format::Q8_0: q32_rows<NT, Q32::Q8_0>(a, x, row, t0, slot); break;
    case Format::Q4_0: q32_rows<NT, Q32::Q4_0>(a, x, row, t0, slot); break;
    case Format::IQ4_NL: q32_rows<NT, Q32::IQ4_NL>(a, x, row, t0, slot); break;
    case Format::Q4_K: q4k_rows<NT, false>(a, x, row, t0, slot); break;
    case Format::Q5_K: q4k_rows<NT, true>(a, x, row, t0, slot); break;
    case Format::IQ4_XS: iq4xs_rows<NT>(a, x, row, t0, slot); break;
    case Format::Q6_K: sub16_rows<NT, Sub16::Q6_K>(a, x, row, t0, slot); break;
    case Format::Q3_K: sub16_rows<NT, Sub16::Q3_K>(a, x, row, t0, slot); break;
    default: sub16_rows<NT, Sub16::Q2_K>(a, x, row, t0, slot); break;  // Q2_K (avx2_format)
  }
  for (int t = 0; t < NT; ++t) {
    float y = combine(slot[t]);
    if (a.bias) y = y + a.bias[o];
    a.y[(t0 + t) * a.N + o] = y;
  }
}

}  // namespace

void rows_avx2(const Args& a, const Acts& x, int64_t o0, int64_t o1) {
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t t0 = 0; t0 < a.T; t0 += 4) {
      switch (std::min<int64_t>(4, a.T - t0)) {
        case 1: row_t<1>(a, x, o, t0); break;
        case 2: row_t<2>(a, x, o, t0); break;
        case 3: row_t<3>(a, x, o, t0); break;
        default: row_t<4>(a, x, o, t0); break;
      }
    }
}

}  // namespace lmq::ggk
