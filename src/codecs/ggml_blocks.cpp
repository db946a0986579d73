// Scalar (de)quantization of ggml's block formats. Written from ggml's documented layouts
// (see the header); the arithmetic mirrors llama.cpp's reference code operation for operation
// so results match it bit for bit on IEEE float hardware without -ffast-math / FMA contraction.
#include "lmq/codecs/ggml_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ggml_rows.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/error.h"
#include "lmq/half.h"

// The vector helpers of the Q8_0/Q4_0 writers pass vectors wider than the baseline ABI's
// registers; they are internal and always inlined into each clone, so no call crosses that ABI.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace lmq::ggml {

LMQ_ROW_CODEC void dq_q8_0(const uint8_t* __restrict src, float* __restrict y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q8_0), y += QK8_0) {
    const float d = h2f(src);
    const int8_t* qs = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < QK8_0; ++j) y[j] = qs[j] * d;
  }
}

LMQ_ROW_CODEC void dq_q4_0(const uint8_t* __restrict src, float* __restrict y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q4_0), y += QK4_0) {
    const float d = h2f(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      y[j] = ((qs[j] & 0x0F) - 8) * d;
      y[j + QK4_0 / 2] = ((qs[j] >> 4) - 8) * d;
    }
  }
}

LMQ_ROW_CODEC void dq_q4_1(const uint8_t* __restrict src, float* __restrict y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q4_1), y += QK4_1) {
    const float d = h2f(src), m = h2f(src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < QK4_1 / 2; ++j) {
      y[j] = (qs[j] & 0x0F) * d + m;
      y[j + QK4_1 / 2] = (qs[j] >> 4) * d + m;
    }
  }
}

LMQ_ROW_CODEC void dq_q5_0(const uint8_t* __restrict src, float* __restrict y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q5_0), y += QK5_0) {
    const float d = h2f(src);
    const uint32_t qh = u32_at(src + 2);
    const uint8_t* qs = src + 6;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int hi0 = (qh >> j) & 1, hi1 = (qh >> (j + 16)) & 1;
      y[j] = (int((qs[j] & 0x0F) | (hi0 << 4)) - 16) * d;
      y[j + QK5_0 / 2] = (int((qs[j] >> 4) | (hi1 << 4)) - 16) * d;
    }
  }
}

LMQ_ROW_CODEC void dq_q5_1(const uint8_t* __restrict src, float* __restrict y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q5_1), y += QK5_1) {
    const float d = h2f(src), m = h2f(src + 2);
    const uint32_t qh = u32_at(src + 4);
    const uint8_t* qs = src + 8;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int hi0 = (qh >> j) & 1, hi1 = (qh >> (j + 16)) & 1;
      y[j] = int((qs[j] & 0x0F) | (hi0 << 4)) * d + m;
      y[j + QK5_1 / 2] = int((qs[j] >> 4) | (hi1 << 4)) * d + m;
    }
  }
}

LMQ_ROW_CODEC void dq_q2_K(const uint8_t* __restrict src, float* __restrict y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q2_K)) {
    const uint8_t* scales = src + offsetof(block_q2_K, scales);
    const uint8_t* qs = src + offsetof(block_q2_K, qs);
    const float d = h2f(src + offsetof(block_q2_K, d));
    const float dmin = h2f(src + offsetof(block_q2_K, dmin));
    for (int v = 0; v < QK_K; ++v) {
      const int h = v / 128, j = (v % 128) / 32, l = v % 32;
      const uint8_t sc = scales[v / 16];
      const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
      const int q = (qs[32 * h + l] >> (2 * j)) & 3;
      *y++ = dl * q - ml;
    }
  }
}

LMQ_ROW_CODEC void dq_q3_K(const uint8_t* __restrict src, float* __restrict y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q3_K)) {
    const uint8_t* hmask = src + offsetof(block_q3_K, hmask);
    const uint8_t* qs = src + offsetof(block_q3_K, qs);
    const uint8_t* scales = src + offsetof(block_q3_K, scales);
    const float d_all = h2f(src + offsetof(block_q3_K, d));
    int sc[16];
    for (int s = 0; s < 16; ++s) {
      const int lo = s < 8 ? (scales[s] & 0xF) : (scales[s - 8] >> 4);
      const int hi = (scales[8 + s % 4] >> (2 * (s / 4))) & 3;
      sc[s] = (lo | (hi << 4)) - 32;
    }
    for (int v = 0; v < QK_K; ++v) {
      const int h = v / 128, j = (v % 128) / 32, l = v % 32;
      const float dl = d_all * sc[v / 16];
      const int low = (qs[32 * h + l] >> (2 * j)) & 3;
      const int high = (hmask[l] >> (4 * h + j)) & 1;
      *y++ = dl * (low - (high ? 0 : 4));
    }
  }
}

