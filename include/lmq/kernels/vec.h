// Vector loops over rows of floats (Highway, runtime-dispatched): the reductions evaluation
// needs at every scored position of every window, and the forward pass's elementwise exps
// (softmax, SiLU) — none may cost a scalar exp per value.
#pragma once
#include <cstdint>

namespace lmq {

// log Σ exp(x_i), computed as m + log Σ exp(x_i − m) with m = max x (float lanes, double total).
double log_sum_exp(const float* x, int64_t n);
// Σ a_i · b_i (float lanes, double total).
double dot(const float* a, const float* b, int64_t n);
// out_i = exp(x_i − shift); returns Σ out_i.
double exp_shifted(const float* x, int64_t n, float shift, float* out);
// g_i = silu(g_i) · up_i = g_i / (1 + exp(−g_i)) · up_i (SwiGLU's gate).
void silu_mul(float* g, const float* up, int64_t n);

}  // namespace lmq
