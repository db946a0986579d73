// Calibration's linear (calib/block_runner.h): gemm_bf16 (kernels/gemm_bf16.h) vs one-thread
// OpenBLAS sgemm on the calibration shapes of a 1.1B llama, a window of M = 512 tokens ×
// (N, K) = q/o (2048, 2048), k/v (256, 2048), gate/up (5632, 2048), down (2048, 5632).
// Compare the two in one run (the host is shared): --benchmark_enable_random_interleaving=true
// --benchmark_repetitions=N. items_per_second = multiply-adds per second.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>
#include <vector>

#include "lmq/kernels/gemm_bf16.h"

namespace {

std::vector<float> normal(size_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(n);
  for (float& f : v) f = nd(rng);
  return v;
}

// args: M, N, K, kind (0 sgemm, 1 gemm_bf16, 2 gemm_bf16's portable kernel: what CPUs without
// AVX-512 BF16 run)
void BM_CalibLinear(benchmark::State& st) {
  const int M = int(st.range(0)), N = int(st.range(1)), K = int(st.range(2));
  const bool bf16 = st.range(3) >= 1;
  const lmq::GemmBf16Path path = st.range(3) == 2 ? lmq::GemmBf16Path::Portable : lmq::GemmBf16Path::Auto;
  const std::vector<float> x = normal(size_t(M) * K, 1.0f, 1), w = normal(size_t(N) * K, 0.02f, 2);
  std::vector<float> y(size_t(M) * N);
  openblas_set_num_threads(1);  // as calibration runs it: one window per thread, BLAS serial inside
  const lmq::PackedBf16 packed = bf16 ? lmq::PackedBf16::from_f32(w.data(), N, K) : lmq::PackedBf16();
  for (auto _ : st) {
    if (bf16) lmq::gemm_bf16(x.data(), M, packed, y.data(), nullptr, path);
    else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, y.data(), N);
    benchmark::DoNotOptimize(y.data());
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * M * N * K);
  const bool avx = path == lmq::GemmBf16Path::Auto && lmq::have_avx512_bf16();
  st.SetLabel(bf16 ? (avx ? "gemm_bf16 avx512" : "gemm_bf16 portable") : "sgemm 1 thread");
}

}  // namespace

BENCHMARK(BM_CalibLinear)
    ->ArgNames({"M", "N", "K", "bf16"})
    ->ArgsProduct({{512}, {2048}, {2048}, {0, 1}})
    ->ArgsProduct({{512}, {256}, {2048}, {0, 1, 2}})
    ->ArgsProduct({{512}, {5632}, {2048}, {0, 1}})
    ->ArgsProduct({{512}, {2048}, {5632}, {0, 1}})
    ->Unit(benchmark::kMillisecond);
