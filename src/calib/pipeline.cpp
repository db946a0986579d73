#include "lmq/calib/pipeline.h"

#include <malloc.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <exception>
#include <optional>
#include <unordered_map>

#include "lmq/error.h"
#include "lmq/calib/block_runner.h"
#include "lmq/calib/gguf_target.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/half.h"
#include "lmq/kernels/gemm_bf16.h"
#include "lmq/kernels/vec.h"
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

CalibPrecision parse_calib_precision(const std::string& s) {
  if (s == "auto") return have_avx512_bf16() ? CalibPrecision::Bf16 : CalibPrecision::F32;
  if (s == "f32") return CalibPrecision::F32;
  if (s == "bf16") return CalibPrecision::Bf16;
  fail("--calib-precision '{}': expected auto, f32 or bf16", s);
}

const char* calib_precision_name(CalibPrecision p) { return p == CalibPrecision::Bf16 ? "bf16" : "f32"; }

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

// Seconds of CPU this thread has used: the measure of a phase when phases run side by side.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

std::vector<const Tensor*> block_linears(const LayerWeights& w) {
  return {w.wq, w.wk, w.wv, w.wo, w.w_gate, w.w_up, w.w_down};
}

// Hidden states of all windows, kept between blocks.
struct Hidden {
  std::vector<std::vector<float>> x;   // per window, len × hidden: through the blocks as stored
  std::vector<std::vector<float>> xf;  // the same through the float blocks (asymmetric GPTQ only)
};

// The embedding rows of `tokens` as the plan stores them (the writers quantize an embedding row
// by row, so each row's rounding is its own): for the quantized calibration stream of the
// asymmetric target. Rows repeat across windows, so each is rounded once.
class StoredEmbedding {
 public:
  StoredEmbedding(const Model& m, const QuantPlan& plan) : m_(m), target_(plan.target(m.embed().name)) {
    LMQ_CHECK(target_, "no target for '{}'", m.embed().name);
    if (target_->format == Format::LMQ_INT && target_->scheme.p.group == 0)
      fail("--asym-calib: the embedding '{}' is quantized per tensor; its rows cannot be rounded one at a time "
           "(give it a per-channel or grouped scheme with --override)",
           m.embed().name);
  }
  void embed(const int* tokens, int n, float* x) {
    const int64_t D = m_.config().hidden;
    for (int i = 0; i < n; ++i) {
      m_.check_token(tokens[i]);
      auto [it, fresh] = rows_.try_emplace(tokens[i]);
      if (fresh) it->second = round_trip(tokens[i]);
      std::copy(it->second.begin(), it->second.end(), x + i * D);
    }
  }

