// llama.cpp's (ggml's) "i-quant" block formats: exact byte layouts (the style of ggml_blocks.h).
//
// Two families:
//  - non-linear 4-bit (IQ4_NL, IQ4_XS): each 4-bit code indexes the 16 signed levels of
//    kIq4nlValues, times a block (or sub-block) scale;
//  - lattice codebooks (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S; IQ1_S, IQ1_M below, whose grid
//    is signed and shifted): values come in groups of 8;
//    a group stores an index into a grid of 8 (IQ2_*) or two indices into a grid of 4 (IQ3_*)
//    non-negative magnitudes, plus 8 sign bits, times a sub-block scale. The grids and sign
//    tables are ggml's (src/codecs/iquant_grids.inc, with where they come from).
//
// All multi-byte fields are little-endian; `d` is IEEE binary16. A super-block holds QK_K = 256
// values in 8 sub-blocks of 32 (ib = 0..7), each of 4 groups of 8 (l = 0..3). As in
// ggml_blocks.h, the structs document the layout and give the sizes; the codecs read the bytes
// through memcpy / byte pointers, never by casting unaligned file data to them.
//
// Every stored index fits its table by construction (the bit widths equal the table sizes), so
// no byte pattern reads outside a table; only a NaN/Inf `d` makes a bad block: a load for the
// integer kernels, which read the lattice blocks in place (kernels/ggml_matmul.h), refuses it
// naming the tensor; on the float path it yields NaN/Inf values (defined float arithmetic) that
// the forward pass refuses at the logits.
#pragma once
#include <cstddef>
#include <cstdint>

#include "lmq/codecs/ggml_blocks.h"

namespace lmq::ggml {

inline constexpr int QK4_NL = 32;

// The 16 levels of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl, llama.cpp b4748 ggml-quants.c).
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// IQ4_NL: x[j] = d * kIq4nlValues[q[j]], q in 0..15.  18 bytes / 32 values.
// qs[j] holds value j in its low nibble and value j+16 in its high nibble (as Q4_0).
struct block_iq4_nl {
  uint16_t d;
  uint8_t qs[QK4_NL / 2];
};
static_assert(sizeof(block_iq4_nl) == 18);

// IQ4_XS: 256 values in 8 sub-blocks of 32.  136 bytes.
// Sub-block ib has a 6-bit scale ls = (scales_l[ib/2] >> 4*(ib%2) & 15) | (scales_h >> 2*ib & 3) << 4
// and x = d * (ls - 32) * kIq4nlValues[q]; its codes are qs[16*ib .. 16*ib+15], nibbles as IQ4_NL.
struct block_iq4_xs {
  uint16_t d;
  uint16_t scales_h;          // 2 high bits of each sub-block's scale
  uint8_t scales_l[QK_K / 64];  // 4 low bits, two sub-blocks a byte (even ib in the low nibble)
  uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_iq4_xs) == 136);

// The 6-bit scale ls of IQ4_XS's sub-block ib (read from the block's bytes, any alignment).
inline int iq4_xs_scale(const uint8_t* block, int ib) {
  const int high = u16_at(block + offsetof(block_iq4_xs, scales_h));
  return (block[offsetof(block_iq4_xs, scales_l) + ib / 2] >> 4 * (ib % 2) & 0xf) | (high >> 2 * ib & 3) << 4;
}

// IQ2_XXS: 256 values, 66 bytes (2.0625 bpw). Sub-block ib is 8 bytes of qs, read as two
// little-endian uint32 a0, a1: byte l of a0 is group l's index into iq2xxs_grid (256 entries of
// 8 magnitudes); bits 7l..7l+6 of a1 index ksigns_iq2xs (group l's 8 signs); a1 >> 28 is the
// 4-bit scale s: x = d * (0.5 + s) * 0.25 * grid byte * sign.
struct block_iq2_xxs {
  uint16_t d;
  uint16_t qs[QK_K / 8];
};
static_assert(sizeof(block_iq2_xxs) == 66);

// IQ2_XS: 256 values, 74 bytes (2.3125 bpw). qs[4*ib + l] (uint16, group l of sub-block ib):
// bits 0..8 index iq2xs_grid (512 entries of 8), bits 9..15 index ksigns_iq2xs. scales[ib]:
// low nibble s for groups 0-1, high nibble for groups 2-3: x = d * (0.5 + s) * 0.25 * grid * sign.
struct block_iq2_xs {
  uint16_t d;
  uint16_t qs[QK_K / 8];
  uint8_t scales[QK_K / 32];
};
static_assert(sizeof(block_iq2_xs) == 74);

