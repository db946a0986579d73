// Weight-only decode of packed LMQ_INT codes, AVX-512F (code_gemv.h). 4 rows a tile share each
// activation load; every row reads its codes straight from the weight.
//
// 2..4 bits: a 128-code step (16·b bytes) is made 16 32-bit lanes of 8 codes each, lane j holding
// codes 8j .. 8j + 7 from bit 0: 4-bit steps already are, 2-bit ones are widened 16 → 32 bits
// (vpmovzxwd), 3-bit ones moved 3 bytes to a lane (vpermb). Shifting the lanes right by b·m puts
// code 8j + m in the low bits of lane j, and vpermps, which reads only the low 4 bits of each
// index, looks it up in a 16-float table of the group's dequantized values s·(c − z) (computed as
// quant::dequant_code does, so every product is the dequantized weight times x; below 4 bits the
// table repeats, since the bits above the code are the next code's). Per 128 codes and row:
// 1 load (and a move below 4 bits), 7 shifts, 8 lookups, 8 FMAs. Groups of 64 or 32 put the
// step's 2 or 4 groups in one table of up to 32 floats, rebuilt each step, and index it with the
// lane's group above the code (one more vpternlogd a lookup).
//
// 5..7 bits: a 64-code step (8·b bytes) is made 16 lanes of 4 codes each (vpermb, then a 4-bit
// shift of the lanes that start mid-byte). A lookup would need a table of 32..128 floats, so the
// codes are masked and converted to float, Σ c·x summed per group, and s·(Σ c·x − z·Σ x) added at
// the group's end. Per 64 codes and row: 1 load, 1 move, 1 + 3 shifts, 4 masks, 4 converts, 4 FMAs.
//
// Why: decode streams every weight once, and the Highway tile kernel (dot_tile_codes) needs
// packed codes unpacked into a buffer first, which held weight-only 3-bit decode to a fifth of
// the read bandwidth (docs/results.md, "Weight-only decode of every width").
#include "code_gemv.h"

#include <algorithm>

#include "x86_intrinsics.h"

namespace lmq::codek {

namespace {
// Codes a 32-bit lane holds: 8 of 2..4 bits, 4 of 5..7; a step is 16 lanes.
int lane_codes(int bits) { return bits <= 4 ? 8 : 4; }
}  // namespace

bool code_gemv_available(int bits) {
  static const bool f = __builtin_cpu_supports("avx512f");
  static const bool vbmi = f && __builtin_cpu_supports("avx512vbmi");
  return bits == 2 || bits == 4 ? f : vbmi;
}

bool code_gemv_fits(int bits, int64_t K, int64_t G) {
  if (bits < 2 || bits > 7 || K <= 0 || G <= 0 || K % G != 0) return false;
  if (G % (16 * lane_codes(bits)) == 0) return true;
  // 2..4 bits: 2 or 4 groups a 128-code step, while their tables fit 32 floats
  return bits <= 4 && K % 128 == 0 && (G == 64 || (G == 32 && bits <= 3));
}

void code_gemv_prepare_x(int bits, const float* x, int64_t K, float* xp) {
  const int n = lane_codes(bits);
  for (int64_t b = 0; b < K; b += 16 * n)
    for (int m = 0; m < n; ++m)
      for (int j = 0; j < 16; ++j) xp[b + 16 * m + j] = x[b + n * j + m];
}

#define LMQ_AVX512F __attribute__((target("avx2,avx512f")))

namespace {

// vpermb (VBMI) as asm: a target attribute with VBMI would let the compiler use it in the 2- and
// 4-bit kernels too, which run on AVX-512F CPUs without it. Reached only where
// code_gemv_available() found VBMI.
LMQ_AVX512F inline __m512i permute_bytes(__m512i v, __m512i idx) {
  __m512i r;
  asm("vpermb %1, %2, %0" : "=v"(r) : "v"(v), "v"(idx));  // r = v[idx] (bytewise)
  return r;
}

// The byte moves of a step: lane j of the result starts at byte `first(j)` of the step.
template <int B>
LMQ_AVX512F __m512i lane_bytes_index() {
  alignas(64) uint8_t idx[64];
  for (int j = 0; j < 16; ++j)
    for (int i = 0; i < 4; ++i) idx[4 * j + i] = uint8_t(B <= 4 ? B * j + i : B * j / 2 + i);
  return _mm512_load_si512(idx);
}

// ---- 2..4 bits: 128 codes a step, 8 a lane.

// A step's 16·B bytes as 16 lanes of 8 codes (lane j: codes 8j.. from bit 0). The 3-bit step is
// 48 bytes: a masked load of 12 dwords reads nothing past it.
template <int B>
LMQ_AVX512F inline __m512i step8(const uint8_t* p, __m512i idx) {
  if constexpr (B == 4) return _mm512_loadu_si512(p);
  if constexpr (B == 2) return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  if constexpr (B == 3) return permute_bytes(_mm512_maskz_loadu_epi32(0x0FFF, p), idx);
  return idx;  // unreachable: B in 2..4
}

template <int B, int NR>
LMQ_AVX512F void rows_lookup(const CodeGemvArgs& a, float* y) {
  static_assert(B >= 2 && B <= 4);
  const int64_t ng = a.K / a.G, step_bytes = 16 * B;
  const __m512i idx = lane_bytes_index<B>();
  // Code c of index i is i mod 2^B: the table repeats below 4 bits.
  const __m512 codes = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                           _mm512_set1_epi32((1 << B) - 1)));
  __m512 acc[NR][2];
  for (int r = 0; r < NR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    __m512 tab[NR];  // tab[r][c] = s · (c − z): the dequantized value of code c in this group
    for (int r = 0; r < NR; ++r)
      tab[r] = _mm512_mul_ps(_mm512_set1_ps(a.s[r * ng + g]), _mm512_sub_ps(codes, _mm512_set1_ps(float(a.z[r * ng + g]))));
    for (int64_t k = g * a.G; k < (g + 1) * a.G; k += 128) {
      __m512 xv[8];
      for (int m = 0; m < 8; ++m) xv[m] = _mm512_loadu_ps(a.xp + k + 16 * m);
      for (int r = 0; r < NR; ++r) {
        const uint8_t* p = a.u + r * a.ldu + k / 128 * step_bytes;
        _mm_prefetch(reinterpret_cast<const char*>(p + a.ahead), _MM_HINT_T1);
        const __m512i c = step8<B>(p, idx);
#pragma GCC unroll 8
        for (int m = 0; m < 8; ++m)  // code 8j + m of lane j, looked up; two sums, every other m
          acc[r][m % 2] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(c, B * m), tab[r]), xv[m], acc[r][m % 2]);
      }
    }
  }
  for (int r = 0; r < NR; ++r) y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
}

