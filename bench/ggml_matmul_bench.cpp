// In-place GGUF matmul speed (lmq/kernels/ggml_matmul.h) per kernel: the scalar specification, the
// AVX2 tiles and the AVX-512 VNNI ones, on llama.cpp-quantized Gaussian weights, a decode-shaped
// call (T = 1, a 5632×2048 weight: a 1.1B model's MLP) and a prefill-shaped one (T = 64, 2048×2048).
// One thread (the kernels' own speed; the output rows split evenly over threads). The activations
// are quantized once, outside the timed loop. bytes_per_second counts the weight's stored bytes.
// Compare kernels with --benchmark_enable_random_interleaving=true --benchmark_repetitions=N.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <map>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/ggml_interleave.h"
#include "lmq/codecs/ggml_repack.h"
#include "lmq/kernels/act_quant.h"
#include "lmq/kernels/ggml_matmul.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/quant/int_quantize.h"
#include "stream_read.h"

using namespace lmq;

namespace {

constexpr Format kFormats[] = {Format::Q4_K, Format::Q6_K, Format::Q8_0,  Format::Q4_0,  Format::Q5_K,
                               Format::Q3_K, Format::Q2_K, Format::IQ4_XS, Format::IQ4_NL};
constexpr IntKernel kKernels[] = {IntKernel::Scalar, IntKernel::Avx2, IntKernel::Avx512Vnni};

// The weight bytes of format f, N × K, made once per process (quantizing takes longer than a call).
const std::vector<uint8_t>& weight(Format f, int64_t N, int64_t K) {
  static std::map<std::tuple<Format, int64_t, int64_t>, std::vector<uint8_t>> cache;
  auto& b = cache[{f, N, K}];
  if (b.empty()) {
    std::mt19937 rng(1);
    std::normal_distribution<float> g(0.f, 0.05f);
    std::vector<float> w(static_cast<size_t>(K));
    const size_t rb = ggml_row_bytes(f, K);
    b.resize(size_t(N) * rb);
    for (int64_t r = 0; r < N; ++r) {
      for (float& v : w) v = g(rng);
      ggml_quantize_row(f, w.data(), b.data() + size_t(r) * rb, K);
    }
  }
  return b;
}

// args: format index, T (1: decode 5632×2048, else prefill 2048×2048), kernel index (3: Q8_0,
// Q4_0, IQ4 repacked into LMQ_INT as a loader does without VNNI, on the LMQ_INT kernels' AVX2 one)
void BM_GgmlMatmul(benchmark::State& st) {
  const Format f = kFormats[st.range(0)];
  const int64_t T = st.range(1), N = T == 1 ? 5632 : 2048, K = 2048;
  const bool repacked = st.range(2) == 3;
  const IntKernel k = repacked ? IntKernel::Avx2 : kKernels[st.range(2)];
  if (!int_kernel_available(k)) return st.SkipWithError("kernel not available on this CPU");
  if (repacked && !ggml_repack_params(f)) return st.SkipWithError("format does not repack");
  const std::vector<uint8_t>& b = weight(f, N, K);
  const Tensor w = Tensor::view("w", f, N, K, b.data(), b.size());
  std::vector<float> x(static_cast<size_t>(T * K)), y(size_t(T * N));
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  QuantizedActs xq;
  quantize_activations(x.data(), T, K, ActQuant::DynamicAbsmax, 32, 32, xq);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  if (repacked) {
    const IntParams p = *ggml_repack_params(f);
    std::vector<uint8_t> packed(quant::int_tensor_bytes(p, N, K));
    ggml_repack_rows(f, b.data(), N, K, 0, N, packed.data());
    Tensor r = w;
    r.format = Format::LMQ_INT;
    r.q = p;
    r.data = packed.data();
    r.nbytes = packed.size();
    const IntMatmulPlan plan(r, 32);
    for (auto _ : st) {
      int_matmul_q(plan, xq, y.data(), nullptr, k);
      benchmark::DoNotOptimize(y.data());
    }
  } else {
    for (auto _ : st) {
      ggml_matmul_q(w, xq, y.data(), nullptr, k);
      benchmark::DoNotOptimize(y.data());
    }
  }
  omp_set_num_threads(threads);
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(b.size()));
  st.SetLabel(std::string(format_name(f)) + " " + (repacked ? "lmq_int_avx2_repacked" : int_kernel_name(k)));
}

