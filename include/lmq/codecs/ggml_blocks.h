// llama.cpp's (ggml's) quantized block formats: exact byte layouts, scalar dequantization and
// reference quantizers for the "legacy" 32-element formats.
//
// Every format stores a row as a sequence of whole blocks; a block holds `ggml_block_size(f)`
// consecutive values of the row in `ggml_block_bytes(f)` bytes. All multi-byte fields are
// little-endian; `d`, `m`, `dmin` are IEEE binary16 (lmq's f16_to_f32 decodes them).
// The structs below are layout documentation as much as code: they are read only through
// memcpy / byte pointers, never by casting unaligned file data to them.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lmq/tensor.h"

namespace lmq::ggml {

// A block's little-endian 16-, 32- or 64-bit field at any byte offset (file data is not aligned
// for them): the codecs and the kernels read every multi-byte field through these.
static_assert(std::endian::native == std::endian::little, "ggml blocks are read on little-endian hosts only");
inline uint16_t u16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t u32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t u64_at(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
// Whether the little-endian f16 field at p is a number (exponent bits not all ones: not Inf/NaN).
inline bool finite_f16(const uint8_t* p) { return (p[1] & 0x7c) != 0x7c; }

inline constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32;
inline constexpr int QK_K = 256;          // super-block size of the K-quants
inline constexpr int K_SCALE_SIZE = 12;   // packed 6-bit scales/mins of Q4_K and Q5_K

// Q8_0: x[j] = d * qs[j].  34 bytes / 32 values.
struct block_q8_0 {
  uint16_t d;         // f16 scale
  int8_t qs[QK8_0];   // signed 8-bit codes
};
static_assert(sizeof(block_q8_0) == 34);

// Q4_0: x[j] = d * (q[j] - 8), q in 0..15.  18 bytes / 32 values.
// qs[j] holds value j in its low nibble and value j+16 in its high nibble.
struct block_q4_0 {
  uint16_t d;
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(block_q4_0) == 18);

// Q4_1: x[j] = d * q[j] + m, q in 0..15; nibble order as Q4_0.  20 bytes / 32 values.
struct block_q4_1 {
  uint16_t d;  // f16 scale
  uint16_t m;  // f16 minimum (offset)
  uint8_t qs[QK4_1 / 2];
};
static_assert(sizeof(block_q4_1) == 20);

// Q5_0: x[j] = d * (q[j] - 16), q in 0..31.  22 bytes / 32 values.
// Low 4 bits as in Q4_0 (value j low nibble of qs[j], value j+16 high nibble); the 5th bit of
// value j is bit j of the little-endian uint32 qh.
struct block_q5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
static_assert(sizeof(block_q5_0) == 22);

// Q5_1: x[j] = d * q[j] + m, q in 0..31; bits as Q5_0.  24 bytes / 32 values.
struct block_q5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
static_assert(sizeof(block_q5_1) == 24);

// Q2_K: 256 values in 16 sub-blocks of 16.  84 bytes.
// scales[s]: low nibble = 4-bit scale, high nibble = 4-bit min of sub-block s;
// x = d * (scales[s] & 15) * q - dmin * (scales[s] >> 4), q in 0..3.
// qs: two halves of 128 values, 32 bytes each; in half h, byte l holds, at bit shift 2*j
// (j = 0..3), the code of value 128*h + 32*j + l.
struct block_q2_K {
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  uint16_t d;     // f16 super-scale of the scales
  uint16_t dmin;  // f16 super-scale of the mins
};
static_assert(sizeof(block_q2_K) == 84);

// Q3_K: 256 values in 16 sub-blocks of 16, symmetric.  110 bytes.
// Codes: 2 low bits in qs (same arrangement as Q2_K) plus a high bit in hmask: value
// 128*h + 32*j + l has its high bit at hmask[l] bit (4*h + j); q = low | high<<2 in 0..7 and
// the value is d * (sc[s] - 32) * (q - 4).
// scales: sixteen 6-bit scales sc[s] packed in 12 bytes: low 4 bits of sc[s] are the low
// nibble of scales[s] for s < 8 and the high nibble of scales[s-8] for s >= 8; the 2 high bits
// of sc[s] are bits 2*(s/4).. of scales[8 + s%4].
struct block_q3_K {
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(block_q3_K) == 110);

// Q4_K: 256 values in 8 sub-blocks of 32.  144 bytes.
// x = d * sc[s] * q - dmin * mn[s], q in 0..15; sc/mn are 6-bit, packed in `scales`:
//   s < 4:  sc = scales[s] & 63,            mn = scales[s+4] & 63
//   s >= 4: sc = (scales[s+4] & 15) | (scales[s-4] >> 6) << 4,
//           mn = (scales[s+4] >> 4) | (scales[s]   >> 6) << 4
// qs: four chunks of 32 bytes; chunk c holds values 64c..64c+31 in its low nibbles
// (sub-block 2c) and 64c+32..64c+63 in its high nibbles (sub-block 2c+1).
struct block_q4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q4_K) == 144);

// Q5_K: as Q4_K plus a 5th bit: value 64c + l (l < 32) has it at qh[l] bit 2c, value
// 64c + 32 + l at qh[l] bit 2c+1; q in 0..31.  176 bytes.
struct block_q5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q5_K) == 176);

// Q6_K: 256 values in 16 sub-blocks of 16, symmetric; x = d * scales[s] * (q - 32), q in 0..63.
// 210 bytes. Two halves of 128 values (ql 64 bytes, qh 32 bytes, 8 scales each); within a
// half, for l < 32: value l      = ql[l] low nibble    | (qh[l] >> 0 & 3) << 4
//                    value l + 32 = ql[l+32] low nibble | (qh[l] >> 2 & 3) << 4
//                    value l + 64 = ql[l] high nibble   | (qh[l] >> 4 & 3) << 4
//                    value l + 96 = ql[l+32] high nibble| (qh[l] >> 6 & 3) << 4
struct block_q6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};
static_assert(sizeof(block_q6_K) == 210);

}  // namespace lmq::ggml

