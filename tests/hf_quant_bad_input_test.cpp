// Bad quantized Hugging Face checkpoints (GPTQ / AWQ / compressed-tensors): each gives one
// clear error line naming the file and the problem, exit 1. The checkpoints are a tiny config
// and one quantized linear (q_proj of layer 0, 64 × 64): the linears are read before anything
// else, and the control test shows that the intact linear gets past them.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lmq/codecs/hf_packing.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::test;
using nlohmann::json;

namespace {

constexpr int64_t kOut = 64, kIn = 64, kGroups = 2;  // GPTQ 4-bit, group 32
const std::string kPrefix = "model.layers.0.self_attn.q_proj";

json tiny_config(const json& qc) {
  return {{"model_type", "llama"}, {"hidden_size", 64}, {"num_hidden_layers", 1}, {"num_attention_heads", 2},
          {"num_key_value_heads", 2}, {"intermediate_size", 64}, {"vocab_size", 32},
          {"max_position_embeddings", 64}, {"quantization_config", qc}};
}
json gptq_config(int bits = 4) {
  return {{"quant_method", "gptq"}, {"bits", bits}, {"group_size", 32}, {"sym", true}, {"desc_act", false},
          {"checkpoint_format", "gptq"}};
}

std::string zeros_of(int64_t n, int64_t elem) { return std::string(size_t(n * elem), '\0'); }

// A valid GPTQ 4-bit g32 linear (all codes 0, v1 zero points stored 0, i.e. 1).
std::vector<StEntry> gptq_linear() {
  return {{kPrefix + ".qweight", "I32", {kIn * 4 / 32, kOut}, zeros_of(kIn * 4 / 32 * kOut, 4)},
          {kPrefix + ".qzeros", "I32", {kGroups, kOut * 4 / 32}, zeros_of(kGroups * kOut * 4 / 32, 4)},
          {kPrefix + ".scales", "F16", {kGroups, kOut}, zeros_of(kGroups * kOut, 2)},
          {kPrefix + ".g_idx", "I32", {kIn}, bytes_of(hf::sequential_g_idx(kIn, 32))}};
}

StEntry& entry(std::vector<StEntry>& e, const std::string& suffix) {
  return *std::find_if(e.begin(), e.end(), [&](const StEntry& x) { return x.name == kPrefix + "." + suffix; });
}
void drop(std::vector<StEntry>& e, const std::string& suffix) {
  e.erase(std::find_if(e.begin(), e.end(), [&](const StEntry& x) { return x.name == kPrefix + "." + suffix; }));
}

std::string checkpoint(const json& qc, const std::vector<StEntry>& tensors) {
  const std::string d = temp_dir() + "/ckpt";
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  write_file(d + "/config.json", tiny_config(qc).dump());
  write_safetensors(d + "/model.safetensors", tensors);
  return d;
}

// The rule for every bad input: exit 1, one line "lmq: error: ...", naming each needle.
void expect_error(const std::string& dir, const std::vector<std::string>& needles) {
  const RunResult r = run_lmq({"inspect", dir});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  EXPECT_EQ(r.err.rfind("lmq: error: ", 0), 0u) << r.err;
  for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.find("runtime error"), std::string::npos);
}

}  // namespace

TEST(BadInputHfQuant, TheIntactLinearGetsPastTheReader) {
  // The only complaint left is the missing rest of the model.
  expect_error(checkpoint(gptq_config(), gptq_linear()), {"missing tensor 'model.embed_tokens.weight'"});
}

TEST(BadInputHfQuant, UnknownQuantMethod) {
  json qc = gptq_config();
  qc["quant_method"] = "bitsandbytes";
  expect_error(checkpoint(qc, gptq_linear()), {"config.json", "unknown quant_method 'bitsandbytes'"});
}

