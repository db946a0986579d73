// Text generation on a Runner: prefill the prompt in one batch, then decode one token at a time
// through the KV cache. temp 0 is greedy; otherwise top-p (nucleus) sampling at temperature temp
// with a seeded generator, so a given seed always gives the same text.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "lmq/model/forward.h"

namespace lmq {

struct SampleOptions {
  float temp = 0.8f;
  float top_p = 0.95f;
  uint64_t seed = 42;
};

// Throws lmq::Error naming --temp or --top-p if one is out of range (generate checks too).
void check_sample_options(const SampleOptions& opt);

// Returns the prompt followed by the new ids; stops early at EOS. on_token sees each new id.
std::vector<int> generate(Runner& run, const std::vector<int>& prompt, int n_new, const SampleOptions& opt,
                          const std::function<void(int)>& on_token = {});

}  // namespace lmq
