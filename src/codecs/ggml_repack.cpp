#include "lmq/codecs/ggml_repack.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <vector>
#include <cstring>

#include "ggml_rows.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_interleave.h"
#include "lmq/codecs/int_format.h"
#include "lmq/codecs/iquant_blocks.h"
#include "lmq/error.h"

namespace lmq {

namespace ggml {
namespace {
constexpr int64_t kGroup = 32;  // values per LMQ_INT group (per block of Q8_0, Q4_0, IQ4_NL)

// 32 IQ4 nibbles (value j low in byte j, value j + 16 high) → their levels as 8-bit codes
// u = level + 128 (all in 1..241: the levels are int8 values).
void iq4_codes(const uint8_t* qs, uint8_t* u) {
  for (int j = 0; j < 16; ++j) {
    u[j] = uint8_t(kIq4nlValues[qs[j] & 0x0F] + 128);
    u[j + 16] = uint8_t(kIq4nlValues[qs[j] >> 4] + 128);
  }
}

}  // namespace

// Q8_0 bytes q → u = q + 128 (flipping the sign bit); the f16 d, bits unchanged.
bool rp_q8_0(const uint8_t* b, uint8_t* u, uint8_t* scales) {
  std::memcpy(scales, b, 2);
  for (int64_t j = 0; j < kGroup; ++j) u[j] = uint8_t(b[2 + j] ^ 0x80u);
  return finite_f16(b);
}

// Q4_0 nibbles (value j low in byte j, j + 16 high) → the bitstream (values 2k, 2k + 1 in byte k).
bool rp_q4_0(const uint8_t* b, uint8_t* u, uint8_t* scales) {
  std::memcpy(scales, b, 2);
  const uint8_t* qs = b + 2;
  auto nib = [qs](int64_t j) { return j < 16 ? uint8_t(qs[j] & 0x0F) : uint8_t(qs[j - 16] >> 4); };
  for (int64_t k = 0; k < kGroup / 2; ++k) u[k] = uint8_t(nib(2 * k) | nib(2 * k + 1) << 4);
  return finite_f16(b);
}

// IQ4_NL: x = d·level → int8 codes of the levels, the f16 d as it is.
bool rp_iq4_nl(const uint8_t* b, uint8_t* u, uint8_t* scales) {
  std::memcpy(scales, b, 2);
  iq4_codes(b + offsetof(block_iq4_nl, qs), u);
  return finite_f16(b);
}

// IQ4_XS: x = (d·(ls − 32))·level per sub-block of 32 → int8 codes, and an f32 scale per
// sub-block computed as the dequantizer computes it (d·(ls − 32) needs 11 + 6 mantissa bits:
// exact in f32, so s·(u − 128) is llama.cpp's value bit for bit; f16 could not hold it).
bool rp_iq4_xs(const uint8_t* b, uint8_t* u, uint8_t* scales) {
  const float d = h2f(b);
  for (int ib = 0; ib < QK_K / 32; ++ib) {
    const float s = d * float(iq4_xs_scale(b, ib) - 32);
    std::memcpy(scales + 4 * ib, &s, 4);
    iq4_codes(b + offsetof(block_iq4_xs, qs) + 16 * ib, u + 32 * ib);
  }
  return finite_f16(b);  // d finite: d·(ls − 32) is (|d·31| < 2^21)
}

}  // namespace ggml

std::optional<IntParams> ggml_repack_params(Format f) {
  const FormatTraits& t = format_traits(f);
  if (t.int_repack_bits == 0) return std::nullopt;
  return IntParams{.bits = uint8_t(t.int_repack_bits), .asym = false, .group = int32_t(ggml::kGroup),
                   .scale_type = t.int_repack_scale};
}

int64_t ggml_nonfinite_blocks(Format f, const uint8_t* src, int64_t nblocks) {
  const FormatTraits& t = format_traits(f);
  if (!t.ggml_matmul) fail("format {} is not read in place by the integer kernels", format_name(f));
  if (t.row_group > 1) return x16_nonfinite(f, src, nblocks / t.row_group);  // the X16 layouts' records
  int64_t bad = 0;
  if (t.d_at < 0) {  // d not at one place (IQ1_M): a block whose values are not all finite
    std::vector<float> v(size_t(t.block_size));
    for (int64_t i = 0; i < nblocks; ++i, src += t.block_bytes) {
      t.dequantize_row(src, v.data(), 1);
      bad += !std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
    }
    return bad;
  }
  for (int64_t i = 0; i < nblocks; ++i, src += t.block_bytes)
    bad += !ggml::finite_f16(src + t.d_at) || (t.dmin_at >= 0 && !ggml::finite_f16(src + t.dmin_at));
  return bad;
}

int64_t ggml_repack_rows(Format f, const uint8_t* src, int64_t rows, int64_t cols, int64_t row0, int64_t n,
                         uint8_t* out) {
  const std::optional<IntParams> p = ggml_repack_params(f);
  if (!p) fail("format {} does not repack into LMQ_INT", format_name(f));
  const FormatTraits& t = format_traits(f);
  const int64_t bs = t.block_size;
  if (cols <= 0 || cols % bs) fail("format {}: rows of {} values are not whole blocks of {}", format_name(f), cols, bs);
  LMQ_CHECK(row0 >= 0 && n >= 0 && row0 <= rows && n <= rows - row0, "rows [{}, {}) of {}", row0, row0 + n, rows);
  const quant::IntLayout l = quant::int_layout(*p, rows, cols);
  const uint64_t src_row = format_row_bytes(f, cols);
  const int64_t nb = cols / bs, code_bytes = bs * p->bits / 8;
  const uint64_t scale_bytes = p->scale_type == ScaleType::F32 ? 4 : 2, block_scales = uint64_t(bs / ggml::kGroup);
  int64_t bad = 0;
  for (int64_t r = row0; r < row0 + n; ++r) {
    const uint8_t* b = src + uint64_t(r) * src_row;
    uint8_t* codes = out + uint64_t(r) * l.row_code_bytes;
    uint8_t* scales = out + l.scales_offset + uint64_t(r) * uint64_t(l.groups_per_row) * scale_bytes;
    for (int64_t i = 0; i < nb; ++i, b += t.block_bytes)
      bad += !t.int_repack_block(b, codes + i * code_bytes, scales + uint64_t(i) * block_scales * scale_bytes);
  }
  return bad;
}

}  // namespace lmq
