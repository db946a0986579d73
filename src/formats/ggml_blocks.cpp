// Scalar (de)quantization of ggml's block formats. Written from ggml's documented layouts
// (see the header); the arithmetic mirrors llama.cpp's reference code operation for operation
// so results match it bit for bit on IEEE float hardware without -ffast-math / FMA contraction.
#include "lmq/formats/ggml_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lmq/error.h"
#include "lmq/half.h"

namespace lmq {
namespace {

using namespace ggml;

inline float h2f(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
inline void f2h(uint8_t* p, float f) {
  uint16_t h = f32_to_f16(f);
  std::memcpy(p, &h, 2);
}

std::string_view name_of(Format f) {
  switch (f) {
    case Format::F32: return "F32";
    case Format::F16: return "F16";
    case Format::BF16: return "BF16";
    case Format::I32: return "I32";
    case Format::LMQ_INT: return "LMQ_INT";
    case Format::Q8_0: return "Q8_0";
    case Format::Q4_0: return "Q4_0";
    case Format::Q4_1: return "Q4_1";
    case Format::Q5_0: return "Q5_0";
    case Format::Q5_1: return "Q5_1";
    case Format::Q2_K: return "Q2_K";
    case Format::Q3_K: return "Q3_K";
    case Format::Q4_K: return "Q4_K";
    case Format::Q5_K: return "Q5_K";
    case Format::Q6_K: return "Q6_K";
  }
  return "?";
}

void dq_q8_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q8_0), y += QK8_0) {
    const float d = h2f(src);
    const int8_t* qs = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < QK8_0; ++j) y[j] = qs[j] * d;
  }
}

void dq_q4_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q4_0), y += QK4_0) {
    const float d = h2f(src);
    const uint8_t* qs = src + 2;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      y[j] = ((qs[j] & 0x0F) - 8) * d;
      y[j + QK4_0 / 2] = ((qs[j] >> 4) - 8) * d;
    }
  }
}

void dq_q4_1(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q4_1), y += QK4_1) {
    const float d = h2f(src), m = h2f(src + 2);
    const uint8_t* qs = src + 4;
    for (int j = 0; j < QK4_1 / 2; ++j) {
      y[j] = (qs[j] & 0x0F) * d + m;
      y[j + QK4_1 / 2] = (qs[j] >> 4) * d + m;
    }
  }
}

void dq_q5_0(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q5_0), y += QK5_0) {
    const float d = h2f(src);
    uint32_t qh;
    std::memcpy(&qh, src + 2, 4);
    const uint8_t* qs = src + 6;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int hi0 = (qh >> j) & 1, hi1 = (qh >> (j + 16)) & 1;
      y[j] = (int((qs[j] & 0x0F) | (hi0 << 4)) - 16) * d;
      y[j + QK5_0 / 2] = (int((qs[j] >> 4) | (hi1 << 4)) - 16) * d;
    }
  }
}

void dq_q5_1(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_q5_1), y += QK5_1) {
    const float d = h2f(src), m = h2f(src + 2);
    uint32_t qh;
    std::memcpy(&qh, src + 4, 4);
    const uint8_t* qs = src + 8;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int hi0 = (qh >> j) & 1, hi1 = (qh >> (j + 16)) & 1;
      y[j] = int((qs[j] & 0x0F) | (hi0 << 4)) * d + m;
      y[j + QK5_1 / 2] = int((qs[j] >> 4) | (hi1 << 4)) * d + m;
    }
  }
}

