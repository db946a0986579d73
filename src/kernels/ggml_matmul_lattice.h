// The lattice i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) for the in-place kernels
// (lmq/kernels/ggml_matmul.h has the arithmetic): a super-block in its integer form, the
// scalar specification, and the pieces the VNNI kernel shares with it.
#pragma once
#include <cstdint>

#include "ggml_matmul_internal.h"
#include "lmq/codecs/iquant_blocks.h"

namespace lmq::ggk {

bool lattice_format(Format f);

// Value v of a super-block is D · sc[v / 16] · w[v]: w = grid byte · sign (|w| ≤ 62), sc the
// odd integer multiplier 2s + 1 of each 16 values (a 32-value scale repeated), D = d · c with c
// the format's power of two (1/8 IQ2_*, 1/4 IQ3_XXS, 1 IQ3_S), exact in f32. The IQ1s:
// w = 8·(grid value ± 1/8) = 8g ± 1 ∈ {±1, ±7, ±9}, c = 1/8.
// (inline: the VNNI kernel calls it per row and super-block, with f a constant)
inline void lattice_scales16(Format f, const uint8_t* blk, uint8_t* sc) {
  for (int ib = 0; ib < 8; ++ib) {
    int s0 = 0, s1 = 0;  // the 4-bit scales of values 32ib..+15 and 32ib+16..+31
    switch (f) {
      case Format::IQ2_XXS: s0 = s1 = blk[2 + 8 * ib + 7] >> 4; break;  // a1 >> 28
      case Format::IQ2_XS: s0 = blk[66 + ib] & 15, s1 = blk[66 + ib] >> 4; break;
      case Format::IQ2_S: s0 = blk[74 + ib] & 15, s1 = blk[74 + ib] >> 4; break;
      case Format::IQ3_XXS: s0 = s1 = blk[66 + 4 * ib + 3] >> 4; break;  // a >> 28
      case Format::IQ1_S: s0 = s1 = blk[34 + 2 * ib + 1] >> 4 & 7; break;  // qh >> 12 & 7
      case Format::IQ1_M: {  // sc[ib / 2] >> 6 (ib % 2) (+ 3)
        const int sc16 = blk[48 + 2 * (ib / 2)] | blk[49 + 2 * (ib / 2)] << 8;
        s0 = sc16 >> 6 * (ib % 2) & 7, s1 = sc16 >> (6 * (ib % 2) + 3) & 7;
        break;
      }
      default: s0 = s1 = blk[106 + ib / 2] >> 4 * (ib % 2) & 15; break;  // IQ3_S
    }
    sc[2 * ib] = uint8_t(2 * s0 + 1), sc[2 * ib + 1] = uint8_t(2 * s1 + 1);
  }
}
// c (above): exact powers of two, so D = d·c is exact.
inline float lattice_c(Format f) { return f == Format::IQ3_S ? 1.f : f == Format::IQ3_XXS ? 0.25f : 0.125f; }
// d's 16 bits: the block's first two bytes, or IQ1_M's scale-word nibbles.
inline uint16_t lattice_d_bits(Format f, const uint8_t* blk) {
  return f == Format::IQ1_M ? ggml::iq1_m_d_bits(blk) : uint16_t(blk[0] | blk[1] << 8);
}
float lattice_d(Format f, const uint8_t* blk);  // D
void lattice_values(Format f, const uint8_t* blk, int8_t* w);  // 256 values

void lattice_rows_scalar(const Args& a, const Acts& x, int64_t o0, int64_t o1);

}  // namespace lmq::ggk
