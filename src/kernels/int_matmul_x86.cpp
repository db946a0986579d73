// x86 kernels of the integer matmul: AVX2 and AVX-512 VNNI, compiled with target attributes and
// chosen at run time (__builtin_cpu_supports). Both compute exactly row_scalar's arithmetic:
// the unit sums are exact int32, and the float rescale uses the same operations in the same
// order (8 slots = the 8 lanes of a float vector, unit u in lane u mod 8).
#include <algorithm>

#include "int_matmul_internal.h"
#include "x86_intrinsics.h"

namespace lmq::intk {

bool have_avx2() {
  static const bool ok = __builtin_cpu_supports("avx2");
  return ok;
}
bool have_avx512vnni() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  return ok;
}

#define LMQ_AVX2 __attribute__((target("avx2")))
#define LMQ_VNNI __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace {

// Lane j of the result = the sum of the 8 lanes of a[j].
#define LMQ_HSUM8_BODY                                                                     \
  const __m256i h01 = _mm256_hadd_epi32(a[0], a[1]), h23 = _mm256_hadd_epi32(a[2], a[3]); \
  const __m256i h45 = _mm256_hadd_epi32(a[4], a[5]), h67 = _mm256_hadd_epi32(a[6], a[7]); \
  const __m256i g0 = _mm256_hadd_epi32(h01, h23), g1 = _mm256_hadd_epi32(h45, h67);       \
  return _mm256_add_epi32(_mm256_permute2x128_si256(g0, g1, 0x20), _mm256_permute2x128_si256(g0, g1, 0x31));

LMQ_AVX2 inline __m256i hsum8_avx2(const __m256i* a) { LMQ_HSUM8_BODY }
LMQ_VNNI inline __m256i hsum8_vnni(const __m256i* a) { LMQ_HSUM8_BODY }

// slot combine in the order of combine_slots()
#define LMQ_COMBINE_BODY                                                            \
  const __m128 b = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)); \
  const __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));                              \
  return _mm_cvtss_f32(_mm_add_ss(c, _mm_shuffle_ps(c, c, 1)));
LMQ_AVX2 inline float combine_avx2(__m256 s) { LMQ_COMBINE_BODY }
LMQ_VNNI inline float combine_vnni(__m256 s) { LMQ_COMBINE_BODY }

// AVX2: Σ u·q over [k0, k1) for nt tokens, 32 values a step.
template <int NT>
LMQ_AVX2 inline void unit_dots_avx2(const RowArgs& r, int64_t k0, int64_t k1, __m256i* acc /* [nt] */) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_si256();
  for (int64_t k = k0; k < k1; k += 32) {
    if (r.small_codes) {  // u <= 15: maddubs cannot saturate (2·15·127 < 32767)
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.w + k));
      for (int t = 0; t < NT; ++t) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.x + t * r.ldx + k));
        acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones));
      }
    } else {  // widen to 16 bits: madd of u8·s8 pairs is exact in int32
      const __m256i w0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r.w + k)));
      const __m256i w1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r.w + k + 16)));
      for (int t = 0; t < NT; ++t) {
        const int8_t* xp = r.x + t * r.ldx + k;
        const __m256i x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xp)));
        const __m256i x1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xp + 16)));
        acc[t] = _mm256_add_epi32(acc[t], _mm256_add_epi32(_mm256_madd_epi16(w0, x0), _mm256_madd_epi16(w1, x1)));
      }
    }
  }
}

// AVX-512 VNNI: vpdpbusd (u8 weight codes × s8 activations), 64 values a step, 32 at the tail.
template <int NT>
LMQ_VNNI inline void unit_dots_vnni(const RowArgs& r, int64_t k0, int64_t k1, __m256i* acc) {
  int64_t k = k0;
  if (k1 - k0 >= 64) {
    __m512i z[4];
    for (int t = 0; t < NT; ++t) z[t] = _mm512_setzero_si512();
    for (; k + 64 <= k1; k += 64) {
      const __m512i w = _mm512_loadu_si512(r.w + k);
      for (int t = 0; t < NT; ++t) z[t] = _mm512_dpbusd_epi32(z[t], w, _mm512_loadu_si512(r.x + t * r.ldx + k));
    }
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm256_add_epi32(_mm512_castsi512_si256(z[t]), _mm512_extracti64x4_epi64(z[t], 1));
  } else {
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_si256();
  }
  if (k < k1) {  // 32 left
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.w + k));
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm256_dpbusd_epi32(acc[t], w, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.x + t * r.ldx + k)));
  }
}

#define LMQ_ROW_BODY(DOTS, HSUM, COMBINE)                                                       \
  __m256 slot[4];                                                                               \
  for (int t = 0; t < NT; ++t) slot[t] = _mm256_setzero_ps();                                 \
  for (int64_t u0 = 0; u0 < r.nu8; u0 += 8) {                                                   \
    __m256i acc[4][8];                                                                          \
    for (int j = 0; j < 8; ++j) {                                                               \
      const int64_t u = u0 + j;                                                                 \
      __m256i tmp[4];                                                                           \
      if (u < r.nu) {                                                                           \
        DOTS<NT>(r, u * r.U, std::min(r.K, (u + 1) * r.U), tmp);                                    \
      } else {                                                                                  \
        for (int t = 0; t < NT; ++t) tmp[t] = _mm256_setzero_si256();                         \
      }                                                                                         \
      for (int t = 0; t < NT; ++t) acc[t][j] = tmp[t];                                        \
    }                                                                                           \
    const __m256i zw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.zw + u0));         \
    const __m256 sw = _mm256_loadu_ps(r.sw + u0);                                               \
    for (int t = 0; t < NT; ++t) {                                                            \
      const __m256i xs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.xs + t * r.ld + u0)); \
      const __m256i d = _mm256_sub_epi32(HSUM(acc[t]), _mm256_mullo_epi32(zw, xs));             \
      const __m256 sc = _mm256_mul_ps(sw, _mm256_loadu_ps(r.sx + t * r.ld + u0));               \
      slot[t] = _mm256_add_ps(slot[t], _mm256_mul_ps(_mm256_cvtepi32_ps(d), sc));               \
    }                                                                                           \
  }                                                                                             \
  for (int t = 0; t < NT; ++t) r.y[t * r.ldy] = COMBINE(slot[t]);

}  // namespace

namespace {
template <int NT>
LMQ_AVX2 void row_avx2_t(const RowArgs& r) { LMQ_ROW_BODY(unit_dots_avx2, hsum8_avx2, combine_avx2) }
template <int NT>
LMQ_VNNI void row_vnni_t(const RowArgs& r) { LMQ_ROW_BODY(unit_dots_vnni, hsum8_vnni, combine_vnni) }
}  // namespace

void row_avx2(const RowArgs& r) {
  switch (r.nt) {
    case 1: return row_avx2_t<1>(r);
    case 2: return row_avx2_t<2>(r);
    case 3: return row_avx2_t<3>(r);
    default: return row_avx2_t<4>(r);
  }
}
void row_avx512vnni(const RowArgs& r) {
  switch (r.nt) {
    case 1: return row_vnni_t<1>(r);
    case 2: return row_vnni_t<2>(r);
    case 3: return row_vnni_t<3>(r);
    default: return row_vnni_t<4>(r);
  }
}

}  // namespace lmq::intk
