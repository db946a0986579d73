// matmul over every float storage format equals a plain double-precision product (within float
// rounding), for odd shapes, tails and batch sizes, on every SIMD target Highway compiled
// (AVX-512, AVX2, SSE4, scalar) that this machine runs.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstring>
#include <random>

#include "lmq/half.h"
#include "lmq/kernels/gemm.h"
#include "lmq/kernels/matmul.h"
#include "lmq/quant/int_quantize.h"

using namespace lmq;

namespace {

void check_float_formats() {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto [N, K, T] : {std::tuple{37, 53, 1}, {64, 384, 5}, {33, 17, 9}, {130, 256, 4}, {8, 64, 3}, {12, 300, 1}}) {
    std::vector<float> w(size_t(N) * K), x(size_t(T) * K);
    for (auto& v : w) v = bf16_to_f32(f32_to_bf16(nd(rng)));  // exact in all three formats
    for (auto& v : x) v = nd(rng);
    std::vector<uint16_t> wb(w.size()), wh(w.size());
    for (size_t i = 0; i < w.size(); ++i) wb[i] = f32_to_bf16(w[i]), wh[i] = f32_to_f16(w[i]);
    for (Format f : {Format::F32, Format::BF16, Format::F16}) {
      Tensor t;
      t.name = "w";
      t.shape = {N, K};
      t.format = f;
      t.data = f == Format::F32 ? reinterpret_cast<const uint8_t*>(w.data())
               : f == Format::BF16 ? reinterpret_cast<const uint8_t*>(wb.data())
                                   : reinterpret_cast<const uint8_t*>(wh.data());
      t.nbytes = w.size() * (f == Format::F32 ? 4 : 2);
      std::vector<float> y(size_t(T) * N);
      matmul(t, x.data(), T, y.data());
      for (int tt = 0; tt < T; ++tt)
        for (int o = 0; o < N; ++o) {
          double ref = 0, mag = 0;
          for (int k = 0; k < K; ++k) {
            ref += double(w[size_t(o) * K + k]) * x[size_t(tt) * K + k];
            mag += std::fabs(double(w[size_t(o) * K + k]) * x[size_t(tt) * K + k]);
          }
          ASSERT_NEAR(y[size_t(tt) * N + o], ref, 1e-6 * mag + 1e-6)
              << format_name(f) << " N=" << N << " K=" << K << " t=" << tt << " o=" << o;
        }
    }
  }
}

}  // namespace

TEST(Matmul, FloatFormatsMatchDoubleReference) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    SCOPED_TRACE(hwy::TargetName(target));
    hwy::SetSupportedTargetsForTest(target);
    check_float_formats();
  }
  hwy::SetSupportedTargetsForTest(0);  // back to the best target
}

// gemm_f32 (attention's products) against a double product, every target, with row tails
// (M % 4), vector tails (N % L) and columns short of a vector, operands inside larger arrays.
TEST(Gemm, MatchesDoubleReferenceOnEveryTarget) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    SCOPED_TRACE(hwy::TargetName(target));
    hwy::SetSupportedTargetsForTest(target);
    for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 64, 64}, {3, 80, 64}, {64, 144, 64}, {6, 64, 1},
                           {5, 64, 333}, {7, 21, 9}, {2, 3, 5}}) {
      const int64_t lda = K + 3, ldb = N + 5, ldc = N + 2;
      std::vector<float> A(size_t(M * lda)), B(size_t(K * ldb)), C(size_t(M * ldc), -7.f);
      for (auto& v : A) v = nd(rng);
      for (auto& v : B) v = nd(rng);
      gemm_f32(M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc);
      for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
          double ref = 0, mag = 0;
          for (int64_t k = 0; k < K; ++k) {
            ref += double(A[size_t(i * lda + k)]) * B[size_t(k * ldb + j)];
            mag += std::fabs(double(A[size_t(i * lda + k)]) * B[size_t(k * ldb + j)]);
          }
          ASSERT_NEAR(C[size_t(i * ldc + j)], ref, 1e-6 * mag + 1e-6) << "M=" << M << " N=" << N << " K=" << K;
        }
        for (int64_t j = N; j < ldc; ++j) ASSERT_EQ(C[size_t(i * ldc + j)], -7.f) << "wrote past column N";
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
}

