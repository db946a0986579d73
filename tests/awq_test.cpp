// AWQ: the folded scales leave the float model's function unchanged (llama: GQA v→o per KV
// head, tied embeddings; qwen2: q/k/v biases), and the scale search lowers a real block's
// calibration output error below RTN's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "lmq/calib/awq.h"
#include "lmq/calib/calib.h"
#include "lmq/calib/gptq.h"
#include "lmq/error.h"
#include "lmq/mapped_file.h"
#include "lmq/model/forward.h"
#include "lmq/quant/int_quantize.h"
#include "lmq/quant/quantize_model.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::calib;
using lmq::test::shared_path;

namespace {

std::vector<std::vector<int>> windows_of(const Model& m, int n, int len) {
  // calibration text: the second half of docs-valid.txt by lines
  const std::string text = read_text_file(shared_path("text/docs-valid.txt"));
  const size_t lines = size_t(std::count(text.begin(), text.end(), '\n'));
  size_t pos = 0;
  for (size_t i = 0; i < lines / 2; ++i) pos = text.find('\n', pos) + 1;
  return calib_windows(m.tokenizer(), text.substr(pos), n, len, m.config().bos_id);
}

std::vector<float> logits_of(const Model& m, const std::vector<int>& ids) {
  Runner run(m, int(ids.size()));
  std::vector<float> out(ids.size() * size_t(m.config().vocab));
  run.forward(ids.data(), int(ids.size()), out.data(), true);
  return out;
}

quant::Scheme int_scheme(const char* s) { return quant::parse_scheme(s); }

void check_fold_exact(const char* model) {
  auto m = Model::load(shared_path(model));
  const StatsMap stats = collect_stats(*m, windows_of(*m, 2, 64));
  AwqOptions o;
  o.fixed_alpha = 1;  // the widest scales of the grid (their spread is checked below)
  std::map<std::string, std::vector<float>> folded;
  double spread = 1;
  for (int l = 0; l < m->config().n_layers; ++l) {
    AwqBlock b = awq_block(*m, l, stats, [](const Tensor&) { return int_scheme("int4:g128"); }, o);
    for (const auto& [name, s] : b.col_scale) {
      const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
      spread = std::max(spread, double(*hi / *lo));
    }
    folded.merge(b.weights);
  }
  EXPECT_GT(spread, 5.0) << "the scales must be far from 1 for the check to mean something";
  ASSERT_TRUE(folded.count("model.layers.0.input_layernorm.weight"));
  auto f = with_float_tensors(*m, folded);
  const auto ids = windows_of(*m, 1, 48)[0];
  const std::vector<float> a = logits_of(*m, ids), b = logits_of(*f, ids);
  double maxd = 0, maxa = 0;
  for (size_t i = 0; i < a.size(); ++i) maxd = std::max(maxd, double(std::fabs(a[i] - b[i]))), maxa = std::max(maxa, double(std::fabs(a[i])));
  std::printf("%s: AWQ fold (alpha 1, scale spread %.0fx): max |logit diff| %.3g (max |logit| %.1f)\n", model, spread,
              maxd, maxa);
  EXPECT_LT(maxd, 1e-4);
  // without one of the folds (block 0's input norm left as it was) the function does change
  folded.erase("model.layers.0.input_layernorm.weight");
  auto g = with_float_tensors(*m, folded);
  const std::vector<float> c = logits_of(*g, ids);
  double maxc = 0;
  for (size_t i = 0; i < a.size(); ++i) maxc = std::max(maxc, double(std::fabs(a[i] - c[i])));
  EXPECT_GT(maxc, 1e-2);
}

}  // namespace

