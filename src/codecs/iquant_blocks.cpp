// Scalar dequantization of ggml's i-quant formats, written from the layouts documented in
// codecs/iquant_blocks.h. The float arithmetic follows llama.cpp's scalar dequantize_row_iq*
// operation for operation (scale products in the same order, the ±1 sign applied last), so the
// values equal llama.cpp's bit for bit on IEEE float hardware without FMA contraction.
#include "lmq/codecs/iquant_blocks.h"

#include <cstddef>

#include "ggml_rows.h"

namespace lmq::ggml {
namespace iq {
#include "iquant_grids.inc"
}  // namespace iq

namespace {

inline int grid_byte(uint64_t entry, int j) { return int(entry >> (8 * j) & 0xff); }
inline float sign_of(uint8_t signs, int j) { return signs & iq::kmask_iq2xs[j] ? -1.f : 1.f; }

// 8 values of a group whose magnitudes are one 8-byte grid entry.
inline void group8(float db, uint64_t entry, uint8_t signs, float* y) {
  for (int j = 0; j < 8; ++j) y[j] = db * float(grid_byte(entry, j)) * sign_of(signs, j);
}
// 8 values of a group made of two 4-byte grid entries (IQ3_*).
inline void group4x2(float db, uint32_t g1, uint32_t g2, uint8_t signs, float* y) {
  for (int j = 0; j < 4; ++j) {
    y[j + 0] = db * float(grid_byte(g1, j)) * sign_of(signs, j + 0);
    y[j + 4] = db * float(grid_byte(g2, j)) * sign_of(signs, j + 4);
  }
}
// 32 values from 16 bytes of 4-bit codes (value j low nibble of qs[j], j+16 high nibble).
inline void iq4_values(float d, const uint8_t* qs, float* y) {
  for (int j = 0; j < 16; ++j) {
    y[j + 0] = d * float(kIq4nlValues[qs[j] & 0xf]);
    y[j + 16] = d * float(kIq4nlValues[qs[j] >> 4]);
  }
}

}  // namespace

void dq_iq4_nl(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_iq4_nl), y += QK4_NL)
    iq4_values(h2f(src), src + offsetof(block_iq4_nl, qs), y);
}

void dq_iq4_xs(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_iq4_xs)) {
    const float d = h2f(src);
    const uint8_t* qs = src + offsetof(block_iq4_xs, qs);
    for (int ib = 0; ib < QK_K / 32; ++ib, y += 32, qs += 16) iq4_values(d * float(iq4_xs_scale(src, ib) - 32), qs, y);
  }
}

// Their grids for GPTQ (codecs/ggml_blocks.h GgmlGrid): one per 32 values, the dequantizer's
// scale times the 16 levels; and their codes replaced, nibbles as iq4_values reads them.
void grids_iq4_nl(const uint8_t* b, GgmlGrid* g) { g[0] = {h2f(b), 0.f, 0, 15, kIq4nlValues}; }
void grids_iq4_xs(const uint8_t* b, GgmlGrid* g) {
  const float d = h2f(b);
  for (int ib = 0; ib < QK_K / 32; ++ib) g[ib] = {d * float(iq4_xs_scale(b, ib) - 32), 0.f, 0, 15, kIq4nlValues};
}
namespace {
void set_iq4_codes(uint8_t* qs, const uint8_t* L) {  // 32 codes into 16 bytes
  for (int j = 0; j < 16; ++j) qs[j] = uint8_t((L[j] & 0xf) | (L[j + 16] & 0xf) << 4);
}
}  // namespace
void codes_iq4_nl(uint8_t* b, const uint8_t* L) { set_iq4_codes(b + offsetof(block_iq4_nl, qs), L); }
void codes_iq4_xs(uint8_t* b, const uint8_t* L) {
  for (int ib = 0; ib < QK_K / 32; ++ib) set_iq4_codes(b + offsetof(block_iq4_xs, qs) + 16 * ib, L + 32 * ib);
}

void dq_iq2_xxs(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_iq2_xxs)) {
    const float d = h2f(src);
    const uint8_t* qs = src + offsetof(block_iq2_xxs, qs);
    for (int ib = 0; ib < QK_K / 32; ++ib, qs += 8) {
      const uint32_t a1 = u32_at(qs + 4);
      const float db = d * (0.5f + float(a1 >> 28)) * 0.25f;
      // qs[l] is a byte: always inside the 256-entry grid; a 7-bit sign index inside the 128 signs
      for (int l = 0; l < 4; ++l, y += 8) group8(db, iq::iq2xxs_grid[qs[l]], iq::ksigns_iq2xs[a1 >> 7 * l & 127], y);
    }
  }
}

