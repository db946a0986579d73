// Per-row kernels of the integer matmul (see lmq/kernels/int_matmul.h for the arithmetic).
#pragma once
#include <cstdint>

namespace lmq::intk {

// One weight row (u8 codes, natural order, K values; codes <= 15 when small_codes) against
// nt <= 4 tokens x[t·ldx ..] (int8). Units of U values (the last one K - (nu-1)·U), nu8 = nu
// rounded up to 8. sx/xs: per token t, nu8 activation scales / code sums at t·ld; sw/zw: nu8
// weight scales / zero points for this row (padding: 0). Writes y[t·ldy].
struct RowArgs {
  const uint8_t* w;
  bool small_codes;
  int64_t K, U, nu, nu8;
  const int8_t* x;
  int64_t ldx;
  int nt;
  const float* sx;
  const int32_t* xs;
  int64_t ld;
  const float* sw;
  const int32_t* zw;
  float* y;
  int64_t ldy;
};
using RowFn = void (*)(const RowArgs&);
// Unpacks K (a multiple of 32) 4-bit codes (LSB-first nibbles) into bytes.
using Unpack4Fn = void (*)(const uint8_t* packed, int64_t K, uint8_t* out);

void row_scalar(const RowArgs& a);
void unpack4_scalar(const uint8_t* packed, int64_t K, uint8_t* out);
bool have_avx2();
bool have_avx512vnni();
void row_avx2(const RowArgs& a);
void row_avx512vnni(const RowArgs& a);
void unpack4_sse(const uint8_t* packed, int64_t K, uint8_t* out);

// The final combine of the 8 slots, shared by every kernel's specification.
inline float combine_slots(const float* s) {
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

}  // namespace lmq::intk
