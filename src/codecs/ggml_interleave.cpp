// Q4_0_X16 (codecs/ggml_interleave.h): bytes moved between Q4_0's row-major blocks and the
// 16-row records.
#include "lmq/codecs/ggml_interleave.h"

#include <cstring>

#include "lmq/codecs/ggml_blocks.h"
#include "lmq/error.h"

namespace lmq {

namespace {
constexpr int64_t kRows = 16, kQ40 = sizeof(ggml::block_q4_0), kRec = sizeof(ggml::block_q4_0x16);
using ggml::finite_f16;

// The one byte mapping between row r's Q4_0 block and its place in the record (the header's d[r]
// and qs[c][r][m]): copy(record offset, block offset, n) moves n bytes whichever way the caller goes.
template <typename Copy>
void block_pieces(int64_t r, Copy&& copy) {
  copy(2 * r, 0, 2);
  for (int64_t c = 0; c < 4; ++c) copy(32 + 64 * c + 4 * r, 2 + 4 * c, 4);
}
}  // namespace

bool q4_0x16_eligible(const Tensor& t) {
  return t.format == Format::Q4_0 && t.shape.size() == 2 && t.rows() > 0 && t.rows() % kRows == 0 &&
         t.cols() > 0 && t.cols() % ggml::QK4_0 == 0;
}

int64_t q4_0x16_interleave(const uint8_t* src, int64_t rows, int64_t cols, int64_t g0, int64_t n, uint8_t* out) {
  LMQ_CHECK(rows % kRows == 0 && cols % ggml::QK4_0 == 0, "Q4_0_X16 of {} × {}", rows, cols);
  LMQ_CHECK(g0 >= 0 && n >= 0 && g0 + n <= rows / kRows, "groups [{}, {}) of {}", g0, g0 + n, rows / kRows);
  const int64_t nb = cols / ggml::QK4_0;
  int64_t bad = 0;
  for (int64_t g = g0; g < g0 + n; ++g)
    for (int64_t a = 0; a < nb; ++a) {
      uint8_t* rec = out + (g * nb + a) * kRec;
      for (int64_t r = 0; r < kRows; ++r) {
        const uint8_t* blk = src + ((g * kRows + r) * nb + a) * kQ40;
        bad += !finite_f16(blk);
        block_pieces(r, [&](int64_t at_rec, int64_t at_blk, size_t n) { std::memcpy(rec + at_rec, blk + at_blk, n); });
      }
    }
  return bad;
}

void q4_0x16_block(const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block) {
  const int64_t nb = cols / ggml::QK4_0, r = row % kRows;
  const uint8_t* rec = w + ((row / kRows) * nb + a) * kRec;
  block_pieces(r, [&](int64_t at_rec, int64_t at_blk, size_t n) { std::memcpy(block + at_blk, rec + at_rec, n); });
}

int64_t q4_0x16_nonfinite(const uint8_t* src, int64_t nrec) {
  int64_t bad = 0;
  for (int64_t i = 0; i < nrec; ++i, src += kRec)
    for (int64_t r = 0; r < kRows; ++r) bad += !finite_f16(src + 2 * r);
  return bad;
}

}  // namespace lmq