void dq_q2_K(const uint8_t* src, float* y, int64_t nb) {
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

void dq_q3_K(const uint8_t* src, float* y, int64_t nb) {
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

void dq_q4_K(const uint8_t* src, float* y, int64_t nb) {
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

void dq_q5_K(const uint8_t* src, float* y, int64_t nb) {
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

void dq_q6_K(const uint8_t* src, float* y, int64_t nb) {
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

void q_q8_0(const float* x, uint8_t* out, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK8_0, out += sizeof(block_q8_0)) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(out, d);
    for (int j = 0; j < QK8_0; ++j) {
      const float r = std::round(x[j] * id);  // roundf: halves away from zero
      out[2 + j] = uint8_t(int8_t(trunc_to_int(r, -128, 127)));
    }
  }
}

void q_q4_0(const float* x, uint8_t* out, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK4_0, out += sizeof(block_q4_0)) {
    const float d = signed_absmax(x, QK4_0) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    f2h(out, d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const int q0 = std::min(15, trunc_to_int(x[j] * id + 8.5f, 0, 127));
      const int q1 = std::min(15, trunc_to_int(x[j + QK4_0 / 2] * id + 8.5f, 0, 127));
      out[2 + j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void q_q4_1(const float* x, uint8_t* out, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK4_1, out += sizeof(block_q4_1)) {
    float min = 3.402823466e+38f, max = -3.402823466e+38f;
    for (int j = 0; j < QK4_1; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15.0f;
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

void q_q5_0(const float* x, uint8_t* out, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK5_0, out += sizeof(block_q5_0)) {
    const float d = signed_absmax(x, QK5_0) / -16.0f;
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

void q_q5_1(const float* x, uint8_t* out, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK5_1, out += sizeof(block_q5_1)) {
    float min = 3.402823466e+38f, max = -3.402823466e+38f;
    for (int j = 0; j < QK5_1; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 31.0f;
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

int64_t whole_blocks(Format f, int64_t k, const char* what) {
  const int64_t bs = ggml_block_size(f);
  if (k < 0 || k % bs != 0)
    fail("{}: {} values is not a whole number of {}-value {} blocks", what, k, bs, name_of(f));
  return k / bs;
}

}  // namespace

int64_t ggml_block_size(Format f) {
  switch (f) {
    case Format::F32:
    case Format::F16:
    case Format::BF16: return 1;
    case Format::Q8_0:
    case Format::Q4_0:
    case Format::Q4_1:
    case Format::Q5_0:
    case Format::Q5_1: return 32;
    case Format::Q2_K:
    case Format::Q3_K:
    case Format::Q4_K:
    case Format::Q5_K:
    case Format::Q6_K: return ggml::QK_K;
    default: fail("format {} is not a ggml block format", name_of(f));
  }
}

size_t ggml_block_bytes(Format f) {
  switch (f) {
    case Format::F32: return 4;
    case Format::F16:
    case Format::BF16: return 2;
    case Format::Q8_0: return sizeof(ggml::block_q8_0);
    case Format::Q4_0: return sizeof(ggml::block_q4_0);
    case Format::Q4_1: return sizeof(ggml::block_q4_1);
    case Format::Q5_0: return sizeof(ggml::block_q5_0);
    case Format::Q5_1: return sizeof(ggml::block_q5_1);
    case Format::Q2_K: return sizeof(ggml::block_q2_K);
    case Format::Q3_K: return sizeof(ggml::block_q3_K);
    case Format::Q4_K: return sizeof(ggml::block_q4_K);
    case Format::Q5_K: return sizeof(ggml::block_q5_K);
    case Format::Q6_K: return sizeof(ggml::block_q6_K);
    default: fail("format {} is not a ggml block format", name_of(f));
  }
}

uint64_t ggml_row_bytes(Format f, int64_t k) {
  const int64_t nb = whole_blocks(f, k, "ggml row");
  return checked_mul(uint64_t(nb), ggml_block_bytes(f), "ggml row");
}

void ggml_dequantize_row(Format f, const uint8_t* src, float* dst, int64_t k) {
  const int64_t nb = whole_blocks(f, k, "ggml_dequantize_row");
  switch (f) {
    case Format::F32: std::memcpy(dst, src, size_t(k) * 4); return;
    case Format::F16:
      for (int64_t i = 0; i < k; ++i) dst[i] = h2f(src + 2 * i);
      return;
    case Format::BF16:
      for (int64_t i = 0; i < k; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case Format::Q8_0: return dq_q8_0(src, dst, nb);
    case Format::Q4_0: return dq_q4_0(src, dst, nb);
    case Format::Q4_1: return dq_q4_1(src, dst, nb);
    case Format::Q5_0: return dq_q5_0(src, dst, nb);
    case Format::Q5_1: return dq_q5_1(src, dst, nb);
    case Format::Q2_K: return dq_q2_K(src, dst, nb);
    case Format::Q3_K: return dq_q3_K(src, dst, nb);
    case Format::Q4_K: return dq_q4_K(src, dst, nb);
    case Format::Q5_K: return dq_q5_K(src, dst, nb);
    case Format::Q6_K: return dq_q6_K(src, dst, nb);
    default: fail("ggml_dequantize_row: format {} is not a ggml format", name_of(f));
  }
}

void ggml_quantize_row(Format f, const float* src, uint8_t* dst, int64_t k) {
  switch (f) {
    case Format::Q8_0: return q_q8_0(src, dst, whole_blocks(f, k, "ggml_quantize_row"));
    case Format::Q4_0: return q_q4_0(src, dst, whole_blocks(f, k, "ggml_quantize_row"));
    case Format::Q4_1: return q_q4_1(src, dst, whole_blocks(f, k, "ggml_quantize_row"));
    case Format::Q5_0: return q_q5_0(src, dst, whole_blocks(f, k, "ggml_quantize_row"));
    case Format::Q5_1: return q_q5_1(src, dst, whole_blocks(f, k, "ggml_quantize_row"));
    default: fail("ggml_quantize_row: no reference quantizer for {}", name_of(f));
  }
}

}  // namespace lmq
