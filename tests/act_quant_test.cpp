// Dynamic activation quantization: error bounds, the MSE rule vs absmax, block scales, sums.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "lmq/error.h"
#include "lmq/kernels/act_quant.h"

using namespace lmq;

namespace {

std::vector<float> random_acts(int64_t n, uint32_t seed, float outlier = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  if (outlier != 0 && n > 3) x[size_t(n / 3)] = outlier;
  return x;
}

}  // namespace

TEST(ActQuant, ParseNames) {
  EXPECT_EQ(parse_act_quant("none"), ActQuant::None);
  EXPECT_EQ(parse_act_quant("dynamic"), ActQuant::DynamicAbsmax);
  EXPECT_EQ(parse_act_quant("dynamic:absmax"), ActQuant::DynamicAbsmax);
  EXPECT_EQ(parse_act_quant("dynamic:mse"), ActQuant::DynamicMse);
  EXPECT_THROW(parse_act_quant("static"), Error);
  EXPECT_EQ(parse_act_quant_spec("dynamic:b32").block, 32);
  EXPECT_EQ(parse_act_quant_spec("dynamic:mse:b64").rule, ActQuant::DynamicMse);
  EXPECT_EQ(parse_act_quant_spec("dynamic:mse:b64").block, 64);
  EXPECT_EQ(parse_act_quant_spec("dynamic:absmax").block, 0);
  for (const char* bad : {"dynamic:b16", "dynamic:", "dynamic:mse:", "dynamicx", "none:b32", "dynamic:b32:mse",
                          "dynamic:b32x", "dynamic:mse2"})
    EXPECT_THROW(parse_act_quant_spec(bad), Error) << bad;
  EXPECT_EQ(act_quant_name(ActQuant::DynamicMse), "dynamic:mse");
}

TEST(ActQuant, AbsmaxErrorAtMostHalfStep) {
  for (int64_t n : {1, 7, 32, 100, 384}) {
    const auto x = random_acts(n, uint32_t(n), 9.f);
    const float s = act_scale(x.data(), n, ActQuant::DynamicAbsmax);
    std::vector<int8_t> q(static_cast<size_t>(n));
    act_quantize_block(x.data(), n, s, q.data());
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_LE(std::abs(int(q[i])), 127);
      EXPECT_LE(std::fabs(x[i] - s * q[i]), s / 2 * (1 + 1e-5f)) << "n=" << n << " i=" << i;
    }
  }
}

TEST(ActQuant, MseNeverWorseThanAbsmax) {
  for (uint32_t seed = 0; seed < 50; ++seed) {
    const int64_t n = 16 + seed * 13;
    const auto x = random_acts(n, seed, seed % 2 ? 30.f : 0.f);
    const float sa = act_scale(x.data(), n, ActQuant::DynamicAbsmax);
    const float sm = act_scale(x.data(), n, ActQuant::DynamicMse);
    EXPECT_LE(sm, sa);
    EXPECT_LE(act_sq_error(x.data(), n, sm), act_sq_error(x.data(), n, sa));
    // values inside the clipped range still have error <= s/2
    std::vector<int8_t> q(static_cast<size_t>(n));
    act_quantize_block(x.data(), n, sm, q.data());
    for (int64_t i = 0; i < n; ++i)
      if (std::fabs(x[i]) <= 127 * sm) {
        EXPECT_LE(std::fabs(x[i] - sm * q[i]), sm / 2 * (1 + 1e-5f));
      }
  }
  // with one big outlier, clipping must win on MSE
  auto x = random_acts(4096, 7, 200.f);
  const float sm = act_scale(x.data(), 4096, ActQuant::DynamicMse);
  const float sa = act_scale(x.data(), 4096, ActQuant::DynamicAbsmax);
  EXPECT_LT(act_sq_error(x.data(), 4096, sm), act_sq_error(x.data(), 4096, sa));
}

