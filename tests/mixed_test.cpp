// Mixed precision under a size budget: the allocation stays within the target and close to it,
// a higher target never gives a higher summed sensitivity, it is deterministic, bad targets are
// refused; sensitivities measured on a real model behave (wider schemes are less sensitive).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "lmq/calib/calib.h"
#include "lmq/calib/mixed.h"
#include "lmq/eval/evaluate.h"
#include "lmq/error.h"
#include "lmq/mapped_file.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::calib;
using lmq::test::shared_path;

namespace {

const Model& qwen2() {
  static auto m = Model::load(shared_path("models/lmq-qwen2-21m"));
  return *m;
}

// Checks the budget, closeness and monotonicity over a sweep of targets.
void check_sweep(const MixedProblem& p) {
  double prev = INFINITY;
  const double lo = p.min_bpw(), hi = p.max_bpw();
  for (double t = std::ceil(lo * 10) / 10; t <= hi; t += 0.3) {
    const Allocation a = allocate(p, t);
    EXPECT_LE(a.bpw, t);
    // up to 6 bpw the candidates are fine-grained enough to come within 0.05; above, the two
    // 8M-parameter tensors (39% of the model each) can only jump from int6 to int8
    if (t <= 6) {
      EXPECT_GT(a.bpw, t - 0.05) << "target " << t;
    }
    EXPECT_LE(a.sens, prev * (1 + 1e-12)) << "target " << t;
    prev = a.sens;
    uint64_t bytes = p.fixed_bytes;
    double sens = 0;
    for (size_t i = 0; i < p.tensors.size(); ++i) {
      bytes += p.tensors[i].bytes[size_t(a.pick[i])];
      sens += p.tensors[i].sens[size_t(a.pick[i])];
    }
    EXPECT_EQ(bytes, a.bytes);
    EXPECT_NEAR(sens, a.sens, 1e-9 * std::max(1.0, sens));
  }
}

}  // namespace

TEST(Mixed, BudgetMonotoneDeterministicSynthetic) {
  MixedProblem p = mixed_problem(qwen2(), plan_targets(qwen2(), QuantizeOptions{}));
  ASSERT_EQ(p.tensors.size(), 44u);  // 6 blocks × 7 linears, embedding, lm_head
  // synthetic sensitivities: a per-tensor weight times 4^-bits, group size adding a little
  uint32_t seed = 12345;
  for (MixedTensor& t : p.tensors) {
    seed = seed * 1664525u + 1013904223u;
    const double wt = 0.1 + double(seed >> 8) / double(1 << 24);
    t.sens.clear();
    for (const auto& c : p.candidates)
      t.sens.push_back(wt * std::pow(4.0, -c.scheme.p.bits) * (1 + 0.002 * c.scheme.p.group) * double(t.t->numel()));
  }
  check_sweep(p);
  const Allocation a = allocate(p, 4.0), b = allocate(p, 4.0);
  EXPECT_EQ(a.pick, b.pick);
  // bounds: the minimum is reachable, a bit below it is not, nor is NaN or above the maximum
  EXPECT_NO_THROW(allocate(p, p.min_bpw() + 0.02));  // sizes are rounded up to 1/20000 of the total
  for (double bad : {p.min_bpw() - 0.01, p.max_bpw() + 0.01, double(NAN), 1.0, 100.0}) {
    try {
      allocate(p, bad);
      ADD_FAILURE() << "target " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--target-bpw"), std::string::npos) << e.what();
    }
  }
  // the whole file's bpw: 2-D tensors at their choice, norms and biases F32
  EXPECT_EQ(p.params, qwen2().param_count());
}

TEST(Mixed, RealSensitivitiesOnQwen2) {
  const Model& m = qwen2();
  MixedProblem p = mixed_problem(m, plan_targets(m, QuantizeOptions{}));
  const std::string text = read_text_file(shared_path("text/docs-valid.txt"));
  const size_t lines = size_t(std::count(text.begin(), text.end(), '\n'));
  size_t pos = 0;
  for (size_t i = 0; i < lines / 2; ++i) pos = text.find('\n', pos) + 1;
  const auto windows = calib_windows(m.tokenizer(), text.substr(pos, 20000), 1, 96, m.config().bos_id);
  SensitivityOptions so;
  so.probe_windows = 1;
  so.probe_len = 48;
  measure_sensitivity(m, p, windows, so, kld_means);
  for (const MixedTensor& t : p.tensors) {
    EXPECT_GT(t.probe_kld, 0) << t.t->name;
    EXPECT_GT(t.sens.front(), t.sens.back()) << t.t->name << ": int2:g32 must be more sensitive than int8:g128";
  }
  check_sweep(p);
  const Allocation lo = allocate(p, 3.0), hi = allocate(p, 5.0);
  EXPECT_LT(hi.sens, lo.sens);
  std::printf("%s", allocation_table(p, lo).c_str());
}

TEST(MixedCli, BadTargets) {
  const std::string dir = lmq::test::temp_dir();
  const std::string calib = dir + "/calib.txt";
  lmq::test::write_file(calib, read_text_file(shared_path("text/docs-valid.txt")).substr(900000, 30000));
  for (const char* t : {"1.5", "nan", "9"}) {
    const auto r = lmq::test::run_lmq({"quantize", shared_path("models/lmq-qwen2-21m"), "-o", dir + "/x.lmq",
                                       "--target-bpw", t, "--calib", calib, "--calib-samples", "2", "--calib-len", "64"});
    EXPECT_EQ(r.exit_code, 1) << t;
    EXPECT_EQ(r.err.rfind("lmq: error: --target-bpw", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  const auto r = lmq::test::run_lmq({"quantize", shared_path("models/lmq-qwen2-21m"), "-o", dir + "/x.lmq",
                                     "--target-bpw", "4"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--calib"), std::string::npos) << r.err;
}
