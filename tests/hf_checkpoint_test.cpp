// Checkpoints lmq did not write: GPTQ / AWQ directories crafted here by the formats' rules from
// lmq-llama-25m's float weights (a plain round-to-nearest in this file, packed with
// codecs/hf_packing.h), each of a kind lmq's exporter would not choose. lmq must read back
// exactly the dequantized weights this file computes on its own (s·(u − z) from its codes and
// scales), and its logits must match a float model built from those weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "hf_checkpoint_support.h"
#include "lmq/codecs/hf_packing.h"
#include "lmq/half.h"
#include "lmq/model/forward.h"
#include "lmq/model/model.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::test;

namespace {

// Logits of the first 12 tokens of a fixed id sequence.
std::vector<float> logits_of(const Model& m, RunOptions opts = {}) {
  const std::vector<int> ids = {1, 450, 8466, 310, 278, 1824, 338, 263, 1243, 29889, 13, 1576};
  Runner r(m, int(ids.size()), opts);
  std::vector<float> out(ids.size() * size_t(m.config().vocab));
  r.forward(ids.data(), int(ids.size()), out.data(), true);
  return out;
}

// max |a − b| and max |b|.
std::pair<double, double> max_diff_and_abs(const std::vector<float>& a, const std::vector<float>& b) {
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
    max_abs = std::max(max_abs, double(std::fabs(b[i])));
  }
  return {max_diff, max_abs};
}

// The float model with the expected weights laid over: what the checkpoint should compute.
std::unique_ptr<Model> float_model_of(const Model& base, const Crafted& c) {
  Model::Overlay ov;
  for (const auto& [name, w] : c.expected) {
    auto v = std::make_shared<std::vector<float>>(w);
    Tensor t = *base.find(name);
    t.format = Format::F32;
    t.data = reinterpret_cast<const uint8_t*>(v->data());
    t.nbytes = v->size() * 4;
    ov.put(t);
    ov.storage.push_back(v);
  }
  return Model::with_tensors(base, std::move(ov), "expected");
}

void check_reads_exactly(const Crafted& c, bool expect_perm, bool expect_asym, int bits) {
  const auto base = Model::load(shared_path("models/lmq-llama-25m"));
  const auto m = Model::load(c.dir);
  ASSERT_EQ(c.expected.size(), size_t(8 * 7));
  for (const auto& [name, want] : c.expected) {
    const Tensor* t = m->find(name);
    ASSERT_TRUE(t) << name;
    ASSERT_EQ(t->format, Format::LMQ_INT) << name;
    EXPECT_EQ(int(t->q.bits), bits) << name;
    EXPECT_EQ(t->q.asym, expect_asym) << name;
    EXPECT_EQ(t->in_perm != nullptr, expect_perm) << name;
    std::vector<float> got(want.size());
    dequantize_rows(*t, 0, t->rows(), got.data());
    ASSERT_EQ(got, want) << name;  // bit for bit
  }
  const auto ref = float_model_of(*base, c);
  const auto a = logits_of(*m), b = logits_of(*ref);
  const auto [max_diff, max_abs] = max_diff_and_abs(a, b);
  // Same weights, other summation order (integer-code tiles vs float tiles): float noise only.
  EXPECT_LT(max_diff, 1e-4 * max_abs + 1e-4) << "max |logit| " << max_abs;
  const int V = m->config().vocab;
  for (size_t t = 0; t < a.size() / size_t(V); ++t)
    EXPECT_EQ(std::max_element(a.begin() + long(t * V), a.begin() + long((t + 1) * V)) - a.begin(),
              std::max_element(b.begin() + long(t * V), b.begin() + long((t + 1) * V)) - b.begin());
}

}  // namespace

TEST(HfCheckpoint, GptqV1Symmetric8BitPerChannel) {
  const Crafted c = craft_checkpoint({.method = "gptq", .bits = 8, .group = -1, .sym = true});
  check_reads_exactly(c, false, false, 8);
}

TEST(HfCheckpoint, GptqV2Asymmetric3BitActOrder) {
  const Crafted c = craft_checkpoint({.method = "gptq", .bits = 3, .group = 32, .sym = false, .act_order = true, .v1 = false});
  check_reads_exactly(c, true, true, 3);
}