void dq_iq2_xs(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_iq2_xs)) {
    const float d = h2f(src);
    const uint8_t* qs = src + offsetof(block_iq2_xs, qs);
    const uint8_t* scales = src + offsetof(block_iq2_xs, scales);
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      const float db[2] = {d * (0.5f + float(scales[ib] & 0xf)) * 0.25f, d * (0.5f + float(scales[ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l, y += 8) {
        const uint16_t q = u16_at(qs + 2 * (4 * ib + l));
        // 9 bits of index into the 512-entry grid, 7 bits of sign index: in range by construction
        group8(db[l / 2], iq::iq2xs_grid[q & 511], iq::ksigns_iq2xs[q >> 9], y);
      }
    }
  }
}

void dq_iq2_s(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_iq2_s)) {
    const float d = h2f(src);
    const uint8_t* qs = src + offsetof(block_iq2_s, qs);
    const uint8_t* signs = qs + QK_K / 8;
    const uint8_t* qh = src + offsetof(block_iq2_s, qh);
    const uint8_t* scales = src + offsetof(block_iq2_s, scales);
    for (int ib = 0; ib < QK_K / 32; ++ib, qs += 4, signs += 4) {
      const float db[2] = {d * (0.5f + float(scales[ib] & 0xf)) * 0.25f, d * (0.5f + float(scales[ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l, y += 8) {
        const int idx = qs[l] | (qh[ib] << (8 - 2 * l) & 0x300);  // 10 bits: the 1024-entry grid
        group8(db[l / 2], iq::iq2s_grid[idx], signs[l], y);
      }
    }
  }
}

void dq_iq3_xxs(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_iq3_xxs)) {
    const float d = h2f(src);
    const uint8_t* qs = src + offsetof(block_iq3_xxs, qs);
    const uint8_t* scales_and_signs = qs + QK_K / 4;
    for (int ib = 0; ib < QK_K / 32; ++ib, qs += 8) {
      const uint32_t a = u32_at(scales_and_signs + 4 * ib);
      const float db = d * (0.5f + float(a >> 28)) * 0.5f;
      // byte indices into the 256-entry grid, 7-bit sign indices: in range by construction
      for (int l = 0; l < 4; ++l, y += 8)
        group4x2(db, iq::iq3xxs_grid[qs[2 * l]], iq::iq3xxs_grid[qs[2 * l + 1]], iq::ksigns_iq2xs[a >> 7 * l & 127], y);
    }
  }
}

void dq_iq3_s(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_iq3_s)) {
    const float d = h2f(src);
    const uint8_t* qs = src + offsetof(block_iq3_s, qs);
    const uint8_t* qh = src + offsetof(block_iq3_s, qh);
    const uint8_t* signs = src + offsetof(block_iq3_s, signs);
    const uint8_t* scales = src + offsetof(block_iq3_s, scales);
    for (int ib = 0; ib < QK_K / 32; ++ib, qs += 8, signs += 4) {
      const int s = scales[ib / 2] >> 4 * (ib % 2) & 0xf;
      const float db = d * float(1 + 2 * s);
      for (int l = 0; l < 4; ++l, y += 8) {
        // 8 + 1 bits: the 512-entry grid
        const int i1 = qs[2 * l] | (qh[ib] << (8 - 2 * l) & 256), i2 = qs[2 * l + 1] | (qh[ib] << (7 - 2 * l) & 256);
        group4x2(db, iq::iq3s_grid[i1], iq::iq3s_grid[i2], signs[l], y);
      }
    }
  }
}

// 8 values of an IQ1 group: dl · (grid value + delta), the grid entry's bytes as int8.
inline void group_iq1(float dl, uint64_t entry, float delta, float* y) {
  for (int j = 0; j < 8; ++j) y[j] = dl * (float(int8_t(grid_byte(entry, j))) + delta);
}

void dq_iq1_s(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_iq1_s)) {
    const float d = h2f(src);
    const uint8_t* qs = src + offsetof(block_iq1_s, qs);
    for (int ib = 0; ib < QK_K / 32; ++ib, qs += 4) {
      const int qh = u16_at(src + offsetof(block_iq1_s, qh) + 2 * ib);
      const float dl = d * float(2 * (qh >> 12 & 7) + 1);
      const float delta = qh & 0x8000 ? -kIq1Delta : kIq1Delta;
      // 8 + 3 bits: the 2048-entry grid
      for (int l = 0; l < 4; ++l, y += 8) group_iq1(dl, iq::iq1s_grid[qs[l] | (qh >> 3 * l & 7) << 8], delta, y);
    }
  }
}

void dq_iq1_m(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(block_iq1_m)) {
    const float d = f16_to_f32(iq1_m_d_bits(src));
    const uint8_t* qs = src + offsetof(block_iq1_m, qs);
    const uint8_t* qh = src + offsetof(block_iq1_m, qh);
    for (int ib = 0; ib < QK_K / 32; ++ib, qs += 4, qh += 2) {
      const int sc = u16_at(src + offsetof(block_iq1_m, scales) + 2 * (ib / 2));
      const float dl[2] = {d * float(2 * (sc >> 6 * (ib % 2) & 7) + 1), d * float(2 * (sc >> (6 * (ib % 2) + 3) & 7) + 1)};
      for (int l = 0; l < 4; ++l, y += 8) {
        const int h = qh[l / 2] >> 4 * (l % 2);  // 3 bits of index, then the delta's sign
        group_iq1(dl[l / 2], iq::iq1s_grid[qs[l] | (h & 7) << 8], h & 8 ? -kIq1Delta : kIq1Delta, y);
      }
    }
  }
}

}  // namespace lmq::ggml
