#include "lmq/calib/pipeline.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <exception>

#include "lmq/error.h"
#include "lmq/calib/block_runner.h"
#include "lmq/quant/int_quantize.h"
#include "serial_blas.h"

namespace lmq::calib {

Method parse_method(const std::string& s) {
  if (s == "rtn") return Method::Rtn;
  if (s == "mse") return Method::Mse;
  if (s == "awmse") return Method::AwMse;
  if (s == "gptq") return Method::Gptq;
  if (s == "awq") return Method::Awq;
  if (s == "awq+gptq" || s == "gptq+awq") return Method::AwqGptq;
  fail("--method '{}': expected rtn, mse, awmse, gptq, awq or awq+gptq", s);
}

const char* method_name(Method m) {
  switch (m) {
    case Method::Rtn: return "rtn";
    case Method::Mse: return "mse";
    case Method::AwMse: return "awmse";
    case Method::Gptq: return "gptq";
    case Method::Awq: return "awq";
    case Method::AwqGptq: return "awq+gptq";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<const Tensor*> block_linears(const LayerWeights& w) {
  return {w.wq, w.wk, w.wv, w.wo, w.w_gate, w.w_up, w.w_down};
}

// Makes the MSE search the range method of the default scheme and of every integer override.
void use_mse(QuantizeOptions& o) {
  if (o.scheme.kind == quant::Scheme::Int) o.scheme.range = quant::RangeMethod::Mse;
  for (auto& ov : o.overrides)
    if (ov.scheme.kind == quant::Scheme::Int) ov.scheme.range = quant::RangeMethod::Mse;
}

// Hidden states of all windows, kept between blocks.
struct Hidden {
  std::vector<std::vector<float>> x;  // per window, len × hidden
};

// `m` with block l's linears as F32 copies (owned by the result), so BlockRunner's BLAS mode runs
// them through sgemm: each weight is dequantized once per pass instead of once per window.
std::unique_ptr<Model> dense_block(const Model& m, int l) {
  Model::Overlay dense;
  for (const Tensor* t : block_linears(m.layers()[size_t(l)])) {
    auto w = std::make_shared<std::vector<float>>(size_t(t->numel()));
    dequantize_rows(*t, 0, t->rows(), w->data());
    put_floats(dense, m, t->name, *w);
    dense.storage.push_back(w);
  }
  return Model::with_tensors(m, std::move(dense), m.path());
}

// One thread's share of run_block: its Runner and the statistics of its current window.
struct WindowWorker {
  std::unique_ptr<BlockRunner> run;
  SharedInputFilter shared;
  std::map<std::string, StatsBatch> batch;  // by stat_key
  std::vector<float> x;                     // the window's hidden state when not propagated
  std::exception_ptr error;
};

// Runs block l of `m` on every window's hidden state, one window per thread at a time (BLAS
// serial inside each). With acc, the inputs of the block's linears are gathered (by stat_key):
// each thread computes its window's batch, and after every round the batches are merged in
// window order, so the statistics do not depend on the thread count. h is updated in place
// only when `propagate`.
void run_block(const Model& m, int l, Hidden& h, const std::vector<std::vector<int>>& windows,
               std::map<std::string, StatsAccumulator>* acc, bool propagate) {
  const SerialBlas serial;
  const std::unique_ptr<Model> dense = dense_block(m, l);
  const int64_t nw = int64_t(windows.size());
  int maxlen = 1;
  for (const auto& w : windows) maxlen = std::max(maxlen, int(w.size()));
  std::vector<std::pair<const std::string*, StatsAccumulator*>> accs;  // indexable for the parallel merge
  if (acc) {
    for (const Tensor* t : block_linears(dense->layers()[size_t(l)])) acc->try_emplace(stat_key(t->name), t->cols());
    for (auto& [k, a] : *acc) accs.emplace_back(&k, &a);
  }
  const int T = int(std::clamp<int64_t>(omp_get_max_threads(), 1, std::max<int64_t>(nw, 1)));
  std::vector<WindowWorker> workers(static_cast<size_t>(T));
  for (WindowWorker& wk : workers) {
    wk.run = std::make_unique<BlockRunner>(*dense, maxlen);
    wk.run->set_blas(true);
    wk.run->set_inputs_only(!propagate);
    if (!acc) continue;
    wk.run->set_observer([&wk](const Tensor& t, const float* x, int n) {
      const std::string key = stat_key(t.name);
      if (!wk.shared.first(x, key)) return;
      wk.batch[key].compute(x, n, t.cols());
    });
  }
#pragma omp parallel num_threads(T)
  {
    // the team may be smaller than T (inside another parallel region): rounds of its size
    const int nt = omp_get_num_threads();
    WindowWorker& wk = workers[size_t(omp_get_thread_num())];
    for (int64_t r0 = 0; r0 < nw; r0 += nt) {  // the same rounds in every thread (barriers)
      const int64_t i = r0 + omp_get_thread_num();
      if (i < nw && !wk.error) try {
          std::vector<float>& hx = h.x[size_t(i)];
          if (!propagate) wk.x.assign(hx.begin(), hx.end());
          float* x = propagate ? hx.data() : wk.x.data();
          for (auto& [k, b] : wk.batch) b.n = 0;
          wk.run->reset();
          wk.run->forward_layers(x, int(windows[size_t(i)].size()), l, l + 1);
        } catch (...) {
          wk.error = std::current_exception();
        }
      if (!acc) continue;
#pragma omp barrier
#pragma omp for schedule(dynamic, 1)
      for (size_t k = 0; k < accs.size(); ++k)
        for (int64_t t = 0; t < nt && r0 + t < nw; ++t) {
          const auto& batches = workers[size_t(t)].batch;
          if (auto it = batches.find(*accs[k].first); it != batches.end()) accs[k].second->merge(it->second);
        }
    }
  }
  for (const WindowWorker& wk : workers)
    if (wk.error) std::rethrow_exception(wk.error);
}

bool is_awq(Method m) { return m == Method::Awq || m == Method::AwqGptq; }

// Quantizes one linear of a block with the calibrated method: w are its float weights (AWQ:
// already column-scaled, with st the scaled statistics).
TensorPlan quantize_linear(const Model& src, const Tensor& t, const std::vector<float>& w,
                                   const InputStats& st, const quant::Scheme& s, const CalibQuantOptions& c) {
  TensorPlan pq;
  pq.bytes.resize(quant::int_tensor_bytes(s.p, t.rows(), t.cols()));
  try {
    if (c.method == Method::Awq)  // the activation-weighted clip search on the scaled weights
      pq.stats = quant::quantize_tensor(w.data(), t.rows(), t.cols(), s.p, quant::RangeMethod::Mse, s.percentile,
                                        st.sq_mean.data(), pq.bytes.data(), c.gptq.threads);
    else
      pq.stats = gptq_quantize(w.data(), t.rows(), t.cols(), st.hessian.data(), s, c.gptq, pq.bytes.data());
  } catch (const Error& e) {
    fail("{}: tensor '{}': {}", src.path(), t.name, e.what());
  }
  return pq;
}

// Output error on the calibration set of the stored bytes vs w (the weights that were quantized,
// with st their input statistics), and of RTN of w at the same scheme.
CalibQuantReport::Layer layer_errors(const Tensor& t, const TensorPlan& pq, const quant::Scheme& s,
                                     const std::vector<float>& w, const InputStats& st, int threads) {
  const int64_t rows = t.rows(), K = t.cols();
  std::vector<uint8_t> rtn(pq.bytes.size());
  quant::quantize_tensor(w.data(), rows, K, s.p, s.range, s.percentile, nullptr, rtn.data(), threads);
  std::vector<float> wg(w.size()), wr(w.size());
  quant::int_dequantize_rows(s.p, pq.bytes.data(), rows, K, 0, rows, wg.data());
  quant::int_dequantize_rows(s.p, rtn.data(), rows, K, 0, rows, wr.data());
  return {t.name, output_error(w.data(), wg.data(), rows, K, st.hessian.data()),
          output_error(w.data(), wr.data(), rows, K, st.hessian.data())};
}

}  // namespace

std::unique_ptr<QuantPlan> prepare_calibrated(const Model& src, QuantizeOptions& o, const CalibQuantOptions& c,
                                                CalibQuantReport* report, const BlockProgress& progress) {
  auto holder = std::make_unique<QuantPlan>();
  CalibQuantReport rep;
  // Every BLAS call below runs in its calling thread: an idle OpenBLAS pool keeps yielding the
  // CPU for a long while after each call it ran (llama's GPTQ phase: 33 s with it, 9 s without,
  // on 2 loaded cores).
  const SerialBlas serial;
  if (c.method == Method::Rtn) return holder;
  if (c.method == Method::Mse) {
    use_mse(o);
    return holder;
  }
  const ModelConfig& cfg = src.config();
  const int L = cfg.n_layers;
  const bool from_file = !c.stats_in.empty();
  if (!from_file && c.windows.empty()) fail("--method {}: needs --calib FILE or --stats FILE", method_name(c.method));
  StatsMap file_stats, saved;
  if (from_file) file_stats = load_stats(c.stats_in);

  Hidden h;
  const auto t_start = Clock::now();
  if (!from_file) {
    Runner run(src, 1);
    for (const auto& w : c.windows) {
      h.x.emplace_back(w.size() * size_t(cfg.hidden));
      run.embed_tokens(w.data(), int(w.size()), h.x.back().data());
      rep.tokens += int64_t(w.size());
    }
  }
  double calib_s = 0, quant_s = 0;

  for (int l = 0; l < L; ++l) {
    const LayerWeights& lw = src.layers()[l];
    StatsMap block_stats;
    if (from_file) {
      for (const Tensor* t : block_linears(lw))
        if (const InputStats* s = find_stats(file_stats, t->name)) block_stats.emplace(stat_key(t->name), *s);
    } else {
      if (progress) progress(l, L, "calibrating");
      const auto t0 = Clock::now();
      std::map<std::string, StatsAccumulator> acc;
      // the float block's output is propagated only by awmse (the others propagate the quantized block's)
      run_block(src, l, h, c.windows, &acc, c.method == Method::AwMse);
      for (auto& [k, a] : acc) block_stats.emplace(k, a.finish());
      calib_s += since(t0);
    }
    if (!c.stats_out.empty())
      for (const auto& [k, s] : block_stats) saved.emplace(k, s);

    if (c.method == Method::AwMse) {
      for (const Tensor* t : block_linears(lw)) {
        const InputStats* s = find_stats(block_stats, t->name);
        if (!s) fail("stats: no statistics for '{}'", t->name);
        holder->tensors[t->name].importance = s->sq_mean;
      }
      continue;
    }

    // GPTQ / AWQ of block l's linears
    if (progress) progress(l, L, method_name(c.method));
    const auto t1 = Clock::now();
    Model::Overlay calibrated;  // block l's linears as the method stored them
    AwqBlock awq;
    if (is_awq(c.method)) {
      awq = c.awq_round_trip ? awq_block(src, l, block_stats, c.awq_round_trip, c.awq)
                             : awq_block(src, l, block_stats, [&](const Tensor& t) { return resolve_scheme(t, o); }, c.awq);
      rep.awq_groups.insert(rep.awq_groups.end(), awq.groups.begin(), awq.groups.end());
    }
    std::vector<float> w;
    if (c.block_quantizer) c.block_quantizer(l, block_linears(lw), block_stats, is_awq(c.method) ? &awq : nullptr, calibrated);
    else for (const Tensor* t : block_linears(lw)) {
      const quant::Scheme s = resolve_scheme(*t, o);
      if (s.kind != quant::Scheme::Int) continue;
      const InputStats* st = find_stats(block_stats, t->name);
      if (!st) fail("stats: no statistics for '{}'", t->name);
      if (st->K != t->cols()) fail("stats for '{}' have {} inputs, the weight {}", t->name, st->K, t->cols());
      w.resize(size_t(t->numel()));
      dequantize_rows(*t, 0, t->rows(), w.data());
      TensorPlan pq;
      if (is_awq(c.method)) {  // report: the error vs RTN of the unscaled weights, both in the scaled space
        const InputStats sst = scaled_stats(*st, awq.col_scale.at(t->name));
        const std::vector<float>& ws = awq.weights.at(t->name);
        pq = quantize_linear(src, *t, ws, sst, s, c);
        CalibQuantReport::Layer e = layer_errors(*t, pq, s, ws, sst, c.gptq.threads);
        e.rtn_err = layer_errors(*t, pq, s, w, *st, c.gptq.threads).rtn_err;
        rep.layers.push_back(e);
      } else {
        pq = quantize_linear(src, *t, w, *st, s, c);
        rep.layers.push_back(layer_errors(*t, pq, s, w, *st, c.gptq.threads));
      }
      awq.weights.erase(t->name);  // stored quantized; what is left is stored as floats
      TensorPlan& planned = holder->tensors[t->name];
      planned.bytes = std::move(pq.bytes);
      planned.stats = pq.stats;
      Tensor pt = *t;
      pt.format = Format::LMQ_INT;
      pt.q = s.p;
      pt.data = planned.bytes.data();
      pt.nbytes = planned.bytes.size();
      calibrated.put(std::move(pt));
    }
    for (auto& [name, v] : awq.weights) {
      const auto& held = holder->tensors[name].values = std::move(v);
      put_floats(calibrated, src, name, held);
    }
    quant_s += since(t1);
    if (!from_file) {  // propagate through the quantized block
      if (progress) progress(l, L, "propagating");
      const auto t2 = Clock::now();
      auto mixed =
          Model::with_tensors(src, std::move(calibrated), src.path() + " [calibrated block " + std::to_string(l) + "]");
      run_block(*mixed, l, h, c.windows, nullptr, true);
      calib_s += since(t2);
    }
  }
  if (progress) progress(L, L, "done");
  if (c.method == Method::AwMse) use_mse(o);
  o.plan = holder.get();
  if (!c.stats_out.empty()) {
    std::map<std::string, std::string> meta = c.stats_meta;
    if (!meta.count("lmq.stats.sequential"))  // a block_quantizer's caller names its own scheme
      meta["lmq.stats.sequential"] =
          c.method != Method::AwMse && !from_file ? std::string(method_name(c.method)) + ":" + o.scheme.to_string() : "no";
    meta["lmq.stats.windows"] = std::to_string(c.windows.size());
    meta["lmq.stats.tokens"] = std::to_string(rep.tokens);
    save_stats(c.stats_out, saved, meta);
  }
  rep.calib_seconds = calib_s;
  rep.quant_seconds = quant_s;
  (void)t_start;
  if (report) *report = rep;
  return holder;
}

}  // namespace lmq::calib
