// x86 pieces shared by the in-place kernels' AVX2 (ggml_matmul_avx2.cpp) and AVX-512 VNNI
// (ggml_vnni.h, ggml_matmul_x86.cpp) code: SSE/AVX2 only, so both targets inline them.
// Only for files compiled with -ffp-contract=off.
#pragma once
#include <cstdint>

#include "x86_intrinsics.h"

// F16C (the f16 scales' conversion) comes with every AVX2 CPU (Haswell, Zen).
#define LMQ_GGML_AVX2 __attribute__((target("avx2,f16c")))

namespace lmq::ggk {

// A Q4_K block's first 16 bytes (d, dmin, the 12 scale bytes s) → sc[0..8) in bytes 0..7 and
// m[0..8) in bytes 8..15 (the fields of codecs/ggml_blocks.h), in vector registers:
//   sc[j] = s[j] & 63,  sc[j+4] = (s[j+8] & 15) | (s[j] >> 6) << 4      (j < 4)
//   m[j] = s[j+4] & 63, m[j+4] = (s[j+8] >> 4) | (s[j+4] >> 6) << 4
// (16-bit shifts: the byte masks keep each byte's own bits.)
LMQ_GGML_AVX2 inline __m128i q4k_scale_bytes(__m128i v) {
  const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15));
  const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 4, 5, 6, 7, -1, -1, -1, -1, 8, 9, 10, 11));
  const __m128i low = _mm_or_si128(_mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0)),
                                   _mm_and_si128(_mm_srli_epi16(a, 4), _mm_setr_epi32(0, 0, 0, 0x0f0f0f0f)));
  return _mm_or_si128(low, _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(b, 6), _mm_set1_epi8(3)), 4));
}

// Q3_K's 12 scale bytes s → its 16 scales sc − 32 as int8 (codecs/ggml_blocks.h): low 4 bits
// s[k] & 15 (k < 8) / s[k − 8] >> 4, high 2 bits (s[8 + k mod 4] >> 2·(k / 4)) & 3. Reads 12 bytes
// only (the block's last bytes may end the mapping).
LMQ_GGML_AVX2 inline __m128i q3k_scale_bytes(const uint8_t* s) {
  int32_t w;
  __builtin_memcpy(&w, s + 8, 4);
  const __m128i v = _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s)), _mm_cvtsi32_si128(w));
  const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7));
  const __m128i lo = _mm_or_si128(_mm_and_si128(a, _mm_set_epi64x(0, 0x0f0f0f0f0f0f0f0f)),
                                  _mm_and_si128(_mm_srli_epi16(a, 4), _mm_set_epi64x(0x0f0f0f0f0f0f0f0f, 0)));
  const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11));
  const __m128i hi = _mm_slli_epi16(_mm_and_si128(_mm_srlv_epi32(b, _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3)), 4);
  return _mm_sub_epi8(_mm_or_si128(lo, hi), _mm_set1_epi8(32));
}

}  // namespace lmq::ggk
