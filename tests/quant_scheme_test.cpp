// Tests of the quantization math against the formulas in include/lmq/quant/scheme.h.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cfloat>
#include <cmath>
#include <vector>

#include "lmq/error.h"
#include "lmq/half.h"
#include "lmq/quant/scheme.h"

using namespace lmq;
using namespace lmq::quant;

namespace {

const ScaleType kTypes[] = {ScaleType::F16, ScaleType::BF16, ScaleType::F32};

// A group of values on a random scale (1e-3 .. 1e3), with some exact zeros.
std::vector<float> gen_group(int64_t max_n = 300) {
  const int n = *rc::gen::inRange<int>(1, int(max_n));
  const float mag = std::pow(10.0f, float(*rc::gen::inRange(-3, 4)));
  const bool skewed = *rc::gen::arbitrary<bool>();  // all one sign: the asym range then has 0 at an end
  std::vector<float> x(n);
  for (float& v : x) {
    const int k = *rc::gen::inRange(-1000000, 1000001);
    v = *rc::gen::inRange(0, 10) == 0 ? 0.0f : mag * float(skewed ? std::abs(k) : k) * 1e-6f;
  }
  return x;
}

IntParams gen_params() {
  IntParams p;
  p.bits = uint8_t(*rc::gen::inRange(2, 9));
  p.asym = *rc::gen::arbitrary<bool>();
  p.scale_type = *rc::gen::elementOf(std::vector<ScaleType>(std::begin(kTypes), std::end(kTypes)));
  return p;
}

// Float slack of one division x/s and one product s·(u - z), each off by <= 2^-24 relative:
// the rounded code can move past a .5 boundary by at most ~2^-24·|x| in value, and the
// product adds ~2^-24·|x'|. Four epsilons of |x| + |x'| covers both with margin.
float fp_slack(float x, float xq) { return 4 * FLT_EPSILON * (std::fabs(x) + std::fabs(xq)); }

float to_stored(float s, ScaleType t) {
  if (t == ScaleType::F16) return f16_to_f32(f32_to_f16(s));
  if (t == ScaleType::BF16) return bf16_to_f32(f32_to_bf16(s));
  return s;
}

// |frac(t) - 0.5|: how far t is from a rounding tie.
double tie_distance(double t) { return std::fabs(t - std::floor(t) - 0.5); }

}  // namespace

// ---- worked examples from the seeds ----

TEST(QuantSeed, SymmetricInt8Example) {
  const float s = seed_sym_scale(10.8f, 8);
  EXPECT_NEAR(s, 127.0 / 10.8, 1e-5);
  EXPECT_NEAR(s, 11.76, 0.005);
  EXPECT_EQ(seed_sym_quantize(10.8f, s, 8), 127);
  EXPECT_EQ(seed_sym_quantize(-10.8f, s, 8), -127);
  EXPECT_EQ(seed_sym_quantize(0.0f, s, 8), 0);
}

TEST(QuantSeed, AsymmetricInt8Example) {
  const SeedAsym p = seed_asym_params(10.8f, -7.59f, 8);
  EXPECT_NEAR(p.s, 255.0 / (10.8 + 7.59), 1e-4);
  EXPECT_NEAR(p.s, 13.86, 0.01);
  EXPECT_EQ(p.Z, -23);  // round(13.866 · 7.59) - 128 = 105 - 128
  EXPECT_EQ(seed_asym_quantize(-7.59f, p, 8), -128);
  EXPECT_EQ(seed_asym_quantize(10.8f, p, 8), 127);
  EXPECT_EQ(seed_asym_quantize(0.0f, p, 8), p.Z);
  EXPECT_FLOAT_EQ(seed_asym_dequantize(p.Z, p), 0.0f);
}

TEST(QuantMemory, BytesAtBits) {
  EXPECT_EQ(bytes_at_bits(1000000, 32), 4000000u);
  EXPECT_EQ(bytes_at_bits(1000000, 8), 1000000u);
  EXPECT_EQ(bytes_at_bits(70000000000ull, 16), 140000000000ull);
  EXPECT_EQ(bytes_at_bits(1000000, 4), 500000u);
  EXPECT_EQ(bytes_at_bits(3, 3), 2u);  // 9 bits -> rounded up
  EXPECT_EQ(bytes_at_bits(0, 8), 0u);
  EXPECT_THROW(bytes_at_bits(UINT64_MAX / 2, 8), Error);
}

