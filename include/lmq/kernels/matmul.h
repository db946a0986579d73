// y = x · Wᵀ (+ bias) for a weight W [N, K] in any lmq Format and float activations x [T, K]:
// the linear layer of the forward pass. F32/BF16/F16 rows and the codes of LMQ_INT weights
// (every width; groups of whole 16-value steps; widths other than 8 unpacked to bytes a chunk of
// rows at a time) feed the tile kernels directly, widened in registers (one token at 4 bits:
// the AVX-512F decode kernel, codes read in place); other formats are dequantized a block
// of rows at a time into a small per-thread
// buffer, so no float copy of a weight is ever made. Threads split the output rows (OpenMP);
// each output sums in a fixed order, so results do not depend on the thread count.
#pragma once
#include <cstdint>

#include "lmq/tensor.h"

namespace lmq {

// x: T×K row-major; y: T×N row-major; bias: N floats or nullptr.
void matmul(const Tensor& w, const float* x, int64_t T, float* y, const float* bias = nullptr);

// The float tile kernel under matmul (Highway, runtime-dispatched): for r < nr, t < nt,
// y[t*ldy + r] = Σ_k w[r*K + k] · x[t*K + k].
void dot_tile_f32(const float* w, int64_t nr, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy);
// The same with bfloat16 weight rows, widened in registers (bit-exact with widening first).
void dot_tile_bf16(const uint16_t* w, int64_t nr, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy);
// The same with IEEE half weight rows (F16C conversion where the CPU has it; exact).
void dot_tile_f16(const uint16_t* w, int64_t nr, const float* x, int64_t nt, int64_t K, float* y, int64_t ldy);
// Integer weight codes, one byte each (rows ldu apart; packed codes unpacked first), against
// float activations x [nt × K], widened in registers: y[t·ldy + r] = Σ_g s[r·ng + g] ·
// Σ_{k∈g} (u[r][k] − z[r·ng + g]) · x[t][k] over ng = K/G groups of G (G a multiple of 16).
// The weight-only path of LMQ_INT weights: nothing is dequantized to float in memory. ahead > 0
// (codes read in place at decode): each row's line that many bytes on is fetched into L2 as
// each 64 codes are read.
void dot_tile_codes(const uint8_t* u, int64_t ldu, int64_t nr, const float* x, int64_t nt, int64_t K, int64_t G,
                    const float* s, const int32_t* z, float* y, int64_t ldy, int64_t ahead = 0);

}  // namespace lmq
