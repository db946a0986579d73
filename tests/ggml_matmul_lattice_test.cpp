// The lattice i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) on the in-place integer kernels
// (kernels/ggml_matmul.h): the VNNI kernel equals the scalar specification bit for bit, the
// specification is close to a float product of the dequantized weight (the i-quant codec,
// written from llama.cpp's layouts) and activations, and on real files (llama.cpp's IQ2_XS and
// IQ3_S, lmq's pure-IQ2_XXS / IQ2_S / IQ3_XXS) the integer path's logits are close to the float
// path's and a NaN d is refused at load.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "ggml_matmul_check.h"
#include "int_path_check.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/ggml_repack.h"
#include "lmq/half.h"
#include "lmq/kernels/act_quant.h"
#include "lmq/kernels/ggml_matmul.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::test;  // the ggml_matmul_check.h helpers

namespace {

constexpr Format kLattice[] = {Format::IQ2_XXS, Format::IQ2_XS, Format::IQ2_S, Format::IQ3_XXS,
                               Format::IQ3_S,   Format::IQ1_S,  Format::IQ1_M};

// Every scale of a block to its largest (15; the IQ1s' 3-bit ones 7), the layouts of
// codecs/iquant_blocks.h.
void set_scales_15(Format f, uint8_t* blk) {
  for (int ib = 0; ib < 8; ++ib) switch (f) {
      case Format::IQ1_S: blk[35 + 2 * ib] |= 0x70; break;  // qh bits 12-14
      case Format::IQ1_M: blk[48 + ib] |= ib % 2 ? 0x0F : 0xFF; break;  // bits 0-11 of each word

      case Format::IQ2_XXS: blk[2 + 8 * ib + 7] |= 0xF0; break;
      case Format::IQ2_XS: blk[66 + ib] = 0xFF; break;
      case Format::IQ2_S: blk[74 + ib] = 0xFF; break;
      case Format::IQ3_XXS: blk[66 + 4 * ib + 3] |= 0xF0; break;
      default: blk[106 + ib / 2] = 0xFF; break;
    }
}

// Random bytes: every byte pattern is a valid block (each index's bit width is its table's size),
// with a finite d of varied magnitude; all scales 15 and d's largest in one block in 7, the
// largest |i| the format can make.
std::vector<uint8_t> random_blocks(Format f, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  const size_t bb = ggml_block_bytes(f);
  std::vector<uint8_t> b(size_t(rows) * ggml_row_bytes(f, cols));
  for (uint8_t& x : b) x = uint8_t(rng());
  for (size_t off = 0, n = 0; off < b.size(); off += bb, ++n) {
    const float d = n % 7 == 3 ? 65504.f : std::ldexp(float(int(rng() % 2001) - 1000), -int(10 + rng() % 12));
    if (n % 7 == 3) set_scales_15(f, b.data() + off);
    lmq::test::set_block_d(f, b.data() + off, f32_to_f16(d));
  }
  return b;
}

// Blocks as lmq's lattice writer makes them for Gaussian weights (realistic scales and codes).
// Cached: the lattice search is slow.
const std::vector<uint8_t>& quantized_blocks(Format f, int64_t rows, int64_t cols, uint32_t seed) {
  static std::map<std::tuple<Format, int64_t, int64_t, uint32_t>, std::vector<uint8_t>> cache;
  std::vector<uint8_t>& b = cache[{f, rows, cols, seed}];
  if (b.empty()) b = gaussian_blocks(f, rows, cols, seed);
  return b;
}

}  // namespace

TEST(LatticeMatmul, TakenInPlace) {
  for (Format f : kLattice) {
    const std::vector<uint8_t> b = random_blocks(f, 2, 512, 1);
    EXPECT_TRUE(ggml_matmul_supported(tensor_of(f, b, 2, 512), 32)) << format_name(f);
    EXPECT_FALSE(ggml_matmul_supported(tensor_of(f, b, 2, 512), 64)) << format_name(f);
    EXPECT_FALSE(ggml_matmul_supported(tensor_of(f, b, 1, 96), 32)) << format_name(f);  // super-blocks of 256
  }
}