// ---- scales ----

RC_GTEST_PROP(QuantScale, RoundsUpToTheSmallestStorableValue, ()) {
  const ScaleType t = *rc::gen::elementOf(std::vector<ScaleType>(std::begin(kTypes), std::end(kTypes)));
  const double s = std::ldexp(1.0 + *rc::gen::inRange(0, 1 << 20) / double(1 << 20), *rc::gen::inRange(-20, 15));
  const float r = round_scale_up(s, t);
  RC_ASSERT(double(r) >= s);
  RC_ASSERT(to_stored(r, t) == r);  // representable
  // the next representable value below r is below s, i.e. r is the smallest >= s
  float below = std::nextafter(r, 0.0f);
  while (to_stored(below, t) == r) below = std::nextafter(below, 0.0f);
  RC_ASSERT(double(to_stored(below, t)) < s);
}

TEST(QuantScale, OverflowAndUnderflowOfTheStorageType) {
  EXPECT_EQ(round_scale_up(1e6, ScaleType::F16), 65504.0f);      // clamped to max finite f16
  EXPECT_EQ(round_scale_up(1e-12, ScaleType::F16), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(round_scale_up(1e300, ScaleType::F32), FLT_MAX);
  EXPECT_EQ(round_scale_up(1e39, ScaleType::BF16), bf16_to_f32(0x7f7f));
  EXPECT_EQ(round_scale_up(0.0, ScaleType::F16), 0.0f);
}

// ---- the error bound and exact zeros, at group level for every bits × sym/asym × type ----

RC_GTEST_PROP(QuantGroup, MinMaxErrorAtMostHalfAStepAndZeroIsExact, ()) {
  const IntParams p = gen_params();
  const std::vector<float> x = gen_group();
  const int64_t n = int64_t(x.size());
  const GroupQ g = choose_group_params(x.data(), n, p, RangeMethod::MinMax, nullptr);
  RC_ASSERT(to_stored(g.scale, p.scale_type) == g.scale);
  RC_ASSERT(g.zero >= 0 && g.zero <= code_max(p.bits));
  if (!p.asym) RC_ASSERT(g.zero == sym_zero(p.bits));
  std::vector<uint8_t> u(n);
  std::vector<float> xq(n);
  quantize_group(x.data(), n, g, p.bits, u.data());
  dequantize_group(u.data(), n, g, xq.data());
  for (int64_t i = 0; i < n; ++i) {
    RC_ASSERT(int(u[i]) <= code_max(p.bits));
    if (!p.asym && g.scale > 0) RC_ASSERT(u[i] >= 1);  // symmetric never uses code 0
    RC_ASSERT(std::fabs(x[i] - xq[i]) <= g.scale / 2 + fp_slack(x[i], xq[i]));
    if (x[i] == 0) RC_ASSERT(xq[i] == 0.0f);
  }
}

RC_GTEST_PROP(QuantGroup, AsymMapsMinToZeroAndMaxToTop, ()) {
  IntParams p = gen_params();
  p.asym = true;
  const std::vector<float> x = gen_group();
  const GroupQ g = choose_group_params(x.data(), int64_t(x.size()), p, RangeMethod::MinMax, nullptr);
  const float lo = std::min(*std::min_element(x.begin(), x.end()), 0.0f);
  const float hi = std::max(*std::max_element(x.begin(), x.end()), 0.0f);
  RC_PRE(hi > lo);
  const float ends[2] = {lo, hi};
  uint8_t u[2];
  quantize_group(ends, 2, g, p.bits, u);
  RC_ASSERT(u[0] == 0);
  const int top = code_max(p.bits);
  // A stored scale rounded up by `slack` codes over the range can leave the top code unused:
  // hi lands at (hi - lo)/s + (z + lo/s) >= top - slack - 1/2.
  const double slack = top - (double(hi) - lo) / g.scale;
  RC_ASSERT(int(u[1]) >= int(std::floor(top - slack - 0.5 - 1e-4)));
  // With an f32 scale the slack is ~1e-7 codes, so hi reaches the top unless z + lo/s sits
  // on the -1/2 tie.
  if (p.scale_type == ScaleType::F32 && tie_distance(-double(lo) / g.scale) > 1e-3) RC_ASSERT(int(u[1]) == top);
}

RC_GTEST_PROP(QuantGroup, AllZeroGroupGivesZeroScaleAndExactZeros, ()) {
  const IntParams p = gen_params();
  const RangeMethod m = *rc::gen::element(RangeMethod::MinMax, RangeMethod::Percentile, RangeMethod::Mse);
  const std::vector<float> x(*rc::gen::inRange(1, 100), 0.0f);
  const int64_t n = int64_t(x.size());
  const GroupQ g = choose_group_params(x.data(), n, p, m, nullptr, 99.0f);
  RC_ASSERT(g.scale == 0.0f);
  std::vector<uint8_t> u(n);
  std::vector<float> xq(n);
  quantize_group(x.data(), n, g, p.bits, u.data());
  dequantize_group(u.data(), n, g, xq.data());
  for (int64_t i = 0; i < n; ++i) {
    RC_ASSERT(int(u[i]) == g.zero);
    RC_ASSERT(xq[i] == 0.0f);
    RC_ASSERT(!std::signbit(xq[i]) || xq[i] == 0.0f);
  }
}

TEST(QuantGroup, NonFiniteInputThrows) {
  IntParams p;
  const float x[] = {1.0f, NAN, 2.0f};
  EXPECT_THROW(choose_group_params(x, 3, p, RangeMethod::MinMax, nullptr), Error);
  const float y[] = {1.0f, INFINITY};
  try {
    choose_group_params(y, 2, p, RangeMethod::Mse, nullptr);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("index 1"), std::string::npos) << e.what();
  }
}