TEST(Awq, ScalesFormula) {
  const std::vector<float> m = {1.0f, 4.0f, 0.0f, 16.0f};
  const auto s = awq_scales(m, 0.5);
  // m^0.5 = 1, 2, (1e-8·16)^0.5 = 4e-4, 4; normalised by sqrt(4e-4 · 4) = 0.04
  EXPECT_NEAR(s[0], 1 / 0.04, 1e-3);
  EXPECT_NEAR(s[1], 2 / 0.04, 1e-3);
  EXPECT_NEAR(s[2], 4e-4 / 0.04, 1e-6);
  EXPECT_NEAR(s[3], 4 / 0.04, 1e-3);
  for (float v : awq_scales(m, 0.0)) EXPECT_EQ(v, 1.0f);
  for (float v : awq_scales({0, 0}, 0.7)) EXPECT_EQ(v, 1.0f);
}

TEST(Awq, FoldingLeavesLlamaLogitsUnchanged) { check_fold_exact("models/lmq-llama-25m"); }
TEST(Awq, FoldingLeavesQwen2LogitsUnchanged) { check_fold_exact("models/lmq-qwen2-21m"); }

// On block 3 of lmq-llama-25m, with real calibration statistics: the α search never loses to
// α = 0 (RTN) on any group and wins in sum, and the stored AWQ result (clip search on the scaled
// weights) has a lower output error than RTN at int3 and int4.
TEST(Awq, BeatsRtnOnRealBlock) {
  auto m = Model::load(shared_path("models/lmq-llama-25m"));
  const StatsMap stats = collect_stats(*m, windows_of(*m, 4, 256));
  const int l = 3;
  for (const char* sch : {"int4:g128:asym", "int3:g128:asym"}) {
    const quant::Scheme s = int_scheme(sch);
    AwqBlock b = awq_block(*m, l, stats, [&](const Tensor&) { return s; }, {});
    double search = 0, search_rtn = 0;
    for (const auto& g : b.groups) {
      EXPECT_LE(g.err, g.rtn_err) << g.name;
      search += g.err, search_rtn += g.rtn_err;
    }
    EXPECT_LT(search, search_rtn) << sch;  // measured 0.993× (int4), 0.997× (int3)
    // the final tensors: awmse clip search on W·diag(s) with E[(x/s)²], vs RTN of W, for the
    // linears whose rows are not rescaled (q, k, o, gate, down: the same output space)
    double awq = 0, rtn = 0;
    const LayerWeights& lw = m->layers()[l];
    for (const Tensor* t : {lw.wq, lw.wk, lw.wo, lw.w_gate, lw.w_down}) {
      const InputStats& st = *find_stats(stats, t->name);
      const auto& cs = b.col_scale.at(t->name);
      const auto& ws = b.weights.at(t->name);
      const int64_t R = t->rows(), K = t->cols();
      std::vector<float> w(size_t(t->numel())), imp(st.sq_mean), wq(w.size()), wr(w.size());
      dequantize_rows(*t, 0, R, w.data());
      for (int64_t j = 0; j < K; ++j) imp[size_t(j)] /= cs[size_t(j)] * cs[size_t(j)];
      std::vector<uint8_t> q(quant::int_tensor_bytes(s.p, R, K)), r(q.size());
      quant::quantize_tensor(ws.data(), R, K, s.p, quant::RangeMethod::Mse, 100, imp.data(), q.data(), 0);
      quant::quantize_tensor(w.data(), R, K, s.p, s.range, 100, nullptr, r.data(), 0);
      quant::int_dequantize_rows(s.p, q.data(), R, K, 0, R, wq.data());
      quant::int_dequantize_rows(s.p, r.data(), R, K, 0, R, wr.data());
      for (size_t i = 0; i < wq.size(); ++i) wq[i] /= cs[i % size_t(K)];
      awq += output_error(w.data(), wq.data(), R, K, st.hessian.data());
      rtn += output_error(w.data(), wr.data(), R, K, st.hessian.data());
    }
    std::printf("%s block %d: alpha search %.4g vs alpha=0 %.4g (%.3fx); stored awq %.4g vs rtn %.4g (%.3fx)\n", sch, l,
                search, search_rtn, search / search_rtn, awq, rtn, awq / rtn);
    EXPECT_LT(awq, 0.95 * rtn) << sch;  // measured 0.895× (int4), 0.781× (int3)
  }
}
