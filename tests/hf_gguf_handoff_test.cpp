// GPTQ / AWQ checkpoints into GGUF without a second rounding (quant::carry_exact_blocks): a
// crafted GPTQ symmetric 4-bit g32 checkpoint converted with --scheme q4_0 must give GGUF
// weights whose dequantized values are the checkpoint's own, bit for bit, and the same KLD
// against the float model; asymmetric 4-bit g32 goes to Q4_1 exactly; what a block type cannot
// hold is requantized, and the report says which path each tensor took.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "hf_checkpoint_support.h"
#include "lmq/model/model.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::test;
using nlohmann::json;

namespace {

// llama.cpp's Q/K row order (convert_hf_to_gguf's permute): row h·d + 2i + a of the GGUF
// tensor is HF row h·d + a·d/2 + i.
std::vector<float> permute_heads(const std::vector<float>& w, int64_t rows, int64_t cols, int heads) {
  const int64_t d = rows / heads, half = d / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t a = 0; a < 2; ++a)
        std::copy_n(w.begin() + (h * d + a * half + i) * cols, cols, out.begin() + (h * d + 2 * i + a) * cols);
  return out;
}

json quantize_json(const std::string& dir, const std::string& out, const std::string& scheme) {
  const RunResult r = run_lmq({"quantize", dir, "-o", out, "--format", "gguf", "--scheme", scheme, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

std::map<std::string, std::string> paths_by_hf_name(const json& j) {
  std::map<std::string, std::string> m;
  for (const auto& t : j["tensors"]) m[t["hf_name"].get<std::string>()] = t["path"].get<std::string>();
  return m;
}

// Every linear took the exact path, and the GGUF's blocks, as stored, dequantize to the
// checkpoint's values bit for bit (Q and K are skipped: their rows are in llama.cpp's order).
void expect_carried_bit_for_bit(const Crafted& c, const std::map<std::string, std::string>& paths,
                                const std::string& gguf, Format want_format) {
  const auto g = Model::load(gguf, LoadOptions{.repack_ggml = false, .ggml_in_place = {}});
  for (const auto& [name, want] : c.expected) {
    EXPECT_EQ(paths.at(name), "carried") << name;
    if (name.find("q_proj") != std::string::npos || name.find("k_proj") != std::string::npos) continue;
    const Tensor& t = *g->find(name);
    ASSERT_EQ(t.format, want_format) << name;
    std::vector<float> got(want.size());
    dequantize_rows(t, 0, t.rows(), got.data());
    ASSERT_EQ(got, want) << name;
  }
}

// Float activations for both (a GGUF runs with int8 activations unless told otherwise), so that
// equal weights give equal distances.
double kld_mean(const std::string& model, const std::string& base) {
  const RunResult r = run_lmq({"eval", model, "--base", base, "--text", shared_path("text/docs-valid.txt"),
                               "--windows", "4", "--ctx", "128", "--act-quant", "none", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out)["kld_mean"].get<double>();
}

}  // namespace

TEST(HfGgufHandoff, GptqSym4BitG32IntoQ4_0CarriesTheCodesExactly) {
  const Crafted c = craft_checkpoint({.method = "gptq", .bits = 4, .group = 32, .sym = true});
  const std::string gguf = temp_dir() + "/gptq-q4_0.gguf";
  const json j = quantize_json(c.dir, gguf, "q4_0");
  const auto paths = paths_by_hf_name(j);
  for (const auto& [name, _] : c.expected) EXPECT_EQ(paths.at(name), "carried") << name;
  EXPECT_EQ(j["carried"].get<int>(), int(c.expected.size()));
  EXPECT_EQ(j["requantized"].get<int>(), 0);

  // The GGUF's dequantized weights are the checkpoint's (Q/K rows in llama.cpp's order).
  const auto g = Model::load(gguf, LoadOptions{.repack_ggml = false, .ggml_in_place = {}});  // the blocks as stored
  const ModelConfig& cfg = g->config();
  for (const auto& [name, want] : c.expected) {
    const Tensor* t = g->find(name);
    ASSERT_TRUE(t) << name;
    ASSERT_EQ(t->format, Format::Q4_0) << name;
    std::vector<float> got(want.size());
    dequantize_rows(*t, 0, t->rows(), got.data());
    const bool q = name.find("q_proj") != std::string::npos, k = name.find("k_proj") != std::string::npos;
    const std::vector<float> ref =
        q || k ? permute_heads(want, t->rows(), t->cols(), q ? cfg.n_heads : cfg.n_kv_heads) : want;
    ASSERT_EQ(got, ref) << name;
  }
  // Same weights, so the same distance to the float model (up to float summation order).
  const std::string base = shared_path("models/lmq-llama-25m");
  const double kg = kld_mean(gguf, base), kc = kld_mean(c.dir, base);
  std::printf("[ kld      ] vs float: GGUF q4_0 %.6f, GPTQ checkpoint %.6f\n", kg, kc);
  EXPECT_GT(kc, 0.0);
  EXPECT_NEAR(kg, kc, 1e-3 * kc + 1e-6) << "GGUF " << kg << " checkpoint " << kc;
}

TEST(HfGgufHandoff, AsymmetricG32IntoQ4_1CarriesExactlyAndOtherTypesRequantize) {
  // Coarse scales, so that Q4_1's minimum −s·z is exact in fp16.
  const Crafted c =
      craft_checkpoint({.method = "awq", .bits = 4, .group = 32, .sym = false, .coarse_scales = true});
  const std::string gguf = temp_dir() + "/awq-q4_1.gguf";
  const auto paths = paths_by_hf_name(quantize_json(c.dir, gguf, "q4_1"));
  expect_carried_bit_for_bit(c, paths, gguf, Format::Q4_1);
  // Q4_0 cannot hold zero points other than 8: every linear is requantized, and says so.
  const auto p0 = paths_by_hf_name(quantize_json(c.dir, temp_dir() + "/awq-q4_0.gguf", "q4_0"));
  for (const auto& [name, _] : c.expected) EXPECT_EQ(p0.at(name), "requantized") << name;
}

TEST(HfGgufHandoff, GptqSym8BitG32IntoQ8_0CarriesTheCodesExactly) {
  const Crafted c = craft_checkpoint({.method = "gptq", .bits = 8, .group = 32, .sym = true});
  const std::string gguf = temp_dir() + "/gptq-q8_0.gguf";
  const auto paths = paths_by_hf_name(quantize_json(c.dir, gguf, "q8_0"));
  expect_carried_bit_for_bit(c, paths, gguf, Format::Q8_0);
}

TEST(HfGgufHandoff, ActOrderIsRequantized) {
  const Crafted c = craft_checkpoint({.method = "gptq", .bits = 4, .group = 32, .sym = true, .act_order = true});
  const RunResult r = run_lmq({"quantize", c.dir, "-o", temp_dir() + "/ao.gguf", "--format", "gguf", "--scheme", "q4_0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("requantized from the dequantized weights"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0 tensors carried exactly"), std::string::npos) << r.out;
}
