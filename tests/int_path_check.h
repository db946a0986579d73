// The integer path of a file (by default a GGUF file's own: int8 activations in blocks of 32;
// Q8_0, Q4_0, IQ4 and K-quants read in place where the CPU has AVX-512 VNNI, else Q8_0/Q4_0/IQ4
// repacked; or the run options given, e.g. --act-quant dynamic on an lmq file) against its
// float path, teacher forcing one text: the logits move a little, the predictions hardly at
// all, and the two are not the same computation. And the two integer paths of Q8_0/Q4_0/IQ4
// (read in place, repacked into LMQ_INT) against each other.
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

inline std::vector<int> int_path_text_ids(const Model& m) {
  return m.tokenizer().encode_with_specials(
      "The kernel schedules threads on the available cores and keeps the caches warm for the next task.");
}

// Teacher-forced logits of ids (n × vocab) under the run options.
inline std::vector<float> int_path_logits(const Model& m, const std::vector<int>& ids, const RunOptions& ro) {
  const int n = int(ids.size());
  std::vector<float> l(size_t(n) * size_t(m.config().vocab));
  Runner(m, n, ro).forward(ids.data(), n, l.data(), true);
  return l;
}

struct LogitGap {
  double kld = 0, worst = 0;  // mean KL(a‖b) per token, max |a − b|
  int agree = 0;              // tokens whose top-1 agrees
};

inline LogitGap logit_gap(const std::vector<float>& la, const std::vector<float>& lb, int n, int V) {
  LogitGap g;
  for (int i = 0; i < n; ++i) {
    const float* a = la.data() + size_t(i) * V;
    const float* b = lb.data() + size_t(i) * V;
    const double ma = *std::max_element(a, a + V), mb = *std::max_element(b, b + V);
    double za = 0, zb = 0;
    for (int v = 0; v < V; ++v) za += std::exp(a[v] - ma), zb += std::exp(b[v] - mb);
    double k = 0;
    for (int v = 0; v < V; ++v) {
      const double pa = std::exp(a[v] - ma) / za;
      k += pa * ((a[v] - ma - std::log(za)) - (b[v] - mb - std::log(zb)));
      g.worst = std::max(g.worst, std::fabs(double(a[v]) - double(b[v])));
    }
    g.kld += k / n;
    g.agree += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
  }
  return g;
}

inline void expect_int_path_close_to_float(const std::string& p, const std::string& name,
                                           const RunOptions& int_path = RunOptions{.act_quant_from_model = true}) {
  auto m = Model::load(p);
  const std::vector<int> ids = int_path_text_ids(*m);
  const int n = int(ids.size()), V = m->config().vocab;
  const LogitGap g = logit_gap(int_path_logits(*m, ids, RunOptions{}), int_path_logits(*m, ids, int_path), n, V);
  std::printf("[int vs float] %s: mean KLD %.6f, max |Δlogit| %.4f, top-1 %d/%d\n", name.c_str(), g.kld, g.worst,
              g.agree, n);
  EXPECT_LT(g.kld, 0.002) << name;
  EXPECT_LT(g.worst, 0.5) << name;
  EXPECT_GE(g.agree, n - 2) << name;
  EXPECT_GT(g.worst, 0.0) << name << ": the two paths should not be the same computation";
}

}  // namespace lmq::test