TEST(LatticeMatmul, VnniEqualsScalarSpecBitForBit) {
  if (!have_vnni()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  uint32_t seed = 1;
  for (Format f : kLattice)
    for (int64_t N : {1, 3, 4, 5, 13, 64})
      for (int64_t K : {256, 768})
        for (int64_t T : {1, 2, 3, 4, 5, 7, 9}) {
          ++seed;
          const bool real = seed % 2 == 0 && N <= 13;
          const std::vector<uint8_t> b = real ? quantized_blocks(f, N, K, uint32_t(N + K)) : random_blocks(f, N, K, seed);
          expect_vnni_equals_scalar(tensor_of(f, b, N, K), random_acts(T, K, seed + 1000, true),
                                    fmt::format("{} {} {}x{} T={}", format_name(f), real ? "quantized" : "random", N, K, T));
        }
}

// The seven formats and a K-quant on one input in one fused call equal one call per weight, at any
// thread count.
TEST(LatticeMatmul, FusedJobsAndThreadCountsGiveTheSameBits) {
  const int64_t K = 512, T = 3;
  const Format fs[] = {Format::IQ2_XXS, Format::IQ2_XS, Format::IQ2_S, Format::IQ3_XXS,
                       Format::IQ3_S,   Format::IQ1_S,  Format::IQ1_M, Format::Q4_K};
  const int64_t rows[] = {11, 6, 37, 7, 9, 5, 10, 8};
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<Tensor> w;
  for (size_t i = 0; i < std::size(fs); ++i) bytes.push_back(random_blocks(fs[i], rows[i], K, uint32_t(5 + i)));
  for (size_t i = 0; i < std::size(fs); ++i) w.push_back(tensor_of(fs[i], bytes[i], rows[i], K));
  expect_fused_equals_single(w, random_acts(T, K, 7, true));
}

// The specification against Σ w·x' in double, w the codec's dequantized weight (llama.cpp's
// arithmetic) and x' = s_x·q_x: the integer sums are exact, so the error is the f32 rounding of
// each block's D·float(i) and s_x product and of the slot sums: a few ulps of S = Σ|w|·|x'|.
TEST(LatticeMatmul, ScalarSpecMatchesFloatReference) {
  for (Format f : kLattice)
    for (const bool real : {true, false}) {
      const int64_t N = 11, T = 5, K = 1280;
      const std::vector<uint8_t> b = real ? quantized_blocks(f, N, K, 9) : random_blocks(f, N, K, 9);
      const Tensor w = tensor_of(f, b, N, K);
      const QuantizedActs xq = random_acts(T, K, 3, true);
      const std::vector<float> y = product(w, xq, IntKernel::Scalar);
      std::vector<float> wf(static_cast<size_t>(K));
      double worst = 0;
      for (int64_t o = 0; o < N; ++o) {
        ggml_dequantize_row(f, b.data() + size_t(o) * ggml_row_bytes(f, K), wf.data(), K);
        for (int64_t t = 0; t < T; ++t) {
          double ref = 0, S = 0;
          for (int64_t k = 0; k < K; ++k) {
            const double x = double(xq.scale[size_t(t * (K / 32) + k / 32)]) * xq.q[size_t(t * K + k)];
            ref += double(wf[size_t(k)]) * x;
            S += std::fabs(wf[size_t(k)]) * std::fabs(x);
          }
          const double err = std::fabs(double(y[size_t(t * N + o)]) - ref);
          EXPECT_LE(err, 2e-7 * S) << format_name(f) << (real ? " quantized" : " random") << " row " << o << " token " << t;
          worst = std::max(worst, err / S);
        }
      }
      std::printf("[spec vs float] %s %s: worst |y - ref| / S = %.3g\n", std::string(format_name(f)).c_str(),
                  real ? "quantized" : "random", worst);
    }
}

TEST(BadInputLatticeMatmul, NonFiniteScalesAreCounted) {
  for (Format f : kLattice) {
    std::vector<uint8_t> b = random_blocks(f, 1, 1024, 3);
    EXPECT_EQ(ggml_nonfinite_blocks(f, b.data(), 4), 0) << format_name(f);
    const size_t bb = ggml_block_bytes(f);
    const uint16_t nan = 0x7e00, inf = 0xfc00;
    lmq::test::set_block_d(f, b.data() + bb, nan);
    lmq::test::set_block_d(f, b.data() + 3 * bb, inf);
    EXPECT_EQ(ggml_nonfinite_blocks(f, b.data(), 4), 2) << format_name(f);
  }
}

TEST(LatticeMatmul, IntPathLogitsCloseToFloatPath) {
  for (const char* name : {"lmq-llama3-9m-IQ2_XS.gguf", "lmq-llama3-9m-IQ3_S.gguf"}) {
    const std::string p = lmq::test::shared_path(std::string("gguf/") + name);
    if (!std::filesystem::exists(p)) GTEST_SKIP() << "missing " << p;
    lmq::test::expect_int_path_close_to_float(p, name);
  }
}

// No shared file holds IQ2_XXS, IQ2_S or IQ3_XXS: lmq's pure files of the shared HF model (every
// 2-D weight in the one type, lmq's lattice writer).
TEST(LatticeMatmul, IntPathLogitsCloseToFloatPathPureFiles) {
  const std::string model = lmq::test::shared_path("models/lmq-llama3-9m");
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " missing";
  for (const char* type : {"iq2_xxs", "iq2_s", "iq3_xxs"}) {
    const std::string out = lmq::test::temp_dir() + "/" + type + ".gguf";
    const auto q = lmq::test::run_lmq({"quantize", model, "-o", out, "--format", "gguf", "--scheme", std::string("pure-") + type});
    ASSERT_EQ(q.exit_code, 0) << q.err;
    lmq::test::expect_int_path_close_to_float(out, std::string("lmq-llama3-9m pure-") + type);
  }
}

TEST(BadInputLatticeMatmul, NanScaleInARealIq2XsFileIsAnError) {
  lmq::test::expect_nan_scale_refused("lmq-llama3-9m-IQ2_XS.gguf", Format::IQ2_XS);
}
TEST(BadInputLatticeMatmul, NanScaleInARealIq3SFileIsAnError) {
  lmq::test::expect_nan_scale_refused("lmq-llama3-9m-IQ3_S.gguf", Format::IQ3_S);
}
