// GGUF export (`lmq quantize --format gguf`): byte-identical to llama.cpp's own quantizations
// of the shared models (../shared/gguf/, llama.cpp b4748) wherever both files store a tensor in
// the same type, metadata keys a superset of llama.cpp's, llama.cpp's per-tensor type choices
// for Q4_K_M / Q3_K_M, the K-quant reference quantizers, and lmq loading and running its exports.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "lmq/error.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/formats/gguf.h"
#include "lmq/quant/gguf_export.h"
#include "lmq/formats/gguf_writer.h"
#include "lmq/model/model.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::test;
using json = nlohmann::json;

namespace {

std::string model_path(const std::string& m) { return shared_path("models/" + m); }
std::string fixture(const std::string& f) { return shared_path("gguf/" + f); }

#define REQUIRE_FILE(p) \
  if (!std::filesystem::exists(p)) GTEST_SKIP() << "missing fixture " << (p)

// Exports `model` with --format gguf (once per scheme and process) and returns the path.
std::string exported(const std::string& model, const std::string& scheme) {
  static std::map<std::string, std::string> done;
  const std::string key = model + "/" + scheme;
  if (auto it = done.find(key); it != done.end()) return it->second;
  static const std::string dir = temp_dir();
  const std::string out = dir + "/" + model + "-" + scheme + ".gguf";
  auto r = run_lmq({"quantize", model_path(model), "-o", out, "--format", "gguf", "--scheme", scheme, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  done[key] = out;
  return out;
}

struct Comparison {
  int same_type = 0, identical = 0, total = 0;
  std::vector<std::string> differing;
  std::vector<std::string> type_mismatch;
};

Comparison compare_tensors(const GgufFile& ours, const GgufFile& ref) {
  Comparison c;
  for (const Tensor& rt : ref.tensors()) {
    ++c.total;
    const Tensor* ot = ours.find(rt.name);
    if (!ot) {
      c.type_mismatch.push_back(rt.name + " (missing)");
      continue;
    }
    EXPECT_EQ(ot->shape, rt.shape) << rt.name;
    if (ot->format != rt.format) {
      c.type_mismatch.push_back(rt.name);
      continue;
    }
    ++c.same_type;
    if (ot->nbytes == rt.nbytes && std::memcmp(ot->data, rt.data, rt.nbytes) == 0) ++c.identical;
    else c.differing.push_back(rt.name);
  }
  EXPECT_EQ(ours.tensors().size(), ref.tensors().size());
  return c;
}

void expect_keys_superset(const GgufFile& ours, const GgufFile& ref) {
  for (const auto& [k, v] : ref.metadata()) {
    EXPECT_TRUE(ours.has(k)) << "missing metadata key " << k;
    if (!ours.has(k)) continue;
    const GgufValue& o = ours.get(k);
    EXPECT_EQ(o.type, v.type) << k;
    // Everything but the naming keys is the same value as llama.cpp's converter writes.
    if (k != "general.file_type" && k != "general.name" && k != "general.basename" && k != "general.size_label") {
      EXPECT_TRUE(o == v) << "metadata " << k << " differs";
    }
  }
}

void expect_matches_fixture(const std::string& model, const std::string& scheme, const std::string& fix) {
  REQUIRE_FILE(fixture(fix));
  REQUIRE_FILE(model_path(model));
  const std::string out = exported(model, scheme);
  GgufFile ours(out), ref(fixture(fix));
  expect_keys_superset(ours, ref);
  EXPECT_EQ(ours.get_u32("general.file_type"), ref.get_u32("general.file_type"));
  const Comparison c = compare_tensors(ours, ref);
  EXPECT_TRUE(c.type_mismatch.empty()) << c.type_mismatch.size() << " tensors differ in type, first "
                                       << c.type_mismatch.front();
  EXPECT_EQ(c.identical, c.same_type) << c.differing.size() << " tensors differ in bytes, first "
                                      << (c.differing.empty() ? "" : c.differing.front());
  EXPECT_EQ(c.same_type, c.total);
  std::printf("%s %s: %d/%d tensors byte-identical to llama.cpp's; file %ju bytes vs llama.cpp %ju\n", model.c_str(),
              scheme.c_str(), c.identical, c.total, uintmax_t(std::filesystem::file_size(out)),
              uintmax_t(std::filesystem::file_size(fixture(fix))));
}

}  // namespace

TEST(GgufExport, LlamaQ8_0ByteIdenticalToLlamaCpp) {
  expect_matches_fixture("lmq-llama-25m", "q8_0", "lmq-llama-25m-Q8_0.gguf");
}

TEST(GgufExport, LlamaQ4_0ByteIdenticalToLlamaCpp) {
  // llama.cpp keeps the tied embedding at Q8_0 (output rule: Q6_K, which falls back to Q8_0 on
  // 384-wide rows); lmq makes the same choice, so every tensor is comparable.
  expect_matches_fixture("lmq-llama-25m", "q4_0", "lmq-llama-25m-Q4_0.gguf");
}

TEST(GgufExport, Qwen2Q4_K_MByteIdenticalToLlamaCpp) {
  expect_matches_fixture("lmq-qwen2-21m", "q4_k_m", "lmq-qwen2-21m-Q4_K_M.gguf");
}

TEST(GgufExport, Qwen2Q3_K_MByteIdenticalToLlamaCpp) {
  expect_matches_fixture("lmq-qwen2-21m", "q3_k_m", "lmq-qwen2-21m-Q3_K_M.gguf");
}

// Re-quantizing the dequantized values of llama.cpp's K-quant tensors gives back their bytes
// (a fixed point of the reference quantizer is not guaranteed in general, so count blocks).
TEST(GgufExport, KQuantRequantizeFixtureBlocks) {
  REQUIRE_FILE(fixture("lmq-qwen2-21m-Q4_K_M.gguf"));
  GgufFile ref(fixture("lmq-qwen2-21m-Q4_K_M.gguf"));
  for (Format f : {Format::Q4_K, Format::Q6_K}) {
    uint64_t blocks = 0, same = 0;
    for (const Tensor& t : ref.tensors()) {
      if (t.format != f) continue;
      const int64_t n = t.numel();
      std::vector<float> x(static_cast<size_t>(n));
      ggml_dequantize_row(f, t.data, x.data(), n);
      std::vector<uint8_t> q(t.nbytes);
      ggml_quantize_row(f, x.data(), q.data(), n);
      const size_t bb = ggml_block_bytes(f);
      for (size_t b = 0; b < t.nbytes / bb; ++b, ++blocks) same += std::memcmp(q.data() + b * bb, t.data + b * bb, bb) == 0;
    }
    ASSERT_GT(blocks, 0u);
    std::printf("%s: %ju/%ju blocks reproduced by re-quantizing their dequantized values\n",
                std::string(format_name(f)).c_str(), uintmax_t(same), uintmax_t(blocks));
    EXPECT_GT(double(same) / double(blocks), 0.5);
  }
}

// Round-trip error of every reference quantizer on Gaussian rows, against bounds a few times
// the textbook figures for that many bits.
TEST(GgufExport, ReferenceQuantizersRoundTripError) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t k = 4096;
  std::vector<float> x(k), y(k);
  for (auto& v : x) v = nd(rng) * 0.02f;
  const std::vector<std::pair<Format, double>> bounds = {
      {Format::Q8_0, 0.006}, {Format::Q6_K, 0.02}, {Format::Q5_K, 0.04}, {Format::Q5_0, 0.05}, {Format::Q5_1, 0.05},
      {Format::Q4_K, 0.08},  {Format::Q4_0, 0.11}, {Format::Q4_1, 0.11}, {Format::Q3_K, 0.2},  {Format::Q2_K, 0.4}};
  double prev = 0;
  for (const auto& [f, bound] : bounds) {
    std::vector<uint8_t> q(ggml_row_bytes(f, k));
    ggml_quantize_row(f, x.data(), q.data(), k);
    ggml_dequantize_row(f, q.data(), y.data(), k);
    double e = 0, r = 0;
    for (int64_t i = 0; i < k; ++i) {
      e += double(x[i] - y[i]) * (x[i] - y[i]);
      r += double(x[i]) * x[i];
    }
    const double rel = std::sqrt(e / r);
    std::printf("%-5s rel RMS %.5f\n", std::string(format_name(f)).c_str(), rel);
    EXPECT_LT(rel, bound) << format_name(f);
    (void)prev;
  }
  // All-zero and constant blocks quantize to exact values.
  std::vector<float> z(256, 0.f);
  for (Format f : {Format::Q2_K, Format::Q3_K, Format::Q4_K, Format::Q5_K, Format::Q6_K}) {
    std::vector<uint8_t> q(ggml_row_bytes(f, 256));
    ggml_quantize_row(f, z.data(), q.data(), 256);
    ggml_dequantize_row(f, q.data(), y.data(), 256);
    for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], 0.f) << format_name(f);
  }
  EXPECT_THROW(ggml_quantize_row(Format::Q4_K, x.data(), nullptr, 100), Error);
}