// ---- the seeds' signed forms equal the unsigned form ----

// Both are computed from the same range; the main form uses x/s with s = (α-β)/(2^b-1) (f32,
// rounded up by < 1 ulp), the seed form s_seed·x with s_seed = (2^b-1)/(α-β). Their codes
// can differ only where x/s (or -β/s for the zero point) is within float error of a .5 tie,
// so away from ties codes must be identical and dequantized values equal to float precision.
RC_GTEST_PROP(QuantSeed, AsymSeedFormEqualsUnsignedForm, ()) {
  IntParams p = gen_params();
  p.asym = true;
  p.scale_type = ScaleType::F32;
  const std::vector<float> x = gen_group();
  const float alpha = std::max(*std::max_element(x.begin(), x.end()), 0.0f);
  const float beta = std::min(*std::min_element(x.begin(), x.end()), 0.0f);
  RC_PRE(alpha > beta);
  const GroupQ g = params_from_range(beta, alpha, p);
  const SeedAsym sp = seed_asym_params(alpha, beta, p.bits);
  const bool z_tie = tie_distance(-double(beta) / g.scale) < 1e-3;
  if (!z_tie) RC_ASSERT(sp.Z + sym_zero(p.bits) == g.zero);
  int exempt = 0;
  for (float v : x) {
    uint8_t u;
    quantize_group(&v, 1, g, p.bits, &u);
    const int32_t q = seed_asym_quantize(v, sp, p.bits);
    const float main_x = dequant_code(g.scale, u, g.zero), seed_x = seed_asym_dequantize(q, sp);
    if (z_tie || tie_distance(double(v) / g.scale) < 1e-3) {
      ++exempt;
      RC_ASSERT(std::abs(int(u) - (q + sym_zero(p.bits))) <= 1);
      RC_ASSERT(std::fabs(main_x - seed_x) <= g.scale * 1.001f + fp_slack(main_x, seed_x));
      continue;
    }
    RC_ASSERT(int(u) == q + sym_zero(p.bits));
    RC_ASSERT(std::fabs(main_x - seed_x) <= 1e-5f * (std::fabs(main_x) + g.scale));
  }
  RC_TAG(exempt == 0 ? "no ties" : "some ties");
}

