// LMQ_INT layout and whole-tensor quantizer; the layout is documented in
// include/lmq/codecs/int_format.h.
#include "lmq/codecs/int_format.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <vector>

#include "lmq/error.h"
#include "lmq/half.h"

namespace lmq::quant {

namespace {

uint64_t scale_size(ScaleType t) { return t == ScaleType::F32 ? 4 : 2; }

}  // namespace

int64_t int_groups_per_row(const IntParams& p, int64_t cols) {
  if (p.group <= 0) return 1;
  return (cols + p.group - 1) / p.group;
}

int64_t int_scale_count(const IntParams& p, int64_t rows, int64_t cols) {
  if (p.group == 0) return 1;
  if (p.group < 0) return rows;
  return int64_t(checked_mul(uint64_t(rows), uint64_t(int_groups_per_row(p, cols)), "LMQ_INT scales"));
}

IntLayout int_layout(const IntParams& p, int64_t rows, int64_t cols) {
  if (p.bits < 2 || p.bits > 8) fail("LMQ_INT: bits must be 2..8, got {}", int(p.bits));
  if (p.group < -1) fail("LMQ_INT: group must be -1, 0 or positive, got {}", p.group);
  if (rows < 0 || cols < 0) fail("LMQ_INT: negative shape [{}, {}]", rows, cols);
  IntLayout l;
  l.row_code_bytes = bytes_at_bits(uint64_t(cols), p.bits);
  l.codes_bytes = checked_mul(uint64_t(rows), l.row_code_bytes, "LMQ_INT codes");
  l.scales_offset = checked_add(l.codes_bytes, 3, "LMQ_INT codes") / 4 * 4;
  l.groups_per_row = int_groups_per_row(p, cols);
  l.n_scales = int_scale_count(p, rows, cols);
  l.scales_bytes = checked_mul(uint64_t(l.n_scales), scale_size(p.scale_type), "LMQ_INT scales");
  l.zeros_offset = checked_add(l.scales_offset, l.scales_bytes, "LMQ_INT scales");
  l.zeros_bytes = p.asym ? bytes_at_bits(uint64_t(l.n_scales), p.bits) : 0;
  l.total = checked_add(l.zeros_offset, l.zeros_bytes, "LMQ_INT zeros");
  return l;
}

uint64_t int_tensor_bytes(const IntParams& p, int64_t rows, int64_t cols) {
  return int_layout(p, rows, cols).total;
}

int64_t int_scale_index(const IntParams& p, int64_t groups_per_row, int64_t r, int64_t c) {
  if (p.group == 0) return 0;
  if (p.group < 0) return r;
  return r * groups_per_row + c / p.group;
}

IntView int_view(const IntParams& p, const uint8_t* data, int64_t rows, int64_t cols) {
  IntView v;
  v.p = p;
  v.rows = rows;
  v.cols = cols;
  v.layout = int_layout(p, rows, cols);
  v.codes = data;
  v.scales = data + v.layout.scales_offset;
  v.zeros = p.asym ? data + v.layout.zeros_offset : nullptr;
  return v;
}

float int_scale_at(const IntView& v, int64_t idx) {
  const uint8_t* b = v.scales + uint64_t(idx) * scale_size(v.p.scale_type);
  switch (v.p.scale_type) {
    case ScaleType::F32: return bits_to_f32(uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24);
    case ScaleType::F16: return f16_to_f32(uint16_t(b[0] | b[1] << 8));
    case ScaleType::BF16: return bf16_to_f32(uint16_t(b[0] | b[1] << 8));
  }
  LMQ_UNREACHABLE("unknown scale type");
}

int32_t int_zero_at(const IntView& v, int64_t idx) {
  return v.zeros ? packed_at(v.zeros, idx, v.p.bits) : sym_zero(v.p.bits);
}

namespace {

// n little-endian f16 values at b as floats: 8 at a time with F16C where the CPU has it (the
// weight-only matmul reads every row's scales per call), else one by one; the same values
// either way (F16C's conversion is exact, as f16_to_f32 is).
void f16_row_scalar(const uint8_t* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(uint16_t(b[2 * i] | b[2 * i + 1] << 8));
}

__attribute__((target("avx,f16c"))) void f16_row_f16c(const uint8_t* b, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2 * i))));
  f16_row_scalar(b + 2 * i, n - i, out + i);
}

void f16_row_to_f32(const uint8_t* b, int64_t n, float* out) {
  // Every AVX2 CPU has F16C (clang 14's __builtin_cpu_supports does not know "f16c").
  static const bool f16c = __builtin_cpu_supports("avx2");
  (f16c ? f16_row_f16c : f16_row_scalar)(b, n, out);
}

