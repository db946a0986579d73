// The one table of weight formats, in the spirit of ggml's type_traits[]: one row per Format
// with every name the outside world spells it by, its GGUF type id, block geometry, and the
// functions that read and write it. Every per-format choice in lmq (names, GGUF ids, block
// sizes, (de)quantizers, "is it quantized") reads this table instead of switching on Format.
// Layouts: codecs/int_format.h (LMQ_INT) and codecs/ggml_blocks.h (the ggml blocks).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "lmq/codecs/ggml_blocks.h"
#include "lmq/tensor.h"

namespace lmq {

struct FormatTraits {
  Format format;
  std::string_view name;       // lmq's spelling (lmq files, inspect, tables): "q6_k"; "int" for LMQ_INT
  std::string_view ggml_name;  // ggml's type_name (llama.cpp's tools print it): "q6_K"
  std::string_view upper;      // the enum's spelling, in lmq's messages: "Q6_K"
  int gguf_type;               // GGML_TYPE_* id; -1: not storable in GGUF
  int64_t block_size;          // values per block (1 for plain values and for LMQ_INT, whose
                               // scales live outside the rows)
  int64_t sub_block_size;      // values per scale inside a quantized ggml block; 0 otherwise
  size_t block_bytes;          // bytes per block; 0 for LMQ_INT
  bool ggml;                   // a ggml storage type (F32, F16, BF16 or a block format)
  bool quantized;              // codes with scales (ggml blocks, LMQ_INT), not plain values
  // ggml storage types: nb blocks (nb values for the floats) into floats
  void (*dequantize_row)(const uint8_t* src, float* dst, int64_t nb);
  // ggml block formats: llama.cpp's reference quantizer (importance null) or the weighted one
  void (*quantize_row)(const float* src, uint8_t* dst, int64_t nb, const float* importance);
  void (*block_grids)(const uint8_t* block, GgmlGrid* grids);     // ggml block formats
  void (*set_codes)(uint8_t* block, const uint8_t* codes);        // ggml block formats
  bool float_matmul;  // lmq::matmul runs it directly (tile kernels on its rows)
  bool int_matmul;    // the integer kernels may take it (LMQ_INT, every width; see int_matmul.h)
  // Q8_0, Q4_0, IQ4_NL, IQ4_XS: the LMQ_INT layout (sym, g32) that holds exactly the same values,
  // so a loader may repack them for the integer kernels (codecs/ggml_repack.h): its code width
  // (0: none) and scale type, and the function that writes one block's codes and scales there.
  // (All four are also ggml_matmul: the loader repacks them only where that is faster.)
  int int_repack_bits;
  ScaleType int_repack_scale;
  bool (*int_repack_block)(const uint8_t* block, uint8_t* codes, uint8_t* scales);  // false: scale not finite
  // kernels/ggml_matmul reads its blocks in place (int8 activations in blocks of 32), and where
  // a block keeps its f16 scale d and min dmin (byte offsets, -1: none): a NaN/Inf one is
  // refused at load (ggml_nonfinite_blocks, codecs/ggml_repack.h).
  bool ggml_matmul;
  int d_at, dmin_at;
  // Rows stored together (1: row-major, each row its own run of blocks). The X16 layouts
  // interleave 16 (codecs/ggml_interleave.h): in-memory layouts the kernels read, never written
  // to a file.
  // Interleaved, the rows are blocks of `group_of` (block_bytes and block_size are its), and
  // gather_block copies row `row`'s block a out of a tensor of `cols` values per row.
  int64_t row_group = 1;
  Format group_of = Format::F32;
  void (*gather_block)(const uint8_t* w, int64_t cols, int64_t row, int64_t a, uint8_t* block) = nullptr;
};

const FormatTraits& format_traits(Format f);
std::span<const FormatTraits> all_format_traits();  // in Format's order
// The format whose lmq name (format_traits(f).name) is s.
std::optional<Format> format_by_name(std::string_view s);
// The format stored in GGUF under GGML_TYPE id.
std::optional<Format> format_by_gguf_type(uint32_t id);

}  // namespace lmq
