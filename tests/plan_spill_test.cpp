// The plan's spill file (formats/spill_file.h, QuantPlan::spill): calibrated linears move to a
// nameless temporary file once their block is done, and come back as the same bytes; the memory
// estimate then holds one block's bytes, not the model's; a directory where the file cannot be
// made is refused before any work.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "lmq/calib/calib.h"
#include "lmq/calib/pipeline.h"
#include "lmq/error.h"
#include "lmq/formats/spill_file.h"
#include "lmq/mapped_file.h"
#include "lmq/model/model.h"
#include "lmq/quant/quantize_model.h"
#include "lmq/quant/scheme.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::calib;
namespace fs = std::filesystem;

namespace {

size_t entries(const std::string& dir) {
  return size_t(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}));
}

TEST(SpillFile, ExtentsReadBackTheirBytesAndTheFileHasNoName) {
  const std::string dir = test::temp_dir();
  const size_t before = entries(dir);
  SpillFile f(dir);
  std::vector<std::vector<uint8_t>> parts;
  std::vector<SpillFile::Extent> at;
  for (size_t n : {size_t(1), size_t(4096), size_t(0), size_t(3 << 20) + 7}) {
    std::vector<uint8_t> p(n);
    std::iota(p.begin(), p.end(), uint8_t(n));
    at.push_back(f.append(p.data(), p.size()));
    parts.push_back(std::move(p));
  }
  EXPECT_EQ(entries(dir), before);  // nothing to find, nothing to leave behind
  EXPECT_EQ(f.size(), 1u + 4096 + (3 << 20) + 7);
  for (size_t i = parts.size(); i-- > 0;) {  // in any order
    std::vector<uint8_t> back(size_t(at[i].size));
    f.read(at[i], back.data());
    EXPECT_EQ(back, parts[i]) << i;
  }
}

TEST(SpillFile, PlanBytesMoveThereAndReadBackTheSame) {
  auto f = std::make_shared<SpillFile>(test::temp_dir());
  PlanBytes b;
  EXPECT_TRUE(b.empty());
  b.spill(f);  // nothing to move
  EXPECT_FALSE(b.spilled());
  std::vector<uint8_t> v(100000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint8_t(i * 7919);
  b = v;
  b.spill(f);
  EXPECT_TRUE(b.spilled());
  EXPECT_FALSE(b.empty());
  EXPECT_EQ(b.size(), v.size());
  EXPECT_EQ(b.read(), v);
  EXPECT_EQ(f->size(), v.size());
}

TEST(BadInputSpillFile, AMissingDirectoryIsAnError) {
  const std::string dir = test::temp_dir() + "/missing";
  try {
    SpillFile f(dir);
    FAIL() << "created a spill file in a missing directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + ": cannot create a temporary file there"), std::string::npos) << e.what();
  }
}

const Model& llama() {
  static std::unique_ptr<Model> m = Model::load(test::shared_path("models/lmq-llama-25m"));
  return *m;
}

// GPTQ of blocks 0–1 (the others kept bf16, to stay fast), with and without a spill file.
QuantPlan gptq_plan(std::shared_ptr<SpillFile> spill) {
  const std::string text = read_text_file(test::shared_path("text/docs-valid.txt"));
  const std::string part = text.substr(text.find('\n', text.size() / 2) + 1, 30000);
  QuantizeOptions o;
  o.scheme = quant::parse_scheme("int4:g32:asym");
  o.overrides.push_back(parse_override("layers\\.[2-7]\\.=bf16"));
  CalibQuantOptions c;
  c.method = Method::Gptq;
  c.windows = calib_windows(llama().tokenizer(), part, 3, 64, llama().config().bos_id);
  QuantPlan plan = plan_targets(llama(), o);
  plan.spill = std::move(spill);
  prepare_calibrated(llama(), plan, c);
  return plan;
}

TEST(PlanSpill, GptqBytesAreTheSameAndLeaveMemory) {
  const QuantPlan held = gptq_plan(nullptr);
  auto f = std::make_shared<SpillFile>(test::temp_dir());
  const QuantPlan spilled = gptq_plan(f);
  uint64_t total = 0;
  int linears = 0;
  for (const auto& [name, tp] : held.tensors) {
    const TensorPlan& sp = spilled.tensors.at(name);
    ASSERT_EQ(tp.bytes.empty(), sp.bytes.empty()) << name;
    if (tp.bytes.empty()) continue;
    EXPECT_FALSE(tp.bytes.spilled()) << name;
    EXPECT_TRUE(sp.bytes.spilled()) << name;
    EXPECT_EQ(sp.bytes.read(), tp.bytes.held()) << name;
    total += tp.bytes.size(), ++linears;
  }
  EXPECT_EQ(linears, 14);  // 7 linears in each of blocks 0 and 1
  EXPECT_EQ(f->size(), total);
}

TEST(PlanSpill, TheEstimateHoldsOneBlocksBytes) {
  QuantizeOptions o;
  o.scheme = quant::parse_scheme("int4:g128:asym");
  QuantPlan plan = plan_targets(llama(), o);
  const CalibMemory all = estimate_calibration_memory(llama(), plan, Method::Gptq, 32, 512, 2);
  plan.spill = std::make_shared<SpillFile>(test::temp_dir());
  const CalibMemory one = estimate_calibration_memory(llama(), plan, Method::Gptq, 32, 512, 2);
  const int L = llama().config().n_layers;
  EXPECT_EQ(all.spilled, 0u);
  EXPECT_EQ(one.spilled, all.plan);  // every block has the same shapes here
  EXPECT_EQ(one.plan * uint64_t(L), all.plan);
  EXPECT_EQ(one.block, all.block);
  EXPECT_EQ(one.hidden, all.hidden);
}

TEST(BadInputPlanSpill, AnOutputDirectoryThatIsMissingIsRefusedBeforeAnyWork) {
  const std::string dir = test::temp_dir() + "/missing", out = dir + "/q.lmq";
  const auto r = test::run_lmq({"quantize", test::shared_path("models/lmq-llama-25m"), "-o", out, "--scheme",
                                "int4:g128:asym", "--method", "gptq", "--calib",
                                test::shared_path("text/docs-valid.txt"), "--calib-samples", "2", "--calib-len", "64"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err, "lmq: error: " + dir + ": cannot create a temporary file there: No such file or directory\n");
  EXPECT_FALSE(fs::exists(dir));
}

}  // namespace