namespace lmq {

// Values per block: 32 for Q4_0..Q8_0, 256 for the K-quants, 1 for F32/F16/BF16.
// Throws lmq::Error for formats that are not ggml formats (I32, LMQ_INT).
int64_t ggml_block_size(Format f);
// Bytes per block (4/2/2 for F32/F16/BF16).
size_t ggml_block_bytes(Format f);
// Bytes of a row of k values; throws if k is not a whole number of blocks.
uint64_t ggml_row_bytes(Format f, int64_t k);

// Dequantizes k values (k a multiple of the block size, else lmq::Error) from src, which holds
// k / block_size blocks, into dst. Also accepts F32, F16 and BF16. Numerics follow
// llama.cpp's scalar dequantize_row_* (same operation order, float arithmetic).
void ggml_dequantize_row(Format f, const uint8_t* src, float* dst, int64_t k);

// Reference quantizers for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants Q2_K..Q6_K: the
// algorithms of llama.cpp's quantize_row_*_ref (what llama-quantize writes without an
// importance matrix), same operation order, so the bytes match it. Throws lmq::Error for
// other formats or k not a multiple of the block size (32, or 256 for the K-quants).
//
// With `importance` (k values ≥ 0, e.g. a calibration E[x²] per input column), the scale fits
// minimize the error weighted by w_i = importance_i · sqrt(σ² + x_i²) (llama.cpp's imatrix
// weighting; σ² the block's mean x²) instead of the reference's own weights: make_qx_quants
// for the symmetric formats (Q3_K's coordinate descent replaced by it), make_qkx2_quants for
// those with a min. The super-block scale rules and the final rounding stay the reference's,
// except for Q2_K and Q3_K: there the fit is then refined to the lowest Σ importance_i ·
// (x_i − value_i)² that a coordinate descent over the block's stored integers (4-bit scales and
// mins, 6-bit scales) and f16 super-scales finds (src/codecs/kquant_refine.cpp).
// This is lmq's own weighted search, not byte-identical to llama-quantize --imatrix.
//
// IQ4_NL and IQ4_XS (codecs/iquant_blocks.h): without importance the algorithm llama-quantize
// runs for them (quantize_iq4_nl / quantize_iq4_xs with no imatrix: weights x², 15 candidate
// scales; not the quantize_row_*_ref variant), with importance llama.cpp's own imatrix weighting
// — both byte-identical to llama.cpp given the same importance row (a sub-block whose importance
// is all zero takes the unweighted fit, where llama.cpp would store a NaN scale).
// IQ3_S, IQ3_XXS, IQ2_XS and IQ2_XXS: lmq's own lattice search
// (src/codecs/iquant_lattice_quantize.cpp), weighted by importance as llama.cpp does, plain
// squared error without. IQ2_S is read-only: lmq::Error.
void ggml_quantize_row(Format f, const float* src, uint8_t* dst, int64_t k, const float* importance = nullptr);

// The reconstruction grid of one sub-block, as the dequantizer computes it (same float
// operations, so equal bit for bit): value(q) = a · float(q − off) + c for codes q in 0..qmax,
// or, for the non-linear 4-bit formats (IQ4_NL, IQ4_XS), value(q) = a · float(levels[q]).
// Sub-blocks: 32 values for Q8_0..Q5_1, Q4_K, Q5_K, IQ4_NL, IQ4_XS; 16 for Q2_K, Q3_K, Q6_K.
struct GgmlGrid {
  float a = 0, c = 0;
  int off = 0, qmax = 0;
  const int8_t* levels = nullptr;  // qmax + 1 levels, ascending; null: the affine grid
};
inline float ggml_grid_value(const GgmlGrid& g, int q) {
  if (g.levels) return g.a * float(g.levels[q]);
  const float v = g.a * float(q - g.off);
  return g.c == 0 ? v : v + g.c;  // no offset: keep v's sign of zero, as the dequantizer does
}
int ggml_grid_nearest(const GgmlGrid& g, float x);  // the code whose value is nearest x
int64_t ggml_sub_block_size(Format f);              // quantized formats only; throws otherwise
// The grids of one block's sub-blocks (block_size / sub_block_size of them), from its scales.
void ggml_block_grids(Format f, const uint8_t* block, GgmlGrid* grids);
// Replaces the codes of one block (codes[i] in 0..qmax of value i's sub-block), keeping its
// scales: what a method that chooses codes itself (GPTQ) writes.
void ggml_block_set_codes(Format f, uint8_t* block, const uint8_t* codes);

// Q2_K and Q3_K (other formats: false, nothing done): the scales of one row of K values refitted
// with its codes fixed (codes[i] in 0..qmax as for ggml_block_set_codes), lowering the quadratic
// error (w − ŵ)ᵀH(w − ŵ) (H: K × K, symmetric positive semi-definite, e.g. GPTQ's Hessian of the
// row's inputs). `passes` sweeps of coordinate descent over the blocks: each sub-block's integer
// scale (and min) within ±2 (Q3_K: ±3) of its value, then the block's f16 super-scale(s) by least
// squares. A change is kept only where the error falls, so it never rises. Codes stay as stored.
bool ggml_refit_row_scales(Format f, const float* w, int64_t K, const float* H, const uint8_t* codes, uint8_t* row,
                           int passes = 2);

}  // namespace lmq
