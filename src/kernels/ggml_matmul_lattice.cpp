// The lattice i-quants' scalar specification (lmq/kernels/ggml_matmul.h), written plainly from
// the layouts of codecs/iquant_blocks.h; the VNNI kernel (ggml_matmul_lattice_x86.cpp) equals it
// bit for bit.
#include "ggml_matmul_lattice.h"

#include <algorithm>
#include <vector>

#include "int_matmul_internal.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/iquant_blocks.h"
#include "lmq/half.h"

namespace lmq::ggml::iq {
#include "../codecs/iquant_grids.inc"
}  // namespace lmq::ggml::iq

namespace lmq::ggk {
namespace {

namespace iq = ggml::iq;
using ggml::u32_at;

// 8 values: the bytes of grid entry g (8 bytes, or 4 + 4 of two entries), negated where the sign bit is set.
void group(uint64_t g, uint8_t signs, int8_t* w) {
  for (int j = 0; j < 8; ++j) {
    const int m = int(g >> (8 * j) & 0xff);
    w[j] = int8_t(signs >> j & 1 ? -m : m);
  }
}
uint64_t pair(uint32_t g1, uint32_t g2) { return uint64_t(g1) | uint64_t(g2) << 32; }

}  // namespace

bool lattice_format(Format f) {
  return f == Format::IQ2_XXS || f == Format::IQ2_XS || f == Format::IQ2_S || f == Format::IQ3_XXS ||
         f == Format::IQ3_S || f == Format::IQ1_S || f == Format::IQ1_M;
}

float lattice_d(Format f, const uint8_t* blk) { return f16_to_f32(lattice_d_bits(f, blk)) * lattice_c(f); }

namespace {
// An IQ1 group: 8·(grid value ± 1/8), the grid's bytes as int8.
void group_iq1(uint64_t g, bool negative_delta, int8_t* w) {
  for (int j = 0; j < 8; ++j) w[j] = int8_t(8 * int8_t(g >> (8 * j) & 0xff) + (negative_delta ? -1 : 1));
}
}  // namespace

void lattice_values(Format f, const uint8_t* blk, int8_t* w) {
  if (f == Format::IQ1_S) {  // qs at 2, qh words at 34 (codecs/iquant_blocks.h)
    for (int ib = 0; ib < 8; ++ib) {
      const int qh = blk[34 + 2 * ib] | blk[35 + 2 * ib] << 8;
      for (int l = 0; l < 4; ++l)
        group_iq1(iq::iq1s_grid[blk[2 + 4 * ib + l] | (qh >> 3 * l & 7) << 8], qh & 0x8000, w + 32 * ib + 8 * l);
    }
    return;
  }
  if (f == Format::IQ1_M) {  // qs at 0, a qh nibble a group at 32
    for (int k = 0; k < 32; ++k) {
      const int h = blk[32 + k / 2] >> 4 * (k % 2);
      group_iq1(iq::iq1s_grid[blk[k] | (h & 7) << 8], h & 8, w + 8 * k);
    }
    return;
  }
  const uint8_t* qs = blk + 2;
  for (int ib = 0; ib < 8; ++ib)
    for (int l = 0; l < 4; ++l) {
      int8_t* v = w + 32 * ib + 8 * l;
      switch (f) {
        case Format::IQ2_XXS: {
          const uint32_t a1 = u32_at(qs + 8 * ib + 4);
          group(iq::iq2xxs_grid[qs[8 * ib + l]], iq::ksigns_iq2xs[a1 >> 7 * l & 127], v);
          break;
        }
        case Format::IQ2_XS: {
          const int q = qs[8 * ib + 2 * l] | qs[8 * ib + 2 * l + 1] << 8;
          group(iq::iq2xs_grid[q & 511], iq::ksigns_iq2xs[q >> 9], v);
          break;
        }
        case Format::IQ2_S: {
          const int idx = qs[4 * ib + l] | (blk[66 + ib] << (8 - 2 * l) & 0x300);
          group(iq::iq2s_grid[idx], qs[32 + 4 * ib + l], v);
          break;
        }
        case Format::IQ3_XXS: {
          const uint32_t a = u32_at(blk + 66 + 4 * ib);
          group(pair(iq::iq3xxs_grid[qs[8 * ib + 2 * l]], iq::iq3xxs_grid[qs[8 * ib + 2 * l + 1]]),
                iq::ksigns_iq2xs[a >> 7 * l & 127], v);
          break;
        }
        default: {  // IQ3_S
          const int qh = blk[66 + ib];
          const int i1 = qs[8 * ib + 2 * l] | (qh << (8 - 2 * l) & 256), i2 = qs[8 * ib + 2 * l + 1] | (qh << (7 - 2 * l) & 256);
          group(pair(iq::iq3s_grid[i1], iq::iq3s_grid[i2]), blk[74 + 4 * ib + l], v);
          break;
        }
      }
    }
}

// Each super-block decoded once for all tokens (slot[t][j] still sums in increasing b).
void lattice_rows_scalar(const Args& a, const Acts& x, int64_t o0, int64_t o1) {
  const int64_t nsb = a.K / ggml::QK_K, na = a.K / 32;
  const int64_t bb = int64_t(ggml_block_bytes(a.f));
  auto dot16 = [](const int8_t* w, const int8_t* q) {
    int32_t s = 0;
    for (int k = 0; k < 16; ++k) s += int32_t(w[k]) * int32_t(q[k]);
    return s;
  };
  int8_t w[ggml::QK_K];
  uint8_t sc[16];
  std::vector<float> slots(size_t(a.T * 8));
  for (int64_t o = o0; o < o1; ++o) {
    std::fill(slots.begin(), slots.end(), 0.f);
    for (int64_t b = 0; b < nsb; ++b) {
      const uint8_t* blk = a.w + o * a.row_bytes + b * bb;
      lattice_values(a.f, blk, w);
      lattice_scales16(a.f, blk, sc);
      const float D = lattice_d(a.f, blk);
      for (int64_t t = 0; t < a.T; ++t) {
        const int8_t* xb = x.q + t * a.K + b * ggml::QK_K;
        float* slot = slots.data() + t * 8;
        for (int j = 0; j < 8; ++j) {
          const int32_t i = sc[2 * j] * dot16(w + 32 * j, xb + 32 * j) + sc[2 * j + 1] * dot16(w + 32 * j + 16, xb + 32 * j + 16);
          const float f = x.sx[t * na + b * 8 + j] * (D * float(i));
          slot[j] = slot[j] + f;
        }
      }
    }
    for (int64_t t = 0; t < a.T; ++t) {
      float y = intk::combine_slots(slots.data() + t * 8);
      if (a.bias) y = y + a.bias[o];
      a.y[t * a.N + o] = y;
    }
  }
}

}  // namespace lmq::ggk