RC_GTEST_PROP(QuantSeed, SymSeedFormEqualsUnsignedForm, ()) {
  IntParams p = gen_params();
  p.asym = false;
  p.scale_type = ScaleType::F32;
  const std::vector<float> x = gen_group();
  float absmax = 0;
  for (float v : x) absmax = std::max(absmax, std::fabs(v));
  RC_PRE(absmax > 0);
  const GroupQ g = params_from_range(-absmax, absmax, p);
  const float s_seed = seed_sym_scale(absmax, p.bits);
  for (float v : x) {
    uint8_t u;
    quantize_group(&v, 1, g, p.bits, &u);
    const int32_t q = seed_sym_quantize(v, s_seed, p.bits);
    if (tie_distance(double(v) / g.scale) < 1e-3) {
      RC_ASSERT(std::abs(int(u) - (q + sym_zero(p.bits))) <= 1);
      continue;
    }
    RC_ASSERT(int(u) == q + sym_zero(p.bits));
    RC_ASSERT(std::fabs(dequant_code(g.scale, u, g.zero) - float(q) / s_seed) <=
              1e-5f * (std::fabs(v) + g.scale));
  }
}

// ---- range selection ----

RC_GTEST_PROP(QuantRange, MseNeverWorseThanMinMax, ()) {
  const IntParams p = gen_params();
  const std::vector<float> x = gen_group();
  const int64_t n = int64_t(x.size());
  std::vector<float> w;
  if (*rc::gen::arbitrary<bool>())  // activation-weighted: E[x_j²]-like positive weights
    for (int64_t i = 0; i < n; ++i) w.push_back(float(*rc::gen::inRange(0, 10000)) * 1e-3f);
  const float* wp = w.empty() ? nullptr : w.data();
  const GroupQ mm = choose_group_params(x.data(), n, p, RangeMethod::MinMax, wp);
  const GroupQ ms = choose_group_params(x.data(), n, p, RangeMethod::Mse, wp);
  RC_ASSERT(ms.scale <= mm.scale);  // only clip ratios r <= 1 are tried
  RC_ASSERT(group_sq_error(x.data(), n, ms, p.bits, wp) <= group_sq_error(x.data(), n, mm, p.bits, wp));
}

TEST(QuantRange, MseClipsAnOutlierWhenThatHelps) {
  // 1000 values spread over [-1, 1] and one at 4: at 3 bits min/max spends the grid on the
  // outlier (step 4/3) while clipping to half the range costs the outlier 2 but gains on the rest.
  std::vector<float> x;
  for (int i = 0; i < 1000; ++i) x.push_back(-1.0f + 2.0f * float(i) / 999.0f);
  x.push_back(4.0f);
  IntParams p;
  p.bits = 3;
  const GroupQ mm = choose_group_params(x.data(), int64_t(x.size()), p, RangeMethod::MinMax, nullptr);
  const GroupQ ms = choose_group_params(x.data(), int64_t(x.size()), p, RangeMethod::Mse, nullptr);
  EXPECT_LT(ms.scale, mm.scale);
  EXPECT_LT(group_sq_error(x.data(), int64_t(x.size()), ms, 3, nullptr),
            group_sq_error(x.data(), int64_t(x.size()), mm, 3, nullptr));
}

TEST(QuantRange, PercentileClipsToTheQuantile) {
  std::vector<float> x;
  for (int i = 1; i <= 1000; ++i) x.push_back(float(i % 2 ? i : -i));  // |x| = 1..1000
  IntParams p;  // int8 sym f16
  // Linear interpolation: position 0.99·999 = 989.01 between the 990th and 991st |x|.
  const GroupQ g = choose_group_params(x.data(), 1000, p, RangeMethod::Percentile, nullptr, 99.0f);
  EXPECT_EQ(g.scale, round_scale_up(990.01 / 127, ScaleType::F16));
  const GroupQ full = choose_group_params(x.data(), 1000, p, RangeMethod::Percentile, nullptr, 100.0f);
  EXPECT_EQ(full.scale, choose_group_params(x.data(), 1000, p, RangeMethod::MinMax, nullptr).scale);
  // asym: [1st, 99th] percentiles of x itself
  p.asym = true;
  const GroupQ a = choose_group_params(x.data(), 1000, p, RangeMethod::Percentile, nullptr, 99.0f);
  const double lo = quantile(x.data(), 1000, 0.01), hi = quantile(x.data(), 1000, 0.99);
  EXPECT_EQ(a.scale, round_scale_up((hi - lo) / 255, ScaleType::F16));
  EXPECT_THROW(choose_group_params(x.data(), 1000, p, RangeMethod::Percentile, nullptr, 20.0f), Error);
}

