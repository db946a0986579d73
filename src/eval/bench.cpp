#include "lmq/eval/bench.h"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "lmq/error.h"
#include "lmq/model/forward.h"

namespace lmq {

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

BenchResult bench_model(const Model& m, int prefill, int decode, int reps, const RunOptions& opts) {
  const auto& c = m.config();
  if (prefill < 1 || decode < 1 || reps < 1) fail("bench: token counts and repetitions must be ≥ 1");
  if (prefill + 1 > c.max_pos || decode + 1 > c.max_pos)
    fail("bench: {} prefill / {} decode tokens exceed the context of {}", prefill, decode, c.max_pos);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> tok(3, c.vocab - 1);
  std::vector<int> ids(size_t(std::max(prefill, decode)));
  for (int& t : ids) t = tok(rng);
  Runner run(m, std::max(prefill, decode) + 1, opts);
  std::vector<float> logits(size_t(c.vocab));
  using clock = std::chrono::steady_clock;
  std::vector<double> pp, tg;
  // Warm-up, as llama-bench does: one full prefill first, so the timed runs find their scratch
  // buffers and the KV cache paged in and every weight's integer plan built.
  run.forward(ids.data(), prefill, logits.data(), false);
  for (int r = 0; r < reps; ++r) {
    run.reset();
    auto t0 = clock::now();
    run.forward(ids.data(), prefill, logits.data(), false);
    pp.push_back(prefill / std::chrono::duration<double>(clock::now() - t0).count());
    run.reset();
    t0 = clock::now();
    for (int i = 0; i < decode; ++i) run.forward(&ids[size_t(i)], 1, logits.data(), false);
    tg.push_back(decode / std::chrono::duration<double>(clock::now() - t0).count());
  }
  BenchResult b;
  b.threads = omp_get_max_threads();
  b.prefill_tokens = prefill;
  b.decode_tokens = decode;
  b.prefill_tok_s = median(pp);
  b.decode_tok_s = median(tg);
  b.activations = act_quant_name(run.act_quant());
  if (run.act_quant() != ActQuant::None && run.act_block() > 0) b.activations += fmt::format(":b{}", run.act_block());
  for (const auto& l : m.layers())
    for (const Tensor* t : {l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down}) b.weight_bytes_per_token += t->nbytes;
  b.weight_bytes_per_token += m.lm_head().nbytes;
  return b;
}

}  // namespace lmq
