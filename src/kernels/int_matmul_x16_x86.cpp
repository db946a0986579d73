// AVX-512 VNNI kernel of the integer matmul on LMQ_INT_X16 weights (codecs/int_interleave.h;
// X16Args in int_matmul_internal.h): a group of 16 rows × up to 4 tokens at a time.
//
// Each 64-byte load of a record holds 4 code bytes of each of the 16 rows, lane r = row r: at 8
// bits codes 4c .. 4c + 3 of the step, at 4 bits (masked, shifted) its even codes 8c + 0, 2, 4, 6
// and its odd codes 8c + 1, 3, 5, 7, which split_nibble_order puts at x[4c ..] and x[64 + 4c ..]
// of the step's activations. So vpdpbusd against the token's 4 activations broadcast to every
// lane sums row r's products straight into lane r: no reduction across lanes. The unit sums
// then go through the specification's epilogue (lmq/kernels/int_matmul.h) for 16 rows at once:
// d = Σu·q_x − z·Σq_x, f = float(d)·(s_w·s_x), slot[u mod 8] += f, the slots combined in
// combine_slots's order, so the result equals row_scalar bit for bit. Compiled with
// -ffp-contract=off.
#include <algorithm>

#include "int_matmul_internal.h"
#include "lmq/codecs/int_interleave.h"
#include "x86_intrinsics.h"

#define LMQ_VNNI __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace lmq::intk {

namespace {

constexpr int64_t kRec = sizeof(int_x16_record);
// Bytes ahead of the chunk being read that are fetched into L2: a thread's groups are one
// sequential range, and the hardware's prefetchers stop at 4 KiB pages (as the GGUF X16
// kernels' kX16Ahead, ggml_matmul_x86.cpp).
constexpr int64_t kAhead = 8192;

LMQ_VNNI inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// The chains of vpdpbusd sums: per token, chunk c of a record feeds chain c mod P (and, at 4
// bits, its low and high nibbles separate ones), so that their latencies overlap. One token has
// P = 4; more tokens are chains of their own (P = 2 keeps 4 tokens' chains in the registers).
template <int NT, bool B4>
struct Chains {
  static constexpr int P = NT == 1 ? 4 : 2;
  __m512i v[NT][P][B4 ? 2 : 1];
};

// Unit u's epilogue (the specification's, on 16 rows) from its chains, which it then clears.
template <int NT, bool B4>
LMQ_VNNI __attribute__((always_inline)) inline void unit_done(const X16Args& a, const float* sw, const int32_t* zw,
                                                              int64_t u, int64_t t0, Chains<NT, B4>& ch,
                                                              __m512 (&slot)[NT][8]) {
  const __m512 swu = _mm512_loadu_ps(sw + u * 16);
  const __m512i zwu = zw ? _mm512_loadu_si512(zw + u * 16) : _mm512_set1_epi32(a.zc);
  for (int t = 0; t < NT; ++t) {
    __m512i sum = _mm512_setzero_si512();  // integers: exact in any order
    for (auto& chain : ch.v[t])
      for (__m512i& v : chain) sum = _mm512_add_epi32(sum, v), v = _mm512_setzero_si512();
    const int64_t at = (t0 + t) * a.ld + u;
    const __m512i d = _mm512_sub_epi32(sum, _mm512_mullo_epi32(zwu, _mm512_set1_epi32(a.xs[at])));
    const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(swu, _mm512_set1_ps(a.sx[at])));
    slot[t][u % 8] = _mm512_add_ps(slot[t][u % 8], f);
  }
}

