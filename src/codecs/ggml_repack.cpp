#include "lmq/codecs/ggml_repack.h"

#include <cstring>

#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/int_format.h"
#include "lmq/error.h"

namespace lmq {

namespace {
constexpr int64_t kBlock = 32;  // values per block of Q8_0 and Q4_0, and per LMQ_INT group

// One block's codes: Q8_0 bytes q → u = q + 128 (flipping the sign bit); Q4_0 nibbles
// (value j low in byte j, value j + 16 high) → the bitstream (values 2k, 2k + 1 in byte k).
void block_codes(int bits, const uint8_t* qs, uint8_t* u) {
  if (bits == 8) {
    for (int64_t j = 0; j < kBlock; ++j) u[j] = uint8_t(qs[j] ^ 0x80u);
    return;
  }
  auto nib = [qs](int64_t j) { return j < 16 ? uint8_t(qs[j] & 0x0F) : uint8_t(qs[j - 16] >> 4); };
  for (int64_t k = 0; k < kBlock / 2; ++k) u[k] = uint8_t(nib(2 * k) | nib(2 * k + 1) << 4);
}
}  // namespace

std::optional<IntParams> ggml_repack_params(Format f) {
  const int bits = format_traits(f).int_repack_bits;
  if (bits == 0) return std::nullopt;
  return IntParams{.bits = uint8_t(bits), .asym = false, .group = int32_t(kBlock), .scale_type = ScaleType::F16};
}

void ggml_repack_rows(Format f, const uint8_t* src, int64_t rows, int64_t cols, int64_t row0, int64_t n,
                      uint8_t* out) {
  const std::optional<IntParams> p = ggml_repack_params(f);
  if (!p) fail("format {} does not repack into LMQ_INT", format_name(f));
  if (cols <= 0 || cols % kBlock) fail("format {}: rows of {} values are not whole blocks of {}", format_name(f), cols, kBlock);
  LMQ_CHECK(row0 >= 0 && n >= 0 && row0 <= rows && n <= rows - row0, "rows [{}, {}) of {}", row0, row0 + n, rows);
  const quant::IntLayout l = quant::int_layout(*p, rows, cols);
  const uint64_t src_row = format_row_bytes(f, cols), block_bytes = format_traits(f).block_bytes;
  const int64_t nb = cols / kBlock, code_bytes = kBlock * p->bits / 8;
  for (int64_t r = row0; r < row0 + n; ++r) {
    const uint8_t* b = src + uint64_t(r) * src_row;
    uint8_t* codes = out + uint64_t(r) * l.row_code_bytes;
    uint8_t* scales = out + l.scales_offset + uint64_t(r * nb) * 2;
    for (int64_t i = 0; i < nb; ++i, b += block_bytes) {
      std::memcpy(scales + 2 * i, b, 2);  // the f16 d, bits unchanged (both little-endian)
      block_codes(p->bits, b + 2, codes + i * code_bytes);
    }
  }
}

}  // namespace lmq
