// Linear-layer speed: float kernel on bf16 weights vs the integer kernels (int8 per channel and
// int4 g32, both × dynamic int8 activations), GEMV (T = 1) and GEMM (T = 512), for a 1024×384
// and a 32000×384 weight. bytes_per_second counts the weight's stored bytes per call.
// BM_IntDecodeStream: decode (T = 1) of 1.1B- and 7B-sized weights streamed from memory; kind 0 int8
// channel × A8, 1 int4 g128 × A8, 2 and 3 the same weights × float activations (weight-only),
// 4 and 5 int3 g128 (a packed width) × A8 and × float.
#include <benchmark/benchmark.h>

#include <omp.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lmq/codecs/int_format.h"
#include "lmq/codecs/int_interleave.h"
#include "lmq/half.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/kernels/matmul.h"
#include "lmq/quant/int_quantize.h"
#include "stream_read.h"

using namespace lmq;

namespace {

struct W {
  std::vector<uint8_t> bytes;
  Tensor t;
};

W make(int64_t N, int64_t K, int kind) {  // 0 bf16, 1 int8 channel sym, 2 int4 g32 sym
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> f(static_cast<size_t>(N * K));
  for (auto& v : f) v = nd(rng);
  W w;
  w.t.name = "w";
  w.t.shape = {N, K};
  if (kind == 0) {
    w.bytes.resize(size_t(N * K * 2));
    auto* p = reinterpret_cast<uint16_t*>(w.bytes.data());
    for (size_t i = 0; i < f.size(); ++i) p[i] = f32_to_bf16(f[i]);
    w.t.format = Format::BF16;
  } else {
    const IntParams p = kind == 1 ? IntParams{8, false, -1, ScaleType::F16} : IntParams{4, false, 32, ScaleType::F16};
    w.bytes.resize(quant::int_tensor_bytes(p, N, K));
    quant::quantize_tensor(f.data(), N, K, p, quant::RangeMethod::MinMax, 99.9f, nullptr, w.bytes.data(), 0);
    w.t.format = Format::LMQ_INT;
    w.t.q = p;
  }
  w.t.data = w.bytes.data();
  w.t.nbytes = w.bytes.size();
  return w;
}

// args: N, T, kind (0 bf16 float path, 1 int8×a8, 2 int4g32×a8, 3 int8 weight-only, 4 int4 weight-only)
void BM_Linear(benchmark::State& st) {
  const int64_t N = st.range(0), K = 384, T = st.range(1);
  const int kind = int(st.range(2));
  const W w = make(N, K, kind >= 3 ? kind - 2 : kind);
  std::vector<float> x(static_cast<size_t>(T * K)), y(size_t(T * N));
  std::mt19937 rng(2);
  std::normal_distribution<float> nd;
  for (auto& v : x) v = nd(rng);
  const bool integer = kind == 1 || kind == 2;
  std::unique_ptr<IntMatmulPlan> plan = integer ? std::make_unique<IntMatmulPlan>(w.t) : nullptr;
  QuantizedActs xq;
  for (auto _ : st) {
    if (integer) {  // as Runner does: the plan made once, the activations quantized per call
      quantize_activations(x.data(), T, K, ActQuant::DynamicAbsmax, 0, plan->unit(), xq);
      int_matmul_q(*plan, xq, y.data());
    } else {
      matmul(w.t, x.data(), T, y.data(), nullptr);
    }
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(w.bytes.size()));
  static const char* names[] = {"f32_on_bf16", "int8ch_x_a8", "int4g32_x_a8", "int8ch_weight_only", "int4g32_weight_only"};
  st.SetLabel(names[kind]);
}

// Decode streaming from DRAM: T = 1 over copies of a 4096 × 11008 (7B's down_proj) or 5632 × 2048
// (1.1B's gate/up) weight, int8 per channel, int4 g128 or int3 g128, symmetric with f16 scales (the
// defaults), × dynamic per-token int8 activations; one call each, and enough copies (≥ 180 MB)
// that the bytes come from memory rather than cache. Compare with BM_StreamRead (stream_read.h).
// args: kind (0 int8 channel × A8, 1 int4 g128 × A8, 2 and 3 the same × float, 4 int3 g128 × A8,
// 5 int3 g128 × float, 6 int2 g128 × float, 7 int5 g64 × float, 8 int6 channel × float: the
// packed widths; 9 int8 channel × A8 and 10 int4 g128 × A8 interleaved, LMQ_INT_X16), threads, shape (0 4096 × 11008, 1 5632 × 2048; 2: 1024 × 2048, one copy,
// which stays in the caches: the kernel's own speed, its bound when memory is not).
void BM_IntDecodeStream(benchmark::State& st) {
  const int64_t shape = st.range(2);
  const int64_t N = shape == 0 ? 4096 : shape == 1 ? 5632 : 1024, K = shape == 0 ? 11008 : 2048;
  const int64_t kWeights = shape == 0 ? 8 : shape == 1 ? 32 : 1;
  struct Kind {
    uint8_t bits;
    int32_t group;
    bool weight_only;
    bool x16 = false;
  };
  constexpr Kind kinds[] = {{8, -1, false}, {4, 128, false}, {8, -1, true}, {4, 128, true}, {3, 128, false},
                            {3, 128, true}, {2, 128, true},  {5, 64, true},  {6, -1, true},
                            {8, -1, false, true}, {4, 128, false, true}};
  const Kind kind = kinds[st.range(0)];
  const bool weight_only = kind.weight_only;
  const uint8_t bits = kind.bits;
  const IntParams p{bits, false, kind.group, ScaleType::F16};
  std::vector<float> f(static_cast<size_t>(N * K));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 0.05f);
  for (auto& v : f) v = nd(rng);
  std::vector<uint8_t> one(quant::int_tensor_bytes(p, N, K));
  quant::quantize_tensor(f.data(), N, K, p, quant::RangeMethod::MinMax, 99.9f, nullptr, one.data(), 0);
  if (kind.x16) {
    std::vector<uint8_t> codes(one.begin(), one.end());
    int_x16_interleave(codes.data(), N, int64_t(quant::int_layout(p, N, K).row_code_bytes), 0, N / 16, one.data());
  }
  const auto bytes = bench::stream_copies(one.data(), one.size(), kWeights);
  std::vector<Tensor> w(kWeights);
  std::vector<std::unique_ptr<IntMatmulPlan>> plans;
  for (int64_t i = 0; i < kWeights; ++i) {
    w[size_t(i)].name.append("w");  // append: g++ 12's -Wrestrict misfires on assignment here
    w[size_t(i)].shape = {N, K}, w[size_t(i)].format = kind.x16 ? Format::LMQ_INT_X16 : Format::LMQ_INT;
    w[size_t(i)].q = p;
    w[size_t(i)].data = bytes[size_t(i)].get(), w[size_t(i)].nbytes = one.size();
    plans.push_back(std::make_unique<IntMatmulPlan>(w[size_t(i)]));
  }
  std::vector<float> x(static_cast<size_t>(K)), y(static_cast<size_t>(N));
  for (auto& v : x) v = nd(rng);
  QuantizedActs xq;
  quantize_activations(x.data(), 1, K, ActQuant::DynamicAbsmax, 0, plans[0]->unit(), xq);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(int(st.range(1)));
  for (auto _ : st)
    for (int64_t i = 0; i < kWeights; ++i) {
      if (weight_only)
        matmul(w[size_t(i)], x.data(), 1, y.data(), nullptr);
      else
        int_matmul_q(*plans[size_t(i)], xq, y.data());
      benchmark::DoNotOptimize(y.data());
    }
  omp_set_num_threads(threads);
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(one.size()) * kWeights);
  st.SetLabel("int" + std::to_string(bits) + (kind.group < 0 ? " channel" : " g" + std::to_string(kind.group)) +
              (kind.x16 ? " x16" : "") + (weight_only ? " x float, T=1" : " x A8, T=1"));
}

}  // namespace

BENCHMARK(BM_IntDecodeStream)
    ->ArgNames({"kind", "threads", "shape"})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {1, 2}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK(BM_Linear)
    ->ArgNames({"N", "T", "kind"})
    ->ArgsProduct({{1024, 32000}, {1, 512}, {0, 1, 2, 3, 4}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
