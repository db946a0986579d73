// A weight is the same type everywhere in lmq: a name, a shape, a format and the bytes
// (usually pointing into a memory-mapped file). Shape is in the PyTorch order: a linear
// layer's weight is [out_features, in_features], so a "row" is one output channel and its
// bytes are contiguous (or, for lmq's integer formats, its codes are; see codecs/int_format.h).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmq {

enum class Format : uint8_t {
  F32,
  F16,
  BF16,
  I32,      // int32 values (e.g. W8A8 biases)
  LMQ_INT,  // lmq's integer scheme: bits/granularity/sym in Tensor::q; layout in codecs/int_format.h
  // llama.cpp (ggml) block formats, rows made of whole blocks; layouts in codecs/ggml_blocks.h
  Q8_0,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q2_K,
  Q3_K,
  Q4_K,
  Q5_K,
  Q6_K,
  // llama.cpp's i-quants: non-linear 4-bit and lattice codebooks; layouts in codecs/iquant_blocks.h
  IQ4_NL,
  IQ4_XS,
  IQ2_XXS,
  IQ2_XS,
  IQ2_S,
  IQ3_XXS,
  IQ3_S,
  IQ1_S,
  IQ1_M,
  // lmq's in-memory layouts of a ggml format, never stored: Q4_0 / Q8_0 / Q4_K / Q6_K with 16
  // rows interleaved for the integer kernels (codecs/ggml_interleave.h)
  Q4_0_X16,
  Q8_0_X16,
  Q4_K_X16,
  Q6_K_X16,
  // lmq's in-memory layout of a 4- or 8-bit LMQ_INT tensor with 16 rows' codes interleaved for
  // the integer kernels (codecs/int_interleave.h), never stored; Tensor::q as LMQ_INT's
  LMQ_INT_X16,
};

// Where a scale is stored for lmq's integer formats.
enum class ScaleType : uint8_t { F16, BF16, F32 };

// Parameters of an LMQ_INT tensor. group: 0 = one scale for the whole tensor,
// -1 = one per output channel (row), G > 0 = one per G consecutive inputs of a row.
struct IntParams {
  uint8_t bits = 8;  // 2..8
  bool asym = false;
  int32_t group = -1;
  ScaleType scale_type = ScaleType::F16;
  bool operator==(const IntParams&) const = default;
};

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  Format format = Format::F32;
  IntParams q{};  // meaningful for LMQ_INT and LMQ_INT_X16 only
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
  // Act-order checkpoints (model/hf_quant.h): LMQ_INT codes stored over permuted inputs, stored
  // input j being original input in_perm[j] (cols() entries, kept alive by the tensor's owner).
  // dequantize_rows gives the original order; kernels that read the codes directly take the
  // permuted activation (LinearRouter applies it). nullptr: inputs in order.
  const int32_t* in_perm = nullptr;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  // All dims but the last (not numel / cols: an empty tensor such as [4, 0] has 4 rows of 0).
  int64_t rows() const {
    int64_t n = 1;
    for (size_t i = 0; i + 1 < shape.size(); ++i) n *= shape[i];
    return n;
  }
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }

  // A rows × cols tensor of format f over bytes its caller keeps alive (benchmarks, tests).
  static Tensor view(std::string name, Format f, int64_t rows, int64_t cols, const uint8_t* data, uint64_t nbytes) {
    Tensor t;
    t.name = std::move(name);
    t.shape = {rows, cols};
    t.format = f;
    t.data = data;
    t.nbytes = nbytes;
    return t;
  }
};

std::string_view format_name(Format f);
// "bf16", "q4_k", or for LMQ_INT the scheme, e.g. "int4:g128:asym".
std::string tensor_format_label(const Tensor& t);
// Bytes one row of `cols` values takes for a block/float format (not LMQ_INT, whose
// scales live outside the rows); throws if cols is not a whole number of blocks.
uint64_t format_row_bytes(Format f, int64_t cols);
// Elements per block (1 for floats).
int64_t format_block_size(Format f);

// Dequantizes rows [row0, row0+n) of a 2-D (or 1-D, as one row) tensor into out[n * cols],
// in the original input order (un-permuting in_perm). Works for every format; this is the one
// place the formats meet the forward pass.
void dequantize_rows(const Tensor& t, int64_t row0, int64_t n, float* out);

}  // namespace lmq
