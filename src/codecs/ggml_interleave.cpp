// The X16 layouts (codecs/ggml_interleave.h): bytes moved between the row-major blocks and the
// 16-row records.
#include "lmq/codecs/ggml_interleave.h"

#include <array>
#include <cstring>

#include "lmq/codecs/ggml_blocks.h"
#include "lmq/error.h"

namespace lmq {

namespace {
constexpr int64_t kRows = 16;
using ggml::finite_f16;

// A record's geometry: the source block's fields in the record's order, each `count` elements
// of `size` bytes (2: an f16 scale, 1: a scale byte, 4: a word of codes) from block offset
// `at`; the record holds element e of the 16 rows side by side (row r's at 16·size·e + size·r
// within the field's part).
struct Field {
  int64_t at, size, count;
};
struct Layout {
  int64_t values, block_bytes, record_bytes;
  std::array<Field, 4> fields;  // unused ones have count 0
};
Layout layout_of(Format f) {
  switch (f) {
    case Format::Q4_0:
    case Format::Q4_0_X16: return {32, sizeof(ggml::block_q4_0), sizeof(ggml::block_q4_0x16), {{{0, 2, 1}, {2, 4, 4}}}};
    case Format::Q8_0:
    case Format::Q8_0_X16: return {32, sizeof(ggml::block_q8_0), sizeof(ggml::block_q8_0x16), {{{0, 2, 1}, {2, 4, 8}}}};
    case Format::Q4_K:
    case Format::Q4_K_X16:
      return {ggml::QK_K, sizeof(ggml::block_q4_K), sizeof(ggml::block_q4_kx16), {{{0, 2, 2}, {4, 1, 12}, {16, 4, 32}}}};
    case Format::Q6_K:
    case Format::Q6_K_X16:  // block: ql[128], qh[64], scales[16], d; record: d, scales, ql, qh
      return {ggml::QK_K, sizeof(ggml::block_q6_K), sizeof(ggml::block_q6_kx16),
              {{{208, 2, 1}, {192, 1, 16}, {0, 4, 32}, {128, 4, 16}}}};
    default: LMQ_CHECK(false, "format {} has no 16-row interleave", int(f));
  }
}

// The one byte mapping between row r's block and its place in the record (the header's fields):
// fn(record offset, block offset, size, count) per field, element e at + 16·size·e in the record
// and + size·e in the block.
template <typename Fn>
void row_fields(const Layout& l, int64_t r, Fn&& fn) {
  int64_t part = 0;  // where the field's part of the record starts
  for (const Field& f : l.fields) {
    if (f.count) fn(part + f.size * r, f.at, f.size, f.count);
    part += 16 * f.size * f.count;
  }
}

// A field's `count` elements of `size` bytes from `from` (every from_step bytes) to `to` (every
// to_step): fixed-size moves, since a GGUF load interleaves gigabytes this way (a memcpy call
// per element of a runtime size ran the whole load ~1.5x slower).
void move_field(uint8_t* to, int64_t to_step, const uint8_t* from, int64_t from_step, int64_t size, int64_t count) {
  for (int64_t e = 0; e < count; ++e, to += to_step, from += from_step) {
    if (size == 4) std::memcpy(to, from, 4);
    else if (size == 2) std::memcpy(to, from, 2);
    else *to = *from;
  }
}

// Whether every f16 field element (d, dmin) of row r is a number, read from its block at base
// or from its record at base (in_record).
bool scales_finite(const Layout& l, int64_t r, const uint8_t* base, bool in_record) {
  bool finite = true;
  row_fields(l, r, [&](int64_t at_rec, int64_t at_blk, int64_t size, int64_t count) {
    if (size != 2) return;
    for (int64_t e = 0; e < count; ++e) finite = finite && finite_f16(in_record ? base + at_rec + 32 * e : base + at_blk + 2 * e);
  });
  return finite;
}

void gather(const Layout& l, const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block) {
  const int64_t nb = cols / l.values, r = row % kRows;
  const uint8_t* rec = w + ((row / kRows) * nb + a) * l.record_bytes;
  row_fields(l, r, [&](int64_t at_rec, int64_t at_blk, int64_t size, int64_t count) {
    move_field(block + at_blk, size, rec + at_rec, 16 * size, size, count);
  });
}
}  // namespace

std::optional<Format> x16_layout_of(const Tensor& t) {
  Format x16;
  switch (t.format) {
    case Format::Q4_0: x16 = Format::Q4_0_X16; break;
    case Format::Q8_0: x16 = Format::Q8_0_X16; break;
    case Format::Q4_K: x16 = Format::Q4_K_X16; break;
    case Format::Q6_K: x16 = Format::Q6_K_X16; break;
    default: return std::nullopt;
  }
  const int64_t values = layout_of(t.format).values;
  if (t.shape.size() != 2 || t.rows() <= 0 || t.rows() % kRows != 0 || t.cols() <= 0 || t.cols() % values != 0)
    return std::nullopt;
  return x16;
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
        bad += !scales_finite(l, r, blk, false);
        row_fields(l, r, [&](int64_t at_rec, int64_t at_blk, int64_t size, int64_t count) {
          move_field(rec + at_rec, 16 * size, blk + at_blk, size, size, count);
        });
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
void q6_kx16_block(const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block) {
  gather(layout_of(Format::Q6_K), w, cols, row, a, block);
}

int64_t x16_nonfinite(Format x16, const uint8_t* src, int64_t nrec) {
  const Layout l = layout_of(x16);
  int64_t bad = 0;
  for (int64_t i = 0; i < nrec; ++i, src += l.record_bytes)
    for (int64_t r = 0; r < kRows; ++r) bad += !scales_finite(l, r, src, true);
  return bad;
}

}  // namespace lmq
