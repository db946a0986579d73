// The in-place integer kernels (kernels/ggml_matmul.h: Q8_0, Q4_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS): the VNNI kernel equals the scalar
// specification bit for bit, the specification is close to a float product of the dequantized
// weight (ggml codec) and activations, and on real GGUF files the integer path's logits are
// close to the float path's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <vector>

#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/ggml_repack.h"
#include "lmq/error.h"
#include "lmq/formats/gguf.h"
#include "lmq/half.h"
#include "lmq/kernels/act_quant.h"
#include "lmq/kernels/ggml_matmul.h"
#include "lmq/model/forward.h"
#include "lmq/model/model.h"
#include "ggml_matmul_check.h"
#include "int_path_check.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::test;  // shared_path, the ggml_matmul_check.h and int_path_check.h helpers

namespace {

constexpr Format kInPlace[] = {Format::Q8_0, Format::Q4_0, Format::Q2_K,   Format::Q3_K,  Format::Q4_K,
                               Format::Q5_K, Format::Q6_K, Format::IQ4_NL, Format::IQ4_XS};

// Random bytes (every code and scale pattern), with finite super-scales of varied magnitude.
std::vector<uint8_t> random_blocks(Format f, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  const size_t bb = ggml_block_bytes(f);
  std::vector<uint8_t> b(size_t(rows) * ggml_row_bytes(f, cols));
  for (uint8_t& x : b) x = uint8_t(rng());
  const FormatTraits& t = format_traits(f);
  for (size_t off = 0; off < b.size(); off += bb)
    for (int at : {t.d_at, t.dmin_at}) {
      if (at < 0) continue;
      const uint16_t d = f32_to_f16(std::ldexp(float(int(rng() % 2001) - 1000), -int(10 + rng() % 12)));
      std::memcpy(b.data() + off + at, &d, 2);
    }
  return b;
}

// Kernel k against the scalar specification on every in-place format (formats without a tile of
// k run the specification: equal trivially), random and llama.cpp-quantized blocks.
void expect_kernel_equals_spec(IntKernel k) {
  uint32_t seed = 1;
  for (Format f : kInPlace)
    for (int64_t N : {1, 3, 4, 5, 13, 64})
      for (int64_t K : {32, 96, 160, 256, 416, 768})  // Q8_0 / Q4_0 / IQ4_NL: chunks of 128 (256) and blocks past them
        for (int64_t T : {1, 2, 3, 4, 5, 7, 9}) {
          if (K % ggml_block_size(f)) continue;
          ++seed;
          const std::vector<uint8_t> b = seed % 2 ? random_blocks(f, N, K, seed) : gaussian_blocks(f, N, K, seed);
          expect_kernel_equals_scalar(k, tensor_of(f, b, N, K), random_acts(T, K, seed + 1000),
                                      fmt::format("{} {}x{} T={}", format_name(f), N, K, T));
        }
}

}  // namespace