// IQ2_S: 256 values, 82 bytes (2.5625 bpw). qs[0..31]: low 8 bits of each group's index into
// iq2s_grid (1024 entries of 8); qs[32..63]: each group's 8 sign bits as they are (bit j set:
// value j negative); qh[ib] bits 2l, 2l+1: the index's bits 8, 9 for group l; scales as IQ2_XS.
struct block_iq2_s {
  uint16_t d;
  uint8_t qs[QK_K / 4];
  uint8_t qh[QK_K / 32];
  uint8_t scales[QK_K / 32];
};
static_assert(sizeof(block_iq2_s) == 82);

// IQ3_XXS: 256 values, 98 bytes (3.0625 bpw). qs[0..63]: two indices a group (qs[8*ib + 2l]
// for values 0-3, qs[8*ib + 2l + 1] for values 4-7) into iq3xxs_grid (256 entries of 4);
// qs[64 + 4*ib ..] a little-endian uint32 a: bits 7l..7l+6 index ksigns_iq2xs, a >> 28 the
// scale s: x = d * (0.5 + s) * 0.5 * grid byte * sign.
struct block_iq3_xxs {
  uint16_t d;
  uint8_t qs[3 * QK_K / 8];
};
static_assert(sizeof(block_iq3_xxs) == 98);

// IQ3_S: 256 values, 110 bytes (3.4375 bpw). qs[8*ib + k] (k = 0..7): low 8 bits of the k-th
// index into iq3s_grid (512 entries of 4), bit 8 being bit k of qh[ib]; group l uses indices
// 2l (values 0-3) and 2l+1 (values 4-7); signs[4*ib + l]: group l's 8 sign bits as they are;
// scales[ib/2]: low nibble (even ib) or high nibble (odd ib) s: x = d * (1 + 2s) * grid * sign.
struct block_iq3_s {
  uint16_t d;
  uint8_t qs[QK_K / 4];
  uint8_t qh[QK_K / 32];
  uint8_t signs[QK_K / 8];
  uint8_t scales[QK_K / 64];
};
static_assert(sizeof(block_iq3_s) == 110);

// The IQ1s: a group of 8 values is one entry of iq1s_grid (2048 entries of 8 values in
// {-1, 0, 1}, signs included) shifted by delta = ±1/8: x = d * (1 + 2s) * (grid value + delta),
// s a 3-bit sub-block scale. No sign bits, so no parity rule.
inline constexpr float kIq1Delta = 0.125f;  // IQ1S_DELTA = IQ1M_DELTA

// IQ1_S: 256 values, 50 bytes (1.5625 bpw). Sub-block ib (32 values, groups l = 0..3):
// group l's grid index is qs[4*ib + l] | (qh[ib] >> 3l & 7) << 8 (11 bits: always in the grid);
// qh[ib] >> 12 & 7 is the scale s, bit 15 the delta's sign (set: -1/8) for the whole sub-block.
struct block_iq1_s {
  uint16_t d;
  uint8_t qs[QK_K / 8];
  uint16_t qh[QK_K / 32];
};
static_assert(sizeof(block_iq1_s) == 50);

// IQ1_M: 256 values, 56 bytes (1.75 bpw), no separate d. Sub-block ib, group l: index
// qs[4*ib + l] | (qh[2*ib + l/2] >> 4*(l%2) & 7) << 8; bit 3 (l even) or 7 (l odd) of that qh
// byte is the group's own delta sign. scales as 4 little-endian uint16 sc[0..3]: sub-block ib's
// 3-bit scales at bits 6*(ib%2) (groups 0-1) and 6*(ib%2) + 3 (groups 2-3) of sc[ib/2], and the
// top nibble of sc[k] is bits 4k..4k+3 of the f16 super-scale d.
struct block_iq1_m {
  uint8_t qs[QK_K / 8];
  uint8_t qh[QK_K / 16];
  uint8_t scales[QK_K / 32];
};
static_assert(sizeof(block_iq1_m) == 56);

// IQ1_M's f16 d, gathered from the top nibbles of its scale words (any alignment).
inline uint16_t iq1_m_d_bits(const uint8_t* block) {
  const uint8_t* sc = block + offsetof(block_iq1_m, scales);
  uint16_t d = 0;
  for (int k = 0; k < 4; ++k) d = uint16_t(d | (sc[2 * k + 1] >> 4) << 4 * k);
  return d;
}

}  // namespace lmq::ggml
