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

}  // namespace lmq::ggk
