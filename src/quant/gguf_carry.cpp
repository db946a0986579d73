// The GGUF hand-off without a second rounding (quant/gguf_export.h: carry_exact_blocks).
#include <cstring>

#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/int_format.h"
#include "lmq/half.h"
#include "lmq/quant/gguf_export.h"

namespace lmq {

namespace {

// Whether ggml type f can hold t's codes as they are (Q4_1 still checks its minimums per block).
bool carriable(const Tensor& t, Format f) {
  if (t.format != Format::LMQ_INT || t.in_perm || t.shape.size() != 2 || t.q.group != 32 ||
      t.q.scale_type != ScaleType::F16 || t.cols() % 32 != 0)
    return false;
  if (f == Format::Q4_0) return t.q.bits == 4 && !t.q.asym;
  if (f == Format::Q8_0) return t.q.bits == 8 && !t.q.asym;
  if (f == Format::Q4_1) return t.q.bits == 4;
  return false;
}

void put_f16(uint8_t* dst, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(dst, &h, 2);
}

// One row's blocks from its codes u[K] and per-group s, z; false when a Q4_1 minimum −s·z is
// not exact in fp16.
bool encode_row(Format f, const uint8_t* u, const float* s, const int32_t* z, int64_t K, uint8_t* dst) {
  const uint64_t bb = ggml_row_bytes(f, 32);
  for (int64_t b = 0; b < K / 32; ++b, u += 32, dst += bb) {
    put_f16(dst, s[b]);  // s is an fp16 value already: exact
    if (f == Format::Q8_0) {
      for (int j = 0; j < 32; ++j) dst[2 + j] = uint8_t(int8_t(int(u[j]) - 128));
      continue;
    }
    uint8_t* qs = dst + 2;
    if (f == Format::Q4_1) {
      const float m = -s[b] * float(z[b]);  // exact in float: an fp16 times a 4-bit integer
      if (f16_to_f32(f32_to_f16(m)) != m) return false;
      put_f16(dst + 2, m);
      qs = dst + 4;
    }
    for (int j = 0; j < 16; ++j) qs[j] = uint8_t(u[j] | (u[j + 16] << 4));
  }
  return true;
}

// The ggml bytes of t in type f, or empty when a block does not fit.
std::vector<uint8_t> carry_tensor(const Tensor& t, Format f) {
  const int64_t rows = t.rows(), K = t.cols();
  const uint64_t rb = ggml_row_bytes(f, K);
  std::vector<uint8_t> out(size_t(rb * uint64_t(rows)));
  const quant::IntView v = quant::int_view(t.q, t.data, rows, K);
  std::vector<uint8_t> u(static_cast<size_t>(K));
  std::vector<float> s(static_cast<size_t>(K / 32));
  std::vector<int32_t> z(s.size());
  for (int64_t r = 0; r < rows; ++r) {
    quant::int_row_params(v, r, s.data(), z.data());
    quant::unpack_bits(v.codes + uint64_t(r) * v.layout.row_code_bytes, K, t.q.bits, u.data());
    if (!encode_row(f, u.data(), s.data(), z.data(), K, out.data() + uint64_t(r) * rb)) return {};
  }
  return out;
}

}  // namespace

void carry_exact_blocks(const Model& src, QuantPlan& plan) {
  if (!plan.gguf || plan.weighted) return;
  for (const Tensor& t : src.tensors()) {
    const auto it = plan.tensors.find(t.name);
    if (it == plan.tensors.end() || !it->second.target) continue;
    TensorPlan& tp = it->second;
    const bool decided = !tp.bytes.empty() || !tp.values.empty() || !tp.col_scale.empty() || !tp.row_scale.empty();
    if (decided || !carriable(t, tp.target->format)) continue;
    std::vector<uint8_t> bytes = carry_tensor(t, tp.target->format);
    if (bytes.empty()) continue;
    tp.bytes = std::move(bytes);
    tp.carried = true;
  }
}

}  // namespace lmq