TEST(GgmlMatmul, VnniEqualsScalarSpecBitForBit) {
  if (!have_vnni()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  expect_kernel_equals_spec(IntKernel::Avx512Vnni);
}

TEST(GgmlMatmul, Avx2EqualsScalarSpecBitForBit) {
  if (!int_kernel_available(IntKernel::Avx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  expect_kernel_equals_spec(IntKernel::Avx2);
  // The lattice i-quants have no AVX2 tile: Avx2 runs the specification for them, no refusal.
  for (Format f : {Format::IQ2_XS, Format::IQ3_S}) {
    const std::vector<uint8_t> b = random_blocks(f, 5, 512, 9);
    const QuantizedActs xq = random_acts(3, 512, 10);
    expect_same_bits(product(tensor_of(f, b, 5, 512), xq, IntKernel::Avx2),
                     product(tensor_of(f, b, 5, 512), xq, IntKernel::Scalar), std::string(format_name(f)));
  }
}

// The same on the weights of real GGUF files (llama.cpp's bytes, every in-place tensor, its first
// 64 rows), read in place whatever this CPU: every SIMD kernel here against the specification.
TEST(GgmlMatmul, SimdKernelsEqualScalarSpecOnRealGgufTensors) {
  std::set<Format> seen;
  for (const char* name : {"lmq-llama3-9m-Q4_K_M.gguf", "lmq-qwen2-21m-Q3_K_M.gguf", "lmq-llama-25m-Q4_0.gguf",
                           "lmq-llama3-9m-Q8_0.gguf", "lmq-llama3-9m-IQ4_XS.gguf"}) {
    const std::string p = shared_path(std::string("gguf/") + name);
    if (!std::filesystem::exists(p)) GTEST_SKIP() << "missing " << p;
    LoadOptions opts;
    opts.ggml_in_place = true;
    const auto model = Model::load(p, opts);
    uint32_t seed = 0;
    for (Tensor w : model->tensors()) {
      if (!ggml_matmul_supported(w, 32)) continue;
      w.shape[0] = std::min<int64_t>(w.rows(), 64);
      w.nbytes = uint64_t(w.rows()) * ggml_row_bytes(w.format, w.cols());
      for (int64_t T : {1, 5}) {
        const QuantizedActs xq = random_acts(T, w.cols(), ++seed);
        const std::vector<float> want = product(w, xq, IntKernel::Scalar);
        for (IntKernel k : {IntKernel::Avx2, IntKernel::Avx512Vnni})
          if (int_kernel_available(k))
            expect_same_bits(product(w, xq, k), want,
                             fmt::format("{} {} {} ({}) T={}", name, int_kernel_name(k), w.name, format_name(w.format), T));
      }
      seen.insert(w.format);
    }
  }
  for (Format f : {Format::Q3_K, Format::Q4_K, Format::Q6_K, Format::Q8_0, Format::Q4_0, Format::IQ4_XS})
    EXPECT_TRUE(seen.count(f)) << format_name(f);
  for (Format f : seen) std::printf("[real tensors] %s compared\n", std::string(format_name(f)).c_str());
}

// A fused product (weights of every in-place format on one input, as Q4_K_M's q/k/v) equals one
// call per weight, and the results do not depend on the thread count.
TEST(GgmlMatmul, FusedJobsAndThreadCountsGiveTheSameBits) {
  const int64_t K = 512, T = 3;
  const int64_t rows[] = {11, 6, 8, 7, 37, 6, 9, 5, 10};
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<Tensor> w;
  for (size_t i = 0; i < std::size(kInPlace); ++i) bytes.push_back(gaussian_blocks(kInPlace[i], rows[i], K, uint32_t(5 + i)));
  for (size_t i = 0; i < std::size(kInPlace); ++i) w.push_back(tensor_of(kInPlace[i], bytes[i], rows[i], K));
  expect_fused_equals_single(w, random_acts(T, K, 7));
}

// The specification against Σ w·x' in double, w the ggml codec's dequantized weight and x' = s_x·q_x:
// the kernels' only rounding is f32 arithmetic on each block's terms, so the error is a few ulps (2e-7 relative)
// of S = Σ (|w| + 2|c|)·|x'| (c: the sub-block's offset −dmin·m, whose cancellation with d·sc·q
// the f32 terms round before).
TEST(GgmlMatmul, ScalarSpecMatchesFloatReference) {
  for (Format f : kInPlace)
    for (int64_t K : {256, 1280}) {
      const int64_t N = 11, T = 3;
      const std::vector<uint8_t> b = gaussian_blocks(f, N, K, uint32_t(K));
      const Tensor w = tensor_of(f, b, N, K);
      const QuantizedActs xq = random_acts(T, K, 3);
      const std::vector<float> y = product(w, xq, IntKernel::Scalar);
      const int64_t sub = ggml_sub_block_size(f), bs = ggml_block_size(f);
      std::vector<float> wf(static_cast<size_t>(K));
      std::vector<GgmlGrid> grids(size_t(bs / sub));
      double worst = 0;
      for (int64_t o = 0; o < N; ++o) {
        const uint8_t* row = b.data() + size_t(o) * ggml_row_bytes(f, K);
        ggml_dequantize_row(f, row, wf.data(), K);
        for (int64_t t = 0; t < T; ++t) {
          double ref = 0, S = 0;
          for (int64_t k = 0; k < K; ++k) {
            if (k % bs == 0) ggml_block_grids(f, row + (k / bs) * ggml_block_bytes(f), grids.data());
            const double c = grids[size_t((k % bs) / sub)].c;
            const double x = double(xq.scale[size_t(t * (K / 32) + k / 32)]) * xq.q[size_t(t * K + k)];
            ref += double(wf[size_t(k)]) * x;
            S += (std::fabs(wf[size_t(k)]) + 2 * std::fabs(c)) * std::fabs(x);
          }
          const double err = std::fabs(double(y[size_t(t * N + o)]) - ref);
          EXPECT_LE(err, 2e-7 * S) << format_name(f) << " K=" << K << " row " << o << " token " << t;
          worst = std::max(worst, err / S);
        }
      }
      std::printf("[spec vs float] %s K=%lld: worst |y - ref| / S = %.3g\n", std::string(format_name(f)).c_str(),
                  static_cast<long long>(K), worst);
    }
}

TEST(BadInputGgmlMatmul, UnsupportedShapesAndActivationsAreRefused) {
  const std::vector<uint8_t> b = random_blocks(Format::Q4_K, 2, 512, 1);
  const Tensor w = tensor_of(Format::Q4_K, b, 2, 512);
  EXPECT_TRUE(ggml_matmul_supported(w, 32));
  EXPECT_FALSE(ggml_matmul_supported(w, 64));
  EXPECT_FALSE(ggml_matmul_supported(tensor_of(Format::Q4_1, b, 1, 256), 32));  // not (yet) read in place
  EXPECT_TRUE(ggml_matmul_supported(tensor_of(Format::Q4_0, b, 1, 96), 32));
  EXPECT_TRUE(ggml_matmul_supported(tensor_of(Format::IQ4_NL, b, 1, 96), 32));
  EXPECT_FALSE(ggml_matmul_supported(tensor_of(Format::Q4_K, b, 1, 96), 32));  // K-quants: super-blocks of 256
  EXPECT_FALSE(ggml_matmul_supported(tensor_of(Format::IQ4_XS, b, 1, 96), 32));
  std::vector<float> y(16);
  QuantizedActs xq = random_acts(1, 256, 2);  // wrong K
  EXPECT_THROW(ggml_matmul_q(w, xq, y.data()), Error);
  std::vector<float> x(512, 1.f);
  quantize_activations(x.data(), 1, 512, ActQuant::DynamicAbsmax, 64, 64, xq);  // blocks of 64
  EXPECT_THROW(ggml_matmul_q(w, xq, y.data()), Error);
  quantize_activations(x.data(), 1, 512, ActQuant::DynamicAbsmax, 32, 32, xq);
  Tensor short_w = w;
  short_w.nbytes = 100;
  EXPECT_THROW(ggml_matmul_q(short_w, xq, y.data()), Error);
}

TEST(BadInputGgmlMatmul, NonFiniteScalesAreCounted) {
  for (Format f : kInPlace) {
    std::vector<uint8_t> b = gaussian_blocks(f, 1, 1024, 3);
    const int64_t nb = 1024 / ggml_block_size(f);
    EXPECT_EQ(ggml_nonfinite_blocks(f, b.data(), nb), 0) << format_name(f);
    const size_t bb = ggml_block_bytes(f);
    const uint16_t nan = 0x7e00, inf = 0xfc00;
    std::memcpy(b.data() + bb + d_offset(f), &nan, 2);
    std::memcpy(b.data() + 3 * bb + d_offset(f), &inf, 2);
    EXPECT_EQ(ggml_nonfinite_blocks(f, b.data(), nb), 2) << format_name(f);
  }
  std::vector<uint8_t> b = random_blocks(Format::Q4_K, 1, 256, 4);
  const uint16_t nan = 0x7e00;
  std::memcpy(b.data() + 2, &nan, 2);  // dmin
  EXPECT_EQ(ggml_nonfinite_blocks(Format::Q4_K, b.data(), 1), 1);
  EXPECT_THROW(ggml_nonfinite_blocks(Format::Q4_1, b.data(), 1), Error);
}


TEST(GgmlMatmul, IntPathLogitsCloseToFloatPath) {
  for (const char* name : {"lmq-llama3-9m-Q4_K_M.gguf", "lmq-qwen2-21m-Q4_K_M.gguf", "lmq-qwen2-21m-Q3_K_M.gguf",
                           "lmq-llama-25m-Q8_0.gguf", "lmq-llama-25m-Q4_0.gguf", "lmq-llama3-9m-Q8_0.gguf",
                           "lmq-llama3-9m-IQ4_XS.gguf"}) {
    const std::string p = shared_path(std::string("gguf/") + name);
    if (!std::filesystem::exists(p)) GTEST_SKIP() << "missing " << p;
    lmq::test::expect_int_path_close_to_float(p, name);
  }
}

// No shared file holds Q2_K: lmq's llama.cpp Q2_K recipe (Q2_K, Q3_K, Q4_K, Q6_K tensors) of the
// shared HF model, written with llama.cpp's reference quantizer.
TEST(GgmlMatmul, IntPathLogitsCloseToFloatPathQ2K) {
  const std::string model = shared_path("models/lmq-llama3-9m");
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " missing";
  const std::string out = lmq::test::temp_dir() + "/q2_k.gguf";
  const auto q = lmq::test::run_lmq({"quantize", model, "-o", out, "--format", "gguf", "--scheme", "q2_k"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  lmq::test::expect_int_path_close_to_float(out, "lmq-llama3-9m q2_k");
}

// No shared file holds IQ4_NL: lmq's iq4_nl file of the shared HF model (every decoder linear in
// IQ4_NL, llama.cpp's bytes: IQuant.Iq4WritersMatchLlamaCppBytes), read in place.
TEST(GgmlMatmul, IntPathLogitsCloseToFloatPathIQ4NL) {
  const std::string model = shared_path("models/lmq-llama3-9m");
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " missing";
  const std::string out = lmq::test::temp_dir() + "/iq4_nl.gguf";
  const auto q = lmq::test::run_lmq({"quantize", model, "-o", out, "--format", "gguf", "--scheme", "iq4_nl"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(Model::load(out)->find("model.layers.0.mlp.down_proj.weight")->format,
            ggml_matmul_has_simd() ? Format::IQ4_NL : Format::LMQ_INT);
  lmq::test::expect_int_path_close_to_float(out, "lmq-llama3-9m iq4_nl");
}

TEST(BadInputGgmlMatmul, NanScaleInARealFileIsAnError) {
  expect_nan_scale_refused("lmq-llama3-9m-Q4_K_M.gguf", Format::Q4_K);
}
TEST(BadInputGgmlMatmul, NanScaleInARealQ4_0FileIsAnError) {
  expect_nan_scale_refused("lmq-llama-25m-Q4_0.gguf", Format::Q4_0);
}
TEST(BadInputGgmlMatmul, NanScaleInARealQ8_0FileIsAnError) {
  expect_nan_scale_refused("lmq-llama3-9m-Q8_0.gguf", Format::Q8_0);
}
TEST(BadInputGgmlMatmul, NanScaleInARealIQ4_XSFileIsAnError) {
  expect_nan_scale_refused("lmq-llama3-9m-IQ4_XS.gguf", Format::IQ4_XS);
}
