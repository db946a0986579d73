// Integer matmul: every SIMD kernel bit-identical to the scalar specification (random and real
// weight tiles, every width 2..8, odd sizes, token tails; the packed widths' tiled kernel with
// and without AVX-512 VBMI), results independent of the thread count, and close to the float
// product of the dequantized weights and activations.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/int_matmul_internal.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/kernels/matmul.h"
#include "lmq/model/model.h"
#include "lmq/quant/int_quantize.h"
#include "test_support.h"

using namespace lmq;

namespace {

struct QWeight {
  std::vector<uint8_t> bytes;
  Tensor t;
};

QWeight make_weight(const std::vector<float>& w, int64_t N, int64_t K, IntParams p) {
  QWeight q;
  q.bytes.resize(quant::int_tensor_bytes(p, N, K));
  quant::quantize_tensor(w.data(), N, K, p, quant::RangeMethod::MinMax, 99.9f, nullptr, q.bytes.data(), 1);
  q.t.name = std::string(1, 'w');  // not = "w": GCC 12 reports a false -Wrestrict on that assign (bug 105651)
  q.t.shape = {N, K};
  q.t.format = Format::LMQ_INT;
  q.t.q = p;
  q.t.data = q.bytes.data();
  q.t.nbytes = q.bytes.size();
  return q;
}

std::vector<float> randn(int64_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

std::vector<IntKernel> simd_kernels() {
  std::vector<IntKernel> ks;
  for (IntKernel k : {IntKernel::Avx2, IntKernel::Avx512Vnni})
    if (int_kernel_available(k)) ks.push_back(k);
  return ks;
}

// Runs every kernel, expects bit-identical outputs, and checks against the float reference.
void check_all(const Tensor& w, const std::vector<float>& x, int64_t T, ActQuant rule, int64_t block,
               const char* what) {
  const int64_t N = w.rows(), K = w.cols();
  const int64_t U = int_matmul_unit(w, block);
  ASSERT_GT(U, 0) << what;
  QuantizedActs xq;
  quantize_activations(x.data(), T, K, rule, block, U, xq);
  std::vector<float> bias = randn(N, 99);
  std::vector<float> ref(static_cast<size_t>(T * N));
  int_matmul_q(w, xq, ref.data(), bias.data(), IntKernel::Scalar);
  for (IntKernel k : simd_kernels())
    // the packed widths' VNNI tiles unpack with VBMI where the CPU has it: run the other form too
    for (bool vbmi : {true, false}) {
      if (!vbmi && (k != IntKernel::Avx512Vnni || !intk::have_avx512vbmi())) continue;
      intk::allow_vbmi(vbmi);
      std::vector<float> y(size_t(T * N), -1.f);
      int_matmul_q(w, xq, y.data(), bias.data(), k);
      intk::allow_vbmi(true);
      ASSERT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * 4))
          << what << " kernel " << int_kernel_name(k) << (vbmi ? "" : " (no vbmi)") << " N=" << N << " K=" << K
          << " T=" << T;
    }
  // float reference: dequantized weights × dequantized activations, in double
  std::vector<float> wf(static_cast<size_t>(N * K));
  dequantize_rows(w, 0, N, wf.data());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < N; ++o) {
      double s = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double xs = double(xq.scale[size_t(t * xq.blocks_per_row() + k / xq.block)]) * xq.q[size_t(t * K + k)];
        s += double(wf[size_t(o * K + k)]) * xs;
        mag += std::fabs(double(wf[size_t(o * K + k)]) * xs);
      }
      s += bias[size_t(o)];
      mag += std::fabs(bias[size_t(o)]);
      ASSERT_NEAR(ref[size_t(t * N + o)], s, 1e-5 * mag + 1e-6) << what << " t=" << t << " o=" << o;
    }
}

}  // namespace

TEST(IntMatmul, KernelsReported) {
  EXPECT_TRUE(int_kernel_available(IntKernel::Scalar));
  std::printf("int kernels here: scalar%s%s%s (auto = %s)\n", int_kernel_available(IntKernel::Avx2) ? " avx2" : "",
              int_kernel_available(IntKernel::Avx512Vnni) ? " avx512vnni" : "",
              intk::have_avx512vbmi() ? " (+vbmi unpack)" : "", int_kernel_name(best_int_kernel()));
}