// The 6-bit scale and min of sub-block s of a Q4_K/Q5_K block (see the header).
inline void scale_min_k4(int s, const uint8_t* q, int& sc, int& mn) {
  if (s < 4) {
    sc = q[s] & 63;
    mn = q[s + 4] & 63;
  } else {
    sc = (q[s + 4] & 0xF) | ((q[s - 4] >> 6) << 4);
    mn = (q[s + 4] >> 4) | ((q[s] >> 6) << 4);
  }
}

LMQ_ROW_CODEC void dq_q4_K(const uint8_t* __restrict src, float* __restrict y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q4_K)) {
    const float d = h2f(src + offsetof(block_q4_K, d));
    const float dmin = h2f(src + offsetof(block_q4_K, dmin));
    const uint8_t* scales = src + offsetof(block_q4_K, scales);
    const uint8_t* q = src + offsetof(block_q4_K, qs);
    for (int c = 0; c < 4; ++c, q += 32) {
      int sc, mn;
      scale_min_k4(2 * c, scales, sc, mn);
      const float d1 = d * sc, m1 = dmin * mn;
      scale_min_k4(2 * c + 1, scales, sc, mn);
      const float d2 = d * sc, m2 = dmin * mn;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

LMQ_ROW_CODEC void dq_q5_K(const uint8_t* __restrict src, float* __restrict y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q5_K)) {
    const float d = h2f(src + offsetof(block_q5_K, d));
    const float dmin = h2f(src + offsetof(block_q5_K, dmin));
    const uint8_t* scales = src + offsetof(block_q5_K, scales);
    const uint8_t* qh = src + offsetof(block_q5_K, qh);
    const uint8_t* ql = src + offsetof(block_q5_K, qs);
    for (int c = 0; c < 4; ++c, ql += 32) {
      int sc, mn;
      scale_min_k4(2 * c, scales, sc, mn);
      const float d1 = d * sc, m1 = dmin * mn;
      scale_min_k4(2 * c + 1, scales, sc, mn);
      const float d2 = d * sc, m2 = dmin * mn;
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (((qh[l] >> (2 * c)) & 1) << 4)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (((qh[l] >> (2 * c + 1)) & 1) << 4)) - m2;
    }
  }
}

