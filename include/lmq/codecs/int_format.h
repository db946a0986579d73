// The LMQ_INT tensor layout and the whole-tensor quantizer.
//
// A 2-D weight [rows = output channels, cols = input features] quantized with IntParams
// {bits b, asym, group, scale_type} is stored as these bytes, in order (offsets from the
// start of the tensor's data; all multi-byte values little-endian):
//
//   1. codes, at offset 0: rows × row_code_bytes, row_code_bytes = ceil(cols·b / 8).
//      Row r starts at r·row_code_bytes (byte-aligned) and is a packed bitstream of its cols
//      unsigned codes u in [0, 2^b - 1]: code c occupies stream bits [c·b, (c+1)·b), stream
//      bit 8k+j is bit j (LSB = 0) of byte k. Unused high bits of a row's last byte are 0.
//   2. padding with zero bytes up to scales_offset = the next multiple of 4 (so f32 scales
//      are 4-byte aligned when the tensor data is);
//      scales, at scales_offset: n_scales values of scale_type (f16/bf16: 2 bytes, f32: 4):
//        group == 0  (per tensor):  n_scales = 1
//        group == -1 (per channel): n_scales = rows, scale r for row r
//        group == G > 0:            n_scales = rows × ceil(cols / G), row-major: scale
//                                   r·groups_per_row + g covers cols [g·G, min((g+1)·G, cols))
//                                   — when G does not divide cols the last group of each row
//                                   is short (cols mod G inputs), never shared between rows.
//   3. asym only, at zeros_offset = scales_offset + scales_bytes (no padding):
//      zero points, n_scales unsigned values packed at b bits as one bitstream (same bit order
//      as the codes), ceil(n_scales·b / 8) bytes. Symmetric tensors store no zero points;
//      their zero point is 2^(b-1).
//   The tensor ends there (total = zeros_offset + zeros_bytes); there is no trailing padding.
//
// Value (r, c) dequantizes to x' = s·(u - z) with s, z those of its scale index (see
// quant/scheme.h for how s and z are chosen; quant/int_quantize.h quantizes whole tensors).
#pragma once
#include <cstdint>

#include "lmq/codecs/int_bits.h"
#include "lmq/tensor.h"

namespace lmq::quant {

struct IntLayout {
  uint64_t row_code_bytes = 0;
  uint64_t codes_bytes = 0;
  uint64_t scales_offset = 0;
  uint64_t scales_bytes = 0;
  uint64_t zeros_offset = 0;  // == total for symmetric tensors
  uint64_t zeros_bytes = 0;
  uint64_t total = 0;
  int64_t groups_per_row = 0;  // 1 for tensor/channel granularity
  int64_t n_scales = 0;
};

// Throws lmq::Error for bits outside 2..8, group < -1, or negative/overflowing sizes.
IntLayout int_layout(const IntParams& p, int64_t rows, int64_t cols);
uint64_t int_tensor_bytes(const IntParams& p, int64_t rows, int64_t cols);
int64_t int_groups_per_row(const IntParams& p, int64_t cols);
int64_t int_scale_count(const IntParams& p, int64_t rows, int64_t cols);
// Scale index of value (r, c).
int64_t int_scale_index(const IntParams& p, int64_t groups_per_row, int64_t r, int64_t c);

// Pointers into a tensor's bytes (which must be int_tensor_bytes long).
struct IntView {
  IntParams p;
  int64_t rows = 0, cols = 0;
  IntLayout layout;
  const uint8_t* codes = nullptr;
  const uint8_t* scales = nullptr;
  const uint8_t* zeros = nullptr;  // nullptr for symmetric
};
IntView int_view(const IntParams& p, const uint8_t* data, int64_t rows, int64_t cols);
float int_scale_at(const IntView& v, int64_t idx);
int32_t int_zero_at(const IntView& v, int64_t idx);  // 2^(b-1) for symmetric
// Row r's groups_per_row scales and zero points (one each for tensor/channel granularity):
// int_scale_at / int_zero_at of its groups in order, read in one pass.
void int_row_params(const IntView& v, int64_t r, float* scales, int32_t* zeros);
// The same for rows [r0, r0 + nr): row r's at scales/zeros + (r − r0)·groups_per_row.
void int_rows_params(const IntView& v, int64_t r0, int64_t nr, float* scales, int32_t* zeros);

// Row r (its row_code_bytes of codes at row_codes, wherever they are kept: LMQ_INT_X16 gathers
// them, codecs/int_interleave.h) dequantized with v's scales and zero points into out[cols].
void int_dequantize_row(const IntView& v, int64_t r, const uint8_t* row_codes, float* out);
// Dequantizes rows [row0, row0 + n) into out[n·cols]. Throws if the rows are out of range.
void int_dequantize_rows(const IntParams& p, const uint8_t* data, int64_t rows, int64_t cols,
                         int64_t row0, int64_t n, float* out);

// Writes a tensor from its codes (rows × cols unsigned codes, row-major, already in range) and
// the GroupQ of every scale index (int_scale_count of them) into out[int_tensor_bytes], in the
// layout above. For quantizers that choose codes themselves (GPTQ).
void store_int_tensor(const IntParams& p, int64_t rows, int64_t cols, const uint8_t* codes, const GroupQ* qs,
                      uint8_t* out);
// The scales and zero points part of the layout: the GroupQ of every scale index, stored.
void store_int_params(const IntParams& p, const IntLayout& l, const GroupQ* qs, uint8_t* out);

}  // namespace lmq::quant
