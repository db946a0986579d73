// ggml block formats: sizes, reference quantizer numerics, quantize->dequantize error bounds.
#include "lmq/codecs/ggml_blocks.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lmq/error.h"
#include "lmq/half.h"

using namespace lmq;

TEST(GgmlBlocks, SizesMatchGgml) {
  EXPECT_EQ(ggml_block_bytes(Format::Q8_0), 34u);
  EXPECT_EQ(ggml_block_bytes(Format::Q4_0), 18u);
  EXPECT_EQ(ggml_block_bytes(Format::Q4_1), 20u);
  EXPECT_EQ(ggml_block_bytes(Format::Q5_0), 22u);
  EXPECT_EQ(ggml_block_bytes(Format::Q5_1), 24u);
  EXPECT_EQ(ggml_block_bytes(Format::Q2_K), 84u);
  EXPECT_EQ(ggml_block_bytes(Format::Q3_K), 110u);
  EXPECT_EQ(ggml_block_bytes(Format::Q4_K), 144u);
  EXPECT_EQ(ggml_block_bytes(Format::Q5_K), 176u);
  EXPECT_EQ(ggml_block_bytes(Format::Q6_K), 210u);
  EXPECT_EQ(ggml_block_size(Format::Q4_0), 32);
  EXPECT_EQ(ggml_block_size(Format::Q6_K), 256);
  EXPECT_EQ(ggml_block_size(Format::F16), 1);
  EXPECT_EQ(ggml_row_bytes(Format::Q4_K, 512), 288u);
  EXPECT_THROW(ggml_row_bytes(Format::Q4_K, 384), Error);
  EXPECT_THROW(ggml_block_size(Format::LMQ_INT), Error);
}

TEST(GgmlBlocks, RejectsPartialBlocks) {
  std::vector<uint8_t> buf(1000);
  std::vector<float> out(1000);
  EXPECT_THROW(ggml_dequantize_row(Format::Q8_0, buf.data(), out.data(), 33), Error);
  EXPECT_THROW(ggml_dequantize_row(Format::Q3_K, buf.data(), out.data(), 128), Error);
  EXPECT_THROW(ggml_quantize_row(Format::Q4_0, out.data(), buf.data(), 16), Error);
  EXPECT_THROW(ggml_quantize_row(Format::Q4_K, out.data(), buf.data(), 128), Error);  // K-quants: blocks of 256
  EXPECT_THROW(ggml_quantize_row(Format::I32, out.data(), buf.data(), 256), Error);   // not a ggml format
}

// Hand-checked values of llama.cpp's quantize_row_q8_0_ref: with amax = 127 the scale is 1 and
// codes are roundf(x): halves round away from zero (not to even).
TEST(GgmlBlocks, Q8_0RoundsHalvesAwayFromZero) {
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = 0.5f;
  x[2] = -2.5f;
  x[3] = 1.49f;
  x[4] = -126.5f;
  std::vector<uint8_t> q(34);
  ggml_quantize_row(Format::Q8_0, x.data(), q.data(), 32);
  uint16_t d;
  std::memcpy(&d, q.data(), 2);
  EXPECT_EQ(d, 0x3c00);  // f16 1.0
  const int8_t* qs = reinterpret_cast<const int8_t*>(q.data() + 2);
  EXPECT_EQ(qs[0], 127);
  EXPECT_EQ(qs[1], 1);
  EXPECT_EQ(qs[2], -3);
  EXPECT_EQ(qs[3], 1);
  EXPECT_EQ(qs[4], -127);
  EXPECT_EQ(qs[5], 0);
}

// quantize_row_q4_0_ref: d = (signed value of largest magnitude) / -8, code = min(15,
// trunc(x/d + 8.5)); so the extreme maps to code 0 and its opposite clamps at 15.
TEST(GgmlBlocks, Q4_0HandChecked) {
  std::vector<float> x(32, 0.0f);
  x[0] = -8.0f;  // d = 1
  x[1] = 0.5f;   // 9.0 -> 9
  x[2] = -0.5f;  // 8.0 -> 8
  x[3] = 7.6f;   // 16.1 -> 16 -> 15
  x[16] = 8.0f;  // tie in magnitude with x[0]: the first one wins; 16.5 -> 15
  x[17] = 3.49f;  // 11.99 -> 11
  std::vector<uint8_t> q(18);
  ggml_quantize_row(Format::Q4_0, x.data(), q.data(), 32);
  uint16_t d;
  std::memcpy(&d, q.data(), 2);
  EXPECT_EQ(f16_to_f32(d), 1.0f);
  auto code = [&](int j) { return j < 16 ? (q[2 + j] & 15) : (q[2 + j - 16] >> 4); };
  EXPECT_EQ(code(0), 0);
  EXPECT_EQ(code(1), 9);
  EXPECT_EQ(code(2), 8);
  EXPECT_EQ(code(3), 15);
  EXPECT_EQ(code(4), 8);
  EXPECT_EQ(code(16), 15);
  EXPECT_EQ(code(17), 11);
  std::vector<float> y(32);
  ggml_dequantize_row(Format::Q4_0, q.data(), y.data(), 32);
  EXPECT_EQ(y[0], -8.0f);
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_EQ(y[16], 7.0f);
}

