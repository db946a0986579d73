// The checks that ggml_matmul_test.cpp (Q8_0, Q4_0, K-quants, IQ4) and ggml_matmul_lattice_test.cpp
// (the lattice i-quants) run on the in-place integer kernels (kernels/ggml_matmul.h): weights
// from llama.cpp-style quantization of Gaussian rows, activations, and the bit-for-bit
// comparisons of the SIMD kernels with the scalar specification and of fused calls with single ones.
#pragma once
#include <omp.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/half.h"
#include "lmq/kernels/act_quant.h"
#include "lmq/kernels/ggml_matmul.h"

namespace lmq::test {

// Blocks as the format's quantizer (llama.cpp's) writes them for Gaussian weights (realistic scales).
inline std::vector<uint8_t> gaussian_blocks(Format f, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 0.05f);
  std::vector<float> w(static_cast<size_t>(cols));
  std::vector<uint8_t> b(size_t(rows) * ggml_row_bytes(f, cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : w) v = g(rng);
    ggml_quantize_row(f, w.data(), b.data() + size_t(r) * ggml_row_bytes(f, cols), cols);
  }
  return b;
}

inline Tensor tensor_of(Format f, const std::vector<uint8_t>& b, int64_t rows, int64_t cols) {
  return Tensor::view("w", f, rows, cols, b.data(), b.size());
}

// Gaussian activations with outliers (codes at ±127 next to small ones), int8 in blocks of 32;
// with extremes, every 5th token all +127 / −127 by block (the largest |Σq_x|).
inline QuantizedActs random_acts(int64_t T, int64_t K, uint32_t seed, bool extremes = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> x(size_t(T * K));
  for (float& v : x) v = g(rng);
  for (size_t i = 0; i < x.size(); i += 97) x[i] *= 30.f;
  if (extremes)
    for (int64_t t = 4; t < T; t += 5)
      for (int64_t k = 0; k < K; ++k) x[size_t(t * K + k)] = (k / 32) % 2 ? -1.f : 1.f;
  QuantizedActs xq;
  quantize_activations(x.data(), T, K, ActQuant::DynamicAbsmax, 32, 32, xq);
  return xq;
}

inline std::vector<float> product(const Tensor& w, const QuantizedActs& xq, IntKernel k, const float* bias = nullptr) {
  std::vector<float> y(size_t(xq.T * w.rows()), -1.f);
  ggml_matmul_q(w, xq, y.data(), bias, k);
  return y;
}

inline void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    if (f32_to_bits(a[i]) != f32_to_bits(b[i])) FAIL() << what << " value " << i << ": " << a[i] << " vs " << b[i];
}

inline bool have_vnni() { return int_kernel_available(IntKernel::Avx512Vnni); }

// Kernel k's product equals the scalar specification's bit for bit, without and with a bias.
inline void expect_kernel_equals_scalar(IntKernel k, const Tensor& w, const QuantizedActs& xq, const std::string& what) {
  std::vector<float> bias(static_cast<size_t>(w.rows()));
  for (int64_t o = 0; o < w.rows(); ++o) bias[size_t(o)] = 0.25f * float(o % 7) - 0.5f;
  const std::string name = std::string(int_kernel_name(k)) + " " + what;
  expect_same_bits(product(w, xq, k), product(w, xq, IntKernel::Scalar), name);
  expect_same_bits(product(w, xq, k, bias.data()), product(w, xq, IntKernel::Scalar, bias.data()), name + " bias");
}
inline void expect_vnni_equals_scalar(const Tensor& w, const QuantizedActs& xq, const std::string& what) {
  expect_kernel_equals_scalar(IntKernel::Avx512Vnni, w, xq, what);
}

// The weights w on one input in one fused call equal one call per weight, at 1, 2 and 3 threads,
// on each kernel the CPU has.
inline void expect_fused_equals_single(const std::vector<Tensor>& w, const QuantizedActs& xq) {
  for (IntKernel k : {IntKernel::Scalar, IntKernel::Avx2, IntKernel::Avx512Vnni}) {
    if (!int_kernel_available(k)) continue;
    std::vector<std::vector<float>> want, got;
    std::vector<GgmlMatmulJob> jobs;
    for (const Tensor& t : w) want.push_back(product(t, xq, k)), got.emplace_back(want.back().size());
    for (size_t i = 0; i < w.size(); ++i) jobs.push_back({&w[i], got[i].data()});
    const int threads = omp_get_max_threads();
    for (int n : {1, 2, 3}) {
      omp_set_num_threads(n);
      ggml_matmul_q(jobs, xq, k);
      for (size_t i = 0; i < w.size(); ++i)
        expect_same_bits(got[i], want[i], fmt::format("{} fused {}, {} threads", int_kernel_name(k), format_name(w[i].format), n));
    }
    omp_set_num_threads(threads);
  }
}

}  // namespace lmq::test