// The same for groups of 64 or 32 codes: P = 128/G groups a step, lanes 16/P·p .. of group p.
// One table holds the P groups' dequantized values, group p's code c at entry p·2^B + c (two
// registers and vpermt2ps where that passes 16 entries), and each lookup's index is the code
// (masked) with its lane's group above it (one vpternlogd). The table is rebuilt every step.
template <int B, int P, int NR>
LMQ_AVX512F void rows_lookup_groups(const CodeGemvArgs& a, float* y) {
  static_assert(B >= 2 && B <= 4 && (P == 2 || P == 4));
  constexpr int E = 1 << B, W = P * E;  // entries a group, entries in all
  static_assert(W <= 32);
  const int64_t ng = a.K / a.G, step_bytes = 16 * B;
  const __m512i idx = lane_bytes_index<B>();
  alignas(64) int32_t lane_group[16], entry_group[32];
  alignas(64) float entry_code[32];
  for (int j = 0; j < 16; ++j) lane_group[j] = j / (16 / P) * E;
  for (int i = 0; i < 32; ++i) entry_group[i] = std::min(i / E, P - 1), entry_code[i] = float(i % E);
  const __m512i lane_base = _mm512_load_si512(lane_group), code_mask = _mm512_set1_epi32(E - 1);
  const __m512i eg[2] = {_mm512_load_si512(entry_group), _mm512_load_si512(entry_group + 16)};
  const __m512 ec[2] = {_mm512_load_ps(entry_code), _mm512_load_ps(entry_code + 16)};
  constexpr int kTabs = W > 16 ? 2 : 1;
  __m512 acc[NR][2];
  for (int r = 0; r < NR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < a.K; k += 128) {
    const int64_t g0 = k / a.G;
    __m512 xv[8];
    for (int m = 0; m < 8; ++m) xv[m] = _mm512_loadu_ps(a.xp + k + 16 * m);
    for (int r = 0; r < NR; ++r) {
      const __m512 sv = _mm512_maskz_loadu_ps(__mmask16((1u << P) - 1), a.s + r * ng + g0);
      const __m512 zv = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(__mmask16((1u << P) - 1), a.z + r * ng + g0));
      __m512 tab[kTabs];  // entry p·E + c = s_p · (c − z_p), as quant::dequant_code
      for (int t = 0; t < kTabs; ++t)
        tab[t] = _mm512_mul_ps(_mm512_permutexvar_ps(eg[t], sv), _mm512_sub_ps(ec[t], _mm512_permutexvar_ps(eg[t], zv)));
      const uint8_t* p = a.u + r * a.ldu + k / 128 * step_bytes;
      _mm_prefetch(reinterpret_cast<const char*>(p + a.ahead), _MM_HINT_T1);
      const __m512i c = step8<B>(p, idx);
#pragma GCC unroll 8
      for (int m = 0; m < 8; ++m) {  // (code & (E − 1)) | the lane's group · E
        const __m512i e = _mm512_ternarylogic_epi32(_mm512_srli_epi32(c, B * m), code_mask, lane_base, 0xEA);
        const __m512 w = kTabs == 1 ? _mm512_permutexvar_ps(e, tab[0]) : _mm512_permutex2var_ps(tab[0], e, tab[kTabs - 1]);
        acc[r][m % 2] = _mm512_fmadd_ps(w, xv[m], acc[r][m % 2]);
      }
    }
  }
  for (int r = 0; r < NR; ++r) y[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
}

