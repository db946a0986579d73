// The one table of weight formats (codecs/format_traits.h), and tensor.h's format functions,
// which read it.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <vector>

#include "ggml_rows.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_interleave.h"
#include "lmq/codecs/int_format.h"
#include "lmq/codecs/int_interleave.h"
#include "lmq/codecs/iquant_blocks.h"
#include "lmq/error.h"
#include "lmq/tensor.h"

namespace lmq {

namespace {
using namespace ggml;

// One row per Format, in the enum's order (checked below).
//   format  name  ggml_name  upper  gguf  block  sub  bytes  ggml  quantized  dequantize  quantize  grids  codes
//   float_matmul  int_matmul  int_repack_bits  int_repack_scale  int_repack_block  ggml_matmul  d_at  dmin_at
constexpr FormatTraits kTraits[] = {
    {Format::F32, "f32", "f32", "F32", 0, 1, 0, 4, true, false, dq_f32, nullptr, nullptr, nullptr, true, false, 0,
     ScaleType::F16, nullptr, false, -1, -1},
    {Format::F16, "f16", "f16", "F16", 1, 1, 0, 2, true, false, dq_f16, nullptr, nullptr, nullptr, true, false, 0,
     ScaleType::F16, nullptr, false, -1, -1},
    {Format::BF16, "bf16", "bf16", "BF16", 30, 1, 0, 2, true, false, dq_bf16, nullptr, nullptr, nullptr, true,
     false, 0, ScaleType::F16, nullptr, false, -1, -1},
    {Format::I32, "i32", "i32", "I32", -1, 1, 0, 4, false, false, nullptr, nullptr, nullptr, nullptr, false, false,
     0, ScaleType::F16, nullptr, false, -1, -1},
    {Format::LMQ_INT, "int", "int", "LMQ_INT", -1, 1, 0, 0, false, true, nullptr, nullptr, nullptr, nullptr, true,
     true, 0, ScaleType::F16, nullptr, false, -1, -1},
    {Format::Q8_0, "q8_0", "q8_0", "Q8_0", 8, QK8_0, 32, sizeof(block_q8_0), true, true, dq_q8_0, q_q8_0,
     grids_q8_0, codes_q8_0, true, false, 8, ScaleType::F16, rp_q8_0, true, int(offsetof(block_q8_0, d)), -1},
    {Format::Q4_0, "q4_0", "q4_0", "Q4_0", 2, QK4_0, 32, sizeof(block_q4_0), true, true, dq_q4_0, q_q4_0,
     grids_q4_0, codes_q4_0, true, false, 4, ScaleType::F16, rp_q4_0, true, int(offsetof(block_q4_0, d)), -1},
    {Format::Q4_1, "q4_1", "q4_1", "Q4_1", 3, QK4_1, 32, sizeof(block_q4_1), true, true, dq_q4_1, q_q4_1,
     grids_q4_1, codes_q4_1, true, false, 0, ScaleType::F16, nullptr, false, -1, -1},
    {Format::Q5_0, "q5_0", "q5_0", "Q5_0", 6, QK5_0, 32, sizeof(block_q5_0), true, true, dq_q5_0, q_q5_0,
     grids_q5_0, codes_q5_0, true, false, 0, ScaleType::F16, nullptr, false, -1, -1},
    {Format::Q5_1, "q5_1", "q5_1", "Q5_1", 7, QK5_1, 32, sizeof(block_q5_1), true, true, dq_q5_1, q_q5_1,
     grids_q5_1, codes_q5_1, true, false, 0, ScaleType::F16, nullptr, false, -1, -1},
    {Format::Q2_K, "q2_k", "q2_K", "Q2_K", 10, QK_K, 16, sizeof(block_q2_K), true, true, dq_q2_K, q_q2_K,
     grids_q2_K, codes_q2_K, true, false, 0, ScaleType::F16, nullptr, true, int(offsetof(block_q2_K, d)), int(offsetof(block_q2_K, dmin))},
    {Format::Q3_K, "q3_k", "q3_K", "Q3_K", 11, QK_K, 16, sizeof(block_q3_K), true, true, dq_q3_K, q_q3_K,
     grids_q3_K, codes_q3_K, true, false, 0, ScaleType::F16, nullptr, true, int(offsetof(block_q3_K, d)), -1},
    {Format::Q4_K, "q4_k", "q4_K", "Q4_K", 12, QK_K, 32, sizeof(block_q4_K), true, true, dq_q4_K, q_q4_K,
     grids_q4_K, codes_q4_K, true, false, 0, ScaleType::F16, nullptr, true, int(offsetof(block_q4_K, d)), int(offsetof(block_q4_K, dmin))},
    {Format::Q5_K, "q5_k", "q5_K", "Q5_K", 13, QK_K, 32, sizeof(block_q5_K), true, true, dq_q5_K, q_q5_K,
     grids_q5_K, codes_q5_K, true, false, 0, ScaleType::F16, nullptr, true, int(offsetof(block_q5_K, d)), int(offsetof(block_q5_K, dmin))},
    {Format::Q6_K, "q6_k", "q6_K", "Q6_K", 14, QK_K, 16, sizeof(block_q6_K), true, true, dq_q6_K, q_q6_K,
     grids_q6_K, codes_q6_K, true, false, 0, ScaleType::F16, nullptr, true, int(offsetof(block_q6_K, d)), -1},
    // the i-quants: IQ4_NL / IQ4_XS have a grid of 16 levels per 32 values; the lattice ones
    // are codebooks with no grid per sub-block (block_grids / set_codes null; GPTQ chooses their
    // codes through codecs/iquant_lattice.h); lmq writes IQ4_NL, IQ4_XS and (lmq's own lattice
    // search) IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS, IQ2_XXS, IQ1_S, IQ1_M; reads all nine
    {Format::IQ4_NL, "iq4_nl", "iq4_nl", "IQ4_NL", 20, QK4_NL, 32, sizeof(block_iq4_nl), true, true, dq_iq4_nl,
     q_iq4_nl, grids_iq4_nl, codes_iq4_nl, true, false, 8, ScaleType::F16, rp_iq4_nl, true,
     int(offsetof(block_iq4_nl, d)), -1},
    {Format::IQ4_XS, "iq4_xs", "iq4_xs", "IQ4_XS", 23, QK_K, 32, sizeof(block_iq4_xs), true, true, dq_iq4_xs,
     q_iq4_xs, grids_iq4_xs, codes_iq4_xs, true, false, 8, ScaleType::F32, rp_iq4_xs, true,
     int(offsetof(block_iq4_xs, d)), -1},
    {Format::IQ2_XXS, "iq2_xxs", "iq2_xxs", "IQ2_XXS", 16, QK_K, 32, sizeof(block_iq2_xxs), true, true,
     dq_iq2_xxs, q_iq2_xxs, nullptr, nullptr, true, false, 0, ScaleType::F16, nullptr, true, 0, -1},
    {Format::IQ2_XS, "iq2_xs", "iq2_xs", "IQ2_XS", 17, QK_K, 16, sizeof(block_iq2_xs), true, true, dq_iq2_xs,
     q_iq2_xs, nullptr, nullptr, true, false, 0, ScaleType::F16, nullptr, true, 0, -1},
    {Format::IQ2_S, "iq2_s", "iq2_s", "IQ2_S", 22, QK_K, 16, sizeof(block_iq2_s), true, true, dq_iq2_s, q_iq2_s,
     nullptr, nullptr, true, false, 0, ScaleType::F16, nullptr, true, 0, -1},
    {Format::IQ3_XXS, "iq3_xxs", "iq3_xxs", "IQ3_XXS", 18, QK_K, 32, sizeof(block_iq3_xxs), true, true,
     dq_iq3_xxs, q_iq3_xxs, nullptr, nullptr, true, false, 0, ScaleType::F16, nullptr, true, 0, -1},
    {Format::IQ3_S, "iq3_s", "iq3_s", "IQ3_S", 21, QK_K, 32, sizeof(block_iq3_s), true, true, dq_iq3_s, q_iq3_s,
     nullptr, nullptr, true, false, 0, ScaleType::F16, nullptr, true, 0, -1},
    // IQ1_M keeps its f16 d in the top nibbles of its scale words: no d_at (its blocks are checked
    // by dequantizing them, ggml_nonfinite_blocks)
    {Format::IQ1_S, "iq1_s", "iq1_s", "IQ1_S", 19, QK_K, 32, sizeof(block_iq1_s), true, true, dq_iq1_s, q_iq1_s,
     nullptr, nullptr, true, false, 0, ScaleType::F16, nullptr, true, 0, -1},
    {Format::IQ1_M, "iq1_m", "iq1_m", "IQ1_M", 29, QK_K, 16, sizeof(block_iq1_m), true, true, dq_iq1_m, q_iq1_m,
     nullptr, nullptr, true, false, 0, ScaleType::F16, nullptr, true, -1, -1},
    // Q4_0's, Q8_0's, Q4_K's and Q6_K's blocks, 16 rows interleaved (codecs/ggml_interleave.h): the integer
    // kernels read them, dequantize_rows (so lmq::matmul) gathers each row's blocks; the 16 d of
    // each record are checked by ggml_nonfinite_blocks
    {Format::Q4_0_X16, "q4_0x16", "q4_0x16", "Q4_0_X16", -1, QK4_0, 32, sizeof(block_q4_0), false, true, nullptr,
     nullptr, nullptr, nullptr, true, false, 0, ScaleType::F16, nullptr, true, -1, -1, 16, Format::Q4_0,
     q4_0x16_block},
    {Format::Q8_0_X16, "q8_0x16", "q8_0x16", "Q8_0_X16", -1, QK8_0, 32, sizeof(block_q8_0), false, true, nullptr,
     nullptr, nullptr, nullptr, true, false, 0, ScaleType::F16, nullptr, true, -1, -1, 16, Format::Q8_0,
     q8_0x16_block},
    {Format::Q4_K_X16, "q4_kx16", "q4_Kx16", "Q4_K_X16", -1, QK_K, 32, sizeof(block_q4_K), false, true, nullptr,
     nullptr, nullptr, nullptr, true, false, 0, ScaleType::F16, nullptr, true, -1, -1, 16, Format::Q4_K,
     q4_kx16_block},
    {Format::Q6_K_X16, "q6_kx16", "q6_Kx16", "Q6_K_X16", -1, QK_K, 16, sizeof(block_q6_K), false, true, nullptr,
     nullptr, nullptr, nullptr, true, false, 0, ScaleType::F16, nullptr, true, -1, -1, 16, Format::Q6_K,
     q6_kx16_block},
    // LMQ_INT's codes, 16 rows interleaved (codecs/int_interleave.h): the integer kernels read
    // them, dequantize_rows gathers each row's codes; scales and zero points as LMQ_INT's
    {Format::LMQ_INT_X16, "intx16", "intx16", "LMQ_INT_X16", -1, 1, 0, 0, false, true, nullptr, nullptr, nullptr,
     nullptr, true, true, 0, ScaleType::F16, nullptr, false, -1, -1, 16, Format::LMQ_INT, nullptr},
};

constexpr bool in_enum_order() {
  for (size_t i = 0; i < std::size(kTraits); ++i)
    if (size_t(kTraits[i].format) != i) return false;
  return std::size(kTraits) == size_t(Format::LMQ_INT_X16) + 1;
}
static_assert(in_enum_order(), "kTraits: one row per Format, in the enum's order");

}  // namespace

const FormatTraits& format_traits(Format f) {
  LMQ_CHECK(size_t(f) < std::size(kTraits), "Format {} outside the traits table", int(f));
  return kTraits[size_t(f)];
}

std::span<const FormatTraits> all_format_traits() { return kTraits; }

std::optional<Format> format_by_name(std::string_view s) {
  for (const FormatTraits& t : kTraits)
    if (t.name == s) return t.format;
  return std::nullopt;
}

std::optional<Format> format_by_gguf_type(uint32_t id) {
  for (const FormatTraits& t : kTraits)
    if (t.gguf_type >= 0 && uint32_t(t.gguf_type) == id) return t.format;
  return std::nullopt;
}

std::string_view format_name(Format f) { return format_traits(f).name; }

std::string tensor_format_label(const Tensor& t) {
  if (t.format != Format::LMQ_INT && t.format != Format::LMQ_INT_X16) return std::string(format_name(t.format));
  const std::string g = t.q.group == 0 ? "tensor" : t.q.group < 0 ? "channel" : fmt::format("g{}", t.q.group);
  return fmt::format("int{}:{}:{}{}", int(t.q.bits), g, t.q.asym ? "asym" : "sym",
                     t.format == Format::LMQ_INT_X16 ? " (x16)" : "");
}

int64_t format_block_size(Format f) { return format_traits(f).block_size; }

uint64_t format_row_bytes(Format f, int64_t cols) {
  const FormatTraits& t = format_traits(f);
  if (f == Format::LMQ_INT || f == Format::LMQ_INT_X16)
    fail("format {}: rows have no fixed byte size (scales are stored apart)", t.name);
  if (t.block_size == 1) return uint64_t(cols) * t.block_bytes;
  if (t.row_group > 1) {  // interleaved rows: the bytes a row takes, on average
    if (cols <= 0 || cols % t.block_size) fail("format {}: rows of {} values are not whole blocks", t.upper, cols);
    return uint64_t(cols / t.block_size) * t.block_bytes;
  }
  return ggml_row_bytes(f, cols);
}

namespace {
// Stored input j of each row goes back to original input perm[j].
void unpermute_inputs(const int32_t* perm, int64_t n, int64_t K, float* out) {
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t r = 0; r < n; ++r) {
    float* o = out + r * K;
    std::copy(o, o + K, row.begin());
    for (int64_t j = 0; j < K; ++j) o[perm[j]] = row[size_t(j)];
  }
}
}  // namespace

