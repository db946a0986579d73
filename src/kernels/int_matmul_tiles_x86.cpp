// Tiled AVX-512 VNNI kernel of the integer matmul (TileArgs in int_matmul_internal.h): 4 weight
// rows × up to 4 tokens a tile, so each 64-byte weight load feeds up to 4 vpdpbusd and each
// activation load 4 rows. After a step, the int32 lanes of the 4 rows are reduced together
// (reduce_rows4: lane 4j + r = row r's sum over the 16 bytes of 128-bit lane j), which puts the
// unit sums d[u] of 4 rows side by side; the float epilogue then runs on vectors of 4 units ×
// 4 rows (a batch of groups, tile_t) with exactly the operations and order of the specification
// (lmq/kernels/int_matmul.h), so the result is bit-identical to row_scalar. Compiled with
// -ffp-contract=off.
//
// Widths other than 8 and 4 (packed forms) take 64 codes a step, unpacked to bytes in
// registers: 8 codes at b bits are b whole bytes, so vpermb gathers each 8 codes' bytes into a
// qword, vpmultishiftqb moves code i of the qword (bits i·b ..) to byte i, and an and keeps b
// bits. Without AVX-512 VBMI a step's 64 codes are unpacked into a stack buffer instead.
#include <algorithm>
#include <atomic>

#include "lmq/codecs/int_bits.h"

#include "decode_prefetch.h"
#include "int_matmul_internal.h"
#include "x86_intrinsics.h"

namespace lmq::intk {

bool have_avx512vbmi() {
  static const bool ok = have_avx512vnni() && __builtin_cpu_supports("avx512vbmi");
  return ok;
}

namespace {
std::atomic<bool> vbmi_allowed{true};
}
void allow_vbmi(bool on) { vbmi_allowed = on; }
bool use_vbmi() { return vbmi_allowed && have_avx512vbmi(); }

bool tile_kernel_fits(int bits, int64_t K, int64_t U) {
  if (bits < 2 || bits > 8) return false;
  const int64_t S = bits == 4 ? 128 : 64;  // codes per 64-byte step
  if (K <= 0 || K % S != 0 || U <= 0 || U % 32 != 0 || K % U != 0) return false;  // no short last unit
  return U % S == 0 || S % U == 0;
}

#define LMQ_VNNI __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace {

// The shape of a step's codes: 64 bytes of 8-bit codes, 64 bytes of 4-bit ones (128 codes), or
// 64 codes packed at b bits (8·b bytes), unpacked with VBMI or through a buffer.
enum class Form { B8, B4, Packed, PackedVbmi };

// What unpacking b-bit codes needs, set up once per tile.
struct PackedCtx {
  int bits;
  int64_t step_bytes;  // 8·b
  __mmask64 load;      // the step's 8·b bytes
  __m512i perm, shift, mask;
};

LMQ_VNNI inline PackedCtx packed_ctx(int bits) {
  PackedCtx c;
  c.bits = bits;
  c.step_bytes = 8 * bits;
  c.load = bits == 8 ? ~__mmask64(0) : (__mmask64(1) << (8 * bits)) - 1;
  alignas(64) uint8_t perm[64], shift[64];
  for (int j = 0; j < 8; ++j)  // qword j = bytes j·b .. j·b + 7 (codes 8j .. 8j + 7 start at bit 0)
    for (int i = 0; i < 8; ++i) perm[8 * j + i] = uint8_t(j * bits + i), shift[8 * j + i] = uint8_t(i * bits);
  c.perm = _mm512_load_si512(perm);
  c.shift = _mm512_load_si512(shift);
  c.mask = _mm512_set1_epi8(char((1 << bits) - 1));
  return c;
}

// 64 b-bit codes from p as bytes. The two VBMI instructions are written as asm: a target
// attribute with VBMI would have to cover the whole tile kernel, and then the compiler could
// use VBMI in the 8- and 4-bit forms too, which run on VNNI CPUs without it. Called only when
// use_vbmi().
LMQ_VNNI inline __m512i unpack64_vbmi(const uint8_t* p, const PackedCtx& c) {
  __m512i v = _mm512_maskz_loadu_epi8(c.load, p);
  __m512i g, f;
  asm("vpermb %1, %2, %0" : "=v"(g) : "v"(v), "v"(c.perm));            // g = v[perm] (bytewise)
  asm("vpmultishiftqb %1, %2, %0" : "=v"(f) : "v"(g), "v"(c.shift));  // byte i of qword q: bits shift[i] ..
  return _mm512_and_si512(f, c.mask);
}

LMQ_VNNI inline __m512i unpack64_buffer(const uint8_t* p, const PackedCtx& c) {
  alignas(64) uint8_t u[64];
  quant::unpack_bits(p, 64, c.bits, u);
  return _mm512_load_si512(u);
}

// Σ over each 128-bit lane j of a[r] → lane 4j + r.
LMQ_VNNI inline __m512i reduce_rows4(const __m512i* a) {
  const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[0], a[1]), _mm512_unpackhi_epi32(a[0], a[1]));
  const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a[2], a[3]), _mm512_unpackhi_epi32(a[2], a[3]));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}

