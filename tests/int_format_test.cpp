// Tests of the LMQ_INT layout and quantize_tensor, decoding the bytes from the layout spec in
// include/lmq/codecs/int_format.h independently of the library's unpacker.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cfloat>
#include <cmath>
#include <vector>

#include "lmq/error.h"
#include "lmq/half.h"
#include "lmq/quant/int_quantize.h"

using namespace lmq;
using namespace lmq::quant;

namespace {

// Value i of an LSB-first bitstream, bit by bit (the spec, not the library's code).
uint32_t stream_value(const uint8_t* p, int64_t i, int b) {
  uint32_t v = 0;
  for (int j = 0; j < b; ++j) {
    const int64_t bit = i * b + j;
    v |= uint32_t((p[bit / 8] >> (bit % 8)) & 1) << j;
  }
  return v;
}

float read_scale(const uint8_t* p, ScaleType t) {
  if (t == ScaleType::F32) return bits_to_f32(p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24);
  const uint16_t h = uint16_t(p[0] | p[1] << 8);
  return t == ScaleType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

struct Case {
  IntParams p;
  int64_t rows, cols;
  std::vector<float> w;
};

// Every bits × granularity (tensor, channel, g32, g64, g128, a non-dividing group) × sym/asym ×
// scale type, on a small matrix with per-row magnitudes, exact zeros and some outliers.
Case gen_case() {
  Case c;
  c.p.bits = uint8_t(*rc::gen::inRange(2, 9));
  c.p.asym = *rc::gen::arbitrary<bool>();
  c.p.scale_type = *rc::gen::element(ScaleType::F16, ScaleType::BF16, ScaleType::F32);
  c.p.group = *rc::gen::element(0, -1, 32, 64, 128, 7, 48);
  c.rows = *rc::gen::inRange(1, 7);
  c.cols = *rc::gen::inRange(1, 200);
  c.w.resize(c.rows * c.cols);
  for (int64_t r = 0; r < c.rows; ++r) {
    const float mag = std::pow(10.0f, float(*rc::gen::inRange(-3, 3)));
    for (int64_t j = 0; j < c.cols; ++j) {
      const int pick = *rc::gen::inRange(0, 20);
      const float v = mag * float(*rc::gen::inRange(-100000, 100001)) * 1e-5f;
      c.w[r * c.cols + j] = pick == 0 ? 0.0f : pick == 1 ? 8 * v : v;
    }
  }
  return c;
}

int64_t spec_scale_index(const IntParams& p, int64_t rows, int64_t cols, int64_t r, int64_t c) {
  if (p.group == 0) return 0;
  if (p.group < 0) return r;
  return r * ((cols + p.group - 1) / p.group) + c / p.group;
}

}  // namespace

TEST(IntFormat, LayoutByteByByte) {
  IntParams p{3, true, 32, ScaleType::F16};
  const IntLayout l = int_layout(p, 5, 70);
  EXPECT_EQ(l.row_code_bytes, 27u);  // ceil(70·3/8)
  EXPECT_EQ(l.codes_bytes, 135u);
  EXPECT_EQ(l.scales_offset, 136u);  // padded to 4
  EXPECT_EQ(l.groups_per_row, 3);    // 32 + 32 + 6 (short last group)
  EXPECT_EQ(l.n_scales, 15);
  EXPECT_EQ(l.scales_bytes, 30u);
  EXPECT_EQ(l.zeros_offset, 166u);
  EXPECT_EQ(l.zeros_bytes, 6u);  // ceil(15·3/8)
  EXPECT_EQ(int_tensor_bytes(p, 5, 70), 172u);

  p = IntParams{8, false, -1, ScaleType::F32};
  EXPECT_EQ(int_tensor_bytes(p, 4, 10), 40u + 16u);  // codes, no padding needed, 4 f32 scales
  p.group = 0;
  EXPECT_EQ(int_tensor_bytes(p, 3, 3), 12u + 4u);  // 9 code bytes padded to 12, one scale
  EXPECT_EQ(int_scale_count(p, 3, 3), 1);
  p = IntParams{4, false, 128, ScaleType::BF16};
  EXPECT_EQ(int_groups_per_row(p, 4096), 32);
  EXPECT_EQ(int_tensor_bytes(p, 4096, 4096), 4096u * 2048 + 4096u * 32 * 2);

  EXPECT_THROW(int_layout(IntParams{9, false, -1, ScaleType::F16}, 1, 1), Error);
  EXPECT_THROW(int_layout(IntParams{4, false, -2, ScaleType::F16}, 1, 1), Error);
}

// The bytes follow the spec, the error is at most half a stored step, 0 stays 0, and
// int_dequantize_rows and the stats agree with a decode written from the spec.
RC_GTEST_PROP(IntFormat, QuantizeTensorMatchesSpecAndErrorBound, ()) {
  const Case c = gen_case();
  const IntParams& p = c.p;
  const IntLayout l = int_layout(p, c.rows, c.cols);
  std::vector<uint8_t> out(l.total);
  const QuantStats st = quantize_tensor(c.w.data(), c.rows, c.cols, p, RangeMethod::MinMax, 99.9f,
                                        nullptr, out.data(), 2);
  std::vector<float> deq(c.rows * c.cols);
  int_dequantize_rows(p, out.data(), c.rows, c.cols, 0, c.rows, deq.data());
  for (uint64_t k = l.codes_bytes; k < l.scales_offset; ++k) RC_ASSERT(out[k] == 0);  // padding

  double sq_err = 0, sq_ref = 0, max_abs = 0;
  for (int64_t r = 0; r < c.rows; ++r) {
    double row_err = 0, row_ref = 0;  // summed per row, then in row order, like the quantizer
    for (int64_t j = 0; j < c.cols; ++j) {
      const int64_t idx = spec_scale_index(p, c.rows, c.cols, r, j);
      const float s = read_scale(out.data() + l.scales_offset + idx * (p.scale_type == ScaleType::F32 ? 4 : 2), p.scale_type);
      const int32_t z = p.asym ? int32_t(stream_value(out.data() + l.zeros_offset, idx, p.bits)) : 1 << (p.bits - 1);
      const int32_t u = int32_t(stream_value(out.data() + r * l.row_code_bytes, j, p.bits));
      const float x = c.w[r * c.cols + j], xq = deq[r * c.cols + j];
      RC_ASSERT(xq == s * float(u - z));  // the stored bytes mean what the spec says
      // Min/max range: every value is inside it. Float slack as in quant_scheme_test.
      RC_ASSERT(std::fabs(x - xq) <= s / 2 + 4 * FLT_EPSILON * (std::fabs(x) + std::fabs(xq)));
      if (x == 0) RC_ASSERT(xq == 0.0f);
      const double e = double(x) - double(xq);
      row_err += e * e;
      row_ref += double(x) * x;
      max_abs = std::max(max_abs, std::fabs(e));
    }
    sq_err += row_err;
    sq_ref += row_ref;
  }
  RC_ASSERT(st.sq_err == sq_err);
  RC_ASSERT(st.sq_ref == sq_ref);
  RC_ASSERT(st.max_abs == max_abs);
  RC_ASSERT(st.rel_rms == (sq_ref > 0 ? std::sqrt(sq_err / sq_ref) : 0.0));
}

RC_GTEST_PROP(IntFormat, ThreadCountDoesNotChangeTheBytes, ()) {
  const Case c = gen_case();
  const RangeMethod m = *rc::gen::element(RangeMethod::MinMax, RangeMethod::Percentile, RangeMethod::Mse);
  std::vector<float> imp;
  if (*rc::gen::arbitrary<bool>())
    for (int64_t j = 0; j < c.cols; ++j) imp.push_back(float(*rc::gen::inRange(1, 1000)) * 0.01f);
  const uint64_t bytes = int_tensor_bytes(c.p, c.rows, c.cols);
  std::vector<uint8_t> one(bytes), many(bytes, 0xCD);
  const QuantStats a = quantize_tensor(c.w.data(), c.rows, c.cols, c.p, m, 99.0f,
                                       imp.empty() ? nullptr : imp.data(), one.data(), 1);
  const QuantStats b = quantize_tensor(c.w.data(), c.rows, c.cols, c.p, m, 99.0f,
                                       imp.empty() ? nullptr : imp.data(), many.data(), 3);
  RC_ASSERT(one == many);
  RC_ASSERT(a.sq_err == b.sq_err);
  RC_ASSERT(a.max_abs == b.max_abs);
}

RC_GTEST_PROP(IntFormat, MseNeverWorseThanMinMaxForTheTensor, ()) {
  const Case c = gen_case();
  std::vector<float> imp;
  const bool weighted = *rc::gen::arbitrary<bool>();
  if (weighted)
    for (int64_t j = 0; j < c.cols; ++j) imp.push_back(float(*rc::gen::inRange(0, 1000)) * 0.01f);
  const uint64_t bytes = int_tensor_bytes(c.p, c.rows, c.cols);
  std::vector<uint8_t> a(bytes), b(bytes);
  const float* ip = weighted ? imp.data() : nullptr;
  quantize_tensor(c.w.data(), c.rows, c.cols, c.p, RangeMethod::MinMax, 99.9f, ip, a.data(), 2);
  quantize_tensor(c.w.data(), c.rows, c.cols, c.p, RangeMethod::Mse, 99.9f, ip, b.data(), 2);
  // Weighted error Σ_j imp_j (w - w')², from the dequantized bytes.
  auto err = [&](const std::vector<uint8_t>& q) {
    std::vector<float> d(c.rows * c.cols);
    int_dequantize_rows(c.p, q.data(), c.rows, c.cols, 0, c.rows, d.data());
    double e = 0;
    for (int64_t i = 0; i < c.rows * c.cols; ++i) {
      const double diff = double(c.w[i]) - d[i];
      e += (weighted ? imp[i % c.cols] : 1.0) * diff * diff;
    }
    return e;
  };
  // The search picks, per group, a ratio with error <= that of r = 1 (exactly min/max), so the
  // total can only differ from the per-group comparison by summation-order rounding.
  const double ea = err(a), eb = err(b);
  RC_ASSERT(eb <= ea * (1 + 1e-12) + 1e-30);
}

TEST(IntFormat, AllZeroTensorAndRows) {
  for (int32_t group : {0, -1, 32}) {
    for (bool asym : {false, true}) {
      IntParams p{4, asym, group, ScaleType::F16};
      std::vector<float> w(3 * 40, 0.0f);
      for (int j = 0; j < 40; ++j) w[40 + j] = float(j - 20) * 0.1f;  // row 1 non-zero
      std::vector<uint8_t> out(int_tensor_bytes(p, 3, 40));
      quantize_tensor(w.data(), 3, 40, p, RangeMethod::Mse, 99.9f, nullptr, out.data(), 2);
      std::vector<float> d(3 * 40);
      int_dequantize_rows(p, out.data(), 3, 40, 0, 3, d.data());
      for (int j = 0; j < 40; ++j) {
        EXPECT_EQ(d[j], 0.0f);
        EXPECT_EQ(d[80 + j], 0.0f);
      }
      std::fill(w.begin(), w.end(), 0.0f);
      const QuantStats st = quantize_tensor(w.data(), 3, 40, p, RangeMethod::MinMax, 99.9f, nullptr, out.data(), 1);
      EXPECT_EQ(st.rel_rms, 0.0);
      EXPECT_EQ(st.sq_err, 0.0);
    }
  }
}

TEST(IntFormat, ScaleBeyondF16IsClampedNotInfinite) {
  IntParams p{8, false, -1, ScaleType::F16};
  const float w[4] = {1e7f, -5e6f, 0.0f, 1.0f};
  std::vector<uint8_t> out(int_tensor_bytes(p, 1, 4));
  quantize_tensor(w, 1, 4, p, RangeMethod::MinMax, 99.9f, nullptr, out.data(), 1);
  float d[4];
  int_dequantize_rows(p, out.data(), 1, 4, 0, 1, d);
  EXPECT_EQ(int_scale_at(int_view(p, out.data(), 1, 4), 0), 65504.0f);
  EXPECT_EQ(d[0], 127.0f * 65504.0f);  // clipped to the largest representable value
  EXPECT_EQ(d[1], std::round(-5e6 / 65504) * 65504.0f);
  EXPECT_EQ(d[2], 0.0f);
}

TEST(IntFormat, NonFiniteWeightThrowsNamingRowAndColumn) {
  IntParams p;
  std::vector<float> w(2 * 5, 1.0f);
  w[7] = NAN;
  std::vector<uint8_t> out(int_tensor_bytes(p, 2, 5));
  try {
    quantize_tensor(w.data(), 2, 5, p, RangeMethod::MinMax, 99.9f, nullptr, out.data(), 2);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 1, column 2"), std::string::npos) << e.what();
  }
}

TEST(IntFormat, DequantizeRowsChecksTheRange) {
  IntParams p;
  std::vector<uint8_t> out(int_tensor_bytes(p, 2, 4));
  float d[8];
  EXPECT_THROW(int_dequantize_rows(p, out.data(), 2, 4, 1, 2, d), Error);
  EXPECT_THROW(int_dequantize_rows(p, out.data(), 2, 4, -1, 1, d), Error);
  EXPECT_NO_THROW(int_dequantize_rows(p, out.data(), 2, 4, 1, 1, d));
}

TEST(IntFormat, SubsetOfRowsEqualsTheFullDecode) {
  IntParams p{5, true, 48, ScaleType::BF16};
  const int64_t rows = 6, cols = 100;
  std::vector<float> w(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) w[i] = std::sin(float(i) * 0.37f) * float(1 + i % 7);
  std::vector<uint8_t> out(int_tensor_bytes(p, rows, cols));
  quantize_tensor(w.data(), rows, cols, p, RangeMethod::Percentile, 99.0f, nullptr, out.data(), 2);
  std::vector<float> all(rows * cols), part(2 * cols);
  int_dequantize_rows(p, out.data(), rows, cols, 0, rows, all.data());
  int_dequantize_rows(p, out.data(), rows, cols, 3, 2, part.data());
  for (int64_t i = 0; i < 2 * cols; ++i) EXPECT_EQ(part[i], all[3 * cols + i]);
}

// int_row_params (and int_rows_params, several rows at once) reads each row's scales and zero
// points as int_scale_at / int_zero_at do, for every granularity, scale type, width and symmetry
// (odd group counts, a short last group; rows whose zero points start mid-byte, and 128 groups a
// row, which start on one).
TEST(IntFormat, RowParamsEqualPerGroupReads) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5, 100}, {3, 2048}}) {
    std::vector<float> w(size_t(rows * cols));
    for (int64_t i = 0; i < rows * cols; ++i) w[size_t(i)] = std::cos(float(i) * 0.21f) * float(1 + i % 5);
    for (ScaleType st : {ScaleType::F16, ScaleType::BF16, ScaleType::F32})
      for (int bits : {2, 3, 4, 5, 8})
        for (bool asym : {false, true})
          for (int32_t group : {-1, 0, 16, 48}) {
            const IntParams p{uint8_t(bits), asym, group, st};
            std::vector<uint8_t> out(int_tensor_bytes(p, rows, cols));
            quantize_tensor(w.data(), rows, cols, p, RangeMethod::MinMax, 99.0f, nullptr, out.data(), 1);
            const IntView v = int_view(p, out.data(), rows, cols);
            const int64_t n = v.layout.groups_per_row;
            std::vector<float> s(static_cast<size_t>(n));
            std::vector<int32_t> z(static_cast<size_t>(n));
            for (int64_t r = 0; r < rows; ++r) {
              int_row_params(v, r, s.data(), z.data());
              for (int64_t g = 0; g < n; ++g) {
                const int64_t idx = int_scale_index(p, n, r, g * (group > 0 ? group : cols));
                ASSERT_EQ(s[size_t(g)], int_scale_at(v, idx)) << bits << " bits g" << group << " r" << r;
                ASSERT_EQ(z[size_t(g)], int_zero_at(v, idx)) << bits << " bits g" << group << " r" << r;
              }
            }
            // rows [r0, rows) at once: each row's as int_row_params reads it
            for (int64_t r0 : {int64_t(0), int64_t(1)}) {
              std::vector<float> sr(size_t((rows - r0) * n));
              std::vector<int32_t> zr(size_t((rows - r0) * n));
              int_rows_params(v, r0, rows - r0, sr.data(), zr.data());
              for (int64_t r = r0; r < rows; ++r) {
                int_row_params(v, r, s.data(), z.data());
                for (int64_t g = 0; g < n; ++g) {
                  ASSERT_EQ(sr[size_t((r - r0) * n + g)], s[size_t(g)]) << bits << " bits g" << group << " r" << r;
                  ASSERT_EQ(zr[size_t((r - r0) * n + g)], z[size_t(g)]) << bits << " bits g" << group << " r" << r;
                }
              }
            }
          }
  }
}
