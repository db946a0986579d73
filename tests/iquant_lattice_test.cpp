// lmq's writers of the lattice i-quants (IQ3_S, IQ2_XS, IQ2_S, IQ3_XXS, IQ2_XXS, IQ1_M, IQ1_S;
// src/codecs/iquant_lattice_quantize.cpp):
// gaussian rows round-trip through the format's own dequantizer with an error below the bound a
// plain scalar quantizer of the same bit budget reaches, and below a simple baseline written
// here (the scale fixed at absmax / grid max, nearest grid entry, no weights); importance moves
// the error onto the unimportant values; `lmq quantize --scheme iq3_s` writes a file lmq runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/iquant_blocks.h"
#include "lmq/codecs/iquant_lattice.h"
#include "lmq/error.h"
#include "lmq/half.h"
#include "test_support.h"

namespace lmq::ggml {
namespace iq {
#include "../src/codecs/iquant_grids.inc"
}  // namespace iq
}  // namespace lmq::ggml

using namespace lmq;
using namespace lmq::ggml;

namespace {

std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(n);
  for (float& v : x) v = nd(rng);
  return x;
}

std::vector<float> round_trip(Format f, const std::vector<float>& x, const float* imp = nullptr) {
  const int64_t k = int64_t(x.size());
  std::vector<uint8_t> b(size_t(ggml_row_bytes(f, k)));
  ggml_quantize_row(f, x.data(), b.data(), k, imp);
  std::vector<float> y(x.size());
  ggml_dequantize_row(f, b.data(), y.data(), k);
  return y;
}

double rel_rms(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) e += double(x[i] - y[i]) * (x[i] - y[i]), s += double(x[i]) * x[i];
  return std::sqrt(e / s);
}

// The baseline: per sub-block scale absmax / (largest grid magnitude), its 4-bit code rounded
// against d = (largest such scale) / 31, each group the nearest entry (plain squared error) with
// the signs of x (for IQ2_XS the smallest |x| of an odd group flipped). Values only, as the
// format's dequantizer would give them: d · (1 + 2s) · g · sign.
template <class Entry, size_t N>
std::vector<float> baseline(const std::vector<float>& x, const Entry (&grid)[N], int group, int sub, float unit,
                            bool even_signs) {
  auto mag = [&](size_t e, int j) { return float(uint64_t(grid[e]) >> (8 * j) & 0xff) * unit; };
  float gmax = 0;
  for (size_t e = 0; e < N; ++e)
    for (int j = 0; j < group; ++j) gmax = std::max(gmax, mag(e, j));
  std::vector<float> y(x.size());
  for (size_t o = 0; o < x.size(); o += 256) {
    std::vector<float> s(size_t(256 / sub));
    for (size_t ib = 0; ib < s.size(); ++ib)
      for (int j = 0; j < sub; ++j) s[ib] = std::max(s[ib], std::fabs(x[o + ib * size_t(sub) + size_t(j)]) / gmax);
    const float d = f16_to_f32(f32_to_f16(*std::max_element(s.begin(), s.end()) / 31));
    for (size_t ib = 0; ib < s.size(); ++ib) {
      const float l = std::clamp(std::round(0.5f * (s[ib] / d - 1)), 0.f, 15.f), db = d * (1 + 2 * l);
      for (int k = 0; k < sub; k += 8) {  // 8 values a sign byte
        const float* xb = &x[o + ib * size_t(sub) + size_t(k)];
        float sign[8];
        int neg = 0, jmin = 0;
        for (int j = 0; j < 8; ++j) {
          sign[j] = xb[j] < 0 ? -1.f : 1.f;
          neg += xb[j] < 0;
          if (std::fabs(xb[j]) < std::fabs(xb[jmin])) jmin = j;
        }
        if (even_signs && neg % 2) sign[jmin] = -sign[jmin];
        for (int g0 = 0; g0 < 8; g0 += group) {
          size_t best = 0;
          float best_err = INFINITY;
          for (size_t e = 0; e < N; ++e) {
            float err = 0;
            for (int j = 0; j < group; ++j) {
              const float dv = db * mag(e, j) * sign[g0 + j] - xb[g0 + j];
              err += dv * dv;
            }
            if (err < best_err) best_err = err, best = e;
          }
          for (int j = 0; j < group; ++j)
            y[o + ib * size_t(sub) + size_t(k + g0 + j)] = db * mag(best, j) * sign[g0 + j];
        }
      }
    }
  }
  return y;
}