// ---- bit packing ----

RC_GTEST_PROP(QuantPack, RoundTripAndBitOrder, ()) {
  const int b = *rc::gen::inRange(1, 9);
  const int n = *rc::gen::inRange(0, 200);
  std::vector<uint8_t> u(n);
  for (auto& v : u) v = uint8_t(*rc::gen::inRange(0, 1 << b));
  std::vector<uint8_t> out(packed_bytes(n, b), 0xAA), gen(out.size(), 0x55);
  pack_bits(u.data(), n, b, out.data());
  detail::pack_bits_generic(u.data(), n, b, gen.data());
  RC_ASSERT(out == gen);  // the fast paths (2, 4, 8) equal the generic path
  // Spec: bit j of value i is stream bit i·b + j = bit (i·b+j) mod 8 of byte (i·b+j)/8.
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < b; ++j) {
      const int64_t bit = int64_t(i) * b + j;
      RC_ASSERT(((out[bit / 8] >> (bit % 8)) & 1) == ((u[i] >> j) & 1));
    }
  if (n * b % 8) RC_ASSERT((out.back() >> (n * b % 8)) == 0);  // unused high bits are zero
  std::vector<uint8_t> back(n), back_gen(n);
  unpack_bits(out.data(), n, b, back.data());
  detail::unpack_bits_generic(out.data(), n, b, back_gen.data());
  RC_ASSERT(back == u);
  RC_ASSERT(back_gen == u);
  for (int i = 0; i < n; ++i) RC_ASSERT(packed_at(out.data(), i, b) == u[i]);
}

RC_GTEST_PROP(QuantPack, FastUnpackEqualsGenericOnArbitraryBytes, ()) {
  const int b = *rc::gen::inRange(1, 9);  // every width has a fast path now
  const int n = *rc::gen::inRange(0, 100);
  std::vector<uint8_t> bytes(packed_bytes(n, b));
  for (auto& v : bytes) v = uint8_t(*rc::gen::inRange(0, 256));
  std::vector<uint8_t> a(n), g(n);
  unpack_bits(bytes.data(), n, b, a.data());
  detail::unpack_bits_generic(bytes.data(), n, b, g.data());
  RC_ASSERT(a == g);
}

// ---- scheme strings ----

TEST(QuantSchemeString, ParsesGoodStrings) {
  Scheme s = parse_scheme("int4:g128:asym:mse");
  EXPECT_EQ(s.kind, Scheme::Int);
  EXPECT_EQ(s.p.bits, 4);
  EXPECT_EQ(s.p.group, 128);
  EXPECT_TRUE(s.p.asym);
  EXPECT_EQ(s.range, RangeMethod::Mse);
  EXPECT_EQ(s.p.scale_type, ScaleType::F16);
  EXPECT_EQ(s.to_string(), "int4:g128:asym:mse:s=f16");

  s = parse_scheme("int8");
  EXPECT_EQ(s.p.bits, 8);
  EXPECT_EQ(s.p.group, -1);
  EXPECT_FALSE(s.p.asym);
  EXPECT_EQ(s.range, RangeMethod::MinMax);
  EXPECT_EQ(s.to_string(), "int8:channel:sym:minmax:s=f16");

  s = parse_scheme("INT3:tensor:pct99.5:s=bf16");
  EXPECT_EQ(s.p.group, 0);
  EXPECT_EQ(s.range, RangeMethod::Percentile);
  EXPECT_EQ(s.percentile, 99.5f);
  EXPECT_EQ(s.p.scale_type, ScaleType::BF16);
  EXPECT_EQ(parse_scheme("int2:s=f32:g7:sym").p.group, 7);  // options in any order
  EXPECT_EQ(parse_scheme("int2:s=f32:g7:sym").p.scale_type, ScaleType::F32);

  EXPECT_EQ(parse_scheme("f32").kind, Scheme::F32);
  EXPECT_EQ(parse_scheme("fp32").kind, Scheme::F32);
  EXPECT_EQ(parse_scheme("f16").kind, Scheme::F16);
  EXPECT_EQ(parse_scheme("fp16").kind, Scheme::F16);
  EXPECT_EQ(parse_scheme("bf16").kind, Scheme::BF16);
  EXPECT_EQ(parse_scheme("fp16").to_string(), "f16");
}

