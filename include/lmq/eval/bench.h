// Prefill and decode speed of a model, measured like llama.cpp's pp512 / tg128: a batch of
// `prefill` tokens from an empty cache, then `decode` single-token steps. Each figure is the
// median of `reps` runs.
#pragma once
#include <cstdint>
#include <string>

#include "lmq/model/model.h"
#include "lmq/model/run_options.h"

namespace lmq {

struct BenchResult {
  int threads = 0, prefill_tokens = 0, decode_tokens = 0;
  double prefill_tok_s = 0, decode_tok_s = 0;
  uint64_t weight_bytes_per_token = 0;  // bytes of weights one decode step streams
  std::string activations;  // the rule the linears ran with: "none", "dynamic:absmax:b32", ...
};

BenchResult bench_model(const Model& m, int prefill, int decode, int reps, const RunOptions& run = {});

}  // namespace lmq
