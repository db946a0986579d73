// The lane-parallel K-quant scale searches (codecs/ggml_fit_lanes.cpp) against the scalar
// functions they replace in the quantizers (make_qkx2_quants, make_qx_quants: llama.cpp's
// reference numerics), bit for bit, on random sub-blocks and on the inputs where the scalar
// code takes its early returns.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "codecs/ggml_rows.h"

namespace lmq::ggml {
namespace {

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

// One super-block's worth of sub-blocks through both paths; returns a description of the
// first difference, or "".
std::string qkx2_difference(int n, int nmax, const std::vector<float>& x, const std::vector<float>& w, float rmin,
                            float rdelta, int nstep, bool use_mad) {
  std::vector<uint8_t> L(static_cast<size_t>(8 * n)), Ls(static_cast<size_t>(n)), aux(static_cast<size_t>(n));
  float scales[8], mins[8];
  make_qkx2_quants_x8(n, nmax, x.data(), w.data(), L.data(), scales, mins, rmin, rdelta, nstep, use_mad);
  for (int j = 0; j < 8; ++j) {
    float the_min = 0;
    const float s = make_qkx2_quants(n, nmax, x.data() + j * n, w.data() + j * n, Ls.data(), &the_min, aux.data(), rmin,
                                     rdelta, nstep, use_mad);
    if (!same_bits(s, scales[j]) || !same_bits(the_min, mins[j]))
      return "sub-block " + std::to_string(j) + ": scale " + std::to_string(s) + " vs " + std::to_string(scales[j]) +
             ", min " + std::to_string(the_min) + " vs " + std::to_string(mins[j]);
    for (int i = 0; i < n; ++i)
      if (Ls[size_t(i)] != L[size_t(j * n + i)]) return "sub-block " + std::to_string(j) + ": code " + std::to_string(i);
  }
  return "";
}

std::string qx_difference(int n, int nmax, const std::vector<float>& x, const float* qw) {
  std::vector<int8_t> L(static_cast<size_t>(16 * n)), Ls(static_cast<size_t>(n));
  float scales[16];
  make_qx_quants_x16(n, nmax, x.data(), L.data(), qw, scales);
  for (int j = 0; j < 16; ++j) {
    const float s = make_qx_quants(n, nmax, x.data() + j * n, Ls.data(), qw ? qw + j * n : nullptr);
    if (!same_bits(s, scales[j]))
      return "sub-block " + std::to_string(j) + ": scale " + std::to_string(s) + " vs " + std::to_string(scales[j]);
    for (int i = 0; i < n; ++i)
      if (Ls[size_t(i)] != L[size_t(j * n + i)]) return "sub-block " + std::to_string(j) + ": code " + std::to_string(i);
  }
  return "";
}

// Random sub-blocks of mixed character: ordinary Gaussian ones, all-negative, all-equal,
// all-zero, tiny (below the scalar code's 1e-15 threshold) and one large outlier.
std::vector<float> mixed_values(std::mt19937& rng, int n, int sub_blocks) {
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> x(size_t(n * sub_blocks));
  for (int j = 0; j < sub_blocks; ++j) {
    const int kind = int(rng() % 8);
    const float scale = std::ldexp(1.f, int(rng() % 40) - 30);
    for (int i = 0; i < n; ++i) {
      float v = g(rng) * scale;
      if (kind == 1) v = -std::fabs(v);
      if (kind == 2) v = -0.375f;
      if (kind == 3) v = 0.f;
      if (kind == 4) v *= 1e-20f;
      if (kind == 5 && i == 3) v = 100.f * scale;
      x[size_t(j * n + i)] = v;
    }
  }
  return x;
}

TEST(GgmlFitLanes, Qkx2EqualsScalarOnTheKQuantsSettings) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 400; ++trial) {
    const std::vector<float> x16 = mixed_values(rng, 16, 8), x32 = mixed_values(rng, 32, 8);
    std::vector<float> w16(x16.size()), w32(x32.size());
    for (size_t i = 0; i < w16.size(); ++i) w16[i] = std::fabs(x16[i]);  // Q2_K without importance
    for (size_t i = 0; i < w32.size(); ++i) w32[i] = 0.25f + std::fabs(x32[i]);
    EXPECT_EQ(qkx2_difference(16, 3, x16, w16, -0.5f, 0.1f, 15, true), "") << "Q2_K, trial " << trial;
    EXPECT_EQ(qkx2_difference(32, 15, x32, w32, -1.f, 0.1f, 20, false), "") << "Q4_K, trial " << trial;
    EXPECT_EQ(qkx2_difference(32, 31, x32, w32, -0.5f, 0.1f, 15, false), "") << "Q5_K, trial " << trial;
  }
}

TEST(GgmlFitLanes, QxEqualsScalarWithAndWithoutWeights) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 400; ++trial) {
    const std::vector<float> x = mixed_values(rng, 16, 16);
    std::vector<float> w(x.size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = float(rng() % 100) / 10.f;
    EXPECT_EQ(qx_difference(16, 32, x, nullptr), "") << "Q6_K, trial " << trial;
    EXPECT_EQ(qx_difference(16, 32, x, w.data()), "") << "Q6_K weighted, trial " << trial;
  }
}

// Any floats at all (NaN and Inf included: the quantizers' callers refuse them, but the two
// paths must still agree and stay defined).
RC_GTEST_PROP(GgmlFitLanesProperties, AgreeOnArbitraryFloats, ()) {
  const auto bits = *rc::gen::container<std::vector<uint32_t>>(16 * 16, rc::gen::arbitrary<uint32_t>());
  std::vector<float> x(bits.size());
  for (size_t i = 0; i < x.size(); ++i) std::memcpy(&x[i], &bits[i], 4);
  const bool finite = std::all_of(x.begin(), x.end(), [](float v) { return std::isfinite(v); });
  if (!finite) {  // the comparison is only meaningful where the scalar code is defined
    for (float& v : x)
      if (!std::isfinite(v)) v = 1.f;
  }
  std::vector<float> w(x.size());
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::fabs(x[i]);
  RC_ASSERT(qx_difference(16, 32, x, nullptr) == "");
  std::vector<float> x32(x.begin(), x.begin() + 256), w32(w.begin(), w.begin() + 256);
  RC_ASSERT(qkx2_difference(32, 15, x32, w32, -1.f, 0.1f, 20, false) == "");
}

}  // namespace
}  // namespace lmq::ggml