// ---- 5..7 bits: 64 codes a step, 4 a lane.

template <int B, int NR>
LMQ_AVX512F void rows_convert(const CodeGemvArgs& a, float* y) {
  static_assert(B >= 5 && B <= 7);
  const int64_t ng = a.K / a.G, step_bytes = 8 * B;
  const __mmask16 load = __mmask16((1u << (2 * B)) - 1);  // the step's 8·B bytes, 2·B dwords
  const __m512i idx = lane_bytes_index<B>();
  // Lane j's codes start at bit 4·B·j: byte B·j/2, then 4 bits on where B·j is odd.
  const __m512i odd = _mm512_setr_epi32(0, B % 2 * 4, 0, B % 2 * 4, 0, B % 2 * 4, 0, B % 2 * 4, 0, B % 2 * 4, 0,
                                        B % 2 * 4, 0, B % 2 * 4, 0, B % 2 * 4);
  const __m512i mask = _mm512_set1_epi32((1 << B) - 1);
  __m512 out[NR];
  for (int r = 0; r < NR; ++r) out[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    __m512 acc[NR][2], xsum = _mm512_setzero_ps();  // per lane: Σ c·x and Σ x over the group
    for (int r = 0; r < NR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t k = g * a.G; k < (g + 1) * a.G; k += 64) {
      __m512 xv[4];
      for (int m = 0; m < 4; ++m) xv[m] = _mm512_loadu_ps(a.xp + k + 16 * m);
      xsum = _mm512_add_ps(xsum, _mm512_add_ps(_mm512_add_ps(xv[0], xv[1]), _mm512_add_ps(xv[2], xv[3])));
      for (int r = 0; r < NR; ++r) {
        const uint8_t* p = a.u + r * a.ldu + k / 64 * step_bytes;
        _mm_prefetch(reinterpret_cast<const char*>(p + a.ahead), _MM_HINT_T1);
        const __m512i c = _mm512_srlv_epi32(permute_bytes(_mm512_maskz_loadu_epi32(load, p), idx), odd);
#pragma GCC unroll 4
        for (int m = 0; m < 4; ++m) {
          const __m512 cm = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(c, B * m), mask));
          acc[r][m % 2] = _mm512_fmadd_ps(cm, xv[m], acc[r][m % 2]);
        }
      }
    }
    for (int r = 0; r < NR; ++r) {  // out += s · (Σ c·x − z · Σ x)
      const __m512 d = _mm512_fnmadd_ps(_mm512_set1_ps(float(a.z[r * ng + g])), xsum, _mm512_add_ps(acc[r][0], acc[r][1]));
      out[r] = _mm512_fmadd_ps(_mm512_set1_ps(a.s[r * ng + g]), d, out[r]);
    }
  }
  for (int r = 0; r < NR; ++r) y[r] = _mm512_reduce_add_ps(out[r]);
}

// The kernel for B bits, P groups a step (1: groups of whole steps), NR rows.
template <int B, int P, int NR>
void kernel(const CodeGemvArgs& a, float* y) {
  if constexpr (B >= 5) rows_convert<B, NR>(a, y);
  else if constexpr (P == 1) rows_lookup<B, NR>(a, y);
  else if constexpr ((1 << B) * P <= 32) rows_lookup_groups<B, P, NR>(a, y);
}

template <int B, int P>
void rows_p(const CodeGemvArgs& a, int nr, float* y) {
  switch (nr) {
    case 4: return kernel<B, P, 4>(a, y);
    case 3: return kernel<B, P, 3>(a, y);
    case 2: return kernel<B, P, 2>(a, y);
    default: return kernel<B, P, 1>(a, y);
  }
}

template <int B>
void rows(const CodeGemvArgs& a, int nr, float* y) {
  if (a.G == 64 && B <= 4) return rows_p<B, 2>(a, nr, y);
  if (a.G == 32 && B <= 3) return rows_p<B, 4>(a, nr, y);
  rows_p<B, 1>(a, nr, y);
}

}  // namespace

void code_gemv_rows(const CodeGemvArgs& a, int nr, float* y) {
  switch (a.bits) {
    case 2: return rows<2>(a, nr, y);
    case 3: return rows<3>(a, nr, y);
    case 4: return rows<4>(a, nr, y);
    case 5: return rows<5>(a, nr, y);
    case 6: return rows<6>(a, nr, y);
    default: return rows<7>(a, nr, y);
  }
}

}  // namespace lmq::codek
