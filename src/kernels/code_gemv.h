// The weight-only decode kernel of packed LMQ_INT codes, 2 to 7 bits (code_gemv_x86.cpp): one
// token's float activations against codes read where they lie in the weight, so a decode step
// streams each weight once with nothing unpacked or dequantized into memory. matmul() takes it
// for T = 1 where the CPU and the layout fit; everything else takes dot_tile_codes.
#pragma once
#include <cstdint>

namespace lmq::codek {

// The CPU runs the kernel for this width: AVX-512F for 2 and 4 bits; AVX-512 VBMI as well for 3,
// 5, 6 and 7 (their codes are moved into 32-bit lanes with vpermb).
bool code_gemv_available(int bits);
// The layout fits: 2..4-bit codes in groups of whole 128-code steps or in 128-code steps of 2
// groups (G = 64) or of 4 (G = 32, 2 and 3 bits), 5..7-bit codes in groups of whole 64-code steps.
bool code_gemv_fits(int bits, int64_t K, int64_t G);
// The activation row as the kernel for `bits` reads it (xp has K floats): each step's values
// reordered so that lane j of its m-th 16-float vector holds x[n·j + m], the value whose code
// sits m codes into the step's 32-bit lane j; a lane holds n = 8 codes of 2..4 bits (steps of
// 128 values), n = 4 of 5..7 bits (steps of 64).
void code_gemv_prepare_x(int bits, const float* x, int64_t K, float* xp);

// Rows [0, nr) (nr <= 4) of `bits`-bit codes u (rows ldu bytes apart, packed as codecs/int_bits.h
// says) against xp: y[r] = Σ_g s[r·ng + g] · Σ_{k∈g} (u[r][k] − z[r·ng + g]) · x[k], ng = K/G.
// Each row's lines `ahead` bytes further on are fetched into L2 as the row is read (0: none).
struct CodeGemvArgs {
  int bits;
  const uint8_t* u;
  int64_t ldu;
  int64_t K, G;
  const float* xp;
  const float* s;
  const int32_t* z;
  int64_t ahead;
};
void code_gemv_rows(const CodeGemvArgs& a, int nr, float* y);

}  // namespace lmq::codek
