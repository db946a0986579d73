// The integer path of a GGUF file (the GGUF default, int8 activations in blocks of 32: Q8_0, Q4_0
// and K-quants read in place, IQ4 repacked) against its float path, teacher forcing one text: the logits move
// a little, the predictions hardly at all, and the two are not the same computation.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lmq/model/forward.h"
#include "lmq/model/model.h"

namespace lmq::test {

inline void expect_int_path_close_to_float(const std::string& p, const std::string& name) {
  auto m = Model::load(p);
  const std::vector<int> ids = m->tokenizer().encode_with_specials(
      "The kernel schedules threads on the available cores and keeps the caches warm for the next task.");
  const int n = int(ids.size()), V = m->config().vocab;
  std::vector<float> li(size_t(n) * V), lf(size_t(n) * V);
  Runner(*m, n, RunOptions{.act_quant_from_model = true}).forward(ids.data(), n, li.data(), true);
  Runner(*m, n, RunOptions{}).forward(ids.data(), n, lf.data(), true);
  double kld = 0, worst = 0;
  int agree = 0;
  for (int i = 0; i < n; ++i) {
    const float* a = lf.data() + size_t(i) * V;
    const float* b = li.data() + size_t(i) * V;
    const double ma = *std::max_element(a, a + V), mb = *std::max_element(b, b + V);
    double za = 0, zb = 0;
    for (int v = 0; v < V; ++v) za += std::exp(a[v] - ma), zb += std::exp(b[v] - mb);
    double k = 0;
    for (int v = 0; v < V; ++v) {
      const double pa = std::exp(a[v] - ma) / za;
      k += pa * ((a[v] - ma - std::log(za)) - (b[v] - mb - std::log(zb)));
      worst = std::max(worst, std::fabs(double(a[v]) - double(b[v])));
    }
    kld += k / n;
    agree += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
  }
  std::printf("[int vs float] %s: mean KLD %.6f, max |Δlogit| %.4f, top-1 %d/%d\n", name.c_str(), kld, worst, agree, n);
  EXPECT_LT(kld, 0.002) << name;
  EXPECT_LT(worst, 0.5) << name;
  EXPECT_GE(agree, n - 2) << name;
  EXPECT_GT(worst, 0.0) << name << ": the two paths should not be the same computation";
}

}  // namespace lmq::test
