// LMQ_INT_X16: an LMQ_INT tensor (codecs/int_format.h) of 4- or 8-bit codes with 16 rows
// interleaved, an in-memory layout the integer kernels read faster than the stored one (never
// written to a file; the lmq file reader refuses its name).
//
// Why. Decode streams every weight once. The tiled kernel (kernels/int_matmul.h) reads 4 rows
// at a time from 4 places in the tensor and sums each row's products across the 16 lanes of a
// vector, one reduction per unit of every 4 rows. Here one 64-byte load holds 4 code bytes of
// each of 16 rows, 32-bit lane r being row r: the lane vpdpbusd sums into, so the kernel is
// loads and vpdpbusd over one sequential stream, with its epilogue on 16 rows at once (the X16
// layouts of the GGUF formats, codecs/ggml_interleave.h, do the same with their blocks).
//
// Layout. Same IntParams, same total bytes and the same scales and zero points (at the offsets
// int_layout gives) as the LMQ_INT tensor; only the codes part is reordered. A row's codes are
// row_code_bytes = cols·bits/8 bytes, a whole number of 64-byte steps (cols a multiple of 128 at
// 4 bits, of 64 at 8 bits); rows are a multiple of 16. Group g = rows 16g .. 16g + 15 is
// row_code_bytes/64 records of 1024 bytes (int_x16_record), in increasing step s, at
// codes + (g·steps + s)·1024:
//   chunk[c][r][m] = byte 64s + 4c + m of row 16g + r's codes (c = 0..15, m = 0..3)
// Bytes are moved, never changed: at 8 bits chunk c of step s holds codes 64s + 4c .. + 3 of the
// row; at 4 bits its low nibbles hold codes 128s + 8c + 0, 2, 4, 6 and its high nibbles
// 128s + 8c + 1, 3, 5, 7 (the stored nibble order: code 2k in byte k's low nibble).
#pragma once
#include <cstdint>

#include "lmq/tensor.h"

namespace lmq {

struct int_x16_record {
  uint8_t chunk[16][16][4];
};
static_assert(sizeof(int_x16_record) == 1024);

// Whether an LMQ_INT tensor of these params and shape can be interleaved: bits 4 or 8, rows a
// positive multiple of 16, row codes a positive multiple of 64 bytes.
bool int_x16_fits(const IntParams& p, int64_t rows, int64_t cols);

// Interleaves groups [g0, g0 + n) of the codes at src (rows × row_bytes, row-major) into out
// (the whole interleaved codes part, as many bytes); disjoint group ranges may run in parallel.
void int_x16_interleave(const uint8_t* src, int64_t rows, int64_t row_bytes, int64_t g0, int64_t n, uint8_t* out);

// Row `row`'s row_bytes code bytes out of the interleaved codes at w.
void int_x16_gather_row(const uint8_t* w, int64_t row_bytes, int64_t row, uint8_t* out);

}  // namespace lmq
