// SIMD loops of dynamic activation quantization (act_quant_simd.cpp, Highway, runtime dispatch).
#pragma once
#include <cstdint>

namespace lmq {

// max |x[i]| over n values; NaN counts as 0.
float simd_absmax(const float* x, int64_t n);
// q[i] = clamp(round(x[i]·inv), -127, 127), round half away from zero, NaN → 0; returns Σ q[i].
int32_t simd_quantize_i8(const float* x, int64_t n, float inv, int8_t* q);

}  // namespace lmq
