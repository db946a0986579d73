// The X16 layouts Q4_0_X16, Q8_0_X16, Q4_K_X16 and Q6_K_X16: GGUF Q4_0 / Q8_0 / Q4_K / Q6_K
// weights with 16 rows interleaved, in-memory layouts the integer kernels read faster than the
// blocks' own (never stored in a file; the lmq file reader refuses their names).
//
// Why. A decoded token streams every weight once, and Q4_0's blocks are 18 bytes (an f16 d, then
// 16 bytes of nibbles), so in the file's row-major order a kernel that reads 16 rows at a time
// follows 16 streams and gathers each row's d and nibbles from odd offsets. Here the 16 rows'
// block a sits in one 288-byte record (block_q4_0x16): their 16 d side by side, then their nibble
// bytes 4 at a time, so one 64-byte load holds 4 bytes (8 values) of each of the 16 rows: the
// 32-bit lane r of that load is row r, which is the lane vpdpbusd sums into. A tensor of R rows
// (R a multiple of 16) and K values per row (K a multiple of 32, nb = K/32 blocks) is R/16
// groups, group g = rows 16g .. 16g + 15, each nb records in increasing a; 18 bytes per 32 values
// as Q4_0 (the same size). llama.cpp repacks Q4_0 for its CPU kernels in the same spirit
// (block_q4_0x8, 8 rows interleaved 8 bytes at a time); this layout is lmq's own.
//
// Record a of group g (rows 16g + r, r = 0..15), from row r's Q4_0 block a (d, qs[16]):
//   d[r]        = that block's d (f16 bits)
//   qs[c][r][m] = that block's qs[4c + m], c = 0..3, m = 0..3
// so value j (0..31) of row r is the low nibble of qs[(j mod 16) / 4][r][j mod 4] when j < 16,
// the high nibble when j ≥ 16, and x = d·(nibble − 8) exactly as Q4_0. Moving bytes only: the
// values are the file's bit for bit.
//
// Q8_0_X16 is the same with Q8_0's blocks (d, qs[32] int8): a 544-byte record (block_q8_0x16),
// qs[c][r][m] = row r's qs[4c + m] for c = 0..7, so value j of row r is the int8 qs[j / 4][r][j mod 4]
// and x = d·q as Q8_0. Why here too: Q8_0's 34-byte blocks put the 4-row tile kernel's loads
// across cache lines and need a reduction across lanes per 4 blocks; on the 16-row records the
// kernel is loads and vpdpbusd only (measured in docs/results.md, "Q8_0 interleaved").
//
// Q4_K_X16 interleaves Q4_K's super-blocks (d, dmin, scales[12], qs[128]; 256 values) the same
// way: record b of group g (2304 bytes, block_q4_kx16) holds the 16 rows' super-block b as
//   d[r], dmin[r]  = row r's d, dmin (f16 bits)
//   scales[k][r]   = row r's scales[k], k = 0..11 (one 16-byte load: byte k of every row)
//   qs[w][r][m]    = row r's qs[4w + m], w = 0..31, m = 0..3
// so value 64c + l of row r (c = 0..3, l = 0..31) is the low nibble of qs[8c + l / 4][r][l mod 4],
// value 64c + 32 + l its high nibble, the sub-block scales and mins unpacked from scales[·][r]
// as Q4_K's (codecs/ggml_blocks.h). A tensor's K is a multiple of 256, each group nb = K/256
// records in increasing b.
//
// Q6_K_X16 likewise for Q6_K's super-blocks (ql[128], qh[64], scales[16] int8, d): record b
// (3360 bytes, block_q6_kx16) holds
//   d[r]         = row r's d (f16 bits)
//   scales[k][r] = row r's scales[k], k = 0..15
//   ql[w][r][m]  = row r's ql[4w + m], w = 0..31
//   qh[w][r][m]  = row r's qh[4w + m], w = 0..15
// so in half h (values 128h ..), for l = 0..31, values 128h + l, + 32 + l, + 64 + l, + 96 + l of
// row r take the low nibble of ql byte 64h + l, the low nibble of 64h + 32 + l, the high nibble of
// 64h + l, the high nibble of 64h + 32 + l, with bits 0-1, 2-3, 4-5, 6-7 of qh byte 32h + l above
// them (Q6_K's codes, codecs/ggml_blocks.h).
#include <cstdint>
#include <optional>

#include "lmq/tensor.h"

namespace lmq {

namespace ggml {
struct block_q4_0x16 {
  uint16_t d[16];
  uint8_t qs[4][16][4];
};
static_assert(sizeof(block_q4_0x16) == 288);
struct block_q8_0x16 {
  uint16_t d[16];
  int8_t qs[8][16][4];
};
static_assert(sizeof(block_q8_0x16) == 544);
struct block_q4_kx16 {
  uint16_t d[16];
  uint16_t dmin[16];
  uint8_t scales[12][16];
  uint8_t qs[32][16][4];
};
static_assert(sizeof(block_q4_kx16) == 2304);
struct block_q6_kx16 {
  uint16_t d[16];
  int8_t scales[16][16];
  uint8_t ql[32][16][4];
  uint8_t qh[16][16][4];
};
static_assert(sizeof(block_q6_kx16) == 3360);
}  // namespace ggml

// The interleaved layout of t (Q4_0 → Q4_0_X16, Q8_0 → Q8_0_X16, Q4_K → Q4_K_X16, Q6_K →
// Q6_K_X16) if t can be
// interleaved: 2-D, rows a multiple of 16, cols of the format's block; else none.
std::optional<Format> x16_layout_of(const Tensor& t);

// Interleaves groups [g0, g0 + n) of the Q4_0 / Q8_0 / Q4_K / Q6_K tensor at src (rows × cols, row-major blocks,
// format `stored`) into out (the whole interleaved tensor, as many bytes as src); disjoint group
// ranges may run in parallel. Returns how many blocks have a NaN/Inf d or dmin (the caller
// refuses such a tensor, as for the blocks read in place: codecs/ggml_repack.h).
int64_t x16_interleave(Format stored, const uint8_t* src, int64_t rows, int64_t cols, int64_t g0, int64_t n,
                       uint8_t* out);

// Row `row`'s block a (Q4_0's 18 bytes, Q8_0's 34, Q4_K's 144, Q6_K's 210) out of the interleaved
// tensor at w of cols values per row: the format table's gather_block of each X16 layout.
void q4_0x16_block(const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block);
void q8_0x16_block(const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block);
void q4_kx16_block(const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block);
void q6_kx16_block(const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block);

// How many blocks of the nrec records (format x16: an X16 layout) at src have a NaN/Inf d or dmin.
int64_t x16_nonfinite(Format x16, const uint8_t* src, int64_t nrec);

}  // namespace lmq
