// Hostile numbers in real files: NaN/Inf weights are refused by quantize (naming the tensor) and
// surface as a clear error when run, never as text or scores; invalid UTF-8 text is tokenized
// (SentencePiece maps it to byte/unknown pieces) and evaluated.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_support.h"

namespace {
namespace fs = std::filesystem;
using lmq::test::run_lmq;
using lmq::test::shared_path;

// A copy of the llama model whose shard 3 has `value` written into the first element of
// its first BF16 tensor.
std::string model_with_value(uint16_t bf16_bits, std::string* tensor_name) {
  const std::string dir = lmq::test::temp_dir();
  const std::string src = shared_path("models/lmq-llama-25m");
  for (const auto& e : fs::directory_iterator(src)) fs::copy_file(e.path(), dir + "/" + e.path().filename().string());
  const std::string shard = dir + "/model-00003-of-00003.safetensors";
  std::string bytes = lmq::test::read_file(shard);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  for (auto& [name, t] : header.items()) {
    if (name == "__metadata__" || t["dtype"] != "BF16" || t["shape"].size() != 2) continue;
    const uint64_t off = 8 + n + t["data_offsets"][0].get<uint64_t>();
    std::memcpy(bytes.data() + off, &bf16_bits, 2);
    *tensor_name = name;
    break;
  }
  lmq::test::write_file(shard, bytes);
  return dir;
}

TEST(HostileNumbers, NanWeightIsRefusedByQuantizeAndRun) {
  for (uint16_t bits : {uint16_t(0x7fc0) /* NaN */, uint16_t(0x7f80) /* +Inf */}) {
    std::string tensor;
    const std::string dir = model_with_value(bits, &tensor);
    ASSERT_FALSE(tensor.empty());
    auto q = run_lmq({"quantize", dir, "-o", dir + "/q.lmq", "--scheme", "int4:g128:asym"});
    EXPECT_EQ(q.exit_code, 1);
    EXPECT_NE(q.err.find(tensor), std::string::npos) << q.err;
    EXPECT_NE(q.err.find("not finite"), std::string::npos) << q.err;
    EXPECT_FALSE(fs::exists(dir + "/q.lmq"));
    // Running it: the poisoned weight reaches the logits (embedding rows or a linear) → error.
    auto r = run_lmq({"eval", dir, "--text", shared_path("text/docs-valid.txt"), "--windows", "1"});
    if (r.exit_code != 0) {
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_NE(r.err.find("non-finite"), std::string::npos) << r.err;
    } else {
      ADD_FAILURE() << "a NaN/Inf weight in " << tensor << " went unnoticed: " << r.out;
    }
  }
}

TEST(HostileNumbers, InvalidUtf8TextIsEvaluated) {
  const std::string path = lmq::test::temp_dir() + "/bad.txt";
  std::string text;
  for (int i = 0; i < 3000; ++i) text += "abc \xff\xfe invalid \xc3\x28 utf8\n";
  lmq::test::write_file(path, text);
  auto r = run_lmq({"eval", shared_path("models/lmq-llama-25m"), "--text", path, "--windows", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::isfinite(nlohmann::json::parse(r.out)["ppl"].get<double>()));
}

}  // namespace