// Decode at a real size: T = 1 over 8 weights of 4096 × 11008 (a 7B model's ffn_down; 200 to
// 630 MB in all, far past the caches), one call per weight, so the weight bytes stream from DRAM
// as in a token's decode. args: format (Q4_0, Q4_0_X16: the same blocks interleaved as a GGUF
// load does on VNNI CPUs, Q8_0, Q4_K, Q6_K, and Q8_0_X16, Q4_K_X16, Q6_K_X16 likewise), threads.
// Compare bytes_per_second with BM_StreamRead's in the same run
// (--benchmark_enable_random_interleaving=true).
void BM_GgmlDecodeStream(benchmark::State& st) {
  constexpr Format kStream[] = {Format::Q4_0, Format::Q4_0_X16, Format::Q8_0,     Format::Q4_K,
                                Format::Q6_K, Format::Q8_0_X16, Format::Q4_K_X16, Format::Q6_K_X16};
  const Format f = kStream[st.range(0)];
  const bool x16 = format_traits(f).row_group > 1;
  const Format stored = x16 ? format_traits(f).group_of : f;
  constexpr int64_t N = 4096, K = 11008, kWeights = 8;
  if (!int_kernel_available(IntKernel::Avx512Vnni)) return st.SkipWithError("no AVX-512 VNNI");
  const std::vector<uint8_t>& one = weight(stored, N, K);
  const auto bytes = bench::stream_copies(one.data(), one.size(), kWeights);
  std::vector<Tensor> w;
  for (const auto& b : bytes) {
    if (x16) x16_interleave(stored, one.data(), N, K, 0, N / 16, b.get());
    w.push_back(Tensor::view("w", f, N, K, b.get(), one.size()));
  }
  std::vector<float> x(static_cast<size_t>(K)), y(static_cast<size_t>(N));
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  QuantizedActs xq;
  quantize_activations(x.data(), 1, K, ActQuant::DynamicAbsmax, 32, 32, xq);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(int(st.range(1)));
  for (auto _ : st)
    for (const Tensor& t : w) {
      ggml_matmul_q(t, xq, y.data());
      benchmark::DoNotOptimize(y.data());
    }
  omp_set_num_threads(threads);
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(one.size()) * kWeights);
  st.SetLabel(std::string(format_name(f)) + " T=1");
}

// The bound of the decode-stream benchmarks (stream_read.h): a plain read of 8 buffers, 210 MB in
// all (about BM_GgmlDecodeStream's Q4_0 copies), each summed by the team split as the kernels split
// their rows. args: threads.
void BM_StreamRead(benchmark::State& st) {
  constexpr size_t kBytes = size_t(25) << 20;
  constexpr int64_t kCopies = 8;
  const std::vector<uint8_t> one(kBytes, 1);
  const auto bytes = bench::stream_copies(one.data(), kBytes, kCopies);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(int(st.range(0)));
  for (auto _ : st)
    for (const auto& b : bytes) benchmark::DoNotOptimize(bench::stream_read(b.get(), kBytes));
  omp_set_num_threads(threads);
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(kBytes) * kCopies);
  st.SetLabel("plain read, the decode streams' bound");
}

}  // namespace

BENCHMARK(BM_StreamRead)->ArgNames({"threads"})->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK(BM_GgmlDecodeStream)
    ->ArgNames({"fmt", "threads"})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK(BM_GgmlMatmul)
    ->ArgNames({"fmt", "T", "kernel"})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7, 8}, {1, 64}, {0, 1, 2, 3}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
