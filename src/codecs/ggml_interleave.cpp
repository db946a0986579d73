// Q4_0_X16, Q8_0_X16 and Q4_K_X16 (codecs/ggml_interleave.h): bytes moved between the row-major blocks and
// the 16-row records.
#include "lmq/codecs/ggml_interleave.h"

#include <cstring>

#include "lmq/codecs/ggml_blocks.h"
#include "lmq/error.h"

namespace lmq {

namespace {
constexpr int64_t kRows = 16;
using ggml::finite_f16;

// A record's geometry. Its source block is `halves` f16 fields (d; Q4_K: d, dmin), then `bytes`
// single scale bytes (Q4_K: 12), then `words` 4-byte words of codes; the record holds each field
// of the 16 rows side by side, in that order.
struct Layout {
  int64_t values, block_bytes, halves, bytes, words, record_bytes;
};
Layout layout_of(Format f) {
  if (f == Format::Q4_0 || f == Format::Q4_0_X16) return {32, sizeof(ggml::block_q4_0), 1, 0, 4, sizeof(ggml::block_q4_0x16)};
  if (f == Format::Q8_0 || f == Format::Q8_0_X16) return {32, sizeof(ggml::block_q8_0), 1, 0, 8, sizeof(ggml::block_q8_0x16)};
  LMQ_CHECK(f == Format::Q4_K || f == Format::Q4_K_X16, "format {} has no 16-row interleave", int(f));
  return {ggml::QK_K, sizeof(ggml::block_q4_K), 2, 12, 32, sizeof(ggml::block_q4_kx16)};
}

// The one byte mapping between row r's block and its place in the record (the header's d[r],
// dmin[r], scales[k][r], qs[w][r][m]): copy(record offset, block offset, n) moves n bytes
// whichever way the caller goes.
template <typename Copy>
void block_pieces(const Layout& l, int64_t r, Copy&& copy) {
  for (int64_t h = 0; h < l.halves; ++h) copy(32 * h + 2 * r, 2 * h, 2);
  const int64_t at_bytes = 32 * l.halves, at_words = at_bytes + 16 * l.bytes, from_words = 2 * l.halves + l.bytes;
  for (int64_t k = 0; k < l.bytes; ++k) copy(at_bytes + 16 * k + r, 2 * l.halves + k, 1);
  for (int64_t w = 0; w < l.words; ++w) copy(at_words + 64 * w + 4 * r, from_words + 4 * w, 4);
}

void gather(const Layout& l, const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block) {
  const int64_t nb = cols / l.values, r = row % kRows;
  const uint8_t* rec = w + ((row / kRows) * nb + a) * l.record_bytes;
  block_pieces(l, r, [&](int64_t at_rec, int64_t at_blk, size_t n) { std::memcpy(block + at_blk, rec + at_rec, n); });
}
}  // namespace

std::optional<Format> x16_layout_of(const Tensor& t) {
  if (t.format != Format::Q4_0 && t.format != Format::Q8_0 && t.format != Format::Q4_K) return std::nullopt;
  const int64_t values = layout_of(t.format).values;
  if (t.shape.size() != 2 || t.rows() <= 0 || t.rows() % kRows != 0 || t.cols() <= 0 || t.cols() % values != 0)
    return std::nullopt;
  return t.format == Format::Q4_0 ? Format::Q4_0_X16 : t.format == Format::Q8_0 ? Format::Q8_0_X16 : Format::Q4_K_X16;
}

int64_t x16_interleave(Format stored, const uint8_t* src, int64_t rows, int64_t cols, int64_t g0, int64_t n,
                       uint8_t* out) {
  const Layout l = layout_of(stored);
  LMQ_CHECK(rows % kRows == 0 && cols % l.values == 0, "16-row interleave of {} × {}", rows, cols);
  LMQ_CHECK(g0 >= 0 && n >= 0 && g0 + n <= rows / kRows, "groups [{}, {}) of {}", g0, g0 + n, rows / kRows);
  const int64_t nb = cols / l.values;
  int64_t bad = 0;
  for (int64_t g = g0; g < g0 + n; ++g)
    for (int64_t a = 0; a < nb; ++a) {
      uint8_t* rec = out + (g * nb + a) * l.record_bytes;
      for (int64_t r = 0; r < kRows; ++r) {
        const uint8_t* blk = src + ((g * kRows + r) * nb + a) * l.block_bytes;
        bool finite = true;
        for (int64_t h = 0; h < l.halves; ++h) finite = finite && finite_f16(blk + 2 * h);
        bad += !finite;
        block_pieces(l, r, [&](int64_t at_rec, int64_t at_blk, size_t n) { std::memcpy(rec + at_rec, blk + at_blk, n); });
      }
    }
  return bad;
}

void q4_0x16_block(const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block) {
  gather(layout_of(Format::Q4_0), w, cols, row, a, block);
}
void q8_0x16_block(const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block) {
  gather(layout_of(Format::Q8_0), w, cols, row, a, block);
}
void q4_kx16_block(const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block) {
  gather(layout_of(Format::Q4_K), w, cols, row, a, block);
}

int64_t x16_nonfinite(Format x16, const uint8_t* src, int64_t nrec) {
  const Layout l = layout_of(x16);
  int64_t bad = 0;
  for (int64_t i = 0; i < nrec; ++i, src += l.record_bytes)
    for (int64_t r = 0; r < kRows; ++r) {
      bool finite = true;
      for (int64_t h = 0; h < l.halves; ++h) finite = finite && finite_f16(src + 32 * h + 2 * r);
      bad += !finite;
    }
  return bad;
}

}  // namespace lmq
