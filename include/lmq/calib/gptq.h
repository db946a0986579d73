// GPTQ (Frantar et al., 2022): quantize a linear weight W [rows × K] column by column, pushing
// each column's rounding error onto the columns not yet quantized so as to minimize the layer's
// output error ‖WX − W'X‖² = tr((W−W')H(W−W')ᵀ)/2 with H = 2XXᵀ/n from calibration inputs.
//
//   1. dead inputs (H_jj = 0): H_jj = 1 and W[:, j] = 0;
//   2. act-order (optional): columns processed by descending H_jj;
//   3. damping: H += λI with λ = damp · mean(diag H);
//   4. U = the upper Cholesky factor of H⁻¹ (LAPACK dpotrf, dpotri, dpotrf; double precision);
//   5. for j in processing order: q_j = quant(w_j), err = (w_j − q_j)/U_jj,
//      W[:, later] −= err ⊗ U[j, later] — within blocks of `block` columns, with the update of
//      the columns after the block done once per block as one matrix product (lazy batching).
// Group parameters (scale, zero) come from lmq::quant::choose_group_params with the scheme's
// range method (min/max, percentile, MSE clip search):
//   * groups of G (no act-order): computed when the first column of a group is reached, from
//     that group's current (error-updated) weights; blocks are aligned to whole groups so the
//     group's columns are up to date at that point;
//   * act-order with groups ("static groups"), per channel and per tensor: computed up front
//     from the weights (after dead-column zeroing), so groups stay contiguous in the original
//     column order and the stored layout is unchanged.
// The result is an ordinary LMQ_INT tensor (int_format.h layout).
#pragma once
#include <cstdint>
#include <vector>

#include "lmq/quant/int_format.h"
#include "lmq/quant/scheme.h"

namespace lmq::calib {

struct GptqOptions {
  double damp = 0.01;     // λ = damp · mean(diag H)
  bool act_order = false;
  int block = 128;        // lazy-batch block (rounded to whole groups)
  int threads = 0;        // OpenMP threads over rows (<= 0: default)
};

// w: rows × K floats; H: K × K (symmetric; need not be damped). out: int_tensor_bytes(s.p, rows, K).
// Returns the weight error of what was stored (vs w). Throws lmq::Error if H (damped) is not
// positive definite or w has NaN/Inf.
quant::QuantStats gptq_quantize(const float* w, int64_t rows, int64_t K, const float* H, const quant::Scheme& s,
                                const GptqOptions& o, uint8_t* out);

// tr(D H Dᵀ)/2 with D = w − w' (the output error per calibration token, as H = 2XXᵀ/n): a proxy
// used in reports and tests.
double output_error(const float* w, const float* wq, int64_t rows, int64_t K, const float* H);

}  // namespace lmq::calib
