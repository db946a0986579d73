// Linear-layer speed: float kernel on bf16 weights vs the integer kernels (int8 per channel and
// int4 g32, both × dynamic int8 activations), GEMV (T = 1) and GEMM (T = 512), for a 1024×384
// and a 32000×384 weight. bytes_per_second counts the weight's stored bytes per call.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "lmq/half.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/kernels/matmul.h"
#include "lmq/quant/int_quantize.h"

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

}  // namespace

BENCHMARK(BM_Linear)
    ->ArgNames({"N", "T", "kind"})
    ->ArgsProduct({{1024, 32000}, {1, 512}, {0, 1, 2, 3, 4}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
