// The weight-only decode kernel of 4-bit LMQ_INT codes (code_gemv_x86.cpp): one token's float
// activations against codes read where they lie in the weight, so a decode step streams each
// weight once with nothing unpacked or dequantized into memory. matmul() takes it for T = 1
// where the CPU has AVX-512F and the layout fits; everything else takes dot_tile_codes.
#pragma once
#include <cstdint>

namespace lmq::codek {

bool code_gemv_available();  // AVX-512F on this CPU
// 4-bit codes in groups of whole 128-code (64-byte) steps.
bool code_gemv_fits(int bits, int64_t K, int64_t G);
// The activation row as the 4-bit kernel reads it: each 128-value step reordered so that lane j
// of its m-th 16-float vector holds x[8j + m], the value whose code sits in nibble m of the
// step's 32-bit lane j. xp has K floats.
void code_gemv_prepare_x4(const float* x, int64_t K, float* xp);

// Rows [0, nr) (nr <= 4) of 4-bit codes u (rows ldu bytes apart, packed as codecs/int_bits.h
// says) against xp: y[r] = Σ_g s[r·ng + g] · Σ_{k∈g} (u[r][k] − z[r·ng + g]) ·
// x[k], ng = K/G. Each row's lines `ahead` bytes further on are fetched into L2 as the row is
// read (0: none).
struct CodeGemvArgs {
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
