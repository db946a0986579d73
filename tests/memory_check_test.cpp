// `lmq quantize` refuses, before any work, a job whose estimated peak memory exceeds the memory
// available (calib/pipeline.h estimate_calibration_memory, model/memory_limit.h): one line
// naming what it needs and what there is, no output file.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "test_support.h"

namespace {

using namespace lmq;
namespace fs = std::filesystem;

void expect_refused(const test::RunResult& r, const std::string& out, const std::string& source) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("lmq: error: lmq quantize ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("needs about"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("GiB available (" + source + ")"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_FALSE(fs::exists(out));
}

TEST(BadInputMemory, AbsurdCalibrationIsRefusedBeforeAnyWork) {
  const std::string dir = test::temp_dir(), out = dir + "/q.lmq";
  // 10⁶ windows of 2048 tokens: 2.9 TiB of hidden states for this 384-wide model
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = test::run_lmq({"quantize", test::shared_path("models/lmq-llama-25m"), "-o", out, "--scheme",
                                "int4:g128:asym", "--method", "gptq", "--calib",
                                test::shared_path("text/docs-valid.txt"), "--calib-samples", "1000000",
                                "--calib-len", "1024"});
  expect_refused(r, out, "MemAvailable");
  EXPECT_NE(r.err.find("calibration hidden states"), std::string::npos) << r.err;
  // before the calibration text is even tokenized (which alone takes seconds)
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
}

TEST(BadInputMemory, ForcedLimitRefusesEvenRtn) {
  const std::string dir = test::temp_dir(), out = dir + "/q.gguf";
  setenv("LMQ_MEMORY_LIMIT", "10000000", 1);  // 10 MB: less than the embedding's floats (49 MB)
  const auto r = test::run_lmq(
      {"quantize", test::shared_path("models/lmq-llama-25m"), "-o", out, "--format", "gguf", "--scheme", "q8_0"});
  unsetenv("LMQ_MEMORY_LIMIT");
  expect_refused(r, out, "LMQ_MEMORY_LIMIT");
  EXPECT_NE(r.err.find("the writer's largest tensor"), std::string::npos) << r.err;
  // and the same job runs within a limit that covers it
  setenv("LMQ_MEMORY_LIMIT", "1000000000", 1);
  const auto ok = test::run_lmq(
      {"quantize", test::shared_path("models/lmq-llama-25m"), "-o", out, "--format", "gguf", "--scheme", "q8_0"});
  unsetenv("LMQ_MEMORY_LIMIT");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

}  // namespace