// Group g (rows 16g .. 16g + 15) × tokens t0 .. t0 + NT − 1. B4: 4-bit codes (else 8-bit). CPR:
// chunks per unit when a unit is part of a record (4 or 8), 16 when units are whole records.
template <int NT, bool B4, int CPR>
LMQ_VNNI void x16_group(const X16Args& a, int64_t g, int64_t t0) {
  constexpr int64_t S = B4 ? 128 : 64;  // codes per record (a step of each row)
  const int64_t steps = a.K / S, rpu = CPR == 16 ? a.U / S : 1;  // records per unit
  const uint8_t* w = a.codes + g * steps * kRec;
  const float* sw = a.sw16 + g * a.nu * 16;
  const int32_t* zw = a.zw16 ? a.zw16 + g * a.nu * 16 : nullptr;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 slot[NT][8];  // lane r: row 16g + r
  for (int t = 0; t < NT; ++t)
    for (int j = 0; j < 8; ++j) slot[t][j] = _mm512_setzero_ps();
  Chains<NT, B4> ch;
  constexpr int P = Chains<NT, B4>::P;
  for (int t = 0; t < NT; ++t)
    for (auto& chain : ch.v[t])
      for (__m512i& v : chain) v = _mm512_setzero_si512();
  int64_t u = 0;
  for (int64_t s = 0; s < steps; ++s) {
    const uint8_t* rec = w + s * kRec;
    const int8_t* xs = a.x + t0 * a.ldx + s * S;
#pragma GCC unroll 16
    for (int c = 0; c < 16; ++c) {
      _mm_prefetch(reinterpret_cast<const char*>(rec + kAhead + 64 * c), _MM_HINT_T1);
      const __m512i v = _mm512_loadu_si512(rec + 64 * c);
      if constexpr (B4) {
        const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        for (int t = 0; t < NT; ++t) {
          const int8_t* x = xs + t * a.ldx + 4 * c;
          ch.v[t][c % P][0] = _mm512_dpbusd_epi32(ch.v[t][c % P][0], lo, bcast4(x));
          ch.v[t][c % P][1] = _mm512_dpbusd_epi32(ch.v[t][c % P][1], hi, bcast4(x + 64));
        }
      } else {
        for (int t = 0; t < NT; ++t)
          ch.v[t][c % P][0] = _mm512_dpbusd_epi32(ch.v[t][c % P][0], v, bcast4(xs + t * a.ldx + 4 * c));
      }
      if constexpr (CPR < 16) {
        if ((c + 1) % CPR == 0) unit_done<NT, B4>(a, sw, zw, u++, t0, ch, slot);
      }
    }
    if constexpr (CPR == 16) {
      if ((s + 1) % rpu == 0) unit_done<NT, B4>(a, sw, zw, u++, t0, ch, slot);
    }
  }
  const int64_t o = 16 * g;
  const __m512 bias = a.bias ? _mm512_loadu_ps(a.bias + o) : _mm512_setzero_ps();
  const __m512 zero = _mm512_setzero_ps();
  for (int t = 0; t < NT; ++t) {
    __m512* sl = slot[t];
    // The specification pads the units to a multiple of 8 with f = +0 (it turns a -0 slot into +0).
    if (a.nu % 8)
      for (int j = int(a.nu % 8); j < 8; ++j) sl[j] = _mm512_add_ps(sl[j], zero);
    __m512 y = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(sl[0], sl[4]), _mm512_add_ps(sl[2], sl[6])),
                             _mm512_add_ps(_mm512_add_ps(sl[1], sl[5]), _mm512_add_ps(sl[3], sl[7])));
    if (a.bias) y = _mm512_add_ps(y, bias);
    _mm512_storeu_ps(a.y + (t0 + t) * a.ldy + o, y);
  }
}

template <bool B4, int CPR>
void x16_groups_t(const X16Args& a, int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t t0 = 0; t0 < a.T; t0 += 4) {
      switch (std::min<int64_t>(4, a.T - t0)) {
        case 1: x16_group<1, B4, CPR>(a, g, t0); break;
        case 2: x16_group<2, B4, CPR>(a, g, t0); break;
        case 3: x16_group<3, B4, CPR>(a, g, t0); break;
        default: x16_group<4, B4, CPR>(a, g, t0); break;
      }
    }
}

template <bool B4>
void x16_groups(const X16Args& a, int64_t g0, int64_t g1) {
  const int64_t cpu = a.U / (B4 ? 8 : 4);  // chunks per unit: 4, 8, or a multiple of 16
  if (cpu == 4) x16_groups_t<B4, 4>(a, g0, g1);
  else if (cpu == 8) x16_groups_t<B4, 8>(a, g0, g1);
  else x16_groups_t<B4, 16>(a, g0, g1);
}

}  // namespace

void x16_avx512vnni(const X16Args& a, int64_t g0, int64_t g1) {
  if (a.bits == 4) x16_groups<true>(a, g0, g1);
  else x16_groups<false>(a, g0, g1);
}

}  // namespace lmq::intk