// The sum of R's four 128-bit lanes, in each of them (one unit a step's whole width: P = 1).
LMQ_VNNI inline __m512i sum_lanes4(__m512i R) {
  const __m512i s = _mm512_add_epi32(R, _mm512_shuffle_i32x4(R, R, _MM_SHUFFLE(2, 3, 0, 1)));  // L0+L1, .., L2+L3, ..
  return _mm512_add_epi32(s, _mm512_shuffle_i32x4(s, s, _MM_SHUFFLE(1, 0, 3, 2)));
}

// 128-bit lanes (0 + 1, 2 + 3) of A, then of B.
LMQ_VNNI inline __m512i sum_lane_pairs(__m512i A, __m512i B) {
  return _mm512_add_epi32(_mm512_shuffle_i32x4(A, B, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_i32x4(A, B, _MM_SHUFFLE(3, 1, 3, 1)));
}

// A batch of 4/P groups (P units of 4 rows each; a unit is 4/P of a step's 128-bit lanes) as one
// vector: lane 4u + r = unit u of the batch, row r, from each group's reduce_rows4 (R[i]).
// Integer sums, so exact in any order; absent groups of a short last batch are zero vectors.
template <int P>
LMQ_VNNI inline __m512i batch_units(const __m512i* R) {
  if constexpr (P == 4) {
    return R[0];
  } else if constexpr (P == 2) {
    return sum_lane_pairs(R[0], R[1]);
  } else {  // lanes j and j + 2 first, then the pairs
    const __m512i s01 = _mm512_add_epi32(_mm512_shuffle_i32x4(R[0], R[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                         _mm512_shuffle_i32x4(R[0], R[1], _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512i s23 = _mm512_add_epi32(_mm512_shuffle_i32x4(R[2], R[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                         _mm512_shuffle_i32x4(R[2], R[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return sum_lane_pairs(s01, s23);
  }
}

// One tile's own pointers, derived from TileArgs by tiles_t.
struct Tile {
  const uint8_t* row[4];
  int nr;  // valid rows, 1..4
  const int8_t* x;
  const float *sx4, *sw4, *bias;
  const int32_t *xs4, *zw4;
  float* y;
  int64_t prefetch;  // bytes ahead of each row's position fetched into L2 (0: none)
};

// The integer sums of group g (its spu steps: P units) of the tile's 4 rows, per token: acc[t][r].
template <Form F, int P, int NT>
LMQ_VNNI __attribute__((always_inline)) inline void group_sums(const TileArgs& a, const Tile& b, const PackedCtx& pc,
                                                               int64_t g, __m512i (&acc)[NT][4]) {
  constexpr int64_t S = F == Form::B4 ? 128 : 64;
  const int64_t spu = P == 1 ? a.U / S : 1;  // steps per group of P units
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (int t = 0; t < NT; ++t)
    for (int r = 0; r < 4; ++r) acc[t][r] = _mm512_setzero_si512();
  for (int64_t s = g * spu; s < (g + 1) * spu; ++s) {
    if constexpr (F == Form::Packed || F == Form::PackedVbmi) {
      __m512i xv[NT];
      for (int t = 0; t < NT; ++t) xv[t] = _mm512_loadu_si512(b.x + t * a.ldx + s * 64);
      for (int r = 0; r < 4; ++r) {
        const uint8_t* p = b.row[r] + s * pc.step_bytes;
        if (NT == 1 && b.prefetch) _mm_prefetch(reinterpret_cast<const char*>(p + b.prefetch), _MM_HINT_T1);
        const __m512i w = F == Form::PackedVbmi ? unpack64_vbmi(p, pc) : unpack64_buffer(p, pc);
        for (int t = 0; t < NT; ++t) acc[t][r] = _mm512_dpbusd_epi32(acc[t][r], w, xv[t]);
      }
    } else if constexpr (F == Form::B8) {
      __m512i xv[NT];
      for (int t = 0; t < NT; ++t) xv[t] = _mm512_loadu_si512(b.x + t * a.ldx + s * 64);
      for (int r = 0; r < 4; ++r) {
        const __m512i w = _mm512_loadu_si512(b.row[r] + s * 64);
        if (NT == 1 && b.prefetch) _mm_prefetch(reinterpret_cast<const char*>(b.row[r] + b.prefetch + s * 64), _MM_HINT_T1);
        for (int t = 0; t < NT; ++t) acc[t][r] = _mm512_dpbusd_epi32(acc[t][r], w, xv[t]);
      }
    } else {
      __m512i xe[NT], xo[NT];
      for (int t = 0; t < NT; ++t) {
        xe[t] = _mm512_loadu_si512(b.x + t * a.ldx + s * 128);
        xo[t] = _mm512_loadu_si512(b.x + t * a.ldx + s * 128 + 64);
      }
      for (int r = 0; r < 4; ++r) {
        const __m512i w = _mm512_loadu_si512(b.row[r] + s * 64);
        if (NT == 1 && b.prefetch) _mm_prefetch(reinterpret_cast<const char*>(b.row[r] + b.prefetch + s * 64), _MM_HINT_T1);
        const __m512i lo = _mm512_and_si512(w, low4), hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
        for (int t = 0; t < NT; ++t)
          acc[t][r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[t][r], lo, xe[t]), hi, xo[t]);
      }
    }
  }
}

// The specification's epilogue for the units of D (lanes m: lane 4u + r = unit u0 + u, row r;
// u0 % 4 == 0) of each token: d = Σu·q − z·Σq, f = float(d)·(s_w·s_x), slot[(u0 + u) mod 8] += f
// (slot pair lanes 4·(j mod 4) + r of slot[t][j / 4]). The pair is chosen by a branch, not an
// index, so the slots stay in registers.
template <int NT>
LMQ_VNNI __attribute__((always_inline)) inline void epilogue(const TileArgs& a, const Tile& b, const __m512i (&D)[NT],
                                                             int64_t u0, __mmask16 m, __m512 (&slot)[NT][2]) {
  const int64_t off = u0 * 4;
  const __m512 sw = _mm512_maskz_loadu_ps(m, b.sw4 + off);
  const __m512i zw = b.zw4 ? _mm512_maskz_loadu_epi32(m, b.zw4 + off) : _mm512_set1_epi32(a.zc);
  for (int t = 0; t < NT; ++t) {
    const __m512i xs = _mm512_maskz_loadu_epi32(m, b.xs4 + t * a.ld4 + off);
    const __m512i d = _mm512_sub_epi32(D[t], _mm512_mullo_epi32(zw, xs));
    const __m512 sc = _mm512_mul_ps(sw, _mm512_maskz_loadu_ps(m, b.sx4 + t * a.ld4 + off));
    const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(d), sc);
    if (u0 % 8 < 4) slot[t][0] = _mm512_mask_add_ps(slot[t][0], m, slot[t][0], f);
    else slot[t][1] = _mm512_mask_add_ps(slot[t][1], m, slot[t][1], f);
  }
}

template <Form F, int P, int NT>
LMQ_VNNI __attribute__((always_inline)) inline void tile_t(const TileArgs& a, const Tile& b, const PackedCtx& pc) {
  constexpr int64_t S = F == Form::B4 ? 128 : 64;
  constexpr int B = 4 / P;
  const int64_t spu = P == 1 ? a.U / S : 1;
  const int64_t groups = a.K / S / spu;
  __m512 slot[NT][2];
  for (int t = 0; t < NT; ++t) slot[t][0] = slot[t][1] = _mm512_setzero_ps();
  if (spu <= 2) {
    // Groups of one or two steps: batches of B groups, 4 units of 4 rows, one epilogue for them
    // all. (A 4-bit g128 weight's unit is one step, and an epilogue per unit cost as much as the
    // step: BM_IntDecodeStream in the caches, docs/results.md.) The batch's groups are unrolled,
    // so their sums stay in registers.
    for (int64_t g0 = 0; g0 < groups; g0 += B) {
      const int nb = int(std::min<int64_t>(B, groups - g0));
      __m512i R[NT][B];
#pragma GCC unroll 4
      for (int i = 0; i < B; ++i) {
        if (i < nb) {
          __m512i acc[NT][4];
          group_sums<F, P, NT>(a, b, pc, g0 + i, acc);
          for (int t = 0; t < NT; ++t) R[t][i] = reduce_rows4(acc[t]);
        } else {
          for (int t = 0; t < NT; ++t) R[t][i] = _mm512_setzero_si512();
        }
      }
      __m512i D[NT];
      for (int t = 0; t < NT; ++t) D[t] = batch_units<P>(R[t]);
      epilogue<NT>(a, b, D, g0 * P, __mmask16((1u << (4 * P * nb)) - 1), slot);
    }
  } else {
    // Groups of 3 steps or more (P = 1): the epilogue per group is a small part of its work, and
    // unrolling a batch of them cost a per-channel int8 prefill 13% (BM_Linear T = 512).
    for (int64_t g = 0; g < groups; ++g) {
      __m512i acc[NT][4], D[NT];
      group_sums<F, P, NT>(a, b, pc, g, acc);
      const int lane = int(g % 4);  // unit g at lanes 4·lane + r of its slot
      for (int t = 0; t < NT; ++t) D[t] = sum_lanes4(reduce_rows4(acc[t]));  // in every lane: the mask picks
      epilogue<NT>(a, b, D, g - lane, __mmask16(0xFu << (4 * lane)), slot);
    }
  }
  // The specification pads the units to a multiple of 8 with f = +0 (it turns a -0 slot into +0).
  const int pad_from = a.nu % 8 == 0 ? 8 : int(a.nu % 8);
  const uint32_t pad = pad_from < 8 ? 0xFFFFFFFFu << (4 * pad_from) : 0u;  // lanes of slots >= pad_from
  const __mmask8 rows = __mmask8((1u << b.nr) - 1);
  const __m128 bias = b.bias ? _mm_maskz_loadu_ps(rows, b.bias) : _mm_setzero_ps();
  const __m512 zero = _mm512_setzero_ps();
  for (int t = 0; t < NT; ++t) {
    const __m512 s0 = _mm512_mask_add_ps(slot[t][0], __mmask16(pad), slot[t][0], zero);
    const __m512 s1 = _mm512_mask_add_ps(slot[t][1], __mmask16(pad >> 16), slot[t][1], zero);
    const __m512 p = _mm512_add_ps(s0, s1);  // 128-bit lane j: s_j + s_{j+4}
    const __m512 q = _mm512_add_ps(p, _mm512_shuffle_f32x4(p, p, _MM_SHUFFLE(3, 2, 3, 2)));  // lanes 0, 1: (s0+s4)+(s2+s6), (s1+s5)+(s3+s7)
    __m128 y = _mm_add_ps(_mm512_castps512_ps128(q), _mm512_extractf32x4_ps(q, 1));
    if (b.bias) y = _mm_add_ps(y, bias);
    _mm_mask_storeu_ps(b.y + t * a.ldy, rows, y);
  }
}

template <Form F, int P>
LMQ_VNNI void tiles_t(const TileArgs& a, int64_t tile0, int64_t tile1) {
  const PackedCtx pc = packed_ctx(a.bits);
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    Tile b;
    const int64_t o = tile * 4;
    for (int r = 0; r < 4; ++r) b.row[r] = a.codes + std::min(o + r, a.N - 1) * a.row_bytes;
    b.nr = int(std::min<int64_t>(4, a.N - o));
    b.prefetch = a.prefetch && tile + 2 < tile1 ? decode_ahead(a.row_bytes) : 0;
    b.sw4 = a.sw4 + tile * a.nu * 4;
    b.zw4 = a.zw4 ? a.zw4 + tile * a.nu * 4 : nullptr;
    b.bias = a.bias ? a.bias + o : nullptr;
    for (int64_t t0 = 0; t0 < a.T; t0 += 4) {
      b.x = a.x + t0 * a.ldx;
      b.sx4 = a.sx4 + t0 * a.ld4;
      b.xs4 = a.xs4 + t0 * a.ld4;
      b.y = a.y + t0 * a.ldy + o;
      switch (std::min<int64_t>(4, a.T - t0)) {
        case 1: tile_t<F, P, 1>(a, b, pc); break;
        case 2: tile_t<F, P, 2>(a, b, pc); break;
        case 3: tile_t<F, P, 3>(a, b, pc); break;
        default: tile_t<F, P, 4>(a, b, pc); break;
      }
    }
  }
}

}  // namespace

void tiles_avx512vnni(const TileArgs& a, int64_t tile0, int64_t tile1) {
  const int64_t S = a.bits == 4 ? 128 : 64;
  const int64_t P = a.U < S ? S / a.U : 1;
  if (a.bits == 8) return P == 2 ? tiles_t<Form::B8, 2>(a, tile0, tile1) : tiles_t<Form::B8, 1>(a, tile0, tile1);
  if (a.bits == 4) {
    if (P == 4) return tiles_t<Form::B4, 4>(a, tile0, tile1);
    return P == 2 ? tiles_t<Form::B4, 2>(a, tile0, tile1) : tiles_t<Form::B4, 1>(a, tile0, tile1);
  }
  if (a.vbmi)
    return P == 2 ? tiles_t<Form::PackedVbmi, 2>(a, tile0, tile1) : tiles_t<Form::PackedVbmi, 1>(a, tile0, tile1);
  return P == 2 ? tiles_t<Form::Packed, 2>(a, tile0, tile1) : tiles_t<Form::Packed, 1>(a, tile0, tile1);
}

LMQ_VNNI void split_nibble_order(const int8_t* x, int64_t T, int64_t K, int8_t* out) {
  for (int64_t i = 0; i < T * K; i += 128) {
    const __m512i a = _mm512_loadu_si512(x + i), b = _mm512_loadu_si512(x + i + 64);
    // 16-bit word w holds bytes 2w (low) and 2w + 1 (high)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi16_epi8(a));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 32), _mm512_cvtepi16_epi8(b));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 64), _mm512_cvtepi16_epi8(_mm512_srli_epi16(a, 8)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 96), _mm512_cvtepi16_epi8(_mm512_srli_epi16(b, 8)));
  }
}

}  // namespace lmq::intk
