// Vector loops over rows of floats (Highway, runtime-dispatched): the reductions evaluation
// needs at every scored position of every window, and the forward pass's elementwise exps
// (softmax, SiLU), RMSNorm and the logits' finiteness check — none may cost a scalar exp per value.
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
// y = x / sqrt(mean(x²) + eps) · w for each of `rows` rows of n (x and y may not overlap).
void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps);
// One query row of causal attention: row[j] = softmax_j(row[j] · scale) over the visible
// positions j < visible, 0 for the masked ones up to len.
void softmax_causal(float* row, int visible, int len, float scale);
// Whether no x_i is NaN or ±Inf.
bool all_finite(const float* x, int64_t n);

}  // namespace lmq