TEST(HfCheckpoint, GptqV2Asymmetric4BitActOrderOnCodeKernels) {
  // 4-bit g32: the permuted codes run on the weight-only integer-code path.
  const Crafted c = craft_checkpoint({.method = "gptq", .bits = 4, .group = 32, .sym = false, .act_order = true, .v1 = false});
  check_reads_exactly(c, true, true, 4);
  // On the int8-activation kernels too (the permuted input is quantized per token): only
  // activation rounding separates it from the float model of the same weights.
  const auto m = Model::load(c.dir);
  const auto ref = float_model_of(*Model::load(shared_path("models/lmq-llama-25m")), c);
  RunOptions dyn;
  dyn.act_quant = ActQuant::DynamicAbsmax;
  const auto a = logits_of(*m, dyn), b = logits_of(*ref);
  const auto [max_diff, max_abs] = max_diff_and_abs(a, b);
  EXPECT_LT(max_diff, 0.05 * max_abs) << "max |logit| " << max_abs;
}

TEST(HfCheckpoint, AwqGroup64) {
  const Crafted c = craft_checkpoint({.method = "awq", .bits = 4, .group = 64, .sym = false});
  check_reads_exactly(c, false, true, 4);
}

TEST(HfCheckpoint, CompressedTensorsPackQuantizedAsymActOrder) {
  const Crafted c = craft_checkpoint({.method = "ct-pack", .bits = 4, .group = 32, .sym = false, .act_order = true});
  check_reads_exactly(c, true, true, 4);
}

TEST(HfCheckpoint, CompressedTensorsPackQuantizedSym8BitChannel) {
  const Crafted c = craft_checkpoint({.method = "ct-pack", .bits = 8, .group = -1, .sym = true});
  check_reads_exactly(c, false, false, 8);
}

TEST(HfCheckpoint, CompressedTensorsW8A8RunsOnDynamicActivations) {
  const Crafted c = craft_checkpoint({.method = "ct-int8", .bits = 8, .group = -1, .sym = true});
  const auto m = Model::load(c.dir);
  for (const auto& [name, want] : c.expected) {
    const Tensor& t = *m->find(name);
    ASSERT_EQ(t.format, Format::LMQ_INT);
    EXPECT_FALSE(t.q.asym);
    std::vector<float> got(want.size());
    dequantize_rows(t, 0, t.rows(), got.data());
    ASSERT_EQ(got, want) << name;
  }
  // The checkpoint asks for dynamic per-token int8 activations: a plain run uses them.
  Runner r(*m, 4);
  EXPECT_EQ(r.act_quant(), ActQuant::DynamicAbsmax);
}

TEST(HfCheckpoint, CliRunsAndInspectsACraftedCheckpoint) {
  const Crafted c = craft_checkpoint({.method = "gptq", .bits = 4, .group = 32, .sym = false, .act_order = true, .v1 = false});
  const RunResult ins = run_lmq({"inspect", c.dir});
  ASSERT_EQ(ins.exit_code, 0) << ins.err;
  EXPECT_NE(ins.out.find("int4:g32:asym"), std::string::npos) << ins.out;
  const RunResult run = run_lmq({"run", c.dir, "-p", "The kernel", "-n", "8"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const RunResult bench = run_lmq({"bench", c.dir, "--prefill", "16", "--decode", "4", "--reps", "1",
                                   "--act-quant", "dynamic"});
  ASSERT_EQ(bench.exit_code, 0) << bench.err;
  const std::string text = shared_path("text/docs-valid.txt");
  const RunResult ev = run_lmq({"eval", c.dir, "--text", text, "--windows", "2", "--ctx", "64"});
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  // Calibration-free quantization from the checkpoint, into lmq's file and GGUF.
  const std::string out = temp_dir() + "/from-gptq.lmq", gg = temp_dir() + "/from-gptq.gguf";
  const RunResult q = run_lmq({"quantize", c.dir, "-o", out, "--scheme", "int8:channel:sym"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const RunResult g = run_lmq({"quantize", c.dir, "-o", gg, "--format", "gguf", "--scheme", "q8_0"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const RunResult ev2 = run_lmq({"eval", gg, "--text", text, "--windows", "2", "--ctx", "64", "--base", c.dir});
  ASSERT_EQ(ev2.exit_code, 0) << ev2.err;
}
