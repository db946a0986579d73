// gemm_bf16 (kernels/gemm_bf16.h) against a double-precision product of the bf16-rounded
// operands, the AVX-512 BF16 kernel against the portable one (bit for bit), and results that
// do not depend on how many rows a call gets.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lmq/half.h"
#include "lmq/kernels/gemm_bf16.h"

using namespace lmq;

namespace {

struct Problem {
  int64_t M, N, K;
  std::vector<float> x, w, bias;
};

Problem random_problem(int64_t M, int64_t N, int64_t K, uint32_t seed, float wscale = 0.05f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Problem p{M, N, K, std::vector<float>(size_t(M * K)), std::vector<float>(size_t(N * K)), std::vector<float>(size_t(N))};
  for (float& v : p.x) v = nd(rng);
  for (float& v : p.w) v = wscale * nd(rng);
  for (float& v : p.bias) v = nd(rng);
  return p;
}

// Every output against Σ_k in double of the rounded operands. Float summation of K products
// (each exact) in blocks, then the bias: |error| ≤ (K + 1)·2⁻²⁴·(Σ|x·w| + |bias|) (each of the
// ≤ K + 1 roundings errs by ≤ 2⁻²⁴ of a partial sum bounded by that total).
void expect_near_reference(const Problem& p, const PackedBf16& w, const std::vector<float>& y, bool bias) {
  for (int64_t m = 0; m < p.M; ++m)
    for (int64_t n = 0; n < p.N; ++n) {
      double ref = bias ? p.bias[size_t(n)] : 0.0, mag = std::abs(ref);
      for (int64_t k = 0; k < p.K; ++k) {
        const double prod = double(bf16_to_f32(gemm_bf16_round(p.x[size_t(m * p.K + k)]))) * double(w.at(n, k));
        ref += prod, mag += std::abs(prod);
      }
      const double tol = double(p.K + 1) * std::ldexp(1.0, -24) * mag;
      ASSERT_NEAR(y[size_t(m * p.N + n)], ref, tol) << "M=" << p.M << " N=" << p.N << " K=" << p.K << " m=" << m
                                                    << " n=" << n;
    }
}

std::vector<float> run(const Problem& p, const PackedBf16& w, bool bias, GemmBf16Path path) {
  std::vector<float> y(size_t(p.M * p.N), -7.0f);  // every output must be written
  gemm_bf16(p.x.data(), p.M, w, y.data(), bias ? p.bias.data() : nullptr, path);
  return y;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Both paths against the reference, and against each other bit for bit where the CPU has the kernel.
void check(const Problem& p, bool bias) {
  const PackedBf16 w = PackedBf16::from_f32(p.w.data(), p.N, p.K);
  const std::vector<float> portable = run(p, w, bias, GemmBf16Path::Portable);
  expect_near_reference(p, w, portable, bias);
  if (!have_avx512_bf16()) return;
  const std::vector<float> fast = run(p, w, bias, GemmBf16Path::Auto);
  expect_near_reference(p, w, fast, bias);
  EXPECT_TRUE(same_bits(portable, fast)) << "M=" << p.M << " N=" << p.N << " K=" << p.K;
}

}  // namespace

TEST(GemmBf16, PackRoundsToNearestEvenAndFlushesSubnormals) {
  const float v[6] = {1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -2.5f, 1e-39f, -3.0e-39f, 0x1.fffffep127f};
  const PackedBf16 w = PackedBf16::from_f32(v, 2, 3);
  EXPECT_EQ(w.at(0, 0), 1.0f);              // a tie: to even (down)
  EXPECT_EQ(w.at(0, 1), 1.0f + 0x4p-8f);    // a tie: to even (up)
  EXPECT_EQ(w.at(0, 2), -2.5f);
  EXPECT_EQ(f32_to_bits(w.at(1, 0)), 0u);   // subnormal → +0
  EXPECT_EQ(f32_to_bits(w.at(1, 1)), 0x80000000u);  // → -0
  EXPECT_TRUE(std::isinf(w.at(1, 2)));      // float max rounds up to Inf, as RNE does
  // from bf16 values: kept (subnormals flushed), the same packing as from their floats
  const uint16_t h[6] = {0x3f80, 0xc020, 0x0001, 0x8040, 0x7f7f, 0x0080};
  PackedBf16 b(2, 3);
  b.set_rows(0, 2, h);
  float f[6];
  for (int i = 0; i < 6; ++i) f[i] = bf16_to_f32(h[i]);
  const PackedBf16 bf = PackedBf16::from_f32(f, 2, 3);
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < 3; ++k) EXPECT_EQ(f32_to_bits(b.at(r, k)), f32_to_bits(bf.at(r, k))) << r << "," << k;
  EXPECT_EQ(f32_to_bits(b.at(0, 2)), 0u);
}