// The scales and zero points of `count` consecutive scale indices from idx0.
void params_run(const IntView& v, int64_t idx0, int64_t count, float* scales, int32_t* zeros) {
  const uint8_t* b = v.scales + uint64_t(idx0) * scale_size(v.p.scale_type);
  switch (v.p.scale_type) {  // the type decided once per run, not per scale
    case ScaleType::F32:
      for (int64_t i = 0; i < count; ++i, b += 4)
        scales[i] = bits_to_f32(uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24);
      break;
    case ScaleType::F16: f16_row_to_f32(b, count, scales); break;
    case ScaleType::BF16:
      for (int64_t i = 0; i < count; ++i, b += 2) scales[i] = bf16_to_f32(uint16_t(b[0] | b[1] << 8));
      break;
  }
  if (!v.zeros) return std::fill(zeros, zeros + count, sym_zero(v.p.bits));
  const uint64_t bit0 = uint64_t(idx0) * unsigned(v.p.bits);
  if (bit0 % 8 != 0) {
    for (int64_t i = 0; i < count; ++i) zeros[i] = packed_at(v.zeros, idx0 + i, v.p.bits);
    return;
  }
  uint8_t u[256];
  for (int64_t i = 0; i < count; i += 256) {  // i·bits is a whole number of bytes
    const int64_t m = std::min<int64_t>(256, count - i);
    unpack_bits(v.zeros + (bit0 + uint64_t(i) * unsigned(v.p.bits)) / 8, m, v.p.bits, u);
    std::copy(u, u + m, zeros + i);
  }
}

}  // namespace

void int_row_params(const IntView& v, int64_t r, float* scales, int32_t* zeros) {
  params_run(v, int_scale_index(v.p, v.layout.groups_per_row, r, 0), v.layout.groups_per_row, scales, zeros);
}

void int_rows_params(const IntView& v, int64_t r0, int64_t nr, float* scales, int32_t* zeros) {
  const int64_t n = v.layout.groups_per_row, idx0 = int_scale_index(v.p, n, r0, 0);
  // Per channel and per group the rows' parameters lie one after another: one run, so the
  // per-call work of unpacking the zero points is paid once a chunk (every decode step reads
  // every row's); per tensor every row has the one.
  if (nr > 1 && int_scale_index(v.p, n, r0 + nr - 1, 0) == idx0 + (nr - 1) * n)
    return params_run(v, idx0, nr * n, scales, zeros);
  for (int64_t r = 0; r < nr; ++r) int_row_params(v, r0 + r, scales + r * n, zeros + r * n);
}

namespace {

void store_scale(uint8_t* scales, int64_t idx, float s, ScaleType t) {
  uint32_t bits = 0;
  switch (t) {
    case ScaleType::F32: bits = f32_to_bits(s); break;
    case ScaleType::F16: bits = f32_to_f16(s); break;  // exact: s was rounded to f16 already
    case ScaleType::BF16: bits = f32_to_bf16(s); break;
  }
  uint8_t* b = scales + uint64_t(idx) * scale_size(t);
  for (uint64_t k = 0; k < scale_size(t); ++k) b[k] = uint8_t(bits >> (8 * k));
}

}  // namespace

void int_dequantize_row(const IntView& v, int64_t r, const uint8_t* row_codes, float* out) {
  const IntParams& p = v.p;
  std::vector<uint8_t> u(static_cast<size_t>(v.cols));
  unpack_bits(row_codes, v.cols, p.bits, u.data());
  const int64_t span = p.group > 0 ? p.group : std::max<int64_t>(v.cols, 1);
  for (int64_t c0 = 0; c0 < v.cols; c0 += span) {  // one scale/zero per span
    const int64_t idx = int_scale_index(p, v.layout.groups_per_row, r, c0);
    const GroupQ g{int_scale_at(v, idx), int_zero_at(v, idx), !p.asym};
    dequantize_group(u.data() + c0, std::min(span, v.cols - c0), g, out + c0);
  }
}

void int_dequantize_rows(const IntParams& p, const uint8_t* data, int64_t rows, int64_t cols,
                         int64_t row0, int64_t n, float* out) {
  const IntView v = int_view(p, data, rows, cols);
  if (row0 < 0 || n < 0 || row0 > rows || n > rows - row0)
    fail("LMQ_INT: rows [{}, {}) out of range of {} rows", row0, row0 + n, rows);
  for (int64_t r = row0; r < row0 + n; ++r)
    int_dequantize_row(v, r, v.codes + uint64_t(r) * v.layout.row_code_bytes, out + (r - row0) * cols);
}

void store_int_tensor(const IntParams& p, int64_t rows, int64_t cols, const uint8_t* codes, const GroupQ* qs,
                      uint8_t* out) {
  const IntLayout l = int_layout(p, rows, cols);
  std::memset(out, 0, l.total);
  for (int64_t r = 0; r < rows; ++r)
    pack_bits(codes + r * cols, cols, p.bits, out + uint64_t(r) * l.row_code_bytes);
  store_int_params(p, l, qs, out);
}

void store_int_params(const IntParams& p, const IntLayout& l, const GroupQ* qs, uint8_t* out) {
  std::vector<uint8_t> zeros(static_cast<size_t>(l.n_scales));
  for (int64_t i = 0; i < l.n_scales; ++i) {
    store_scale(out + l.scales_offset, i, qs[i].scale, p.scale_type);
    zeros[i] = uint8_t(qs[i].zero);
  }
  if (p.asym) pack_bits(zeros.data(), l.n_scales, p.bits, out + l.zeros_offset);
}

}  // namespace lmq::quant