namespace {

struct Case {
  Format f;
  int nmax;  // largest code magnitude in steps of d (what the f16 rounding of d is multiplied by)
  bool has_min;
};

// Error bound for one block: half a step (the rounding) + what the f16 rounding of d (and m)
// moves a code of at most nmax steps + a relative epsilon for float arithmetic. The symmetric
// 4/5-bit formats clamp values opposite to the extreme one code short (+8d is stored as 7d in
// Q4_0), so those get a full step.
void check_roundtrip(const Case& c, const std::vector<float>& x) {
  const int64_t k = int64_t(x.size());
  std::vector<uint8_t> q(size_t(ggml_row_bytes(c.f, k)));
  ggml_quantize_row(c.f, x.data(), q.data(), k);
  std::vector<float> y(x.size());
  ggml_dequantize_row(c.f, q.data(), y.data(), k);
  const size_t bb = ggml_block_bytes(c.f);
  for (int64_t b = 0; b < k / 32; ++b) {
    const float* xb = x.data() + 32 * b;
    float mn = xb[0], mx = xb[0], amax = 0, smax = 0;
    for (int j = 0; j < 32; ++j) {
      mn = std::min(mn, xb[j]);
      mx = std::max(mx, xb[j]);
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        smax = xb[j];
      }
    }
    uint16_t dh_bits, mh_bits = 0;
    std::memcpy(&dh_bits, q.data() + b * bb, 2);
    if (c.has_min) std::memcpy(&mh_bits, q.data() + b * bb + 2, 2);
    const double dh = std::fabs(f16_to_f32(dh_bits)), mh = f16_to_f32(mh_bits);
    const double d_exact = c.has_min ? (double(mx) - mn) / c.nmax : amax / double(c.nmax);
    const double f16_err = c.nmax * std::fabs(dh - d_exact) + (c.has_min ? std::fabs(mh - mn) : 0.0);
    const double eps = 1e-6 * (std::fabs(mx) + std::fabs(mn)) + 1e-30;
    for (int j = 0; j < 32; ++j) {
      const double err = std::fabs(double(y[32 * b + j]) - xb[j]);
      const bool clampable = !c.has_min && c.f != Format::Q8_0 && xb[j] * smax < 0 &&
                             std::fabs(xb[j]) > (c.nmax - 0.5) * d_exact * (1 - 1e-6);
      const double bound = (clampable ? 1.0 : 0.5) * dh + f16_err + eps;
      ASSERT_LE(err, bound) << "format " << int(c.f) << " block " << b << " j " << j << " x " << xb[j];
    }
  }
}

const Case kCases[] = {
    {Format::Q8_0, 127, false}, {Format::Q4_0, 8, false}, {Format::Q5_0, 16, false},
    {Format::Q4_1, 15, true},   {Format::Q5_1, 31, true},
};

}  // namespace

TEST(GgmlBlocks, QuantizeDequantizeErrorBounds) {
  std::mt19937 rng(1234);
  for (const Case& c : kCases) {
    std::vector<float> x(32 * 512);
    // Blocks of different character: gaussian at various scales, all-positive, tiny, zeros.
    for (size_t b = 0; b < x.size() / 32; ++b) {
      const float scale = std::ldexp(1.0f, int(b % 30) - 20);
      std::normal_distribution<float> g(0.0f, scale);
      std::uniform_real_distribution<float> u(0.0f, scale);
      for (int j = 0; j < 32; ++j) {
        float v = (b % 5 == 3) ? u(rng) : g(rng);
        if (b % 97 == 5) v = 0.0f;
        if (b % 89 == 7) v = 1e-3f * v;
        x[32 * b + j] = v;
      }
    }
    check_roundtrip(c, x);
  }
}

TEST(GgmlBlocks, AllZeroBlocksQuantizeToZero) {
  std::vector<float> x(64, 0.0f), y(64, 1.0f);
  for (const Case& c : kCases) {
    std::vector<uint8_t> q(size_t(ggml_row_bytes(c.f, 64)));
    ggml_quantize_row(c.f, x.data(), q.data(), 64);
    ggml_dequantize_row(c.f, q.data(), y.data(), 64);
    for (float v : y) EXPECT_EQ(v, 0.0f) << int(c.f);
  }
}

TEST(GgmlBlocks, FloatFormatsDequantize) {
  const float xs[3] = {1.5f, -2.25f, 65504.0f};
  uint16_t h[3], b[3];
  for (int i = 0; i < 3; ++i) {
    h[i] = f32_to_f16(xs[i]);
    b[i] = f32_to_bf16(xs[i]);
  }
  float y[3];
  ggml_dequantize_row(Format::F16, reinterpret_cast<const uint8_t*>(h), y, 3);
  EXPECT_EQ(y[0], 1.5f);
  EXPECT_EQ(y[2], 65504.0f);
  ggml_dequantize_row(Format::BF16, reinterpret_cast<const uint8_t*>(b), y, 3);
  EXPECT_EQ(y[1], -2.25f);
  ggml_dequantize_row(Format::F32, reinterpret_cast<const uint8_t*>(xs), y, 3);
  EXPECT_EQ(y[2], 65504.0f);
}