// The IQ1s' baseline: per sub-block (sub values) scale absmax / 1.125, its 3-bit code rounded
// against d = (largest such scale) / 15, each group of 8 the nearest iq1s_grid entry plus 1/8
// (the delta always positive), plain squared error: d · (1 + 2s) · (g + 1/8).
std::vector<float> iq1_baseline(const std::vector<float>& x, int sub) {
  std::vector<float> y(x.size());
  for (size_t o = 0; o < x.size(); o += 256) {
    std::vector<float> s(size_t(256 / sub));
    for (size_t ib = 0; ib < s.size(); ++ib)
      for (int j = 0; j < sub; ++j) s[ib] = std::max(s[ib], std::fabs(x[o + ib * size_t(sub) + size_t(j)]) / 1.125f);
    const float d = f16_to_f32(f32_to_f16(*std::max_element(s.begin(), s.end()) / 15));
    for (size_t ib = 0; ib < s.size(); ++ib) {
      const float l = std::clamp(std::round(0.5f * (s[ib] / d - 1)), 0.f, 7.f), db = d * (1 + 2 * l);
      for (int k = 0; k < sub; k += 8) {
        const size_t at = o + ib * size_t(sub) + size_t(k);
        auto v = [&](size_t e, int j) { return db * (float(int8_t(iq::iq1s_grid[e] >> 8 * j & 0xff)) + 0.125f); };
        size_t best = 0;
        float best_err = INFINITY;
        for (size_t e = 0; e < 2048; ++e) {
          float err = 0;
          for (int j = 0; j < 8; ++j) err += (v(e, j) - x[at + size_t(j)]) * (v(e, j) - x[at + size_t(j)]);
          if (err < best_err) best_err = err, best = e;
        }
        for (int j = 0; j < 8; ++j) y[at + size_t(j)] = v(best, j);
      }
    }
  }
  return y;
}

struct Case {
  Format f;
  double bound;  // see RoundTripBeatsBoundAndBaseline
  std::vector<float> (*base)(const std::vector<float>&);
};
const Case kCases[] = {
    {Format::IQ3_S, 0.186, [](const std::vector<float>& x) { return baseline(x, iq::iq3s_grid, 4, 32, 1.f, false); }},
    {Format::IQ2_XS, 0.36,
     [](const std::vector<float>& x) { return baseline(x, iq::iq2xs_grid, 8, 16, 0.125f, true); }},
    {Format::IQ2_S, 0.356,  // 2.25 code bits a value: the 2-bit bound
     [](const std::vector<float>& x) { return baseline(x, iq::iq2s_grid, 8, 16, 0.125f, false); }},
    {Format::IQ3_XXS, 0.356,
     [](const std::vector<float>& x) { return baseline(x, iq::iq3xxs_grid, 4, 32, 0.25f, true); }},
    {Format::IQ2_XXS, 0.603,
     [](const std::vector<float>& x) { return baseline(x, iq::iq2xxs_grid, 8, 32, 0.125f, true); }},
    {Format::IQ1_M, 0.603, [](const std::vector<float>& x) { return iq1_baseline(x, 16); }},
    {Format::IQ1_S, 0.603, [](const std::vector<float>& x) { return iq1_baseline(x, 32); }},
};

}  // namespace

// The bounds: IQ3_S spends 3.25 bits a value on codes and signs (9-bit index per 4 values + a
// sign bit each), IQ2_XS 2 (9 + 7 bits per 8), IQ3_XXS 2.875 (8 + 8 + 7 per 8), IQ2_XXS 1.875
// (8 + 7 per 8), IQ1_M 1.5 (11 + a delta bit per 8), IQ1_S 1.406 (11 per 8, a delta bit per 32).
// The optimal scalar (Lloyd-Max) quantizer of a unit gaussian with 8 levels (3
// bits) has rel RMS 0.186, 4 levels (2 bits) 0.356, 2 levels (1 bit) 0.603 — what a per-value
// code of the whole bits a format spends at least reaches with a perfectly known scale; the
// lattice codebooks with fitted scales must do at least that well. The baseline must lose.
TEST(IQuantLattice, RoundTripBeatsBoundAndBaseline) {
  const std::vector<float> x = gaussian(256 * 64, 3);
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(format_name(c.f)));
    const double e = rel_rms(x, round_trip(c.f, x)), eb = rel_rms(x, c.base(x));
    EXPECT_LT(e, c.bound);
    EXPECT_LT(e, 0.97 * eb) << "baseline " << eb;
    std::printf("%s: rel RMS %.4f, baseline %.4f\n", std::string(format_name(c.f)).c_str(), e, eb);
  }
}

