// The in-place kernels' shared pieces (see lmq/kernels/ggml_matmul.h for the arithmetic).
#pragma once
#include <cstdint>

#include "lmq/tensor.h"

namespace lmq::ggk {

// One weight's product over all T tokens, output rows (tiles of 4) split by the caller.
struct Args {
  Format f;             // Q8_0, Q4_0, Q2_K .. Q6_K, IQ4_NL, IQ4_XS, the lattice i-quants, the X16 layouts
  const uint8_t* w;     // row o at w + o·row_bytes (the X16 layouts: group g of 16 rows at w + 16g·row_bytes)
  int64_t row_bytes, N, K;
  int64_t T;
  const float* bias;    // nullable, N values
  float* y;             // y[t·N + o]
};

// The activations of one call, natural order: q (T × K), s_x and Σq_x per block of 32 (T × K/32).
struct Acts {
  const int8_t* q;
  const float* sx;
  const int32_t* xs;
};
// Rows [o0, o1) by the scalar specification.
void rows_scalar(const Args& a, const Acts& x, int64_t o0, int64_t o1);

// The AVX2 kernel (ggml_matmul_avx2.cpp): whether this CPU has it (AVX2, F16C), which formats it
// takes, and rows [o0, o1) of one of those, on the activations in natural order (as rows_scalar).
bool have_avx2();
bool avx2_format(Format f);
void rows_avx2(const Args& a, const Acts& x, int64_t o0, int64_t o1);

// What the VNNI kernel reads of the activations, made once per call (prepare_vnni):
//   q4k: per token, each 128 values reordered as [0, 32), [64, 96), [32, 64), [96, 128) (the
//        order of a Q4_K/Q5_K block's low then high nibbles of 64 bytes); null if no Q4_K/Q5_K weight
//   q:   natural order
//   q40: per token (ld40 = K rounded up to 128 values), each 128 values (4 blocks of 32) as the
//        first 16 values of each block then the last 16 of each (the order of 4 Q4_0 blocks'
//        low then high nibbles; IQ4_NL's, IQ4_XS's sub-blocks alike), zeros past K; null if no
//        Q8_0 / Q4_0 / IQ4_NL / IQ4_XS weight
//   sx4, xs4: per token (ld4 = K/32·4 values) each block's s_x / Σq_x repeated 4 times
//   x16s4: per token (ld16 = K/16·4 values) 32·Σq_x over each 16 values, repeated 4 times
//   sx, xs: s_x and Σq_x per block, natural order (T × K/32)
struct VnniActs {
  const int8_t *q4k, *q, *q40;
  const float* sx4;
  const int32_t *xs4, *x16s4;
  int64_t ld4, ld16, ld40;
  const float* sx;
  const int32_t* xs;
};
bool have_vnni();
// Tiles [tile0, tile1) of 4 rows (a last partial tile repeats its last row, writes only the real ones).
void tiles_vnni(const Args& a, const VnniActs& x, int64_t tile0, int64_t tile1);
// The X16 layouts (codecs/ggml_interleave.h): groups [g0, g1) of 16 rows.
void groups_x16_vnni(const Args& a, const VnniActs& x, int64_t g0, int64_t g1);
void reorder_q4k_vnni(const int8_t* x, int64_t n, int8_t* out);  // n a multiple of 128

}  // namespace lmq::ggk