TEST(IntMatmul, SupportedLayouts) {
  auto w = randn(8 * 96, 1);
  EXPECT_EQ(int_matmul_unit(make_weight(w, 8, 96, {8, false, -1, ScaleType::F16}).t), 96);
  EXPECT_EQ(int_matmul_unit(make_weight(w, 8, 96, {4, true, 32, ScaleType::F16}).t), 32);
  EXPECT_EQ(int_matmul_unit(make_weight(w, 8, 96, {4, true, 32, ScaleType::F16}).t, 64), 32);
  EXPECT_EQ(int_matmul_unit(make_weight(w, 8, 96, {8, false, 64, ScaleType::F16}).t, 32), 32);
  EXPECT_EQ(int_matmul_unit(make_weight(w, 8, 96, {8, false, -1, ScaleType::F16}).t, 32), 32);
  for (uint8_t bits = 2; bits <= 8; ++bits)  // every width LMQ_INT stores
    EXPECT_EQ(int_matmul_unit(make_weight(w, 8, 96, {bits, true, 32, ScaleType::F16}).t), 32) << int(bits);
  EXPECT_EQ(int_matmul_unit(make_weight(w, 8, 96, {4, false, 48, ScaleType::F16}).t), 0);   // G % 32
  EXPECT_EQ(int_matmul_unit(make_weight(w, 8, 96, {8, false, 96, ScaleType::F16}).t, 64), 64);  // one group per row
  auto w3 = randn(8 * 192, 3);
  EXPECT_EQ(int_matmul_unit(make_weight(w3, 8, 192, {8, false, 96, ScaleType::F16}).t, 64), 0);  // no nesting
  auto w2 = randn(8 * 40, 2);
  EXPECT_EQ(int_matmul_unit(make_weight(w2, 8, 40, {8, false, -1, ScaleType::F16}).t), 0);  // K % 32
}

TEST(IntMatmul, RandomTilesAllLayouts) {
  uint32_t seed = 10;
  for (int bits : {8, 4, 3, 6})  // PackedWidthsEveryTokenCount has every packed width
    for (bool asym : {false, true})
      for (int group : {-1, 0, 32, 64, 128})
        for (int64_t block : {0, 32, 64})
          // tiled VNNI kernel: K % 128 == 0 (all widths), K % 64 == 0 (all but 4 bits); row tails
          // N % 4 != 0, nu % 8 != 0 (the padded slots); others take the row kernels
          for (auto [N, K] : {std::pair<int64_t, int64_t>{1, 32}, {37, 96}, {70, 384}, {5, 160}, {3, 128},
                              {6, 640}, {9, 192}, {13, 1280}}) {
            IntParams p{uint8_t(bits), asym, group, ScaleType::F16};
            auto wf = randn(N * K, ++seed, 0.05f);
            const QWeight w = make_weight(wf, N, K, p);
            if (int_matmul_unit(w.t, block) == 0) continue;
            for (int64_t T : {1, 3, 17}) {
              auto x = randn(T * K, ++seed, 2.f);
              x[size_t(K / 2)] = 25.f;  // an outlier
              const std::string what = "bits=" + std::to_string(bits) + (asym ? " asym" : " sym") +
                                       " g=" + std::to_string(group) + " block=" + std::to_string(block);
              check_all(w.t, x, T, seed % 2 ? ActQuant::DynamicMse : ActQuant::DynamicAbsmax, block, what.c_str());
            }
          }
}

// The packed widths against every token count a tile can end on (1..9: full tiles of 4 and
// every tail), tiled (K % 64 == 0) and row forms, groups smaller and larger than a step.
TEST(IntMatmul, PackedWidthsEveryTokenCount) {
  uint32_t seed = 500;
  for (int bits : {2, 3, 5, 6, 7})
    for (int group : {-1, 32, 64, 128})
      for (auto [N, K] : {std::pair<int64_t, int64_t>{7, 256}, {5, 192}, {6, 96}}) {
        const QWeight w = make_weight(randn(N * K, ++seed, 0.05f), N, K, {uint8_t(bits), bits % 2 == 1, group, ScaleType::F16});
        for (int64_t T = 1; T <= 9; ++T) {
          const std::string what = "bits=" + std::to_string(bits) + " g=" + std::to_string(group);
          check_all(w.t, randn(T * K, ++seed, 2.f), T, ActQuant::DynamicAbsmax, 0, what.c_str());
        }
      }
}

TEST(IntMatmul, F32AndBF16Scales) {
  for (ScaleType st : {ScaleType::F32, ScaleType::BF16}) {
    auto wf = randn(19 * 128, 5, 0.1f);
    const QWeight w = make_weight(wf, 19, 128, {4, true, 32, st});
    check_all(w.t, randn(5 * 128, 6), 5, ActQuant::DynamicAbsmax, 0, "scale types");
  }
}

TEST(IntMatmul, ExtremeCodesNoOverflow) {
  // all codes at 255 / activations at ±127 over a long row: int32 must hold it exactly
  const int64_t N = 3, K = 4096;
  std::vector<float> wf(size_t(N * K), 1.f);
  for (int64_t k = 0; k < K; k += 2) wf[size_t(k)] = -1.f;
  const QWeight w = make_weight(wf, N, K, {8, true, -1, ScaleType::F16});
  std::vector<float> x(size_t(2 * K), 3.f);
  check_all(w.t, x, 2, ActQuant::DynamicAbsmax, 0, "extreme");
}