// Weight-only LMQ_INT: the codes widened in registers (every width, groups of whole 16-value
// steps; packed widths unpacked to bytes first), the decode kernels (one token: 2..4-bit groups
// of 128s and 64s, 2..3-bit 32s, 5..7-bit 64s, where the CPU has AVX-512F, and VBMI for 3, 5, 6
// and 7 bits; 8-bit groups of 32s; 70 × 1024 fetches ahead within the weight, 37 × 384 does not) or dequantized rows (other groups) give the product of the
// dequantized weight with x, on every target, for sym/asym, per tensor / channel / group and
// row and token tails.
TEST(Matmul, IntCodesMatchDequantizedProduct) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    SCOPED_TRACE(hwy::TargetName(target));
    hwy::SetSupportedTargetsForTest(target);
    for (IntParams p : {IntParams{8, false, -1, ScaleType::F16}, IntParams{8, true, 32, ScaleType::F16},
                        IntParams{4, false, 32, ScaleType::F16}, IntParams{4, true, 128, ScaleType::BF16},
                        IntParams{4, false, 16, ScaleType::F32}, IntParams{8, false, 0, ScaleType::F16},
                        IntParams{3, false, 32, ScaleType::F16}, IntParams{4, false, 48, ScaleType::F16},
                        IntParams{2, true, 32, ScaleType::F16}, IntParams{5, true, 64, ScaleType::F16},
                        IntParams{6, false, -1, ScaleType::F16}, IntParams{7, true, 128, ScaleType::F16},
                        IntParams{3, true, 48, ScaleType::F16}, IntParams{4, true, -1, ScaleType::F16},
                        IntParams{4, false, 256, ScaleType::F16}, IntParams{8, true, 64, ScaleType::BF16},
                        // one token of these takes the packed-code decode kernel (code_gemv.h)
                        IntParams{2, true, 128, ScaleType::F16}, IntParams{2, false, -1, ScaleType::F16},
                        IntParams{3, true, 128, ScaleType::F16}, IntParams{3, false, 256, ScaleType::BF16},
                        IntParams{5, true, 128, ScaleType::BF16}, IntParams{5, false, -1, ScaleType::F16},
                        IntParams{6, true, 128, ScaleType::F16}, IntParams{7, false, 64, ScaleType::F32},
                        IntParams{2, false, 64, ScaleType::BF16}, IntParams{2, false, 32, ScaleType::BF16},
                        IntParams{3, true, 64, ScaleType::F16}, IntParams{4, true, 64, ScaleType::F16}})
      for (auto [N, K, T] : {std::tuple<int64_t, int64_t, int64_t>{37, 384, 1}, {6, 256, 5}, {70, 96, 3}, {70, 1024, 1}}) {
        if (p.group > 0 && K % p.group != 0) continue;
        std::vector<float> wf(size_t(N * K)), x(size_t(T * K));
        for (auto& v : wf) v = 0.05f * nd(rng);
        for (auto& v : x) v = nd(rng);
        x[3] = 30.f;  // an outlier activation
        std::vector<uint8_t> bytes(quant::int_tensor_bytes(p, N, K));
        quant::quantize_tensor(wf.data(), N, K, p, quant::RangeMethod::MinMax, 99.9f, nullptr, bytes.data(), 1);
        Tensor t;
        t.name = "w";
        t.shape = {N, K};
        t.format = Format::LMQ_INT;
        t.q = p;
        t.data = bytes.data();
        t.nbytes = bytes.size();
        std::vector<float> deq(size_t(N * K)), y(size_t(T * N)), bias(static_cast<size_t>(N));
        for (auto& v : bias) v = nd(rng);
        dequantize_rows(t, 0, N, deq.data());
        matmul(t, x.data(), T, y.data(), bias.data());
        for (int64_t tt = 0; tt < T; ++tt)
          for (int64_t o = 0; o < N; ++o) {
            double ref = bias[size_t(o)], mag = std::fabs(bias[size_t(o)]);
            for (int64_t k = 0; k < K; ++k) {
              ref += double(deq[size_t(o * K + k)]) * x[size_t(tt * K + k)];
              mag += std::fabs(double(deq[size_t(o * K + k)]) * x[size_t(tt * K + k)]);
            }
            ASSERT_NEAR(y[size_t(tt * N + o)], ref, 2e-6 * mag + 1e-6)
                << int(p.bits) << " bits g" << p.group << (p.asym ? " asym" : " sym") << " N=" << N << " K=" << K
                << " t=" << tt << " o=" << o;
          }
      }
  }
  hwy::SetSupportedTargetsForTest(0);
}
