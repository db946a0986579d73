// Vector reductions over logits rows (Highway, runtime-dispatched): what evaluation needs at
// every scored position of every window, so it must not cost a scalar exp per vocabulary entry.
#pragma once
#include <cstdint>

namespace lmq {

// log Σ exp(x_i), computed as m + log Σ exp(x_i − m) with m = max x (float lanes, double total).
double log_sum_exp(const float* x, int64_t n);
// Σ a_i · b_i (float lanes, double total).
double dot(const float* a, const float* b, int64_t n);
// out_i = exp(x_i − shift); returns Σ out_i.
double exp_shifted(const float* x, int64_t n, float shift, float* out);

}  // namespace lmq