TEST(IntMatmul, ThreadCountDoesNotMatter) {
  const int64_t N = 333, K = 256, T = 9;
  auto wf = randn(N * K, 11, 0.05f);
  auto x = randn(T * K, 12);
  for (uint8_t bits : {4, 3, 6}) {
    const QWeight w = make_weight(wf, N, K, {bits, false, 64, ScaleType::F16});
    std::vector<float> y1(static_cast<size_t>(T * N)), y2(size_t(T * N));
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    int_matmul(w.t, x.data(), T, y1.data(), nullptr, ActQuant::DynamicAbsmax);
    omp_set_num_threads(3);
    int_matmul(w.t, x.data(), T, y2.data(), nullptr, ActQuant::DynamicAbsmax);
    omp_set_num_threads(saved);
    EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << int(bits);
  }
}

TEST(IntMatmul, RealWeights) {
  auto m = Model::load(test::shared_path("models/lmq-llama-25m"));
  const Tensor& src = *m->layers()[1].w_down;
  const int64_t N = src.rows(), K = src.cols();
  std::vector<float> wf(static_cast<size_t>(N * K));
  dequantize_rows(src, 0, N, wf.data());
  const Tensor& emb = m->embed();  // a tall one: tile tails over many rows
  const int64_t NE = 1000;
  std::vector<float> ef(size_t(NE * emb.cols()));
  dequantize_rows(emb, 0, NE, ef.data());
  for (IntParams p : {IntParams{8, false, -1, ScaleType::F16}, IntParams{8, true, -1, ScaleType::F16},
                      IntParams{4, false, 32, ScaleType::F16}, IntParams{4, true, 128, ScaleType::F16},
                      IntParams{3, true, 64, ScaleType::F16}, IntParams{6, false, -1, ScaleType::F16},
                      IntParams{2, true, 32, ScaleType::F16}}) {
    const QWeight w = make_weight(wf, N, K, p);
    const QWeight e = make_weight(ef, NE, emb.cols(), p);
    for (int64_t T : {1, 3, 17}) {
      auto x = randn(T * K, uint32_t(T));
      check_all(w.t, x, T, ActQuant::DynamicAbsmax, 0, "real down_proj");
      auto xe = randn(T * emb.cols(), uint32_t(T + 100));
      check_all(e.t, xe, T, ActQuant::DynamicMse, 32, "real embed");
    }
  }
}

// A fused product (q/k/v, gate/up in the forward pass) gives each weight exactly what its own
// product gives, for every kernel and thread count: the joint tile split over the threads may
// cut a weight anywhere, including inside its last partial tile's neighbours.
TEST(IntMatmul, FusedJobsEqualSeparateProducts) {
  const int64_t K = 384;
  const int saved = omp_get_max_threads();
  for (IntParams p : {IntParams{8, false, -1, ScaleType::F16}, IntParams{4, true, 32, ScaleType::F16},
                      IntParams{8, true, 64, ScaleType::F16}, IntParams{3, true, 64, ScaleType::F16},
                      IntParams{5, false, 32, ScaleType::F16}}) {
    std::vector<QWeight> ws;
    for (int64_t N : {37, 128, 6, 1})  // partial tiles between full ones
      ws.push_back(make_weight(randn(N * K, uint32_t(N), 0.05f), N, K, p));
    std::vector<IntMatmulPlan> plans;
    for (const QWeight& w : ws) plans.emplace_back(w.t);
    const std::vector<float> bias = randn(128, 7);
    for (int64_t T : {1, 5}) {
      QuantizedActs xq;
      const auto x = randn(T * K, uint32_t(T + 50));
      quantize_activations(x.data(), T, K, ActQuant::DynamicAbsmax, 0, plans[0].unit(), xq);
      for (IntKernel k : {IntKernel::Scalar, best_int_kernel()})
        for (int threads : {1, 2, 3}) {
          omp_set_num_threads(threads);
          std::vector<std::vector<float>> sep(ws.size()), fused(ws.size());
          std::vector<IntMatmulJob> jobs;
          for (size_t j = 0; j < ws.size(); ++j) {
            const size_t n = size_t(T * ws[j].t.rows());
            sep[j].assign(n, 0.f), fused[j].assign(n, -1.f);
            const float* b = j == 1 ? bias.data() : nullptr;
            int_matmul_q(plans[j], xq, sep[j].data(), b, IntKernel::Scalar);
            jobs.push_back({&plans[j], fused[j].data(), b});
          }
          int_matmul_q(jobs, xq, k);
          for (size_t j = 0; j < ws.size(); ++j)
            ASSERT_EQ(0, std::memcmp(sep[j].data(), fused[j].data(), sep[j].size() * 4))
                << "job " << j << " kernel " << int_kernel_name(k) << " threads " << threads << " T " << T;
        }
    }
  }
  omp_set_num_threads(saved);
}