TEST(ActQuant, ZeroRow) {
  std::vector<float> x(64, 0.f);
  QuantizedActs q;
  quantize_activations(x.data(), 1, 64, ActQuant::DynamicMse, 32, 32, q);
  EXPECT_EQ(q.scale[0], 0.f);
  for (auto v : q.q) EXPECT_EQ(v, 0);
  for (auto v : q.sums) EXPECT_EQ(v, 0);
}

TEST(ActQuant, BlocksAndSums) {
  const int64_t T = 3, K = 160;
  const auto x = random_acts(T * K, 3, 5.f);
  for (int64_t block : {0, 32, 64}) {
    for (int64_t sg : {0, 32, 64}) {
      QuantizedActs q;
      quantize_activations(x.data(), T, K, ActQuant::DynamicAbsmax, block, sg, q);
      const int64_t B = block ? block : K, S = sg ? sg : K;
      ASSERT_EQ(q.blocks_per_row(), (K + B - 1) / B);
      ASSERT_EQ(q.sums_per_row(), (K + S - 1) / S);
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t b = 0; b < q.blocks_per_row(); ++b) {
          const int64_t c0 = b * B, n = std::min(B, K - c0);
          const float s = q.scale[size_t(t * q.blocks_per_row() + b)];
          EXPECT_EQ(s, act_scale(x.data() + t * K + c0, n, ActQuant::DynamicAbsmax));
          for (int64_t c = c0; c < c0 + n; ++c)
            EXPECT_LE(std::fabs(x[size_t(t * K + c)] - s * q.q[size_t(t * K + c)]), s / 2 * (1 + 1e-5f));
        }
        for (int64_t g = 0; g < q.sums_per_row(); ++g) {
          int32_t sum = 0;
          for (int64_t c = g * S; c < std::min(K, (g + 1) * S); ++c) sum += q.q[size_t(t * K + c)];
          EXPECT_EQ(q.sums[size_t(t * q.sums_per_row() + g)], sum);
        }
      }
    }
  }
}

// The SIMD loops restate q = clamp(round(x/s), ±127) (round half away from zero) exactly:
// compared value by value with std::round on ties, the float just below one half, values past
// the clamp, odd lengths (SIMD tails), and NaN (→ 0, ignored by the range).
TEST(ActQuant, CodesEqualTheFormulaOnHardValues) {
  const float below_half = std::nextafter(0.5f, 0.f);
  std::vector<float> x;
  for (float v : {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, below_half, -below_half, 126.5f, -126.5f, 127.49f, 300.f,
                  -300.f, 0.f, -0.f, 1e-30f, 3.4e38f})
    x.push_back(v);
  const auto r = random_acts(37, 9, 40.f);
  x.insert(x.end(), r.begin(), r.end());
  for (int64_t n : {int64_t(x.size()), int64_t(17), int64_t(5)}) {
    std::vector<int8_t> q(static_cast<size_t>(n));
    act_quantize_block(x.data(), n, 1.0f, q.data());
    for (int64_t i = 0; i < n; ++i) {
      const float want = std::clamp(std::round(x[size_t(i)]), -127.0f, 127.0f);
      ASSERT_EQ(int(q[size_t(i)]), int(want)) << "x = " << x[size_t(i)] << " n = " << n;
    }
  }
  std::vector<float> y = random_acts(40, 10);
  y[3] = std::nanf("");
  y[21] = std::nanf("");
  float amax = 0;
  for (float v : y)
    if (!std::isnan(v)) amax = std::max(amax, std::fabs(v));
  EXPECT_EQ(act_scale(y.data(), int64_t(y.size()), ActQuant::DynamicAbsmax), amax / 127.0f);
  QuantizedActs qa;
  quantize_activations(y.data(), 1, int64_t(y.size()), ActQuant::DynamicAbsmax, 0, 0, qa);
  EXPECT_EQ(qa.q[3], 0);
  EXPECT_EQ(qa.q[21], 0);
}