LMQ_ROW_CODEC void dq_q6_K(const uint8_t* __restrict src, float* __restrict y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q6_K)) {
    const float d = h2f(src + offsetof(block_q6_K, d));
    const uint8_t* ql = src + offsetof(block_q6_K, ql);
    const uint8_t* qh = src + offsetof(block_q6_K, qh);
    const int8_t* sc = reinterpret_cast<const int8_t*>(src + offsetof(block_q6_K, scales));
    for (int h = 0; h < 2; ++h, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

// ---- reference quantizers (llama.cpp quantize_row_*_ref numerics) ----

// Index (within the block) of the first element of largest magnitude; its signed value.
inline float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// float -> int by C truncation, made defined for NaN/out-of-range inputs (llama.cpp's values
// are always in range for finite input, where this is exactly the plain cast).
inline int trunc_to_int(float v, int lo, int hi) {
  if (!(v >= float(lo))) return lo;
  if (v >= float(hi)) return hi;
  return int(v);
}

// ---- importance-weighted fits (ggml_quantize_row with an importance vector) ----
// llama.cpp's imatrix weighting: w_i = imp_i · sqrt(σ² + x_i²), σ² the mean x² of the block
// (times `sigma_mul`, 2 for the K-quants as in llama.cpp), so that both the calibration
// importance and the value's own size count.
void importance_weights(const float* x, const float* imp, int n, float sigma_mul, float* w) {
  float sum_x2 = 0;
  for (int i = 0; i < n; ++i) sum_x2 += x[i] * x[i];
  const float sigma2 = sigma_mul * sum_x2 / float(n);
  for (int i = 0; i < n; ++i) w[i] = imp[i] * std::sqrt(sigma2 + x[i] * x[i]);
}

// Weighted symmetric scale of a 32-block (Q8_0, Q4_0, Q5_0): make_qx_quants with the weights.
float weighted_sym_scale(const float* x, const float* imp, int nmax) {
  float w[32];
  int8_t L[32];
  importance_weights(x, imp, 32, 1.f, w);
  return make_qx_quants(32, nmax, x, L, w);
}

// Weighted (scale, min) of a 32-block (Q4_1, Q5_1); *min gets the (≤ 0) offset.
float weighted_asym_scale(const float* x, const float* imp, int nmax, float* min) {
  float w[32], the_min;
  uint8_t L[32], Laux[32];
  importance_weights(x, imp, 32, 1.f, w);
  const float d = make_qkx2_quants(32, nmax, x, w, L, &the_min, Laux, -1.f, 0.1f, 20, false);
  *min = -the_min;
  return d;
}

// Q8_0's and Q4_0's blocks without importance, 16 values per vector (GCC/Clang vector types,
// mapped onto each clone's registers): the scalar reference's operations in lanes, every step
// exact, so the bytes are llama.cpp's.
typedef float V16f __attribute__((vector_size(64)));
typedef int32_t V16i __attribute__((vector_size(64)));
typedef uint8_t V16b __attribute__((vector_size(16)));

// |x| of 16 values with NaN as 0 (never the largest, as in the scalar loops).
[[gnu::always_inline]] inline V16f abs_no_nan(const float* x) {
  V16f v;
  V16i bits;
  std::memcpy(&bits, x, sizeof bits);
  bits &= 0x7fffffff;
  std::memcpy(&v, &bits, sizeof v);
  const V16f zero = {};
  return v == v ? v : zero;
}
[[gnu::always_inline]] inline float max_of_lanes(V16f m) {
  float r = 0;
  for (int j = 0; j < 16; ++j) r = m[j] > r ? m[j] : r;
  return r;
}

// signed_absmax of 32 values: the first value of largest magnitude, found without a branch
// per value.
[[gnu::always_inline]] inline float signed_absmax_32(const float* x) {
  const V16f a_lo = abs_no_nan(x), a_hi = abs_no_nan(x + 16);
  const float amax = max_of_lanes(a_lo > a_hi ? a_lo : a_hi);
  if (amax == 0) return 0.0f;  // no |x| > 0: the scalar loop's initial +0
  const V16i iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const V16i at_lo = a_lo == amax ? iota : 32, at_hi = a_hi == amax ? iota + 16 : 32;
  const V16i at = at_lo < at_hi ? at_lo : at_hi;
  int first = 32;
  for (int j = 0; j < 16; ++j) first = at[j] < first ? at[j] : first;
  return x[first];
}

// Q4_0's 16 codes: min(15, trunc_to_int(x·id + 8.5, 0, 127)), NaN → 0.
[[gnu::always_inline]] inline V16b q4_0_codes(const float* x, float id) {
  V16f v;
  std::memcpy(&v, x, sizeof v);
  v = v * id + 8.5f;
  const V16f zero = {};
  v = v >= zero ? v : zero;  // also NaN → 0
  v = v >= 127.f ? 127.f : v;
  V16i q = __builtin_convertvector(v, V16i);
  q = q > 15 ? 15 : q;
  return __builtin_convertvector(q, V16b);
}

// Q8_0's 16 codes: trunc_to_int(round(x·id), −128, 127) with round half away from zero, built
// from truncation (x·id − trunc is exact); NaN → −128 as the scalar expression gives.
[[gnu::always_inline]] inline V16b q8_0_codes(const float* x, float id) {
  V16f v;
  std::memcpy(&v, x, sizeof v);
  v = v * id;
  v = v >= -200.f ? v : -200.f;  // (NaN too) out of the int8 range either way
  v = v <= 200.f ? v : 200.f;
  V16i q = __builtin_convertvector(v, V16i);
  const V16f frac = v - __builtin_convertvector(q, V16f);
  q += (frac >= 0.5f ? 1 : 0) - (frac <= -0.5f ? 1 : 0);
  q = q < -128 ? -128 : q;
  q = q > 127 ? 127 : q;
  return __builtin_convertvector(q, V16b);
}

LMQ_ROW_CODEC void q_q8_0(const float* __restrict x, uint8_t* __restrict out, int64_t nb, const float* imp) {
  for (int64_t i = 0; i < nb; ++i, x += QK8_0, out += sizeof(block_q8_0)) {
    const V16f a_lo = abs_no_nan(x), a_hi = abs_no_nan(x + 16);
    const float amax = max_of_lanes(a_lo > a_hi ? a_lo : a_hi);
    const float d = imp ? weighted_sym_scale(x, imp + i * QK8_0, 127) : amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(out, d);
    const V16b lo = q8_0_codes(x, id), hi = q8_0_codes(x + 16, id);
    std::memcpy(out + 2, &lo, sizeof lo);
    std::memcpy(out + 18, &hi, sizeof hi);
  }
}

LMQ_ROW_CODEC void q_q4_0(const float* __restrict x, uint8_t* __restrict out, int64_t nb, const float* imp) {
  for (int64_t i = 0; i < nb; ++i, x += QK4_0, out += sizeof(block_q4_0)) {
    const float d = imp ? weighted_sym_scale(x, imp + i * QK4_0, 8) : signed_absmax_32(x) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(out, d);
    const V16b qs = q4_0_codes(x, id) | (q4_0_codes(x + QK4_0 / 2, id) << 4);
    std::memcpy(out + 2, &qs, sizeof qs);
  }
}

LMQ_ROW_CODEC void q_q4_1(const float* __restrict x, uint8_t* __restrict out, int64_t nb, const float* imp) {
  for (int64_t i = 0; i < nb; ++i, x += QK4_1, out += sizeof(block_q4_1)) {
    float min = 3.402823466e+38f, max = -3.402823466e+38f;
    for (int j = 0; j < QK4_1; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = imp ? weighted_asym_scale(x, imp + i * QK4_1, 15, &min) : (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(out, d);
    f2h(out + 2, min);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const float v0 = (x[j] - min) * id;
      const float v1 = (x[j + QK4_1 / 2] - min) * id;
      const int q0 = std::min(15, trunc_to_int(v0 + 0.5f, 0, 127));
      const int q1 = std::min(15, trunc_to_int(v1 + 0.5f, 0, 127));
      out[4 + j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

LMQ_ROW_CODEC void q_q5_0(const float* __restrict x, uint8_t* __restrict out, int64_t nb, const float* imp) {
  for (int64_t i = 0; i < nb; ++i, x += QK5_0, out += sizeof(block_q5_0)) {
    const float d = imp ? weighted_sym_scale(x, imp + i * QK5_0, 16) : signed_absmax(x, QK5_0) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(out, d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int q0 = std::min(31, trunc_to_int(x[j] * id + 16.5f, 0, 127));
      const int q1 = std::min(31, trunc_to_int(x[j + QK5_0 / 2] * id + 16.5f, 0, 127));
      out[6 + j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t((q0 >> 4) & 1) << j;
      qh |= uint32_t((q1 >> 4) & 1) << (j + QK5_0 / 2);
    }
    std::memcpy(out + 2, &qh, 4);
  }
}

LMQ_ROW_CODEC void q_q5_1(const float* __restrict x, uint8_t* __restrict out, int64_t nb, const float* imp) {
  for (int64_t i = 0; i < nb; ++i, x += QK5_1, out += sizeof(block_q5_1)) {
    float min = 3.402823466e+38f, max = -3.402823466e+38f;
    for (int j = 0; j < QK5_1; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = imp ? weighted_asym_scale(x, imp + i * QK5_1, 31, &min) : (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(out, d);
    f2h(out + 2, min);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const float v0 = (x[j] - min) * id;
      const float v1 = (x[j + QK5_1 / 2] - min) * id;
      // llama.cpp does not clamp here ((uint8_t) cast); in range the values are 0..31.
      const int q0 = trunc_to_int(v0 + 0.5f, 0, 31);
      const int q1 = trunc_to_int(v1 + 0.5f, 0, 31);
      out[8 + j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t((q0 >> 4) & 1) << j;
      qh |= uint32_t((q1 >> 4) & 1) << (j + QK5_1 / 2);
    }
    std::memcpy(out + 4, &qh, 4);
  }
}

// ---- K-quant reference quantizers (llama.cpp quantize_row_q*_K_ref numerics) ----
// Written from ggml-quants.c's algorithms: per sub-block scale (and min) fits, then the
// scales themselves quantized to 4/6/8 bits against an f16 super-scale, then every value
// re-quantized against the stored scale. Operation order and float types follow the
// reference so that the bytes match llama-quantize (without an importance matrix).

// Symmetric fit with a search over 19 candidate scales (make_qx_quants, rmse_type 1 when
// qw is null: weights x², else the given weights). L gets codes in 0..2·nmax-1.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* qw) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = int8_t(l + nmax);
    const float w = qw ? qw[i] : x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = qw ? qw[i] : x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Symmetric 3-bit fit with coordinate-descent refinement (make_q3_quants, do_rmse = true).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = std::max(-nmax, std::min(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric (scale, min) fit by weighted least squares over nstep+1 candidate scales
// (make_qkx2_quants). Returns the scale; *the_min gets -min (>= 0).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = uint8_t(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Packs the 2-bit codes of 256 values as Q2_K / Q3_K store them.
inline void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < QK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

void set_k4_codes(uint8_t* qs, uint8_t* qh, const uint8_t* L);

LMQ_ROW_CODEC void q_q2_K(const float* __restrict x, uint8_t* __restrict out, int64_t nb, const float* imp) {
  uint8_t L[QK_K];
  float weights[QK_K], mins[QK_K / 16], scales[QK_K / 16];
  const float q4scale = 15.f;
  for (int64_t i = 0; i < nb; ++i, x += QK_K, out += sizeof(block_q2_K)) {
    block_q2_K y{};
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      if (imp) importance_weights(x + 16 * j, imp + i * QK_K + 16 * j, 16, 1.f, weights + 16 * j);
      else for (int l = 0; l < 16; ++l) weights[16 * j + l] = std::fabs(x[16 * j + l]);
    }
    for (int h = 0; h < 2; ++h)  // make_qkx2_quants(16, 3, …, -0.5f, 0.1f, 15, !imp) per sub-block
      make_qkx2_quants_x8(16, 3, x + 128 * h, weights + 128 * h, L + 128 * h, scales + 8 * h, mins + 8 * h, -0.5f,
                          0.1f, 15, !imp);
    for (int j = 0; j < QK_K / 16; ++j) {
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) y.scales[j] = uint8_t(nearest_int(iscale * scales[j]));
      y.d = f32_to_f16(max_scale / q4scale);
    } else {
      y.d = f32_to_f16(0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < QK_K / 16; ++j) y.scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
      y.dmin = f32_to_f16(max_min / q4scale);
    } else {
      y.dmin = f32_to_f16(0.f);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = f16_to_f32(y.d) * (y.scales[j] & 0xF);
      if (!d) continue;
      const float dm = f16_to_f32(y.dmin) * (y.scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = uint8_t(std::max(0, std::min(3, l)));
      }
    }
    pack_2bit(L, y.qs);
    std::memcpy(out, &y, sizeof y);
    if (imp) refine_q2_K(x, imp + i * QK_K, out);
  }
}

LMQ_ROW_CODEC void q_q3_K(const float* __restrict x, uint8_t* __restrict out, int64_t nb, const float* imp) {
  int8_t L[QK_K];
  float scales[QK_K / 16], w[QK_K];
  for (int64_t i = 0; i < nb; ++i, x += QK_K, out += sizeof(block_q3_K)) {
    block_q3_K y{};
    float max_scale = 0, amax = 0;
    // per sub-block: make_qx_quants(16, 4, …, weights) with importance, else make_q3_quants(16, 4, …)
    if (imp) {
      for (int j = 0; j < QK_K / 16; ++j) importance_weights(x + 16 * j, imp + i * QK_K + 16 * j, 16, 1.f, w + 16 * j);
      make_qx_quants_x16(16, 4, x, L, w, scales);
    } else {
      make_q3_quants_x16(16, 4, x, L, scales);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      const float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }
    if (max_scale) {
      const float iscale = -32.f / max_scale;
      int sc[QK_K / 16];
      for (int j = 0; j < QK_K / 16; ++j) sc[j] = std::max(-32, std::min(31, int(int8_t(nearest_int(iscale * scales[j])))));
      pack_q3_scales(sc, y.scales);
      y.d = f32_to_f16(1 / iscale);
    } else {
      y.d = f32_to_f16(0.f);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      int sc = j < 8 ? y.scales[j] & 0xF : y.scales[j - 8] >> 4;
      sc = (sc | (((y.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
      const float d = f16_to_f32(y.d) * float(sc);
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = int8_t(std::max(-4, std::min(3, l)) + 4);
      }
    }
    std::memcpy(out, &y, sizeof y);
    ggml_block_set_codes(Format::Q3_K, out, reinterpret_cast<const uint8_t*>(L));
    if (imp) refine_q3_K(x, imp + i * QK_K, out);
  }
}

// Q4_K / Q5_K share the scale/min fit and packing; nmax 15 or 31.
template <int NMAX>
void fit_k_scales(const float* x, const float* imp, uint8_t* scales12, uint16_t& d16, uint16_t& dmin16, uint8_t* L) {
  float weights[QK_K], mins[QK_K / 32], scales[QK_K / 32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < QK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    if (imp) importance_weights(x + 32 * j, imp + 32 * j, 32, 2.f, weights + 32 * j);
    else for (int l = 0; l < 32; ++l) weights[32 * j + l] = av_x + std::fabs(x[32 * j + l]);
  }
  // make_qkx2_quants(32, NMAX, …) per sub-block, all 8 at once
  if (NMAX == 15) make_qkx2_quants_x8(32, 15, x, weights, L, scales, mins, -1.f, 0.1f, 20, false);
  else make_qkx2_quants_x8(32, 31, x, weights, L, scales, mins, -0.5f, 0.1f, 15, false);
  for (int j = 0; j < QK_K / 32; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t ls = uint8_t(nearest_int(inv_scale * scales[j]));
    uint8_t lm = uint8_t(nearest_int(inv_min * mins[j]));
    ls = std::min<uint8_t>(63, ls);
    lm = std::min<uint8_t>(63, lm);
    if (j < 4) {
      scales12[j] = ls;
      scales12[j + 4] = lm;
    } else {
      scales12[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
      scales12[j - 4] |= uint8_t((ls >> 4) << 6);
      scales12[j - 0] |= uint8_t((lm >> 4) << 6);
    }
  }
  d16 = f32_to_f16(max_scale / 63.f);
  dmin16 = f32_to_f16(max_min / 63.f);
  for (int j = 0; j < QK_K / 32; ++j) {
    int sc, m;
    scale_min_k4(j, scales12, sc, m);
    const float d = f16_to_f32(d16) * float(sc);
    if (!d) continue;
    const float dm = f16_to_f32(dmin16) * float(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = uint8_t(std::max(0, std::min(NMAX, l)));
    }
  }
}

LMQ_ROW_CODEC void q_q4_K(const float* __restrict x, uint8_t* __restrict out, int64_t nb, const float* imp) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, x += QK_K, out += sizeof(block_q4_K)) {
    block_q4_K y{};
    fit_k_scales<15>(x, imp ? imp + i * QK_K : nullptr, y.scales, y.d, y.dmin, L);
    set_k4_codes(y.qs, nullptr, L);
    std::memcpy(out, &y, sizeof y);
  }
}

LMQ_ROW_CODEC void q_q5_K(const float* __restrict x, uint8_t* __restrict out, int64_t nb, const float* imp) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, x += QK_K, out += sizeof(block_q5_K)) {
    block_q5_K y{};
    fit_k_scales<31>(x, imp ? imp + i * QK_K : nullptr, y.scales, y.d, y.dmin, L);
    set_k4_codes(y.qs, y.qh, L);
    std::memcpy(out, &y, sizeof y);
  }
}

LMQ_ROW_CODEC void q_q6_K(const float* __restrict x, uint8_t* __restrict out, int64_t nb, const float* imp) {
  int8_t L[QK_K];
  float scales[QK_K / 16], w[QK_K];
  for (int64_t i = 0; i < nb; ++i, x += QK_K, out += sizeof(block_q6_K)) {
    block_q6_K y{};
    float max_scale = 0, max_abs_scale = 0;
    if (imp)
      for (int ib = 0; ib < QK_K / 16; ++ib) importance_weights(x + 16 * ib, imp + i * QK_K + 16 * ib, 16, 1.f, w + 16 * ib);
    make_qx_quants_x16(16, 32, x, L, imp ? w : nullptr, scales);  // make_qx_quants(16, 32, …) per sub-block
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      const float scale = scales[ib];
      const float abs_scale = std::fabs(scale);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scale;
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      y.d = f32_to_f16(0.f);
      std::memcpy(out, &y, sizeof y);
      continue;
    }
    const float iscale = -128.f / max_scale;
    y.d = f32_to_f16(1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib) y.scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = f16_to_f32(y.d) * float(y.scales[j]);
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = int8_t(std::max(-32, std::min(31, l)) + 32);
      }
    }
    std::memcpy(out, &y, sizeof y);
    codes_q6_K(out, reinterpret_cast<const uint8_t*>(L));
  }
}

// Floats as ggml stores them (block size 1): F32 as is, F16 and BF16 widened.
LMQ_ROW_CODEC void dq_f32(const uint8_t* __restrict src, float* __restrict y, int64_t n) { std::memcpy(y, src, size_t(n) * 4); }
LMQ_ROW_CODEC void dq_f16(const uint8_t* __restrict src, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = h2f(src + 2 * i);
}
LMQ_ROW_CODEC void dq_bf16(const uint8_t* __restrict src, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(u16_at(src + 2 * i));
}

// ---- grids and codes of one block (ggml_block_grids / ggml_block_set_codes) ----

// The 6-bit signed scales of a Q3_K block (see the header), minus 32.
void q3_scales(const uint8_t* scales, int* sc) {
  for (int s = 0; s < 16; ++s) {
    const int lo = s < 8 ? (scales[s] & 0xF) : (scales[s - 8] >> 4);
    const int hi = (scales[8 + s % 4] >> (2 * (s / 4))) & 3;
    sc[s] = (lo | (hi << 4)) - 32;
  }
}

void pack_q3_scales(const int* sc, uint8_t* scales) {
  std::memset(scales, 0, 12);
  for (int j = 0; j < 16; ++j) {
    const int l = sc[j] + 32;
    if (j < 8) scales[j] = uint8_t(l & 0xF);
    else scales[j - 8] |= uint8_t((l & 0xF) << 4);
    scales[j % 4 + 8] |= uint8_t((l >> 4) << (2 * (j / 4)));
  }
}

void set_nearest_codes(Format f, const float* x, uint8_t* block) {
  GgmlGrid g[QK_K / 16];
  uint8_t L[QK_K];
  ggml_block_grids(f, block, g);
  const int64_t bs = ggml_block_size(f), sub = ggml_sub_block_size(f);
  for (int64_t i = 0; i < bs; ++i) L[i] = uint8_t(ggml_grid_nearest(g[i / sub], x[i]));
  ggml_block_set_codes(f, block, L);
}

// Q4_0/Q5_0/Q4_1/Q5_1: low nibbles of values j and j+16 share byte j; the 5th bits go to qh.
void set_legacy_codes(uint8_t* qs, uint8_t* qh, const uint8_t* codes) {
  uint32_t h = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = uint8_t((codes[j] & 0xF) | ((codes[j + 16] & 0xF) << 4));
    h |= uint32_t((codes[j] >> 4) & 1) << j;
    h |= uint32_t((codes[j + 16] >> 4) & 1) << (j + 16);
  }
  if (qh) std::memcpy(qh, &h, 4);
}

void set_k4_codes(uint8_t* qs, uint8_t* qh, const uint8_t* L) {
  if (qh) std::memset(qh, 0, QK_K / 8);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      const int l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
      qs[32 * c + l] = uint8_t((l1 & 0xF) | ((l2 & 0xF) << 4));
      if (qh) qh[l] = uint8_t(qh[l] | (((l1 >> 4) & 1) << (2 * c)) | (((l2 >> 4) & 1) << (2 * c + 1)));
    }
}

void grids_q8_0(const uint8_t* b, GgmlGrid* g) { g[0] = {h2f(b), 0.f, 128, 255}; }
void grids_q4_0(const uint8_t* b, GgmlGrid* g) { g[0] = {h2f(b), 0.f, 8, 15}; }
void grids_q5_0(const uint8_t* b, GgmlGrid* g) { g[0] = {h2f(b), 0.f, 16, 31}; }
void grids_q4_1(const uint8_t* b, GgmlGrid* g) { g[0] = {h2f(b), h2f(b + 2), 0, 15}; }
void grids_q5_1(const uint8_t* b, GgmlGrid* g) { g[0] = {h2f(b), h2f(b + 2), 0, 31}; }
void grids_q2_K(const uint8_t* b, GgmlGrid* g) {
  const float d = h2f(b + offsetof(block_q2_K, d)), dmin = h2f(b + offsetof(block_q2_K, dmin));
  for (int s = 0; s < 16; ++s) {
    const uint8_t sc = b[offsetof(block_q2_K, scales) + s];
    g[s] = {d * (sc & 0xF), -(dmin * (sc >> 4)), 0, 3};
  }
}
void grids_q3_K(const uint8_t* b, GgmlGrid* g) {
  int sc[16];
  q3_scales(b + offsetof(block_q3_K, scales), sc);
  const float d = h2f(b + offsetof(block_q3_K, d));
  for (int s = 0; s < 16; ++s) g[s] = {d * sc[s], 0.f, 4, 7};
}
// Q4_K and Q5_K: the same scales, codes up to qmax.
void grids_k4(const uint8_t* b, GgmlGrid* g, int qmax) {
  static_assert(offsetof(block_q4_K, scales) == offsetof(block_q5_K, scales));
  const float d = h2f(b), dmin = h2f(b + 2);
  for (int s = 0; s < 8; ++s) {
    int sc, mn;
    scale_min_k4(s, b + offsetof(block_q4_K, scales), sc, mn);
    g[s] = {d * sc, -(dmin * mn), 0, qmax};
  }
}
void grids_q4_K(const uint8_t* b, GgmlGrid* g) { grids_k4(b, g, 15); }
void grids_q5_K(const uint8_t* b, GgmlGrid* g) { grids_k4(b, g, 31); }
void grids_q6_K(const uint8_t* b, GgmlGrid* g) {
  const float d = h2f(b + offsetof(block_q6_K, d));
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + offsetof(block_q6_K, scales));
  for (int s = 0; s < 16; ++s) g[s] = {d * sc[s], 0.f, 32, 63};
}

void codes_q8_0(uint8_t* b, const uint8_t* L) {
  for (int j = 0; j < 32; ++j) b[2 + j] = uint8_t(int8_t(int(L[j]) - 128));
}
void codes_q4_0(uint8_t* b, const uint8_t* L) { set_legacy_codes(b + 2, nullptr, L); }
void codes_q4_1(uint8_t* b, const uint8_t* L) { set_legacy_codes(b + 4, nullptr, L); }
void codes_q5_0(uint8_t* b, const uint8_t* L) { set_legacy_codes(b + 6, b + 2, L); }
void codes_q5_1(uint8_t* b, const uint8_t* L) { set_legacy_codes(b + 8, b + 4, L); }
void codes_q2_K(uint8_t* b, const uint8_t* L) { pack_2bit(L, b + offsetof(block_q2_K, qs)); }
void codes_q3_K(uint8_t* b, const uint8_t* L) {
  uint8_t* hmask = b + offsetof(block_q3_K, hmask);
  uint8_t U[QK_K];
  std::memset(hmask, 0, QK_K / 8);
  for (int j = 0; j < QK_K; ++j) {
    U[j] = uint8_t(L[j] & 3);
    if (L[j] > 3) hmask[j % 32] = uint8_t(hmask[j % 32] | (1 << (j / 32)));
  }
  pack_2bit(U, b + offsetof(block_q3_K, qs));
}
void codes_q4_K(uint8_t* b, const uint8_t* L) { set_k4_codes(b + offsetof(block_q4_K, qs), nullptr, L); }
void codes_q5_K(uint8_t* b, const uint8_t* L) {
  set_k4_codes(b + offsetof(block_q5_K, qs), b + offsetof(block_q5_K, qh), L);
}
void codes_q6_K(uint8_t* b, const uint8_t* L) {
  uint8_t* ql = b + offsetof(block_q6_K, ql);
  uint8_t* qh = b + offsetof(block_q6_K, qh);
  for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* q = L + j + l;
      ql[l] = uint8_t((q[0] & 0xF) | ((q[64] & 0xF) << 4));
      ql[l + 32] = uint8_t((q[32] & 0xF) | ((q[96] & 0xF) << 4));
      qh[l] = uint8_t((q[0] >> 4) | ((q[32] >> 4) << 2) | ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
    }
}

}  // namespace lmq::ggml

// ---- the public entry points: every per-format choice comes from the traits table ----
namespace lmq {
namespace {

// The row of a ggml storage type (floats or blocks); other formats are refused.
const FormatTraits& ggml_traits(Format f) {
  const FormatTraits& t = format_traits(f);
  if (!t.ggml) fail("format {} is not a ggml block format", t.upper);
  return t;
}

int64_t whole_blocks(const FormatTraits& t, int64_t k, const char* what) {
  const int64_t bs = t.block_size;
  if (k < 0 || k % bs != 0)
    fail("{}: {} values is not a whole number of {}-value {} blocks", what, k, bs, t.upper);
  return k / bs;
}

}  // namespace

int64_t ggml_block_size(Format f) { return ggml_traits(f).block_size; }
size_t ggml_block_bytes(Format f) { return ggml_traits(f).block_bytes; }

uint64_t ggml_row_bytes(Format f, int64_t k) {
  const FormatTraits& t = ggml_traits(f);
  const int64_t nb = whole_blocks(t, k, "ggml row");
  return checked_mul(uint64_t(nb), t.block_bytes, "ggml row");
}

void ggml_dequantize_row(Format f, const uint8_t* src, float* dst, int64_t k) {
  const FormatTraits& t = ggml_traits(f);
  t.dequantize_row(src, dst, whole_blocks(t, k, "ggml_dequantize_row"));
}

void ggml_quantize_row(Format f, const float* src, uint8_t* dst, int64_t k, const float* importance) {
  const FormatTraits& t = format_traits(f);
  if (!t.quantize_row) fail("ggml_quantize_row: no reference quantizer for {}", t.upper);
  t.quantize_row(src, dst, whole_blocks(t, k, "ggml_quantize_row"), importance);
}

int ggml_grid_nearest(const GgmlGrid& g, float x) {
  if (g.levels) {  // a few levels: try them all (the first of equally near ones)
    int best = 0;
    for (int q = 1; q <= g.qmax; ++q)
      if (std::fabs(x - ggml_grid_value(g, q)) < std::fabs(x - ggml_grid_value(g, best))) best = q;
    return best;
  }
  if (g.a == 0) return std::clamp(g.off, 0, g.qmax);
  const float t = (x - g.c) / g.a + float(g.off);
  int q = !(t > 0) ? 0 : t >= float(g.qmax) ? g.qmax : int(std::lrint(t));
  // (x − c)/a rounds; the neighbours settle which code's float value is really nearest
  int best = q;
  float be = std::fabs(x - ggml_grid_value(g, q));
  for (int n : {q - 1, q + 1})
    if (n >= 0 && n <= g.qmax && std::fabs(x - ggml_grid_value(g, n)) < be) {
      best = n;
      be = std::fabs(x - ggml_grid_value(g, n));
    }
  return best;
}

int64_t ggml_sub_block_size(Format f) {
  const FormatTraits& t = ggml_traits(f);
  if (t.sub_block_size == 0) fail("format {} has no sub-blocks (not a quantized ggml format)", t.upper);
  return t.sub_block_size;
}

void ggml_block_grids(Format f, const uint8_t* b, GgmlGrid* g) {
  const FormatTraits& t = format_traits(f);
  if (!t.block_grids) fail("ggml_block_grids: {} is not a quantized ggml format", t.upper);
  t.block_grids(b, g);
}

void ggml_block_set_codes(Format f, uint8_t* b, const uint8_t* L) {
  const FormatTraits& t = format_traits(f);
  if (!t.set_codes) fail("ggml_block_set_codes: {} is not a quantized ggml format", t.upper);
  t.set_codes(b, L);
}

}  // namespace lmq
