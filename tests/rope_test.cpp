// RoPE settings and inverse frequencies (include/lmq/model/rope.h) against transformers'
// modeling_rope_utils formulas, written out again here in double the way the Python reads, and
// against ../shared/models/lmq-llama3-9m/config.json's llama3 settings (legacy config style).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <numbers>

#include "lmq/error.h"
#include "lmq/mapped_file.h"
#include "lmq/model/rope.h"
#include "test_support.h"

using namespace lmq;
using json = nlohmann::json;

namespace {

constexpr double kPi = std::numbers::pi;

std::vector<double> base_inv_freq(double base, int dim) {  // 1 / base ** (arange(0, dim, 2) / dim)
  std::vector<double> r;
  for (int i = 0; i < dim; i += 2) r.push_back(1.0 / std::pow(base, double(i) / dim));
  return r;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], std::abs(want[i]) * 1e-6) << "index " << i;
}

// _compute_llama3_parameters, step by step as in Python (torch.where on the whole vector).
std::vector<double> llama3_reference(double base, int dim, double factor, double low, double high, double old_ctx) {
  const std::vector<double> inv = base_inv_freq(base, dim);
  std::vector<double> out;
  for (const double f : inv) {
    const double wavelen = 2 * kPi / f;
    const double llama = wavelen > old_ctx / low ? f / factor : f;
    const double smooth = (old_ctx / wavelen - low) / (high - low);
    const double smoothed = (1 - smooth) * llama / factor + smooth * llama;
    const bool medium = !(wavelen < old_ctx / high) && !(wavelen > old_ctx / low);
    out.push_back(medium ? smoothed : llama);
  }
  return out;
}

// _compute_yarn_parameters (transformers 5), with its defaults.
std::pair<std::vector<double>, double> yarn_reference(double base, int dim, double factor, double orig,
                                                      double beta_fast = 32, double beta_slow = 1, bool truncate = true) {
  auto correction_dim = [&](double rot) { return dim * std::log(orig / (rot * 2 * kPi)) / (2 * std::log(base)); };
  double low = correction_dim(beta_fast), high = correction_dim(beta_slow);
  if (truncate) low = std::floor(low), high = std::ceil(high);
  low = std::max(low, 0.0), high = std::min(high, double(dim - 1));
  if (low == high) high += 0.001;
  std::vector<double> out;
  for (int i = 0; i < dim / 2; ++i) {
    const double pos_freq = std::pow(base, double(2 * i) / dim);
    const double extrapolation = 1.0 / pos_freq, interpolation = 1.0 / (factor * pos_freq);
    const double ramp = std::min(1.0, std::max(0.0, (i - low) / (high - low)));
    const double extrapolation_factor = 1 - ramp;
    out.push_back(interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor);
  }
  return {out, factor <= 1 ? 1.0 : 0.1 * std::log(factor) + 1.0};
}

TEST(Rope, Llama3ConfigOfTheSharedModel) {
  const std::string path = lmq::test::shared_path("models/lmq-llama3-9m/config.json");
  const json config = json::parse(read_text_file(path));
  const RopeParams p = RopeParams::from_config(config, path);
  EXPECT_EQ(p.type, RopeType::Llama3);
  EXPECT_EQ(p.theta, 500000.0);
  EXPECT_EQ(p.factor, 32.0);
  EXPECT_EQ(p.low_freq_factor, 1.0);
  EXPECT_EQ(p.high_freq_factor, 4.0);
  EXPECT_EQ(p.original_max_position_embeddings, 8192);
  const int head_dim = config.at("head_dim");
  const RopeFrequencies f = rope_frequencies(p, head_dim);
  EXPECT_EQ(f.attention_scaling, 1.0f);
  expect_close(f.inv_freq, llama3_reference(500000.0, head_dim, 32.0, 1.0, 4.0, 8192.0));
  // The fastest rotation keeps its frequency; the slowest is slowed 32-fold.
  EXPECT_EQ(f.inv_freq.front(), 1.0f);
  EXPECT_NEAR(f.inv_freq.back(), 1.0 / std::pow(500000.0, 62.0 / 64) / 32, 1e-12);
}

