// Integer linear layer: int8 activations (quantized per token at run time, kernels/act_quant.h)
// times LMQ_INT weight codes, accumulated in int32, one float rescale per group.
//
// The weight's inputs are split into units of U values: U = the weight group G (or the whole
// row K for per-channel / per-tensor weights), or the activation block when that is smaller —
// activation blocks and weight groups must nest (one divides the other). For output o, token t
// and unit u (all integer, exact):
//     d[u] = Σ_{k∈u} u_w[o,k]·q_x[t,k] − z_w[o,u]·Σ_{k∈u} q_x[t,k]
// and then, the specification every kernel reproduces bit for bit:
//     f[u] = float(d[u]) · (s_w[o,u] · s_x[t,u])                    (two roundings, no FMA)
//     slot[j] = Σ_{u ≡ j mod 8} f[u], added in increasing u from 0.0f   (8 slots)
//     y[t,o] = ((slot0 + slot4) + (slot2 + slot6)) + ((slot1 + slot5) + (slot3 + slot7))  (+ bias)
// Asymmetric weights get their zero point through the correction term, symmetric ones use
// z = 2^(b-1); nothing is dequantized to float. Supported weights: LMQ_INT, 2-D, any width 2..8,
// sym or asym, per tensor / per channel / per group with G % 32 == 0, K % 32 == 0 and U <= 65536
// (so int32 cannot overflow). Anything else goes through lmq::matmul.
// Kernels: a scalar reference, AVX2, and AVX-512 VNNI (vpdpbusd: u8 weight codes × s8
// activations), chosen at run time. Threads split the output rows (OpenMP); results do not
// depend on the thread count or the kernel.
//
// The AVX-512 VNNI kernel works on tiles of 4 output rows × up to 4 tokens when K is a
// multiple of its step (128 codes at 4 bits, 64 at every other width) and U divides the step or
// the step divides U (every layout lmq's schemes make for real models); other shapes take its
// row-at-a-time form. It reads the codes as stored: 4-bit nibbles split by an and and a shift,
// other packed widths unpacked in registers (vpermb + vpmultishiftqb where the CPU has AVX-512
// VBMI; else 64 codes at a time through a stack buffer). The row forms (scalar, AVX2) unpack a
// packed row to bytes first. LMQ_INT_X16 weights (codecs/int_interleave.h: 16 rows' codes
// interleaved) take their own VNNI kernel on the same shapes, groups of 16 rows × up to 4 tokens,
// lane r of every vpdpbusd summing row r (int_matmul_x16_x86.cpp); the row forms gather each
// row's codes from the records. An IntMatmulPlan gathers a weight's scales and zero points once, in the
// order the kernels read them; build one per weight and reuse it (Runner does).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "lmq/kernels/act_quant.h"
#include "lmq/tensor.h"

namespace lmq {

enum class IntKernel { Auto, Scalar, Avx2, Avx512Vnni };
bool int_kernel_available(IntKernel k);
const char* int_kernel_name(IntKernel k);
IntKernel best_int_kernel();

// Whether LMQ_INT_X16 weights (codecs/int_interleave.h) run on their own kernel here (AVX-512
// VNNI): a loader interleaves LMQ_INT linears only then.
bool int_matmul_takes_x16();

// Unit size U for weight w with activation blocks of act_block values (0 = one scale per
// token), or 0 when w cannot take the integer path.
int64_t int_matmul_unit(const Tensor& w, int64_t act_block = 0);
inline bool int_matmul_supported(const Tensor& w, int64_t act_block = 0) { return int_matmul_unit(w, act_block) > 0; }

// What the kernels need of one weight besides its codes, gathered once: per tile of R rows (4;
// 16 for LMQ_INT_X16, the kernel's group; the last tile padded with zero rows) and per unit u,
// the R rows' scales (and, asymmetric weights only, zero points) side by side:
// sw[(tile·nu + u)·R + r].
class IntMatmulPlan {
 public:
  // Throws lmq::Error if w cannot take the integer path with this activation block. Keeps a
  // pointer to w (and so to its bytes): the plan must not outlive the tensor.
  explicit IntMatmulPlan(const Tensor& w, int64_t act_block = 0);
  const Tensor& weight() const { return *w_; }
  int64_t unit() const { return U_; }
  int64_t units_per_row() const { return nu_; }
  int64_t rows_per_tile() const { return R_; }
  const float* tile_scales(int64_t tile) const { return sw_.data() + tile * nu_ * R_; }
  const int32_t* tile_zeros(int64_t tile) const { return zw_.empty() ? nullptr : zw_.data() + tile * nu_ * R_; }
  int32_t sym_zero() const { return zc_; }  // the zero point of every unit when tile_zeros() is null

 private:
  const Tensor* w_;
  int64_t U_ = 0, nu_ = 0, R_ = 4;
  int32_t zc_ = 0;
  std::vector<float> sw_;
  std::vector<int32_t> zw_;
};

// y (T × N) from already quantized activations; xq.sum_group must be the unit U and
// xq.block a multiple of U (or the whole row). Throws lmq::Error if w is unsupported.
void int_matmul_q(const IntMatmulPlan& plan, const QuantizedActs& xq, float* y, const float* bias = nullptr,
                  IntKernel k = IntKernel::Auto);
// One weight's part of a fused product: weights that read the same activations (q/k/v,
// gate/up) run in one parallel region, their tiles split over the threads together.
struct IntMatmulJob {
  const IntMatmulPlan* plan;
  float* y;
  const float* bias = nullptr;
};
// Every job against the same xq; the same results as one int_matmul_q call per job.
void int_matmul_q(std::span<const IntMatmulJob> jobs, const QuantizedActs& xq, IntKernel k = IntKernel::Auto);
// The same with a plan made for this call (tests, one-off products).
void int_matmul_q(const Tensor& w, const QuantizedActs& xq, float* y, const float* bias = nullptr,
                  IntKernel k = IntKernel::Auto);
// Quantizes x (T × K) with `rule` and act_block (0 = per token), then int_matmul_q.
void int_matmul(const Tensor& w, const float* x, int64_t T, float* y, const float* bias, ActQuant rule,
                int64_t act_block = 0, IntKernel k = IntKernel::Auto);

}  // namespace lmq
