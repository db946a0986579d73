// The one table of weight formats: names, block geometry, and row dequantization, dispatching
// to each format's own module.
#include <cstring>

#include "lmq/error.h"
#include "lmq/half.h"
#include "lmq/formats/ggml_blocks.h"
#include "lmq/quant/int_format.h"
#include "lmq/tensor.h"

namespace lmq {

namespace {
inline uint16_t load_u16(const uint8_t* p) {  // one (unaligned) load
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
}  // namespace

std::string_view format_name(Format f) {
  switch (f) {
    case Format::F32: return "f32";
    case Format::F16: return "f16";
    case Format::BF16: return "bf16";
    case Format::I32: return "i32";
    case Format::LMQ_INT: return "int";
    case Format::Q8_0: return "q8_0";
    case Format::Q4_0: return "q4_0";
    case Format::Q4_1: return "q4_1";
    case Format::Q5_0: return "q5_0";
    case Format::Q5_1: return "q5_1";
    case Format::Q2_K: return "q2_k";
    case Format::Q3_K: return "q3_k";
    case Format::Q4_K: return "q4_k";
    case Format::Q5_K: return "q5_k";
    case Format::Q6_K: return "q6_k";
  }
  return "?";
}

std::string tensor_format_label(const Tensor& t) {
  if (t.format != Format::LMQ_INT) return std::string(format_name(t.format));
  const std::string g = t.q.group == 0 ? "tensor" : t.q.group < 0 ? "channel" : fmt::format("g{}", t.q.group);
  return fmt::format("int{}:{}:{}", t.q.bits, g, t.q.asym ? "asym" : "sym");
}

int64_t format_block_size(Format f) {
  switch (f) {
    case Format::F32: case Format::F16: case Format::BF16: case Format::I32: case Format::LMQ_INT: return 1;
    default: return ggml_block_size(f);
  }
}

uint64_t format_row_bytes(Format f, int64_t cols) {
  switch (f) {
    case Format::F32: case Format::I32: return uint64_t(cols) * 4;
    case Format::F16: case Format::BF16: return uint64_t(cols) * 2;
    case Format::LMQ_INT: fail("format int: rows have no fixed byte size (scales are stored apart)");
    default: return ggml_row_bytes(f, cols);
  }
}

void dequantize_rows(const Tensor& t, int64_t row0, int64_t n, float* out) {
  const int64_t K = t.cols();
  const size_t count = size_t(n * K);
  if (count == 0) return;  // an empty tensor ([4, 0]): out may be the null data() of an empty buffer
  switch (t.format) {
    case Format::F32:
      std::memcpy(out, t.data + uint64_t(row0 * K) * 4, count * 4);
      return;
    // 16-bit values may sit at any byte offset of a mapped file: memcpy loads, not uint16_t* (misaligned).
    case Format::BF16: {
      const uint8_t* src = t.data + uint64_t(row0 * K) * 2;
      for (size_t i = 0; i < count; ++i) out[i] = bf16_to_f32(load_u16(src + 2 * i));
      return;
    }
    case Format::F16: {
      const uint8_t* src = t.data + uint64_t(row0 * K) * 2;
      for (size_t i = 0; i < count; ++i) out[i] = f16_to_f32(load_u16(src + 2 * i));
      return;
    }
    case Format::LMQ_INT:
      quant::int_dequantize_rows(t.q, t.data, t.rows(), K, row0, n, out);
      return;
    case Format::I32: fail("tensor '{}': int32 values are not weights", t.name);
    default: {
      const uint64_t rb = ggml_row_bytes(t.format, K);
      for (int64_t r = 0; r < n; ++r) ggml_dequantize_row(t.format, t.data + uint64_t(row0 + r) * rb, out + r * K, K);
      return;
    }
  }
}

}  // namespace lmq