// The same settings in transformers 5's style give the same parameters.
TEST(Rope, BothConfigStylesAgree) {
  const json legacy = {{"rope_theta", 500000.0}, {"max_position_embeddings", 131072},
                       {"rope_scaling", {{"type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}}}};
  const json v5 = {{"max_position_embeddings", 131072},
                   {"rope_parameters", {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0},
                                        {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                                        {"original_max_position_embeddings", 8192}}}};
  const RopeFrequencies a = rope_frequencies(RopeParams::from_config(legacy, "legacy.json"), 128);
  const RopeFrequencies b = rope_frequencies(RopeParams::from_config(v5, "v5.json"), 128);
  EXPECT_EQ(a.inv_freq, b.inv_freq);
  expect_close(a.inv_freq, llama3_reference(500000.0, 128, 8.0, 1.0, 4.0, 8192.0));
  // No scaling at all: default RoPE with θ from either place, 10000 when absent.
  expect_close(rope_frequencies(RopeParams::from_config({{"rope_theta", 1e6}}, "c.json"), 96).inv_freq,
               base_inv_freq(1e6, 96));
  expect_close(rope_frequencies(RopeParams::from_config({{"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e6}}}}, "c.json"), 96).inv_freq,
               base_inv_freq(1e6, 96));
  expect_close(rope_frequencies(RopeParams::from_config(json::object(), "c.json"), 64).inv_freq, base_inv_freq(1e4, 64));
}

TEST(Rope, LinearAndPartialRotary) {
  const json c = {{"rope_theta", 10000.0}, {"partial_rotary_factor", 0.5},
                  {"rope_scaling", {{"rope_type", "linear"}, {"factor", 4.0}}}};
  const RopeFrequencies f = rope_frequencies(RopeParams::from_config(c, "c.json"), 128);
  std::vector<double> want = base_inv_freq(10000.0, 64);
  for (double& w : want) w /= 4.0;
  expect_close(f.inv_freq, want);
}

TEST(Rope, YarnDefaultsAndAttentionFactor) {
  const json c = {{"rope_theta", 1e6}, {"max_position_embeddings", 131072},
                  {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}}}};
  const RopeParams p = RopeParams::from_config(c, "c.json");
  EXPECT_EQ(p.beta_fast, 32.0);
  EXPECT_EQ(p.beta_slow, 1.0);
  const RopeFrequencies f = rope_frequencies(p, 128);
  const auto [want, attention] = yarn_reference(1e6, 128, 4.0, 32768);
  expect_close(f.inv_freq, want);
  EXPECT_FLOAT_EQ(f.attention_scaling, float(attention));
  EXPECT_FLOAT_EQ(f.attention_scaling, float(0.1 * std::log(4.0) + 1));
  // Untruncated ramp, explicit betas.
  json u = c;
  u["rope_scaling"].update({{"truncate", false}, {"beta_fast", 16}, {"beta_slow", 2}});
  expect_close(rope_frequencies(RopeParams::from_config(u, "c.json"), 128).inv_freq,
               yarn_reference(1e6, 128, 4.0, 32768, 16, 2, false).first);
}

// DeepSeek-style: no factor (max / original), mscale over mscale_all_dim as the attention factor.
TEST(Rope, YarnMscaleAndImplicitFactor) {
  const json c = {{"rope_theta", 10000.0}, {"max_position_embeddings", 163840},
                  {"rope_parameters", {{"rope_type", "yarn"}, {"mscale", 0.707}, {"mscale_all_dim", 1.0},
                                       {"original_max_position_embeddings", 4096}}}};
  const RopeParams p = RopeParams::from_config(c, "c.json");
  EXPECT_EQ(p.factor, 40.0);
  const RopeFrequencies f = rope_frequencies(p, 64);
  const double m = (0.1 * 0.707 * std::log(40.0) + 1) / (0.1 * 1.0 * std::log(40.0) + 1);
  EXPECT_FLOAT_EQ(f.attention_scaling, float(m));
  expect_close(f.inv_freq, yarn_reference(10000.0, 64, 40.0, 4096).first);
}

// Dynamic NTK: the default frequencies up to max_position_embeddings, a larger base past it.
TEST(Rope, DynamicNtkPastTheContext) {
  const json c = {{"rope_theta", 10000.0}, {"max_position_embeddings", 2048},
                  {"rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}}};
  const RopeParams p = RopeParams::from_config(c, "c.json");
  expect_close(rope_frequencies(p, 64, 100).inv_freq, base_inv_freq(10000.0, 64));
  expect_close(rope_frequencies(p, 64, 2048).inv_freq, base_inv_freq(10000.0, 64));
  const double base = 10000.0 * std::pow(2.0 * 4096 / 2048 - 1, 64.0 / 62);
  expect_close(rope_frequencies(p, 64, 4096).inv_freq, base_inv_freq(base, 64));
}

void expect_rope_error(const json& c, const std::string& key, const std::string& problem) {
  try {
    const RopeParams p = RopeParams::from_config(c, "model/config.json");
    (void)rope_frequencies(p, 64);
    ADD_FAILURE() << "no error for " << c.dump();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(key), std::string::npos) << msg;
    EXPECT_NE(msg.find(problem), std::string::npos) << msg;
  }
}

TEST(BadInputRope, UnknownType) {
  expect_rope_error({{"rope_scaling", {{"type", "longrope"}, {"factor", 2.0}}}}, "rope_scaling.type", "'longrope' is not supported");
  expect_rope_error({{"rope_parameters", {{"rope_type", "mrope"}}}}, "rope_parameters.rope_type", "'mrope' is not supported");
  expect_rope_error({{"rope_scaling", {{"rope_type", 3}}}}, "rope_scaling.rope_type", "must be a string");
}

TEST(BadInputRope, MissingParameters) {
  expect_rope_error({{"rope_scaling", {{"type", "linear"}}}}, "rope_scaling.factor", "is missing");
  expect_rope_error({{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"high_freq_factor", 4.0},
                                       {"original_max_position_embeddings", 8192}}}},
                    "rope_scaling.low_freq_factor", "is missing");
  // No original context and no max_position_embeddings to default it to.
  expect_rope_error({{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}}},
                    "rope_scaling.original_max_position_embeddings", "absurd");
  expect_rope_error({{"rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}}}, "max_position_embeddings", "absurd");
}

TEST(BadInputRope, AbsurdParameters) {
  expect_rope_error({{"rope_theta", -5.0}}, "rope_theta", "absurd");
  expect_rope_error({{"rope_theta", "big"}}, "rope_theta", "must be a number");
  expect_rope_error({{"rope_scaling", {{"type", "linear"}, {"factor", 0.5}}}}, "rope_scaling.factor", "absurd");
  expect_rope_error({{"rope_scaling", {{"type", "linear"}, {"factor", 1e300}}}}, "rope_scaling.factor", "absurd");
  expect_rope_error({{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}}}},
                    "rope_scaling.high_freq_factor", "must be > low_freq_factor");
  expect_rope_error({{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 0}}}},
                    "original_max_position_embeddings", "absurd");
  expect_rope_error({{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}, {"attention_factor", -1.0},
                                       {"original_max_position_embeddings", 4096}}}},
                    "rope_scaling.attention_factor", "absurd");
  expect_rope_error({{"partial_rotary_factor", 1.5}}, "partial_rotary_factor", "absurd");
  expect_rope_error({{"rope_scaling", 7}}, "rope_scaling", "must be an object");
  expect_rope_error({{"rope_parameters", {{"full_attention", {{"rope_type", "default"}}}}}}, "full_attention",
                    "per-layer-type");
  expect_rope_error({{"partial_rotary_factor", 0.3}}, "RoPE", "rotary dims");
  EXPECT_THROW((void)RopeParams::from_config_text("{\"rope_theta\": ", "c.json"), Error);
}

}  // namespace