 private:
  std::vector<float> round_trip(int token) const {
    const Tensor& e = m_.embed();
    const int64_t D = e.cols();
    std::vector<float> x(static_cast<size_t>(D)), back(static_cast<size_t>(D));
    dequantize_rows(e, token, 1, x.data());
    const Format f = target_->format;
    if (f == Format::F32) return x;
    if (f == Format::F16 || f == Format::BF16) {
      for (float& v : x) v = f == Format::F16 ? f16_to_f32(f32_to_f16(v)) : bf16_to_f32(f32_to_bf16(v));
      return x;
    }
    if (f == Format::LMQ_INT) {
      const quant::Scheme& sc = target_->scheme;
      std::vector<uint8_t> q(quant::int_tensor_bytes(sc.p, 1, D));
      quant::quantize_tensor(x.data(), 1, D, sc.p, sc.range, sc.percentile, nullptr, q.data(), 1);
      quant::int_dequantize_rows(sc.p, q.data(), 1, D, 0, 1, back.data());
      return back;
    }
    // a ggml block type, with the weighted fit the GGUF writer gives a calibrated plan's
    // embedding (plan.weighted, no importance of its own: every column 1)
    std::vector<uint8_t> q(size_t(ggml_row_bytes(f, D)));
    const std::vector<float> ones(size_t(D), 1.f);
    ggml_quantize_row(f, x.data(), q.data(), D, ones.data());
    ggml_dequantize_row(f, q.data(), back.data(), D);
    return back;
  }
  const Model& m_;
  const TensorTarget* target_;
  std::unordered_map<int, std::vector<float>> rows_;
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

// Block l's linears packed to bf16 for BlockRunner's gemm_bf16 path, in place of dense_block's
// F32 copies (half their memory): dequantized a chunk of rows at a time, the chunks side by side.
BlockRunner::PackedLinears packed_block(const Model& m, int l) {
  constexpr int64_t kChunk = 64;
  BlockRunner::PackedLinears packed;
  for (const Tensor* t : block_linears(m.layers()[size_t(l)])) {
    PackedBf16 p(t->rows(), t->cols());
    const int64_t chunks = (t->rows() + kChunk - 1) / kChunk;
    std::exception_ptr error;  // none may leave the parallel region
#pragma omp parallel
    {
      std::vector<float> rows(size_t(kChunk * t->cols()));
#pragma omp for schedule(static)
      for (int64_t c = 0; c < chunks; ++c) try {
          const int64_t r0 = c * kChunk, n = std::min(kChunk, t->rows() - r0);
          dequantize_rows(*t, r0, n, rows.data());
          p.set_rows(r0, n, rows.data());
        } catch (...) {
#pragma omp critical(lmq_packed_block)
          if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
    packed.emplace(t, std::move(p));
  }
  return packed;
}

// One thread's share of run_block: its Runner and the statistics of its current window.
struct WindowWorker {
  std::unique_ptr<BlockRunner> run;
  SharedInputFilter shared;
  std::map<std::string, StatsBatch> batch;  // by stat_key
  std::vector<float> x;                     // the window's hidden state when not propagated
  bool capture = false;                     // the float stream's pass: keep the inputs in `ref`
  std::map<std::string, std::vector<float>> ref;  // by stat_key: the float stream's inputs
  std::exception_ptr error;
  double forward_cpu = 0, hessian_cpu = 0;  // this thread's CPU seconds in each
};

// Runs block l of `m` on every window's hidden state, one window per thread at a time (BLAS
// serial inside each; the linears in f32 or bf16 as `precision` says). With acc, the inputs of
// the block's linears are gathered (by stat_key): each thread computes its window's batch, and
// after every round the batches are merged in window order, so the statistics do not depend on
// the thread count. h is updated in place only when `propagate`.
// With `reference` (the float stream, asymmetric GPTQ: needs acc), each window first runs the
// block on its float hidden state, which is propagated, keeping each linear's input, and the
// statistics then pair the two streams' inputs (InputStats::cross).
void run_block(const Model& m, int l, Hidden& h, const std::vector<std::vector<int>>& windows,
               std::map<std::string, StatsAccumulator>* acc, bool propagate, CalibPrecision precision,
               CalibQuantReport::Phases& cpu, std::vector<std::vector<float>>* reference = nullptr) {
  LMQ_CHECK(!reference || acc, "a reference stream without statistics");
  const SerialBlas serial;
  // the block's linears, made once per pass: F32 copies for sgemm, or packed bf16 (never both)
  const bool bf16 = precision == CalibPrecision::Bf16;
  const BlockRunner::PackedLinears packed = bf16 ? packed_block(m, l) : BlockRunner::PackedLinears{};
  const std::unique_ptr<Model> dense = bf16 ? nullptr : dense_block(m, l);
  const Model& block = bf16 ? m : *dense;
  const int64_t nw = int64_t(windows.size());
  int maxlen = 1;
  for (const auto& w : windows) maxlen = std::max(maxlen, int(w.size()));
  std::vector<std::pair<const std::string*, StatsAccumulator*>> accs;  // indexable for the parallel merge
  if (acc) {
    for (const Tensor* t : block_linears(block.layers()[size_t(l)])) acc->try_emplace(stat_key(t->name), t->cols());
    for (auto& [k, a] : *acc) accs.emplace_back(&k, &a);
  }
  const int T = int(std::clamp<int64_t>(omp_get_max_threads(), 1, std::max<int64_t>(nw, 1)));
  std::vector<WindowWorker> workers(static_cast<size_t>(T));
  for (WindowWorker& wk : workers) {
    wk.run = std::make_unique<BlockRunner>(block, maxlen);
    wk.run->set_blas(true, bf16 ? &packed : nullptr);
    wk.run->set_inputs_only(!propagate);
    if (!acc) continue;
    wk.run->set_observer([&wk](const Tensor& t, const float* x, int n) {
      const std::string key = stat_key(t.name);
      if (!wk.shared.first(x, key)) return;
      if (wk.capture) return void(wk.ref[key].assign(x, x + int64_t(n) * t.cols()));
      const double t0 = thread_cpu_seconds();
      const auto r = wk.ref.find(key);
      wk.batch[key].compute(x, n, t.cols(), r == wk.ref.end() ? nullptr : r->second.data());
      wk.hessian_cpu += thread_cpu_seconds() - t0;
    });
  }
#pragma omp parallel num_threads(T)
  {
    // the team may be smaller than T (inside another parallel region): rounds of its size
    const int nt = omp_get_num_threads();
    WindowWorker& wk = workers[size_t(omp_get_thread_num())];
    for (int64_t r0 = 0; r0 < nw; r0 += nt) {  // the same rounds in every thread (barriers)
      const int64_t i = r0 + omp_get_thread_num();
      const double t0 = thread_cpu_seconds(), h0 = wk.hessian_cpu;
      if (i < nw && !wk.error) try {
          std::vector<float>& hx = h.x[size_t(i)];
          if (!propagate) wk.x.assign(hx.begin(), hx.end());
          float* x = propagate ? hx.data() : wk.x.data();
          for (auto& [k, b] : wk.batch) b.n = 0;
          const int n = int(windows[size_t(i)].size());
          if (reference) {  // the float stream first: its inputs kept, its state propagated
            wk.capture = true;
            wk.shared.reset();
            wk.run->set_inputs_only(false);
            wk.run->reset();
            wk.run->forward_layers((*reference)[size_t(i)].data(), n, l, l + 1);
            wk.capture = false;
            wk.shared.reset();
            wk.run->set_inputs_only(!propagate);
          }
          wk.run->reset();
          wk.run->forward_layers(x, n, l, l + 1);
        } catch (...) {
          wk.error = std::current_exception();
        }
      wk.forward_cpu += thread_cpu_seconds() - t0 - (wk.hessian_cpu - h0);
      if (!acc) continue;
#pragma omp barrier
      const double m0 = thread_cpu_seconds();
#pragma omp for schedule(dynamic, 1)
      for (size_t k = 0; k < accs.size(); ++k)
        for (int64_t t = 0; t < nt && r0 + t < nw; ++t) {
          const auto& batches = workers[size_t(t)].batch;
          if (auto it = batches.find(*accs[k].first); it != batches.end()) accs[k].second->merge(it->second);
        }
      wk.hessian_cpu += thread_cpu_seconds() - m0;  // the merge, and the wait for its slowest thread
    }
  }
  for (const WindowWorker& wk : workers) {
    if (wk.error) std::rethrow_exception(wk.error);
    cpu.forward += wk.forward_cpu, cpu.hessian += wk.hessian_cpu;
  }
}

bool is_awq(Method m) { return m == Method::Awq || m == Method::AwqGptq; }

bool is_block_format(Format f) { return format_traits(f).ggml && format_traits(f).quantized; }

// How a linear is stored, the one thing the per-linear loop asks of its target: an lmq integer
// scheme (lmq's file) or a ggml block type (GGUF). Any other target (floats) is not calibrated.
struct LinearStore {
  const TensorTarget& target;
  bool ggml() const { return target.format != Format::LMQ_INT; }
  static bool calibrated(const TensorTarget& t) {
    return t.format == Format::LMQ_INT ? t.scheme.kind == quant::Scheme::Int : is_block_format(t.format);
  }
  size_t bytes(int64_t rows, int64_t K) const {
    return ggml() ? size_t(ggml_row_bytes(target.format, K) * uint64_t(rows))
                  : quant::int_tensor_bytes(target.scheme.p, rows, K);
  }
  // The method's choice for w (rows × K, input statistics st) into `out`; back: what was stored.
  quant::QuantStats quantize(const CalibQuantOptions& c, const GptqOptions& go, const float* w, int64_t rows,
                             int64_t K, const InputStats& st, uint8_t* out, float* back) const {
    const quant::Scheme& s = target.scheme;
    const Format f = target.format;
    if (c.method == Method::Awq) {  // the activation-weighted fit (awmse on the scaled weights)
      if (!ggml()) {
        const quant::QuantStats qs = quant::quantize_tensor(w, rows, K, s.p, quant::RangeMethod::Mse, s.percentile,
                                                            st.sq_mean.data(), out, go.threads);
        quant::int_dequantize_rows(s.p, out, rows, K, 0, rows, back);
        return qs;
      }
      ggml_round_trip(f, w, rows, K, st.sq_mean.data(), out, back);
      quant::QuantStats qs;
      for (int64_t i = 0; i < rows * K; ++i) qs.add(double(w[i]), back[i]);
      return qs.finish();
    }
    if (ggml()) return gptq_quantize_ggml(w, rows, K, st.hessian.data(), f, go, c.hessian_fit, out, back);
    const quant::QuantStats qs = gptq_quantize(w, rows, K, st.hessian.data(), s, go, out);
    quant::int_dequantize_rows(s.p, out, rows, K, 0, rows, back);
    return qs;
  }
  // The reference the report compares with: RTN of the same scheme, or the format's plain quantizer
  // (llama.cpp's; lmq's own search for the lattice i-quants).
  void reference(const float* w, int64_t rows, int64_t K, int threads, float* back) const {
    std::vector<uint8_t> q(bytes(rows, K));
    if (ggml()) return ggml_round_trip(target.format, w, rows, K, nullptr, q.data(), back);
    const quant::Scheme& s = target.scheme;
    quant::quantize_tensor(w, rows, K, s.p, s.range, s.percentile, nullptr, q.data(), threads);
    quant::int_dequantize_rows(s.p, q.data(), rows, K, 0, rows, back);
  }
  // t as stored, for the propagation through the block (bytes owned by the plan).
  Tensor stored(const Tensor& t, const std::vector<uint8_t>& b) const {
    Tensor pt = t;
    pt.format = target.format;
    if (!ggml()) pt.q = target.scheme.p;
    pt.data = b.data();
    pt.nbytes = b.size();
    return pt;
  }
};

// AWQ's α search scores each linear in its target with the fit that will store it: lmq's
// integer schemes with min/max ranges; ggml types with awq's activation-weighted fit (so the
// α = 0 end is awmse, and the chosen α never scores worse), or for awq+gptq llama.cpp's
// reference quantizer (GPTQ's error feedback comes afterwards).
RoundTripOf awq_round_trips(const QuantPlan& plan, Method m, int threads) {
  if (!plan.gguf)
    return int_round_trips(
        [&plan](const Tensor& t) {
          const TensorTarget* target = plan.target(t.name);
          LMQ_CHECK(target, "no target for '{}'", t.name);
          return target->scheme;
        },
        threads);
  const bool weighted = m == Method::Awq;
  return [&plan, weighted](const Tensor& t) -> RoundTrip {
    const TensorTarget* target = plan.target(t.name);
    if (!target || !is_block_format(target->format)) return {};
    return [f = target->format, weighted](const float* w, int64_t rows, int64_t K, const float* imp, float* back) {
      std::vector<uint8_t> bytes(size_t(ggml_row_bytes(f, K) * uint64_t(rows)));
      ggml_round_trip(f, w, rows, K, weighted ? imp : nullptr, bytes.data(), back);
    };
  };
}

// One calibrated linear of a block: its input statistics (AWQ: the scaled input's), and what
// the method and the reference quantizer gave.
struct LinearJob {
  const Tensor* t;
  LinearStore store;
  const InputStats* st;          // of the unscaled input
  const InputStats* sq = nullptr;  // what the method sees (AWQ: shared with its group's scaled copy)
  const std::vector<float>* wq = nullptr;  // AWQ: the column-scaled weights
  TensorPlan* planned;
  double err = 0, rtn_err = 0;
};

// Linears with the same input statistics (q/k/v, gate/up; with AWQ, also the same column
// scales): GPTQ's inverse Hessian is computed once for all of them.
struct HessianGroup {
  std::vector<LinearJob*> jobs;
  std::unique_ptr<InputStats> scaled;  // AWQ
};

// A unit of a block's per-linear work, run by one thread: a group's GPTQ (the inverse once,
// then each linear's sweep and output error), or one linear's reference quantizer and its error.
struct Unit {
  HessianGroup* group = nullptr;
  LinearJob* ref = nullptr;
  double cost = 0;  // flops, for the order (largest first)
  std::exception_ptr error;
  CalibQuantReport::Phases cpu;
};

// The error report's row stride: its cost (rows · K² per error) held to kReportRows rows.
int64_t report_stride(int64_t rows) {
  return (rows + CalibQuantReport::kReportRows - 1) / CalibQuantReport::kReportRows;
}

void run_group(const Model& src, HessianGroup& g, const CalibQuantOptions& c, CalibQuantReport::Phases& cpu) {
  const bool gptq = c.method == Method::Gptq || c.method == Method::AwqGptq;
  GptqOptions go = c.gptq;
  go.threads = 1;  // the units run side by side, one thread each
  for (LinearJob* j : g.jobs) {
    const Tensor& t = *j->t;
    const int64_t rows = t.rows(), K = t.cols();
    std::vector<float> w(size_t(t.numel())), back(w.size());
    dequantize_rows(t, 0, rows, w.data());
    const std::vector<float>& wq = j->wq ? *j->wq : w;
    j->planned->bytes.held().resize(j->store.bytes(rows, K));
    double t0 = thread_cpu_seconds();
    try {
      if (gptq && !go.inverse) {
        go.inverse = std::make_shared<const GptqInverse>(gptq_inverse(j->sq->hessian.data(), K, go));
        const double t1 = thread_cpu_seconds();
        cpu.solve += t1 - t0;
        t0 = t1;
      }
      std::vector<float> target;  // the asymmetric target W* in place of W
      if (c.asymmetric()) {
        LMQ_CHECK(gptq && !j->wq && j->sq->cross.size() == size_t(K * K), "asymmetric GPTQ without its statistic");
        target = gptq_asymmetric_target(w.data(), rows, K, j->sq->cross.data(), *go.inverse, c.asym_alpha);
        const double t1 = thread_cpu_seconds();
        cpu.solve += t1 - t0;
        t0 = t1;
      }
      const float* wm = c.asymmetric() ? target.data() : wq.data();
      j->planned->stats = j->store.quantize(c, go, wm, rows, K, *j->sq, j->planned->bytes.held().data(), back.data());
    } catch (const Error& e) {
      fail("{}: tensor '{}': {}", src.path(), t.name, e.what());
    }
    const double t1 = thread_cpu_seconds();
    cpu.sweep += t1 - t0;
    j->err = output_error(wq.data(), back.data(), rows, K, j->sq->hessian.data(), 1, report_stride(rows));
    cpu.report += thread_cpu_seconds() - t1;
  }
}

// The reference the report compares with: RTN of the same target on the unscaled weights.
void run_reference(LinearJob& j, CalibQuantReport::Phases& cpu) {
  const double t0 = thread_cpu_seconds();
  const Tensor& t = *j.t;
  const int64_t rows = t.rows(), K = t.cols();
  std::vector<float> w(size_t(t.numel())), back(w.size());
  dequantize_rows(t, 0, rows, w.data());
  j.store.reference(w.data(), rows, K, 1, back.data());
  j.rtn_err = output_error(w.data(), back.data(), rows, K, j.st->hessian.data(), 1, report_stride(rows));
  cpu.report += thread_cpu_seconds() - t0;
}

// Block l's calibrated linears (jobs, in block order) with the method, into their plan entries
// and `calibrated`. The block's linears are independent here (their statistics all come from
// the float block), so the units run side by side, one per thread, largest first: GPTQ's O(K³)
// inverse, which LAPACK runs in one thread, overlaps the other linears' work. Every unit's result
// is that of a one-thread run, so the bytes depend on neither the thread count nor the schedule.
void calibrate_block(const Model& src, std::vector<LinearJob>& jobs, AwqBlock* awq, const CalibQuantOptions& c,
                     Model::Overlay& calibrated, CalibQuantReport& rep) {
  std::vector<std::unique_ptr<HessianGroup>> groups;
  for (LinearJob& j : jobs) {
    const std::vector<float>* scale = awq ? &awq->col_scale.at(j.t->name) : nullptr;
    auto same = [&](const std::unique_ptr<HessianGroup>& g) {
      const LinearJob& h = *g->jobs.front();
      return h.st == j.st && (!awq || awq->col_scale.at(h.t->name) == *scale);
    };
    auto it = std::find_if(groups.begin(), groups.end(), same);
    if (it == groups.end()) {
      groups.push_back(std::make_unique<HessianGroup>());
      it = groups.end() - 1;
      if (awq) (*it)->scaled = std::make_unique<InputStats>(scaled_stats(*j.st, *scale));
    }
    j.sq = awq ? (*it)->scaled.get() : j.st;
    if (awq) j.wq = &awq->weights.at(j.t->name);
    (*it)->jobs.push_back(&j);
  }
  const bool gptq = c.method == Method::Gptq || c.method == Method::AwqGptq;
  std::vector<Unit> units;
  for (auto& g : groups) {
    const double K = double(g->jobs.front()->t->cols());
    Unit& u = units.emplace_back();
    u.group = g.get();
    u.cost = gptq ? 4.0 / 3 * K * K * K : 0.0;  // the inverse; then per linear its sweep and its error
    for (const LinearJob* j : g->jobs) u.cost += 4 * double(j->t->rows()) * K * K;
  }
  for (LinearJob& j : jobs) {
    Unit& u = units.emplace_back();
    u.ref = &j;
    u.cost = 2 * double(j.t->rows()) * double(j.t->cols()) * double(j.t->cols());
  }
  std::stable_sort(units.begin(), units.end(), [](const Unit& a, const Unit& b) { return a.cost > b.cost; });
  const int T = c.gptq.threads > 0 ? c.gptq.threads : omp_get_max_threads();
#pragma omp parallel for num_threads(T) schedule(dynamic, 1)
  for (size_t i = 0; i < units.size(); ++i) try {
      if (units[i].group) run_group(src, *units[i].group, c, units[i].cpu);
      else run_reference(*units[i].ref, units[i].cpu);
    } catch (...) {
      units[i].error = std::current_exception();
    }
  for (const Unit& u : units) {  // the first error in the order of the units (a fixed order)
    if (u.error) std::rethrow_exception(u.error);
    rep.cpu.solve += u.cpu.solve, rep.cpu.sweep += u.cpu.sweep, rep.cpu.report += u.cpu.report;
  }
  for (LinearJob& j : jobs) {
    const int64_t rows = j.t->rows(), stride = report_stride(rows);
    rep.layers.push_back({j.t->name, j.err, j.rtn_err, rows, (rows + stride - 1) / stride});
    if (awq) awq->weights.erase(j.t->name);  // stored quantized; what is left is stored as floats
    calibrated.put(j.store.stored(*j.t, j.planned->bytes.held()));
  }
}

// Asymmetric GPTQ's last linear: an untied lm_head whose target is calibrated is quantized like
// a block's linears, towards the float model's logits, on the final norm of both streams (the
// one linear that sees the whole residual stream's accumulated error).
void calibrate_lm_head(const Model& src, QuantPlan& plan, const Hidden& h, const CalibQuantOptions& c,
                       CalibQuantReport& rep) {
  const Tensor& head = src.lm_head();
  const TensorTarget* target = plan.target(head.name);
  if (&head == &src.embed() || !target || !LinearStore::calibrated(*target)) return;
  const int64_t D = src.config().hidden;
  std::vector<float> norm(static_cast<size_t>(D));
  dequantize_rows(src.final_norm(), 0, 1, norm.data());
  StatsAccumulator acc(D);
  const double t0 = thread_cpu_seconds();
  std::vector<float> xq, xf;
  StatsBatch b;
  for (size_t i = 0; i < h.x.size(); ++i) {  // in window order, as the blocks' statistics
    const int64_t n = int64_t(h.x[i].size()) / D;
    xq.resize(h.x[i].size());
    xf.resize(h.x[i].size());
    rms_norm(h.x[i].data(), norm.data(), xq.data(), n, D, src.config().norm_eps);
    rms_norm(h.xf[i].data(), norm.data(), xf.data(), n, D, src.config().norm_eps);
    b.compute(xq.data(), int(n), D, xf.data());
    acc.merge(b);
  }
  const InputStats st = acc.finish();
  rep.cpu.hessian += thread_cpu_seconds() - t0;
  std::vector<LinearJob> jobs{LinearJob{&head, LinearStore{*target}, &st, nullptr, nullptr, &plan.tensors[head.name], 0, 0}};
  Model::Overlay unused;  // nothing runs after lm_head
  calibrate_block(src, jobs, nullptr, c, unused, rep);
}

}  // namespace

std::vector<float> embedding_as_stored(const Model& m, const QuantPlan& plan, const std::vector<int>& tokens) {
  std::vector<float> x(tokens.size() * size_t(m.config().hidden));
  StoredEmbedding(m, plan).embed(tokens.data(), int(tokens.size()), x.data());
  return x;
}

CalibMemory estimate_calibration_memory(const Model& m, const QuantPlan& plan, Method method, int64_t windows,
                                        int64_t window_len, int threads, CalibPrecision precision, bool asymmetric) {
  CalibMemory r;
  if (method == Method::Rtn || method == Method::Mse || m.layers().empty()) return r;
  const ModelConfig& c = m.config();
  const uint64_t T = uint64_t(std::max(threads > 0 ? threads : omp_get_max_threads(), 1));
  const uint64_t len = uint64_t(std::max<int64_t>(window_len, 1));
  r.hidden = uint64_t(windows) * len * uint64_t(c.hidden) * sizeof(float) * (asymmetric ? 2 : 1);
  uint64_t all = 0, largest = 0;  // the calibrated linears' bytes: all blocks', the largest block's
  for (const LayerWeights& lw : m.layers()) {
    uint64_t block = 0;
    for (const Tensor* t : block_linears(lw))
      if (const TensorTarget* target = plan.target(t->name); target && LinearStore::calibrated(*target))
        if (method != Method::AwMse) block += LinearStore{*target}.bytes(t->rows(), t->cols());
    all += block, largest = std::max(largest, block);
  }
  r.plan = plan.spill ? largest : all;  // with a spill file only the block being worked on is held
  r.spilled = plan.spill ? all : 0;
  // one block (every block has the shapes of the first)
  uint64_t dense = 0, stats = 0, hessians = 0;
  std::map<std::string, uint64_t> keys;  // stat_key → K
  std::vector<uint64_t> units;           // per linear: the method's working set
  for (const Tensor* t : block_linears(m.layers()[0])) {
    const uint64_t rows = uint64_t(t->rows()), K = uint64_t(t->cols());
    dense += rows * K * sizeof(float);
    keys[stat_key(t->name)] = K;
    // GPTQ: W and Wp (double), U (double), w and back (float), codes; a reference unit is less
    // (asymmetric: also the target W_α in float; its double temporaries are gone before GPTQ's state)
    units.push_back(rows * K * (2 * sizeof(double) + (asymmetric ? 3 : 2) * sizeof(float) + 1) + K * K * sizeof(double));
  }
  for (const auto& [k, K] : keys) {
    // the accumulator, each thread's batch, the finished statistics (asymmetric: twice, the cross term)
    stats += K * K * (sizeof(double) + T * sizeof(float)) * (asymmetric ? 2 : 1);
    hessians += K * K * sizeof(float) * (asymmetric ? 2 : 1);
  }
  // per thread, one window (asymmetric: also the float stream's inputs of the block's linears)
  const uint64_t acts = T * len * uint64_t(8 * c.hidden + 3 * c.ffn + len + (asymmetric ? 3 * c.hidden + c.ffn : 0)) *
                        sizeof(float);
  std::sort(units.rbegin(), units.rend());
  uint64_t side_by_side = 0;
  for (size_t i = 0; i < units.size() && i < T; ++i) side_by_side += units[i];
  const uint64_t awq = is_awq(method) ? dense : 0;  // AWQ's scaled F32 copies of the block
  const uint64_t passes = precision == CalibPrecision::Bf16 ? dense / 2 : dense;  // the forward passes' copy
  const uint64_t gathering = passes + stats + hessians + acts;
  const uint64_t solving = hessians + side_by_side + awq;
  const uint64_t propagating = passes + acts;
  // asymmetric: an untied, calibrated lm_head is quantized last, alone (its GPTQ state, H and C)
  uint64_t head = 0;
  if (const TensorTarget* t = plan.target(m.lm_head().name);
      asymmetric && &m.lm_head() != &m.embed() && t && LinearStore::calibrated(*t)) {
    const uint64_t rows = uint64_t(m.lm_head().rows()), K = uint64_t(m.lm_head().cols());
    head = rows * K * (2 * sizeof(double) + 3 * sizeof(float) + 1) + K * K * (2 * sizeof(double) + 2 * sizeof(float)) +
           2 * len * K * sizeof(float);
    r.plan += LinearStore{*t}.bytes(int64_t(rows), int64_t(K));
  }
  r.block = std::max({gathering, solving, propagating, head});
  return r;
}

void prepare_calibrated(const Model& src, QuantPlan& plan, const CalibQuantOptions& c, CalibQuantReport* report,
                        const BlockProgress& progress) {
  CalibQuantReport rep;
  // Every BLAS call below runs in its calling thread: an idle OpenBLAS pool keeps yielding the
  // CPU for a long while after each call it ran (llama's GPTQ phase: 33 s with it, 9 s without,
  // on 2 loaded cores).
  const SerialBlas serial;
  if (c.method == Method::Rtn) return;
  if (c.method == Method::Mse) {
    if (plan.gguf) plan.weighted = true;
    else use_mse(plan);
    return;
  }
  const ModelConfig& cfg = src.config();
  const int L = cfg.n_layers;
  const bool from_file = !c.stats_in.empty();
  if (!from_file && c.windows.empty()) fail("--method {}: needs --calib FILE or --stats FILE", method_name(c.method));
  StatsMap file_stats, saved;
  if (from_file) {
    std::map<std::string, std::string> meta;
    file_stats = load_stats(c.stats_in, &meta);
    auto rotation = [](const std::map<std::string, std::string>& m) {
      const auto it = m.find(kStatsRotationKey);
      return it == m.end() ? std::string("none") : it->second;
    };
    if (rotation(meta) != rotation(c.stats_meta))
      fail("--stats {}: statistics gathered with rotation '{}', this run's is '{}' (activations in another basis)",
           c.stats_in, rotation(meta), rotation(c.stats_meta));
  }

  // calib_options refuses the user's other combinations; both streams of hidden states run here
  LMQ_CHECK(!c.asymmetric() || (!from_file && c.method == Method::Gptq), "asymmetric GPTQ without gptq's own passes");
  Hidden h;
  if (!from_file) {
    Runner run(src, 1);
    std::optional<StoredEmbedding> stored;
    if (c.asymmetric()) stored.emplace(src, plan);
    for (const auto& w : c.windows) {
      h.x.emplace_back(w.size() * size_t(cfg.hidden));
      run.embed_tokens(w.data(), int(w.size()), h.x.back().data());
      if (stored) {  // the float stream as embedded, the quantized one from the stored rows
        h.xf.push_back(h.x.back());
        stored->embed(w.data(), int(w.size()), h.x.back().data());
      }
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
      if (progress) progress(l, L, "forward passes + Hessians");
      const auto t0 = Clock::now();
      std::map<std::string, StatsAccumulator> acc;
      // the float block's output is propagated only by awmse (the others propagate the quantized block's)
      run_block(src, l, h, c.windows, &acc, c.method == Method::AwMse, c.precision, rep.cpu,
                c.asymmetric() ? &h.xf : nullptr);
      for (auto& [k, a] : acc) block_stats.emplace(k, a.finish());
      calib_s += since(t0);
    }
    if (!c.stats_out.empty())
      for (const auto& [k, s] : block_stats) saved.emplace(k, s);

    if (c.method == Method::AwMse) {
      for (const Tensor* t : block_linears(lw)) {
        const InputStats* s = find_stats(block_stats, t->name);
        if (!s) fail("stats: no statistics for '{}'", t->name);
        plan.tensors[t->name].importance = s->sq_mean;
      }
      continue;
    }

    // GPTQ / AWQ of block l's linears
    if (progress) {
      const bool gptq = c.method == Method::Gptq || c.method == Method::AwqGptq;
      progress(l, L, std::string(method_name(c.method)) + (gptq ? ": inverse Hessians, sweeps, error report" : ": fits, error report"));
    }
    const auto t1 = Clock::now();
    Model::Overlay calibrated;  // block l's linears as the method stored them
    AwqBlock awq;
    if (is_awq(c.method)) {
      awq = awq_block(src, l, block_stats, awq_round_trips(plan, c.method, c.awq.threads), c.awq);
      rep.awq_groups.insert(rep.awq_groups.end(), awq.groups.begin(), awq.groups.end());
    }
    std::vector<LinearJob> jobs;
    for (const Tensor* t : block_linears(lw)) {
      const TensorTarget* target = plan.target(t->name);
      LMQ_CHECK(target, "no target for '{}'", t->name);
      if (!LinearStore::calibrated(*target)) continue;  // stays float (AWQ: its scaled F32 values)
      const InputStats* st = find_stats(block_stats, t->name);
      if (!st) fail("stats: no statistics for '{}'", t->name);
      if (st->K != t->cols()) fail("stats for '{}' have {} inputs, the weight {}", t->name, st->K, t->cols());
      jobs.push_back(LinearJob{t, LinearStore{*target}, st, nullptr, nullptr, &plan.tensors[t->name], 0, 0});
    }
    calibrate_block(src, jobs, is_awq(c.method) ? &awq : nullptr, c, calibrated, rep);
    for (auto& [name, v] : awq.weights) {
      const auto& held = plan.tensors[name].values = std::move(v);
      put_floats(calibrated, src, name, held);
    }
    quant_s += since(t1);
    if (!from_file) {  // propagate through the quantized block
      if (progress) progress(l, L, "propagating (forward passes)");
      const auto t2 = Clock::now();
      auto mixed =
          Model::with_tensors(src, std::move(calibrated), src.path() + " [calibrated block " + std::to_string(l) + "]");
      run_block(*mixed, l, h, c.windows, nullptr, true, c.precision, rep.cpu);
      calib_s += since(t2);
    }
    // block l is done: its stored bytes move to the spill file, and the heap's free pages go back
    // (the threads' arenas keep them otherwise), so the blocks done do not add up in memory
    if (plan.spill) {
      for (const LinearJob& j : jobs) j.planned->bytes.spill(plan.spill);
      malloc_trim(0);
    }
  }
  if (c.asymmetric()) {
    if (progress) progress(L, L, "lm_head");
    const auto t3 = Clock::now();
    calibrate_lm_head(src, plan, h, c, rep);
    quant_s += since(t3);
  }
  if (progress) progress(L, L, "done");
  // GGUF: every tensor calibration left to the writer (all of them for awmse; the embedding and
  // whatever else GPTQ/AWQ did not reach) gets the weighted fit, not llama.cpp's reference one.
  if (plan.gguf) plan.weighted = true;
  else if (c.method == Method::AwMse) use_mse(plan);
  if (!c.stats_out.empty()) {
    std::map<std::string, std::string> meta = c.stats_meta;
    meta["lmq.stats.sequential"] =
        c.method != Method::AwMse && !from_file ? std::string(method_name(c.method)) + ":" + c.target_name : "no";
    meta["lmq.stats.windows"] = std::to_string(c.windows.size());
    meta["lmq.stats.tokens"] = std::to_string(rep.tokens);
    save_stats(c.stats_out, saved, meta);
  }
  rep.asymmetric = c.asymmetric();
  rep.calib_seconds = calib_s;
  rep.quant_seconds = quant_s;
  if (report) *report = rep;
}

}  // namespace lmq::calib
