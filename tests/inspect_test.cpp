// `lmq inspect --json` as a user runs it: the parameter count is the one transformers reports
// (../shared/reference/<model>/reference.json), and every memory figure is exactly
// bits/8 × params, for the whole model and for each tensor group.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lmq/mapped_file.h"
#include "test_support.h"

using lmq::test::run_lmq;
using lmq::test::shared_path;

namespace {

const std::pair<const char*, int> kPrecisions[] = {{"fp32", 32}, {"fp16", 16}, {"bf16", 16},
                                                   {"int8", 8},  {"int4", 4},  {"int2", 2}};

// bits/8 × params in integer arithmetic; check_memory first asserts it is a whole number of bytes.
uint64_t bytes_at(uint64_t params, int bits) { return params * uint64_t(bits) / 8; }

void check_memory(const nlohmann::json& node, const std::string& what) {
  const uint64_t params = node.at("params").get<uint64_t>();
  ASSERT_GT(params, 0u) << what;
  for (auto [key, bits] : kPrecisions) {
    ASSERT_EQ(params * uint64_t(bits) % 8, 0u) << what << " " << key;
    EXPECT_EQ(node.at("memory_bytes").at(key).get<uint64_t>(), bytes_at(params, bits)) << what << " " << key;
  }
}

class Inspect : public ::testing::TestWithParam<const char*> {};

TEST_P(Inspect, MemoryIsBitsOver8TimesParams) {
  const std::string model = shared_path(std::string("models/") + GetParam());
  const auto r = run_lmq({"inspect", model, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto ref = nlohmann::json::parse(lmq::read_text_file(shared_path(std::string("reference/") + GetParam() +
                                                                         "/reference.json")));
  EXPECT_EQ(j.at("params").get<uint64_t>(), ref.at("params").get<uint64_t>());
  check_memory(j, "model");

  // The groups partition the parameters: their counts and bytes add up to the totals.
  uint64_t params = 0;
  for (auto& [name, g] : j.at("groups").items()) {
    check_memory(g, "group " + name);
    params += g.at("params").get<uint64_t>();
  }
  EXPECT_EQ(params, j.at("params").get<uint64_t>());
  const bool tied = j.at("config").at("tie_word_embeddings").get<bool>();
  EXPECT_EQ(j.at("groups").contains("lm_head"), !tied) << "a tied lm_head is the embedding, counted once";

  // Per-tensor statistics are present and ordered (min ≤ max, absmax = max(|min|, |max|)).
  ASSERT_EQ(j.at("tensors").size(), j.at("tensor_count").get<size_t>());
  for (const auto& t : j.at("tensors")) {
    const double mn = t.at("min").get<double>(), mx = t.at("max").get<double>();
    EXPECT_LE(mn, mx) << t.at("name");
    EXPECT_DOUBLE_EQ(t.at("absmax").get<double>(), std::max(-mn, mx)) << t.at("name");
    EXPECT_GE(t.at("std").get<double>(), 0.0) << t.at("name");
  }
}

// A GGUF is shown as stored: llama.cpp's block types and the bytes of the file's tensors, not
// the LMQ_INT layouts run/eval repack Q8_0/Q4_0/IQ4 into (without AVX-512 VNNI) for the
// integer kernels.
TEST(InspectGguf, ShowsTheFilesTypesAndBytes) {
  for (const char* file : {"gguf/lmq-llama-25m-Q4_0.gguf", "gguf/lmq-llama3-9m-IQ4_XS.gguf"}) {
    const std::string path = shared_path(file);
    const auto r = run_lmq({"inspect", path, "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    uint64_t bytes = 0;
    for (const auto& t : j.at("tensors")) {
      const std::string f = t.at("format").get<std::string>();
      EXPECT_EQ(f.find("int"), std::string::npos) << file << " " << t.at("name") << " shown as " << f;
      bytes += t.at("bytes").get<uint64_t>();
    }
    EXPECT_LT(bytes, j.at("file_bytes").get<uint64_t>()) << file;
    EXPECT_GT(bytes, j.at("file_bytes").get<uint64_t>() * 9 / 10) << file << ": tensor bytes far below the file's";
  }
  const auto q40 = nlohmann::json::parse(run_lmq({"inspect", shared_path("gguf/lmq-llama-25m-Q4_0.gguf"), "--json"}).out);
  EXPECT_TRUE(q40.at("formats").contains("q4_0")) << q40.at("formats");
}

INSTANTIATE_TEST_SUITE_P(Models, Inspect, ::testing::Values("lmq-llama-25m", "lmq-qwen2-21m"),
                         [](const auto& info) { return std::string(info.param).substr(4, 5) == "llama" ? "llama" : "qwen2"; });

}  // namespace
