#include "lmq/eval/evaluate.h"

#include <algorithm>
#include <cmath>

#include "lmq/error.h"
#include "lmq/model/forward.h"

namespace lmq {

Protocol parse_protocol(const std::string& s) {
  if (s == "lmq") return Protocol::Lmq;
  if (s == "llamacpp") return Protocol::LlamaCpp;
  fail("--protocol '{}': expected lmq or llamacpp", s);
}

Windows make_windows(const Tokenizer& tok, const std::string& text, Protocol p, int ctx, int bos, int max_windows,
                     const std::string& text_name) {
  if (ctx < 4) fail("--ctx {}: must be at least 4", ctx);
  std::vector<int> ids = tok.encode(text);
  Windows w;
  if (p == Protocol::Lmq) {
    const size_t step = size_t(ctx - 1);
    for (size_t k = 0; (k + 1) * step <= ids.size(); ++k) {
      if (max_windows > 0 && int(w.ids.size()) >= max_windows) break;
      std::vector<int> win{bos};
      win.insert(win.end(), ids.begin() + k * step, ids.begin() + (k + 1) * step);
      w.ids.push_back(std::move(win));
    }
    w.score_from = 0;
  } else {
    ids.insert(ids.begin(), bos);
    const size_t step = size_t(ctx);
    for (size_t k = 0; (k + 1) * step <= ids.size(); ++k) {
      if (max_windows > 0 && int(w.ids.size()) >= max_windows) break;
      std::vector<int> win(ids.begin() + k * step, ids.begin() + (k + 1) * step);
      win[0] = bos;
      w.ids.push_back(std::move(win));
    }
    w.score_from = ctx / 2;
  }
  if (w.ids.empty())
    fail("{}: the text has {} tokens, fewer than one window of {} tokens (try a smaller --ctx)", text_name,
         ids.size(), ctx);
  return w;
}

namespace {

// log-softmax of one row, in double: returns log Σ exp(l) (so log p_i = l_i − lse).
double log_sum_exp(const float* l, int n) {
  float mx = l[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, l[i]);
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(double(l[i]) - mx);
  return mx + std::log(s);
}

int argmax(const float* l, int n) { return int(std::max_element(l, l + n) - l); }

// KL(p ‖ q) from logits, both rows of n.
double kl_div(const float* lp, double lse_p, const float* lq, double lse_q, int n) {
  double kl = 0;
  for (int i = 0; i < n; ++i) {
    const double logp = double(lp[i]) - lse_p;
    kl += std::exp(logp) * (logp - (double(lq[i]) - lse_q));
  }
  return std::max(kl, 0.0);
}

}  // namespace

EvalResult evaluate(const Model& model, const Model* base, const Windows& w, const Progress& progress) {
  const int V = model.config().vocab;
  if (base && base->config().vocab != V)
    fail("{}: base model vocabulary {} differs from {}", base->path(), base->config().vocab, V);
  const int ctx = int(w.ids.front().size());
  Runner run(model, ctx);
  std::optional<Runner> run_base;
  if (base) run_base.emplace(*base, ctx);
  std::vector<float> logits(size_t(ctx) * V), base_logits(base ? size_t(ctx) * V : 0);

  EvalResult r;
  r.has_base = base != nullptr;
  std::vector<double> klds;
  double nll_sum = 0, base_nll_sum = 0;
  int64_t agree = 0;
  for (size_t k = 0; k < w.ids.size(); ++k) {
    const auto& win = w.ids[k];
    run.reset();
    run.forward(win.data(), int(win.size()), logits.data(), true);
    if (base) {
      run_base->reset();
      run_base->forward(win.data(), int(win.size()), base_logits.data(), true);
    }
    double wn = 0, wb = 0;
    int scored = 0;
    for (int i = w.score_from; i + 1 < int(win.size()); ++i, ++scored) {
      const float* l = logits.data() + size_t(i) * V;
      const double lse = log_sum_exp(l, V);
      wn += lse - l[win[i + 1]];
      if (base) {
        const float* b = base_logits.data() + size_t(i) * V;
        const double lse_b = log_sum_exp(b, V);
        wb += lse_b - b[win[i + 1]];
        klds.push_back(kl_div(b, lse_b, l, lse, V));
        agree += argmax(b, V) == argmax(l, V);
      }
    }
    nll_sum += wn;
    base_nll_sum += wb;
    r.tokens_scored += scored;
    r.window_nll.push_back(wn / scored);
    if (base) r.base_window_nll.push_back(wb / scored);
    if (progress) progress(int(k + 1), int(w.ids.size()));
  }
  r.windows = int(w.ids.size());
  r.mean_nll = nll_sum / double(r.tokens_scored);
  r.ppl = std::exp(r.mean_nll);
  if (base) {
    r.base_mean_nll = base_nll_sum / double(r.tokens_scored);
    r.base_ppl = std::exp(r.base_mean_nll);
    double s = 0;
    for (double x : klds) s += x;
    r.kld_mean = s / double(klds.size());
    std::vector<double> sorted = klds;
    std::sort(sorted.begin(), sorted.end());
    r.kld_max = sorted.back();
    r.kld_p99 = sorted[std::min(sorted.size() - 1, size_t(std::ceil(0.99 * double(sorted.size()))) - 1)];
    r.top1_agreement = double(agree) / double(r.tokens_scored);
  }
  return r;
}

}  // namespace lmq