// Importance-weighted error falls when the fit is given the importance (as for the grid formats
// in GgmlGrid.ImportanceWeightedFitFavoursImportantValues).
TEST(IQuantLattice, ImportanceWeightedFitFavoursImportantValues) {
  const int64_t k = 256 * 16;
  const std::vector<float> x = gaussian(size_t(k), 11);
  std::vector<float> imp(size_t(k), 1.f);
  for (int64_t i = 0; i < k; i += 8) imp[size_t(i)] = 50.f;
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(format_name(c.f)));
    const std::vector<float> ya = round_trip(c.f, x), yb = round_trip(c.f, x, imp.data());
    double ea = 0, eb = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      ea += imp[i] * double(x[i] - ya[i]) * (x[i] - ya[i]);
      eb += imp[i] * double(x[i] - yb[i]) * (x[i] - yb[i]);
    }
    EXPECT_LT(eb, 0.9 * ea);
  }
}

// Zeros stay zeros (d = 0), a zero importance falls back to the unweighted fit, and the written
// sign bytes of IQ2_XS dequantize with the signs of the large values of x.
TEST(IQuantLattice, ZerosZeroImportanceAndSigns) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(format_name(c.f)));
    const std::vector<float> z(512, 0.f);
    for (float v : round_trip(c.f, z)) EXPECT_EQ(v, 0.f);
    const std::vector<float> x = gaussian(512, 7), zero_imp(512, 0.f);
    EXPECT_EQ(round_trip(c.f, x), round_trip(c.f, x, zero_imp.data()));
    const std::vector<float> y = round_trip(c.f, x);
    for (size_t i = 0; i < x.size(); ++i)
      if (std::fabs(x[i]) > 1.f) {
        EXPECT_GT(x[i] * y[i], 0.f) << i;
      }
  }
}

// LatticeSuperBlock (GPTQ's interface): choosing every unit for the values the scales were fitted
// to, with weight 1, is the plain search itself, so the bytes equal ggml_quantize_row's; each
// choice returns what the packed block dequantizes to; weights move the error of a choice onto
// the unweighted values; formats without a lattice writer are refused.
TEST(IQuantLattice, SuperBlockChoicesMatchWriterAndDequantizer) {
  const std::vector<float> x = gaussian(QK_K, 21);
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(format_name(c.f)));
    const size_t bytes = size_t(ggml_row_bytes(c.f, QK_K));
    std::vector<uint8_t> ref(bytes), got(bytes);
    ggml_quantize_row(c.f, x.data(), ref.data(), QK_K);
    LatticeSuperBlock b(c.f);
    b.fit_scales(x.data(), nullptr);
    const int n = b.unit();
    EXPECT_EQ(n, c.f == Format::IQ3_S ? 4 : 8);  // IQ3_XXS: two 4-value points share a sign parity
    const std::vector<float> ones(8, 1.f);
    std::vector<float> y(QK_K), back(QK_K);
    for (int o = 0; o < QK_K; o += n) b.choose(o, x.data() + o, ones.data(), y.data() + o);
    b.pack(got.data());
    EXPECT_EQ(got, ref);
    ggml_dequantize_row(c.f, got.data(), back.data(), QK_K);
    EXPECT_EQ(std::memcmp(back.data(), y.data(), sizeof(float) * QK_K), 0);

    // a target unlike the fitted values, weighted 50 on its first value of each unit
    const std::vector<float> t = gaussian(QK_K, 22);
    std::vector<float> w(8, 1.f);
    w[0] = 50.f;
    double ea = 0, eb = 0;
    for (int o = 0; o < QK_K; o += n) {
      float ya[8], yb[8];
      b.choose(o, t.data() + o, ones.data(), ya);
      b.choose(o, t.data() + o, w.data(), yb);
      for (int k = 0; k < n; ++k) {
        const double da = t[size_t(o + k)] - ya[k], db = t[size_t(o + k)] - yb[k];
        ea += w[size_t(k)] * da * da, eb += w[size_t(k)] * db * db;
      }
    }
    std::printf("%s: weighted choice error %.4g of the unweighted's\n", std::string(format_name(c.f)).c_str(), eb / ea);
    EXPECT_LT(eb, (c.f == Format::IQ1_S || c.f == Format::IQ1_M ? 0.9 : 0.8) * ea);
  }
  EXPECT_FALSE(LatticeSuperBlock::supports(Format::Q4_K));
  EXPECT_THROW(LatticeSuperBlock{Format::IQ4_XS}, Error);
}

