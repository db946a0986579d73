#include "lmq/model/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "lmq/error.h"

namespace lmq {

namespace {

int sample(const std::vector<float>& logits, const SampleOptions& opt, std::mt19937_64& rng) {
  const int V = int(logits.size());
  if (opt.temp <= 0.f) return int(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const float mx = *std::max_element(logits.begin(), logits.end());
  std::vector<std::pair<double, int>> probs(static_cast<size_t>(V));
  double sum = 0;
  for (int i = 0; i < V; ++i) {
    const double p = std::exp(double(logits[i] - mx) / opt.temp);
    probs[i] = {p, i};
    sum += p;
  }
  // Highest first; ties by id so the order is deterministic.
  std::sort(probs.begin(), probs.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  double cum = 0;
  size_t keep = 0;
  while (keep < probs.size() && (keep == 0 || cum < opt.top_p * sum)) cum += probs[keep++].first;
  std::uniform_real_distribution<double> u(0.0, cum);
  double r = u(rng);
  for (size_t i = 0; i < keep; ++i) {
    r -= probs[i].first;
    if (r <= 0) return probs[i].second;
  }
  return probs[keep - 1].second;
}

}  // namespace

void check_sample_options(const SampleOptions& opt) {
  if (!(opt.top_p > 0.f && opt.top_p <= 1.f)) fail("--top-p {}: must be in (0, 1]", opt.top_p);
  if (!(opt.temp >= 0.f) || !std::isfinite(opt.temp)) fail("--temp {}: must be a finite number ≥ 0", opt.temp);
}

std::vector<int> generate(Runner& run, const std::vector<int>& prompt, int n_new, const SampleOptions& opt,
                          const std::function<void(int)>& on_token) {
  const auto& c = run.model().config();
  if (prompt.empty()) fail("generate: empty prompt");
  if (int64_t(prompt.size()) + n_new > run.max_seq())
    fail("prompt of {} tokens + {} new tokens exceeds the context of {} tokens", prompt.size(), n_new, run.max_seq());
  check_sample_options(opt);
  std::mt19937_64 rng(opt.seed);
  std::vector<float> logits(size_t(c.vocab));
  std::vector<int> ids = prompt;
  run.reset();
  run.forward(prompt.data(), int(prompt.size()), logits.data(), false);
  for (int i = 0; i < n_new; ++i) {
    const int next = sample(logits, opt, rng);
    ids.push_back(next);
    if (on_token) on_token(next);
    if (next == c.eos_id || i + 1 == n_new) break;
    run.forward(&next, 1, logits.data(), false);
  }
  return ids;
}

}  // namespace lmq
