// Per-row kernels of the integer matmul (see lmq/kernels/int_matmul.h for the arithmetic).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <span>

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
// Unpacks K (a multiple of 32) codes of a packed row (codecs/int_bits.h) into bytes: the
// plain loop for the scalar kernel, quant::unpack_bits (its SIMD paths) for the SIMD ones.
using UnpackFn = void (*)(const uint8_t* packed, int64_t K, int bits, uint8_t* out);

void row_scalar(const RowArgs& a);
void unpack_scalar(const uint8_t* packed, int64_t K, int bits, uint8_t* out);
bool have_avx2();
bool have_avx512vnni();
void row_avx2(const RowArgs& a);
void row_avx512vnni(const RowArgs& a);

// The tiled AVX-512 VNNI kernel (int_matmul_tiles_x86.cpp): tiles of 4 weight rows (a last
// partial tile repeats a valid row and writes only the real ones) × up to 4 tokens at a time.
// K is a multiple of the step (S = 128 codes at 4 bits, 64 at every other width: 8·b bytes of
// b-bit codes) and U divides S or S divides U. x: per token ldx bytes; at 4 bits each 128-code step is stored as its 64
// even-position codes then its 64 odd-position ones (the order of the low and high nibbles of
// 64 packed bytes). sx4/xs4: per token (at t·ld4), every unit's activation scale / code sum
// repeated 4 times (sx4[u·4 + r] = sx[u]). sw4/zw4: the plan's scales / zero points, nu·4 per
// tile (zw4 null: zero point zc everywhere). One call runs tiles [tile0, tile1) over all T
// tokens, so a thread's share of a matmul costs one call.
struct TileArgs {
  const uint8_t* codes;  // row o's codes at codes + o·row_bytes
  int64_t row_bytes, N;
  int bits;
  int64_t K, U, nu;  // nu: units per row (the padding to 8 slots follows from it)
  const int8_t* x;
  int64_t ldx, T;
  const float* sx4;
  const int32_t* xs4;
  int64_t ld4;
  const float* sw4;
  const int32_t* zw4;
  int32_t zc;
  const float* bias;  // nullable, N values
  float* y;           // y[t·ldy + o]
  int64_t ldy;
  bool prefetch;  // fetch lines ahead into L2 while a tile computes (decode streams the weight once)
  bool vbmi;      // widths other than 8/4: unpack with AVX-512 VBMI (use_vbmi())
};
bool have_avx512vbmi();
// Whether the tiled kernel unpacks with VBMI: where the CPU has it, unless a test turned it off
// (allow_vbmi(false)) to run the other form on the same CPU.
bool use_vbmi();
void allow_vbmi(bool on);
bool tile_kernel_fits(int bits, int64_t K, int64_t U);
void tiles_avx512vnni(const TileArgs& a, int64_t tile0, int64_t tile1);
// The AVX-512 VNNI kernel on LMQ_INT_X16 weights (int_matmul_x16_x86.cpp): groups of 16 rows ×
// up to 4 tokens. Bits 4 or 8; K, U as tile_kernel_fits; x as for the tiles (4 bits: each step
// in split_nibble_order). sx/xs: per token (at t·ld) every unit's activation scale / code sum
// once. sw16/zw16: the plan's scales / zero points, nu·16 per group (zw16 null: zc everywhere).
// One call runs groups [g0, g1) over all T tokens.
struct X16Args {
  const uint8_t* codes;  // the interleaved codes part
  int64_t N;
  int bits;
  int64_t K, U, nu;
  const int8_t* x;
  int64_t ldx, T;
  const float* sx;
  const int32_t* xs;
  int64_t ld;
  const float* sw16;
  const int32_t* zw16;
  int32_t zc;
  const float* bias;  // nullable, N values
  float* y;           // y[t·ldy + o]
  int64_t ldy;
};
void x16_avx512vnni(const X16Args& a, int64_t g0, int64_t g1);
// Reorders each 128-code step of T rows of K int8 codes into even-then-odd positions.
void split_nibble_order(const int8_t* x, int64_t T, int64_t K, int8_t* out);

// The final combine of the 8 slots, shared by every kernel's specification.
inline float combine_slots(const float* s) {
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

// Fused products (q/k/v, gate/up; int_matmul's and ggml_matmul's) in one parallel region: the
// tiles of every job in order (job j's are first[j] .. first[j + 1] − 1), split into one
// contiguous share per thread; run(j, t0, t1) on job j's tiles [t0, t1) of this thread's share.
template <class Fn>
void split_tiles(std::span<const int64_t> first, Fn&& run) {
  const int64_t total = first.back();
#pragma omp parallel
  {
    const int64_t nth = omp_get_num_threads(), me = omp_get_thread_num();
    const int64_t lo = total * me / nth, hi = total * (me + 1) / nth;
    for (size_t j = 0; j + 1 < first.size(); ++j) {
      const int64_t a = std::max(lo, first[j]), b = std::min(hi, first[j + 1]);
      if (a < b) run(j, a - first[j], b - first[j]);
    }
  }
}

}  // namespace lmq::intk