// The CLI writes llama.cpp's IQ3_S recipe with it, and lmq runs the file.
TEST(IQuantLattice, QuantizeSchemeIq3sThroughCli) {
  const std::string dir = test::temp_dir(), out = dir + "/iq3s.gguf";
  auto r = test::run_lmq({"quantize", test::shared_path("models/lmq-llama3-9m"), "-o", out, "--format", "gguf",
                          "--scheme", "iq3_s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("GGUF iq3_s"), std::string::npos) << r.out;
  r = test::run_lmq({"eval", out, "--text", test::shared_path("text/docs-valid.txt"), "--windows", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t p = r.out.find("ppl ");
  ASSERT_NE(p, std::string::npos) << r.out;
  const double ppl = std::stod(r.out.substr(p + 4));
  EXPECT_GT(ppl, 1.0);
  EXPECT_LT(ppl, 200.0);  // the F32 model scores ~40 here; a broken writer gives thousands
}

// --override puts IQ2_XS on chosen tensors of another scheme's file.
TEST(IQuantLattice, OverrideIq2xsThroughCli) {
  const std::string dir = test::temp_dir(), out = dir + "/ov.gguf";
  auto r = test::run_lmq({"quantize", test::shared_path("models/lmq-llama3-9m"), "-o", out, "--format", "gguf",
                          "--scheme", "q8_0", "--override", "ffn_down=iq2_xs"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t p = r.out.find("blk.0.ffn_down.weight");
  ASSERT_NE(p, std::string::npos) << r.out;
  EXPECT_NE(r.out.substr(p, r.out.find('\n', p) - p).find(" iq2_xs "), std::string::npos) << r.out;
  r = test::run_lmq({"eval", out, "--text", test::shared_path("text/docs-valid.txt"), "--windows", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ppl "), std::string::npos) << r.out;
}

// `--scheme iq3_xxs` (attn_k in IQ2_S on this model, the rest IQ3_XXS / IQ3_S) with GPTQ: the
// recipe's types are written, IQ2_S among them, and the file runs near the float model.
TEST(IQuantLattice, GptqIq3xxsSchemeThroughCli) {
  const std::string model = test::shared_path("models/lmq-llama3-9m");
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " missing";
  const std::string dir = test::temp_dir(), out = dir + "/iq3xxs.gguf", text = test::shared_path("text/docs-valid.txt");
  auto r = test::run_lmq({"quantize", model, "-o", out, "--format", "gguf", "--scheme", "iq3_xxs", "--method", "gptq",
                          "--calib", text, "--calib-samples", "2", "--calib-len", "64"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* type : {" iq2_s ", " iq3_xxs "}) EXPECT_NE(r.out.find(type), std::string::npos) << type << r.out;
  const size_t k = r.out.find("blk.0.attn_k.weight");
  ASSERT_NE(k, std::string::npos) << r.out;
  EXPECT_NE(r.out.substr(k, r.out.find('\n', k) - k).find(" iq2_s "), std::string::npos) << r.out;
  r = test::run_lmq({"eval", out, "--text", text, "--windows", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t p = r.out.find("ppl ");
  ASSERT_NE(p, std::string::npos) << r.out;
  EXPECT_LT(std::stod(r.out.substr(p + 4)), 200.0);  // the F32 model scores ~40 here
}
