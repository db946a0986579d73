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
#include <functional>
#include <memory>
#include <vector>

#include "lmq/quant/int_quantize.h"
#include "lmq/quant/scheme.h"

namespace lmq::calib {

// Steps 1–4 on H alone (what every linear with the same input shares: q/k/v, gate/up): the
// processing order and U. Computing it once per Hessian instead of once per linear spares the
// O(K³) factorization, which runs in the calling thread.
struct GptqInverse {
  int64_t K = 0;
  std::vector<double> diag;    // diag(H) (dead: 1), original order, undamped
  std::vector<int64_t> perm;   // processing index → column
  std::vector<double> U;       // K × K, upper Cholesky factor of the damped H⁻¹ (processing order)
  double lambda = 0;           // the damping added to the diagonal
};

struct GptqOptions {
  double damp = 0.01;     // λ = damp · mean(diag H)
  bool act_order = false;
  // act-order over runs of this many consecutive columns (by their summed H_jj), each run's
  // columns kept together and in order: the lattice i-quants choose 4 or 8 columns at once
  int order_run = 1;
  int block = 128;        // lazy-batch block (rounded to whole groups)
  int threads = 0;        // OpenMP threads over rows (<= 0: default)
  int refit = 0;          // ggml Q2_K/Q3_K/lattice targets: rounds of scale refit + re-sweep (calib/gguf_target.h)
  // gptq_inverse(H, K, this) computed beforehand for the same H and options, or null
  std::shared_ptr<const GptqInverse> inverse;
};

// Steps 2–4 for H (K × K); throws lmq::Error for a non-finite H or one that is not positive definite.
GptqInverse gptq_inverse(const float* H, int64_t K, const GptqOptions& o);

// w: rows × K floats; H: K × K (symmetric; need not be damped). out: int_tensor_bytes(s.p, rows, K).
// Returns the weight error of what was stored (vs w). Throws lmq::Error if H (damped) is not
// positive definite or w has NaN/Inf.
quant::QuantStats gptq_quantize(const float* w, int64_t rows, int64_t K, const float* H, const quant::Scheme& s,
                                const GptqOptions& o, uint8_t* out);

// GPTQ's steps 1–5 for any quantizer (calib/gguf_target.h uses them for ggml's block formats).
struct GptqState {
  std::vector<double> W;        // rows × K, original column order, dead columns zeroed
  std::vector<double> Wp;       // rows × K, processing order, updated in place by gptq_run
  std::shared_ptr<const GptqInverse> inv;  // perm, diag, U (o.inverse, or computed here)
  const std::vector<int64_t>& perm() const { return inv->perm; }
  const std::vector<double>& diag() const { return inv->diag; }
  int64_t rows = 0, K = 0;
};
// Steps 1–4 (o.inverse when given); throws lmq::Error for non-finite input or an H that is not
// positive definite.
GptqState gptq_prepare(const float* w, int64_t rows, int64_t K, const float* H, const GptqOptions& o);
// Step 5. quant(r, j, wr) quantizes wr[j] — row r's current weights in processing order, j the
// processing index (column st.perm[j]) — and returns the value it stands for; columns j of a
// block start at multiples of `B` (lazy batch), so a quantizer with groups of G columns that
// divide B sees a whole group up to date at its first column. Rows run in parallel.
using GptqColumnQuant = std::function<double(int64_t r, int64_t j, const double* wr)>;
void gptq_run(GptqState& st, int64_t B, int threads, const GptqColumnQuant& quant);

// GPTQ's asymmetric target (GPTAQ, Li et al. 2025, "asymmetric calibration"): the quantized linear
// should give, on the inputs X̂ of the model quantized so far, what the float linear gives on the
// float model's inputs X of the same tokens. With H = 2X̂ᵀX̂/n, the cross statistic
// C = 2X̂ᵀX/n (calib.h) and H_d = H + λI, the objective ‖XWᵀ − X̂Ŵᵀ‖²/n + λ‖W − Ŵ‖²/2 equals a
// constant plus tr((W* − Ŵ) H_d (W* − Ŵ)ᵀ)/2 with
//   W* = W (C + λI)ᵀ H_d⁻¹,
// so GPTQ run on W* with the same H minimises it (W* = W when X̂ = X; the damping pulls W*
// towards W). inv: gptq_inverse of that H (its λ, and H_d⁻¹ = UᵀU in processing order).
// Returns W + α(W* − W) (rows × K, in float: `--asym-calib α`; α = 1: W*); throws lmq::Error for
// a non-finite W*.
std::vector<float> gptq_asymmetric_target(const float* w, int64_t rows, int64_t K, const float* cross,
                                          const GptqInverse& inv, double alpha = 1);

// tr(D H Dᵀ)/2 with D = w − w' (the output error per calibration token, as H = 2XXᵀ/n): a proxy
// used in reports and tests. row_stride > 1: estimated from rows 0, s, 2s, … (their sum times
// rows / their count), 1/s of the cost.
// threads <= 0: OpenMP's default; the sum depends on the thread count in its last bits.
double output_error(const float* w, const float* wq, int64_t rows, int64_t K, const float* H, int threads = 0,
                    int64_t row_stride = 1);

}  // namespace lmq::calib