TEST(GemmBf16, EdgeShapesMatchTheReference) {
  uint32_t seed = 1;
  for (int64_t M = 1; M <= 13; ++M)
    for (int64_t N : {1, 15, 16, 17, 33, 48})
      for (int64_t K : {1, 2, 3, 31, 64, 513}) check(random_problem(M, N, K, seed++), (M + N) % 2 == 0);
}

TEST(GemmBf16, SeveralBlocksOfKAndN) {
  // K past two blocks of 512 values, N past one block of 256 rows, M past a few tiles
  check(random_problem(29, 300, 1100, 7), true);
  check(random_problem(40, 520, 1025, 8), false);
}

TEST(GemmBf16, RowsAloneGiveTheSameBits) {
  const Problem p = random_problem(27, 70, 700, 11);
  const PackedBf16 w = PackedBf16::from_f32(p.w.data(), p.N, p.K);
  for (GemmBf16Path path : {GemmBf16Path::Auto, GemmBf16Path::Portable}) {
    const std::vector<float> all = run(p, w, true, path);
    for (int64_t m0 : {0, 5, 26}) {  // row m0 alone, and the rows from m0 on
      for (int64_t count : {int64_t(1), p.M - m0}) {
        std::vector<float> y(size_t(count * p.N));
        gemm_bf16(p.x.data() + m0 * p.K, count, w, y.data(), p.bias.data(), path);
        EXPECT_TRUE(std::memcmp(y.data(), all.data() + m0 * p.N, y.size() * sizeof(float)) == 0)
            << "rows from " << m0 << " count " << count;
      }
    }
  }
}

TEST(GemmBf16, ActivationRoundingMatchesThePortablePath) {
  // x values at rounding ties, subnormals (flushed), large and signed zeros, through one weight of ones
  if (!have_avx512_bf16()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  const std::vector<float> xs = {1.0f + 0x1p-8f, 1.0f + 0x3p-8f, -(1.0f + 0x1p-8f), 1e-39f, -1e-39f, 3e38f, -0.0f,
                                 0x1.0101p-3f, 65504.0f, 1.17549435e-38f};
  const int64_t K = 1;
  const float one = 1.0f;
  const PackedBf16 w = PackedBf16::from_f32(&one, 1, K);
  std::vector<float> a(xs.size()), b(xs.size());
  gemm_bf16(xs.data(), int64_t(xs.size()), w, a.data(), nullptr, GemmBf16Path::Auto);
  gemm_bf16(xs.data(), int64_t(xs.size()), w, b.data(), nullptr, GemmBf16Path::Portable);
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_EQ(f32_to_bits(a[i]), f32_to_bits(b[i])) << xs[i];
    // (the sum starts at +0, so a -0 product gives +0)
    EXPECT_EQ(f32_to_bits(b[i]), f32_to_bits(0.0f + bf16_to_f32(gemm_bf16_round(xs[i])))) << xs[i];
  }
}

TEST(GemmBf16, ZeroColumnsGiveTheBias) {
  const float bias[3] = {1.5f, -2.0f, 0.25f};
  const PackedBf16 w(3, 0);
  std::vector<float> y(6, 9.0f);
  gemm_bf16(nullptr, 2, w, y.data(), bias);
  EXPECT_EQ(y, (std::vector<float>{1.5f, -2.0f, 0.25f, 1.5f, -2.0f, 0.25f}));
}

RC_GTEST_PROP(GemmBf16Properties, RandomShapesMatchTheReferenceAndEachOther, ()) {
  const int64_t M = *rc::gen::inRange<int64_t>(1, 30);
  const int64_t N = *rc::gen::inRange<int64_t>(1, 90);
  const int64_t K = *rc::gen::inRange<int64_t>(1, 1200);
  const uint32_t seed = *rc::gen::arbitrary<uint32_t>();
  const float scale = *rc::gen::element(1e-3f, 0.05f, 4.0f);
  const Problem p = random_problem(M, N, K, seed, scale);
  const bool bias = *rc::gen::arbitrary<bool>();
  check(p, bias);
  RC_ASSERT(!::testing::Test::HasFailure());
}