void dequantize_rows(const Tensor& t, int64_t row0, int64_t n, float* out) {
  const int64_t K = t.cols();
  const size_t count = size_t(n * K);
  if (count == 0) return;  // an empty tensor ([4, 0]): out may be the null data() of an empty buffer
  const FormatTraits& tr = format_traits(t.format);
  if (t.format == Format::LMQ_INT) {
    quant::int_dequantize_rows(t.q, t.data, t.rows(), K, row0, n, out);
    if (t.in_perm) unpermute_inputs(t.in_perm, n, K, out);
    return;
  }
  if (t.format == Format::LMQ_INT_X16) {  // each row's codes gathered, then as LMQ_INT
    const quant::IntView v = quant::int_view(t.q, t.data, t.rows(), K);
    if (row0 < 0 || n < 0 || row0 + n > t.rows()) fail("tensor '{}': rows [{}, {}) out of range", t.name, row0, row0 + n);
    std::vector<uint8_t> codes(v.layout.row_code_bytes);
    for (int64_t r = 0; r < n; ++r) {
      int_x16_gather_row(v.codes, int64_t(v.layout.row_code_bytes), row0 + r, codes.data());
      quant::int_dequantize_row(v, row0 + r, codes.data(), out + r * K);
    }
    return;
  }
  if (tr.row_group > 1) {  // interleaved rows: each row's blocks gathered from its group's records
    std::vector<uint8_t> blk(tr.block_bytes);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t a = 0; a < K / tr.block_size; ++a) {
        tr.gather_block(t.data, K, row0 + r, a, blk.data());
        ggml_dequantize_row(tr.group_of, blk.data(), out + r * K + a * tr.block_size, tr.block_size);
      }
    return;
  }
  if (!tr.dequantize_row) fail("tensor '{}': int32 values are not weights", t.name);
  // 16-bit values may sit at any byte offset of a mapped file: the row functions load with
  // memcpy, never through a uint16_t* (misaligned).
  if (tr.block_size == 1) return tr.dequantize_row(t.data + uint64_t(row0 * K) * tr.block_bytes, out, int64_t(count));
  const uint64_t rb = ggml_row_bytes(t.format, K);
  for (int64_t r = 0; r < n; ++r) ggml_dequantize_row(t.format, t.data + uint64_t(row0 + r) * rb, out + r * K, K);
}

}  // namespace lmq