TEST(QuantSchemeString, RejectsBadStringsWithAClearMessage) {
  auto message = [](const char* s) -> std::string {
    try {
      parse_scheme(s);
    } catch (const Error& e) {
      return e.what();
    }
    return "(accepted)";
  };
  EXPECT_EQ(message("int9:g128"), "scheme 'int9:g128': bits must be 2..8");
  EXPECT_EQ(message("int1"), "scheme 'int1': bits must be 2..8");
  for (const char* bad : {"", "int", "intx", "int4x", "int4:g0", "int4:g", "int4:gx", "int4:g-5",
                          "int4:g12x", "int4:foo", "int4:sym:asym", "int4:g32:channel", "int4:",
                          "int4::sym", "int4:pct40", "int4:pct", "int4:pctx", "int4:pct101",
                          "int4:mse:minmax", "int4:s=f8", "int4:s=f16:s=f32", "q4_0", "f64",
                          "int 4", "int4:g99999999999999999999"}) {
    const std::string m = message(bad);
    EXPECT_NE(m, "(accepted)") << bad;
    EXPECT_EQ(m.rfind(std::string("scheme '") + bad + "'", 0), 0u) << m;  // names the string
  }
}

RC_GTEST_PROP(QuantSchemeString, RoundTrips, ()) {
  Scheme s;
  s.kind = *rc::gen::element(Scheme::Int, Scheme::Int, Scheme::F32, Scheme::F16, Scheme::BF16);
  if (s.kind == Scheme::Int) {
    s.p.bits = uint8_t(*rc::gen::inRange(2, 9));
    s.p.group = *rc::gen::oneOf(rc::gen::element(0, -1, 32, 64, 128, 256), rc::gen::inRange(1, 5000));
    s.p.asym = *rc::gen::arbitrary<bool>();
    s.p.scale_type = *rc::gen::element(ScaleType::F16, ScaleType::BF16, ScaleType::F32);
    s.range = *rc::gen::element(RangeMethod::MinMax, RangeMethod::Percentile, RangeMethod::Mse);
    if (s.range == RangeMethod::Percentile)
      s.percentile = *rc::gen::element(50.0f, 99.0f, 99.9f, 99.99f, 100.0f, 97.25f, 63.3f);
  }
  const std::string text = s.to_string();
  RC_ASSERT(parse_scheme(text) == s);
  RC_ASSERT(parse_scheme(text).to_string() == text);
}

// Clipping methods: values inside the grid range [s·(min_code - z), s·(top - z)] still have error
// <= s/2; values beyond it go to the nearest end of the grid.
RC_GTEST_PROP(QuantRange, ClippedRangesKeepTheBoundInsideAndClipOutside, ()) {
  const IntParams p = gen_params();
  const RangeMethod m = *rc::gen::element(RangeMethod::Percentile, RangeMethod::Mse);
  const float pct = *rc::gen::element(50.0f, 90.0f, 99.0f, 99.9f, 100.0f);
  const std::vector<float> x = gen_group();
  const int64_t n = int64_t(x.size());
  const GroupQ g = choose_group_params(x.data(), n, p, m, nullptr, pct);
  std::vector<uint8_t> u(n);
  quantize_group(x.data(), n, g, p.bits, u.data());
  const int32_t min_code = p.asym ? 0 : 1;  // symmetric: q >= -q_max, so u >= 1
  const float lo = dequant_code(g.scale, min_code, g.zero), hi = dequant_code(g.scale, code_max(p.bits), g.zero);
  for (int64_t i = 0; i < n; ++i) {
    RC_ASSERT(int(u[i]) >= min_code);
    const float xq = dequant_code(g.scale, u[i], g.zero);
    if (x[i] >= lo && x[i] <= hi) RC_ASSERT(std::fabs(x[i] - xq) <= g.scale / 2 + fp_slack(x[i], xq));
    else RC_ASSERT(xq == (x[i] < lo ? lo : hi));
    if (x[i] == 0) RC_ASSERT(xq == 0.0f);
  }
}