TEST(GgufExport, TypeRulesAndFallbacks) {
  REQUIRE_FILE(model_path("lmq-llama-25m"));
  // 384-wide rows: K-quants fall back (q4_K→q5_0, q6_K→q8_0 for the tied embedding).
  const std::string out = exported("lmq-llama-25m", "q4_k");
  GgufFile g(out);
  EXPECT_EQ(g.find("blk.0.attn_q.weight")->format, Format::Q5_0);
  EXPECT_EQ(g.find("token_embd.weight")->format, Format::Q8_0);
  EXPECT_EQ(g.find("blk.0.attn_norm.weight")->format, Format::F32);
  // Overrides and bad schemes.
  const std::string dir = temp_dir();
  auto r = run_lmq({"quantize", model_path("lmq-qwen2-21m"), "-o", dir + "/o.gguf", "--format", "gguf", "--scheme",
                    "q4_k", "--override", "ffn_down=q6_k", "--override", "self_attn\\.v_proj=q8_0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  GgufFile o(dir + "/o.gguf");
  EXPECT_EQ(o.find("blk.3.ffn_down.weight")->format, Format::Q6_K);
  EXPECT_EQ(o.find("blk.3.attn_v.weight")->format, Format::Q8_0);
  EXPECT_EQ(o.find("blk.3.attn_q.weight")->format, Format::Q4_K);
  EXPECT_EQ(o.find("output.weight")->format, Format::Q6_K);
  EXPECT_EQ(o.find("blk.3.attn_q.bias")->format, Format::F32);
  auto bad = run_lmq({"quantize", model_path("lmq-qwen2-21m"), "-o", dir + "/b.gguf", "--format", "gguf", "--scheme", "q7_k"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("q7_k"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/b.gguf"));
  auto badfmt = run_lmq({"quantize", model_path("lmq-qwen2-21m"), "-o", dir + "/c", "--format", "onnx"});
  EXPECT_NE(badfmt.exit_code, 0);
}

// lmq loads its own K-quant export and it runs: KLD against the float model on 4 windows is
// small, close to what the same tensors cost in llama.cpp's file.
TEST(GgufExport, Qwen2KQuantExportLoadsAndEvaluates) {
  REQUIRE_FILE(model_path("lmq-qwen2-21m"));
  const std::string text = shared_path("text/docs-valid.txt");
  REQUIRE_FILE(text);
  const std::string out = exported("lmq-qwen2-21m", "q4_k_m");
  auto m = Model::load(out);
  EXPECT_EQ(m->source_kind(), "gguf");
  EXPECT_FALSE(m->config().tied_embeddings);
  auto r = run_lmq({"eval", out, "--text", text, "--base", model_path("lmq-qwen2-21m"), "--windows", "4", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  const double kld = j["kld_mean"].get<double>();
  std::printf("qwen2 q4_k_m export: KLD %.5f over 4 windows, ppl %.3f\n", kld, j["ppl"].get<double>());
  EXPECT_GT(kld, 0.0);
  EXPECT_LT(kld, 0.08);
}

// A llama export loads in lmq with interleaved RoPE (permuted Q/K rows) and generates the same
// greedy tokens as llama.cpp's Q8_0 file.
TEST(GgufExport, LlamaExportRunsLikeFixture) {
  REQUIRE_FILE(fixture("lmq-llama-25m-Q8_0.gguf"));
  const std::string out = exported("lmq-llama-25m", "q8_0");
  auto a = run_lmq({"run", out, "-p", "The kernel", "-n", "12", "--temp", "0", "--json"});
  auto b = run_lmq({"run", fixture("lmq-llama-25m-Q8_0.gguf"), "-p", "The kernel", "-n", "12", "--temp", "0", "--json"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(json::parse(a.out)["ids"], json::parse(b.out)["ids"]);
}

TEST(GgufWriterStream, PlannedTensorsInOrder) {
  const std::string dir = temp_dir();
  std::vector<float> a(64, 1.5f), b(32, -2.f);
  {
    GgufWriter w(dir + "/s.gguf");
    w.set("general.architecture", GgufValue::str("llama"));
    w.plan_tensor("a", {2, 32}, Format::F32);
    w.plan_tensor("b", {32}, Format::F32);
    EXPECT_THROW(w.write_tensor("b", reinterpret_cast<const uint8_t*>(b.data()), 128), Error);  // out of order
    EXPECT_THROW(w.write_tensor("a", reinterpret_cast<const uint8_t*>(a.data()), 100), Error);  // wrong size
    w.write_tensor("a", reinterpret_cast<const uint8_t*>(a.data()), 256);
    EXPECT_THROW(w.set("x", GgufValue::u32(1)), Error);
    EXPECT_FALSE(std::filesystem::exists(dir + "/s.gguf"));  // not before finish()
    w.write_tensor("b", reinterpret_cast<const uint8_t*>(b.data()), 128);
    w.finish();
  }
  GgufFile g(dir + "/s.gguf");
  ASSERT_EQ(g.tensors().size(), 2u);
  EXPECT_EQ(std::memcmp(g.find("b")->data, b.data(), 128), 0);
  EXPECT_EQ(std::memcmp(g.find("a")->data, a.data(), 256), 0);
  {  // unfinished: nothing left behind
    GgufWriter w(dir + "/t.gguf");
    w.plan_tensor("a", {2, 32}, Format::F32);
    w.write_tensor("a", reinterpret_cast<const uint8_t*>(a.data()), 256);
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/t.gguf"));
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) n += e.path().filename().string().find(".tmp") != std::string::npos;
  EXPECT_EQ(n, 0u);
}