TEST(BadInputHfQuant, BitsNotAllowedByTheFormat) {
  expect_error(checkpoint(gptq_config(5), gptq_linear()), {"config.json", "GPTQ bits 5 not allowed"});
  const json awq = {{"quant_method", "awq"}, {"bits", 3}, {"group_size", 32}, {"version", "gemm"}};
  expect_error(checkpoint(awq, gptq_linear()), {"config.json", "AWQ bits 3 not allowed"});
  json ct = {{"quant_method", "compressed-tensors"}, {"format", "pack-quantized"}};
  ct["config_groups"]["group_0"]["weights"] = {{"num_bits", 3}, {"type", "int"}, {"strategy", "channel"}};
  expect_error(checkpoint(ct, gptq_linear()), {"config.json", "num_bits 3 not allowed"});
}

TEST(BadInputHfQuant, ShapesThatDisagreeWithBitsOrGroupSize) {
  auto e = gptq_linear();  // 3 bits stated, 4-bit words stored: 8 words make 85.3 inputs
  expect_error(checkpoint(gptq_config(3), e), {"model.safetensors", kPrefix + ".qweight", "multiple of 32"});
  e = gptq_linear();  // one more word of inputs (72): group_size 32 makes 3 groups, the scales hold 2
  entry(e, "qweight") = {kPrefix + ".qweight", "I32", {9, kOut}, zeros_of(9 * kOut, 4)};
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", kPrefix + ".scales", "holds 2 groups", "make 3"});
  e = gptq_linear();  // qzeros for 3 groups
  entry(e, "qzeros") = {kPrefix + ".qzeros", "I32", {3, kOut * 4 / 32}, zeros_of(3 * kOut * 4 / 32, 4)};
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", kPrefix + ".qzeros", "shape [3, 8]"});
}

TEST(BadInputHfQuant, GIdxOutOfRange) {
  auto e = gptq_linear();
  std::vector<int32_t> g = hf::sequential_g_idx(kIn, 32);
  g[5] = 7;
  entry(e, "g_idx").bytes = bytes_of(g);
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", kPrefix + ".g_idx", "g_idx[5] = 7", "outside [0, 2)"});
}

TEST(BadInputHfQuant, ZeroPointOutsideTheCodeRange) {
  auto e = gptq_linear();  // v1 stores z − 1: a stored 15 means 16, beyond 4 bits
  entry(e, "qzeros").bytes = std::string(size_t(kGroups * kOut * 4 / 32 * 4), '\xff');
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", kPrefix + ".qzeros", "zero point 16", "4-bit code range"});
}

TEST(BadInputHfQuant, MissingQzerosOrScales) {
  auto e = gptq_linear();
  drop(e, "qzeros");
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", "has no '" + kPrefix + ".qzeros'"});
  e = gptq_linear();
  drop(e, "scales");
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", "has no '" + kPrefix + ".scales'"});
  e = gptq_linear();  // the pieces without their qweight
  drop(e, "qweight");
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", kPrefix, "'qweight' is missing"});
}

TEST(BadInputHfQuant, PackedTensorWithTheWrongDtype) {
  auto e = gptq_linear();
  entry(e, "qweight").dtype = "F32";
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", kPrefix + ".qweight", "dtype F32, expected I32"});
  e = gptq_linear();
  entry(e, "qzeros").dtype = "F32";
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", kPrefix + ".qzeros", "dtype F32, expected I32"});
  e = gptq_linear();
  entry(e, "scales") = {kPrefix + ".scales", "I16", {kGroups, kOut}, zeros_of(kGroups * kOut, 2)};
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", kPrefix + ".scales", "dtype I16"});
}

TEST(BadInputHfQuant, PackedAndFloatWeightOfOneLinear) {
  auto e = gptq_linear();
  e.push_back({kPrefix + ".weight", "F16", {kOut, kIn}, zeros_of(kOut * kIn, 2)});
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", kPrefix + ".qweight", "both claim the same linear"});
}

TEST(BadInputHfQuant, ActOrderGroupsOfTheWrongSize) {
  auto e = gptq_linear();  // 40 inputs in group 0, 24 in group 1: not a layout of group_size 32
  std::vector<int32_t> g(kIn, 1);
  std::fill(g.begin(), g.begin() + 40, 0);
  std::swap(g[0], g[63]);  // non-monotone
  entry(e, "g_idx").bytes = bytes_of(g);
  expect_error(checkpoint(gptq_config(), e), {"model.safetensors", kPrefix + ".g_idx", "do not hold 32 inputs"});
}
