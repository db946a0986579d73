// LMQ_INT_X16 (codecs/int_interleave.h): code bytes moved between rows and 16-row records.
#include "lmq/codecs/int_interleave.h"

#include <cstring>

#include "lmq/error.h"

namespace lmq {

namespace {
constexpr int64_t kRows = 16, kStep = 64;
}

bool int_x16_fits(const IntParams& p, int64_t rows, int64_t cols) {
  if (p.bits != 4 && p.bits != 8) return false;
  if (rows <= 0 || rows % kRows != 0 || cols <= 0) return false;
  const int64_t row_bytes = cols * p.bits / 8;
  return (cols * p.bits) % 8 == 0 && row_bytes % kStep == 0;
}

void int_x16_interleave(const uint8_t* src, int64_t rows, int64_t row_bytes, int64_t g0, int64_t n, uint8_t* out) {
  LMQ_CHECK(rows % kRows == 0 && row_bytes > 0 && row_bytes % kStep == 0, "16-row interleave of {} rows of {} bytes",
            rows, row_bytes);
  LMQ_CHECK(g0 >= 0 && n >= 0 && g0 + n <= rows / kRows, "groups [{}, {}) of {}", g0, g0 + n, rows / kRows);
  const int64_t steps = row_bytes / kStep;
  for (int64_t g = g0; g < g0 + n; ++g)
    for (int64_t s = 0; s < steps; ++s) {
      auto* rec = reinterpret_cast<int_x16_record*>(out + (g * steps + s) * int64_t(sizeof(int_x16_record)));
      for (int64_t r = 0; r < kRows; ++r) {
        const uint8_t* from = src + (g * kRows + r) * row_bytes + s * kStep;
        for (int c = 0; c < 16; ++c) std::memcpy(rec->chunk[c][r], from + 4 * c, 4);
      }
    }
}

void int_x16_gather_row(const uint8_t* w, int64_t row_bytes, int64_t row, uint8_t* out) {
  LMQ_CHECK(row >= 0 && row_bytes > 0 && row_bytes % kStep == 0, "row {} of {} bytes", row, row_bytes);
  const int64_t steps = row_bytes / kStep, r = row % kRows;
  for (int64_t s = 0; s < steps; ++s) {
    const auto* rec = reinterpret_cast<const int_x16_record*>(w + ((row / kRows) * steps + s) * int64_t(sizeof(int_x16_record)));
    for (int c = 0; c < 16; ++c) std::memcpy(out + s * kStep + 4 * c, rec->chunk[c][r], 4);
  }
}

}  // namespace lmq
