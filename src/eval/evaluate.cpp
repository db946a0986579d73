#include "lmq/eval/evaluate.h"

#include <algorithm>
#include <cmath>

#include "lmq/error.h"
#include "lmq/kernels/vec.h"
#include "lmq/model/kv_cache.h"
#include "lmq/model/forward.h"

namespace lmq {

Protocol parse_protocol(const std::string& s) {
  if (s == "lmq") return Protocol::Lmq;
  if (s == "llamacpp") return Protocol::LlamaCpp;
  fail("--protocol '{}': expected lmq or llamacpp", s);
}

std::vector<int> encode_prefix(const Tokenizer& tok, const std::string& text, int64_t need) {
  if (need <= 0) return tok.encode(text);
  // The text is cut just after a newline that a non-whitespace character follows. No token
  // spans such a cut: Llama's SentencePiece vocabulary has no piece containing '\n' (newlines
  // are byte-fallback tokens), and the byte-level BPE pre-tokenizers (Llama-3's and Qwen's
  // regexes) end a pre-token after a run of whitespace that holds a newline; the next character
  // starts the next one. So the encoding of the cut text is exactly the start of the whole text's
  // encoding (tested against whole-text encodings of both families).
  auto is_space = [](char ch) { return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t' || ch == '\v' || ch == '\f'; };
  size_t len = size_t(need) * 8 + 4096;
  while (true) {
    if (len >= text.size()) return tok.encode(text);
    size_t nl = text.find('\n', len);
    while (nl != std::string::npos && nl + 1 < text.size() && is_space(text[nl + 1])) nl = text.find('\n', nl + 1);
    if (nl == std::string::npos || nl + 1 >= text.size()) return tok.encode(text);
    std::vector<int> ids = tok.encode(std::string_view(text).substr(0, nl + 1));
    if (int64_t(ids.size()) >= need) return ids;
    len *= 2;
  }
}

Windows make_windows(const Tokenizer& tok, const std::string& text, Protocol p, int ctx, int bos, int max_windows,
                     const std::string& text_name) {
  if (ctx < 4) fail("--ctx {}: must be at least 4", ctx);
  // Only the tokens the windows use are encoded (+1 so "no further whole window" is decided right).
  const int64_t need = max_windows > 0 ? int64_t(max_windows) * ctx + 1 : 0;
  std::vector<int> ids = encode_prefix(tok, text, need);
  Windows w;
  // A tokenizer that adds no BOS (bos < 0, e.g. Qwen's) gets windows of ctx plain text tokens.
  const bool has_bos = bos >= 0;
  if (p == Protocol::Lmq) {
    const size_t step = size_t(has_bos ? ctx - 1 : ctx);
    for (size_t k = 0; (k + 1) * step <= ids.size(); ++k) {
      if (max_windows > 0 && int(w.ids.size()) >= max_windows) break;
      std::vector<int> win;
      if (has_bos) win.push_back(bos);
      win.insert(win.end(), ids.begin() + k * step, ids.begin() + (k + 1) * step);
      w.ids.push_back(std::move(win));
    }
    w.score_from = 0;
  } else {
    if (has_bos) ids.insert(ids.begin(), bos);
    const size_t step = size_t(ctx);
    for (size_t k = 0; (k + 1) * step <= ids.size(); ++k) {
      if (max_windows > 0 && int(w.ids.size()) >= max_windows) break;
      std::vector<int> win(ids.begin() + k * step, ids.begin() + (k + 1) * step);
      if (has_bos) win[0] = bos;
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

int argmax(const float* l, int n) { return int(std::max_element(l, l + n) - l); }

// Running sums of one model's scores over all windows.
struct Acc {
  double nll = 0;
  int64_t agree = 0;
  std::vector<double> klds, window_nll;
};

void finish(EvalResult& r, const Acc& a, int64_t scored, bool has_base, const Acc& base) {
  r.tokens_scored = scored;
  r.windows = int(a.window_nll.size());
  r.window_nll = a.window_nll;
  r.mean_nll = a.nll / double(scored);
  r.ppl = std::exp(r.mean_nll);
  r.has_base = has_base;
  if (!has_base) return;
  r.base_mean_nll = base.nll / double(scored);
  r.base_ppl = std::exp(r.base_mean_nll);
  r.base_window_nll = base.window_nll;
  double s = 0;
  for (double x : a.klds) s += x;
  r.kld_mean = s / double(a.klds.size());
  std::vector<double> sorted = a.klds;
  std::sort(sorted.begin(), sorted.end());
  r.kld_max = sorted.back();
  r.kld_p99 = sorted[std::min(sorted.size() - 1, size_t(std::ceil(0.99 * double(sorted.size()))) - 1)];
  r.top1_agreement = double(a.agree) / double(scored);
}

}  // namespace

std::vector<EvalResult> evaluate_models(const std::vector<const Model*>& models, const Model* base, const Windows& w,
                                        const Progress& progress, const RunOptions& run) {
  if (models.empty()) fail("evaluate: no model");
  const int V = models.front()->config().vocab;
  for (const Model* m : models)
    if (m->config().vocab != V) fail("{}: vocabulary {} differs from {}", m->path(), m->config().vocab, V);
  if (base && base->config().vocab != V)
    fail("{}: base model vocabulary {} differs from {}", base->path(), base->config().vocab, V);
  const int ctx = int(w.ids.front().size());
  std::vector<Runner> runners;
  runners.reserve(models.size());
  for (const Model* m : models) runners.emplace_back(*m, ctx, run);
  std::optional<Runner> base_run;
  if (base) {
    RunOptions base_opts = run;
    base_opts.kv = KvType::F32;  // the reference keeps the exact cache whatever --kv says
    base_run.emplace(*base, ctx, base_opts);
  }
  // One window at a time: the base's softmax is taken once and every model is scored against it.
  std::vector<float> logits(size_t(ctx) * V), base_logits(base ? size_t(ctx) * V : 0);
  std::vector<float> base_p(base ? size_t(ctx) * V : 0), diff(static_cast<size_t>(V));
  std::vector<double> base_lse(static_cast<size_t>(ctx)), base_mass(static_cast<size_t>(ctx));
  std::vector<int> base_top(static_cast<size_t>(ctx));
  std::vector<Acc> acc(models.size());
  Acc base_acc;
  int64_t scored_total = 0;
  for (size_t k = 0; k < w.ids.size(); ++k) {
    const auto& win = w.ids[k];
    const int n = int(win.size());
    if (base) {
      base_run->reset();
      base_run->forward(win.data(), n, base_logits.data(), true);
      double wn = 0;
      for (int i = w.score_from; i + 1 < n; ++i) {
        const float* b = base_logits.data() + size_t(i) * V;
        base_lse[i] = log_sum_exp(b, V);
        base_mass[i] = exp_shifted(b, V, float(base_lse[i]), base_p.data() + size_t(i) * V);
        base_top[i] = argmax(b, V);
        wn += base_lse[i] - b[win[i + 1]];
      }
      base_acc.nll += wn;
      base_acc.window_nll.push_back(wn / (n - 1 - w.score_from));
    }
    for (size_t m = 0; m < models.size(); ++m) {
      runners[m].reset();
      runners[m].forward(win.data(), n, logits.data(), true);
      double wn = 0;
      for (int i = w.score_from; i + 1 < n; ++i) {
        const float* l = logits.data() + size_t(i) * V;
        const double lse = log_sum_exp(l, V);
        wn += lse - l[win[i + 1]];
        if (!base) continue;
        // KL(p ‖ q) = Σ p·(l_p − l_q) − (lse_p − lse_q)·Σp, on the difference of logits so
        // that small divergences keep their precision.
        const float* b = base_logits.data() + size_t(i) * V;
        for (int v = 0; v < V; ++v) diff[size_t(v)] = b[v] - l[v];
        const double kl = dot(base_p.data() + size_t(i) * V, diff.data(), V) - (base_lse[i] - lse) * base_mass[i];
        acc[m].klds.push_back(std::max(kl, 0.0));
        acc[m].agree += base_top[i] == argmax(l, V);
      }
      acc[m].nll += wn;
      acc[m].window_nll.push_back(wn / (n - 1 - w.score_from));
    }
    scored_total += n - 1 - w.score_from;
    if (progress) progress(int(k + 1), int(w.ids.size()));
  }
  std::vector<EvalResult> results(models.size());
  for (size_t m = 0; m < models.size(); ++m) finish(results[m], acc[m], scored_total, base != nullptr, base_acc);
  return results;
}

std::vector<double> kld_means(const std::vector<const Model*>& models, const Model& base,
                              const std::vector<std::vector<int>>& windows) {
  Windows w;
  w.ids = windows;
  std::vector<double> r;
  for (const EvalResult& e : evaluate_models(models, &base, w)) r.push_back(e.kld_mean);
  return r;
}

EvalResult evaluate(const Model& model, const Model* base, const Windows& w, const Progress& progress,
                    const RunOptions& run) {
  return evaluate_models({&model}, base, w, progress, run).front();
}

}  // namespace lmq
