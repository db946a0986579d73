#include "lmq/calib/w8a8.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <functional>

#include "lmq/calib/calib.h"
#include "lmq/error.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/calib/block_runner.h"
#include "lmq/quant/int_quantize.h"
#include "lmq/quant/smooth.h"

namespace lmq::calib {

bool parse_activations_static(const std::string& s) {
  if (s == "int8" || s == "int8:static") return true;
  if (s == "int8:dynamic") return false;
  fail("--activations '{}': expected int8, int8:static or int8:dynamic", s);
}

namespace {

// One distinct linear input (q/k/v share one, gate/up share one).
struct Input {
  std::vector<const Tensor*> readers;
  std::vector<std::string> scale_names;  // "<linear>.input_scale" per reader
  int64_t K = 0;
  std::vector<float> absmax, div;  // pass 1 maxima per column; smoothing divisor per column
  AbsHistogram hist;
};

std::string linear_prefix(const std::string& weight_name) {
  const std::string suf = ".weight";
  return weight_name.size() > suf.size() && weight_name.ends_with(suf) ? weight_name.substr(0, weight_name.size() - suf.size())
                                                                       : weight_name;
}

using InputFn = std::function<void(const std::string& key, const float* x, int n)>;

// Runs the float model over the windows (logits at every position, so lm_head sees every
// token) and hands each distinct linear input to f once.
void observe_inputs(const Model& m, const std::vector<std::vector<int>>& windows, const InputFn& f) {
  int maxlen = 1;
  for (const auto& w : windows) maxlen = std::max(maxlen, int(w.size()));
  BlockRunner run(m, maxlen);  // float activations: RunOptions{}
  SharedInputFilter shared;
  run.set_observer([&](const Tensor& t, const float* x, int n) {
    const std::string key = &t == &m.lm_head() ? "lm_head" : stat_key(t.name);
    if (!shared.first(x, key)) return;
    f(key, x, n);
  });
  std::vector<float> logits;
  for (const auto& w : windows) {
    run.reset();
    shared.reset();
    logits.resize(w.size() * size_t(m.config().vocab));
    run.forward(w.data(), int(w.size()), logits.data(), true);
  }
}

std::map<std::string, Input> list_inputs(const Model& m) {
  std::map<std::string, Input> in;
  auto add = [&](const std::string& key, const Tensor* t, const std::string& scale_name) {
    Input& i = in[key];
    i.readers.push_back(t);
    i.scale_names.push_back(scale_name);
    i.K = t->cols();
  };
  for (const LayerWeights& l : m.layers())
    for (const Tensor* t : {l.wq, l.wk, l.wv, l.wo, l.w_gate, l.w_up, l.w_down})
      add(stat_key(t->name), t, linear_prefix(t->name) + ".input_scale");
  add("lm_head", &m.lm_head(), "lm_head.input_scale");
  for (auto& [k, i] : in) {
    i.absmax.assign(size_t(i.K), 0.f);
    i.div.assign(size_t(i.K), 1.f);
  }
  return in;
}

std::vector<float> weight_col_absmax(const std::vector<const Tensor*>& ws) {
  std::vector<float> acc(size_t(ws[0]->cols()), 0.f), w;
  for (const Tensor* t : ws) {
    w.resize(size_t(t->numel()));
    dequantize_rows(*t, 0, t->rows(), w.data());
    quant::column_absmax(w.data(), t->rows(), t->cols(), acc.data());
  }
  return acc;
}

std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> v(size_t(t.numel()));
  dequantize_rows(t, 0, t.rows(), v.data());
  return v;
}

std::vector<float> reciprocal(const std::vector<float>& s) {
  std::vector<float> r(s.size());
  for (size_t j = 0; j < s.size(); ++j) r[j] = 1.0f / s[j];
  return r;
}

// Per-block folding (see the header); new float values of norms and the V bias go to `small`.
void fold_block(const Model& m, int l, std::map<std::string, Input>& in, double alpha, W8A8Prepared& p,
                std::map<std::string, std::vector<float>>& small) {
  const LayerWeights& w = m.layers()[l];
  const ModelConfig& c = m.config();
  auto norm_fold = [&](const std::string& key, const Tensor* norm, std::vector<const Tensor*> readers) {
    Input& i = in.at(key);
    i.div = quant::smooth_factors(i.absmax, weight_col_absmax(readers), alpha);
    for (const Tensor* t : readers) p.col_scale[t->name] = i.div;
    std::vector<float> g = to_f32(*norm);
    for (size_t j = 0; j < g.size(); ++j) g[j] /= i.div[j];
    small[norm->name] = std::move(g);
  };
  norm_fold(stat_key(w.wq->name), w.attn_norm, {w.wq, w.wk, w.wv});
  norm_fold(stat_key(w.w_gate->name), w.ffn_norm, {w.w_gate, w.w_up});

  Input& down = in.at(stat_key(w.w_down->name));
  down.div = quant::smooth_factors(down.absmax, weight_col_absmax({w.w_down}), alpha);
  p.col_scale[w.w_down->name] = down.div;
  p.row_scale[w.w_up->name] = reciprocal(down.div);

  // o_proj column h·d + e reads V channel (h / group)·d + e.
  Input& o = in.at(stat_key(w.wo->name));
  const int d = c.head_dim, group = c.n_heads / c.n_kv_heads;
  auto vch = [&](int64_t col) { return (col / d / group) * d + col % d; };
  const std::vector<float> wo_max = weight_col_absmax({w.wo});
  std::vector<float> act_v(size_t(c.kv_dim()), 0.f), w_v(size_t(c.kv_dim()), 0.f);
  for (int64_t col = 0; col < o.K; ++col) {
    act_v[size_t(vch(col))] = std::max(act_v[size_t(vch(col))], o.absmax[size_t(col)]);
    w_v[size_t(vch(col))] = std::max(w_v[size_t(vch(col))], wo_max[size_t(col)]);
  }
  const std::vector<float> s_v = quant::smooth_factors(act_v, w_v, alpha);
  for (int64_t col = 0; col < o.K; ++col) o.div[size_t(col)] = s_v[size_t(vch(col))];
  p.col_scale[w.wo->name] = o.div;
  p.row_scale[w.wv->name] = reciprocal(s_v);
  if (w.bv) {
    std::vector<float> b = to_f32(*w.bv);
    for (size_t j = 0; j < b.size(); ++j) b[j] /= s_v[j];
    small[w.bv->name] = std::move(b);
  }
}

// The scheme the plan stores a linear in (an lmq plan has a target for every source tensor).
const quant::Scheme& scheme_of(const QuantPlan& plan, const Tensor& t) {
  const TensorTarget* target = plan.target(t.name);
  LMQ_CHECK(target && !plan.gguf, "no lmq target for '{}'", t.name);
  return target->scheme;
}

// The integer kernels must be able to run every linear of a W8A8 file.
void check_schemes(const std::map<std::string, Input>& in, const QuantPlan& plan) {
  for (const auto& [key, i] : in)
    for (const Tensor* t : i.readers) {
      const quant::Scheme& s = scheme_of(plan, *t);
      Tensor probe = *t;
      probe.format = Format::LMQ_INT;
      probe.q = s.p;
      if (s.kind != quant::Scheme::Int || !int_matmul_supported(probe))
        fail("--activations int8: tensor '{}' gets scheme {}, which the integer kernels cannot run (LMQ_INT, "
             "inputs and groups multiples of 32)",
             t->name, s.to_string());
    }
}

// b_int[o] = round(b[o] / (s_w[o]·s_x)) with s_w[o] the scale row o of the folded weight gets.
std::vector<int32_t> int_bias(const Tensor& w, const std::vector<float>& b, float s_x,
                              const QuantPlan& plan) {
  const quant::Scheme& s = scheme_of(plan, w);
  if (s.p.group != -1) fail("--activations int8: int32 biases need per-channel weights; '{}' gets {}", w.name, s.to_string());
  std::vector<float> v = to_f32(w);
  if (const TensorPlan* tp = plan.find(w.name)) fold_values(*tp, w, v);
  std::vector<int32_t> out(b.size());
  for (int64_t r = 0; r < w.rows(); ++r) {
    const quant::GroupQ g =
        quant::choose_group_params(v.data() + r * w.cols(), w.cols(), s.p, s.range, nullptr, s.percentile);
    const double unit = double(g.scale) * double(s_x);
    const double q = unit > 0 ? std::round(double(b[size_t(r)]) / unit) : 0.0;
    out[size_t(r)] = int32_t(std::clamp(q, double(INT32_MIN), double(INT32_MAX)));
  }
  return out;
}

template <class T>
Tensor owned_tensor(const std::string& name, std::vector<int64_t> shape, Format f, std::vector<T> v,
                    std::vector<std::shared_ptr<void>>& storage) {
  auto held = std::make_shared<std::vector<T>>(std::move(v));
  storage.push_back(held);
  Tensor t;
  t.name = name;
  t.shape = std::move(shape);
  t.format = f;
  t.data = reinterpret_cast<const uint8_t*>(held->data());
  t.nbytes = held->size() * sizeof(T);
  return t;
}

}  // namespace

std::unique_ptr<W8A8Prepared> prepare_w8a8(const Model& src, QuantPlan& plan, const W8A8Options& w) {
  const auto t0 = std::chrono::steady_clock::now();
  if (w.windows.empty()) fail("--activations int8: needs --calib FILE");
  auto p = std::make_unique<W8A8Prepared>();
  std::map<std::string, Input> in = list_inputs(src);
  if (w.static_acts) check_schemes(in, plan);
  for (const auto& win : w.windows) p->tokens += int64_t(win.size());

  // pass 1: per-column maxima of every linear input
  observe_inputs(src, w.windows, [&](const std::string& key, const float* x, int n) {
    Input& i = in.at(key);
    for (int r = 0; r < n; ++r)
      for (int64_t j = 0; j < i.K; ++j) i.absmax[size_t(j)] = std::max(i.absmax[size_t(j)], std::fabs(x[r * i.K + j]));
  });
  std::map<std::string, std::vector<float>> small;  // folded norms / V biases
  if (w.smooth)
    for (int l = 0; l < src.config().n_layers; ++l) fold_block(src, l, in, w.alpha, *p, small);

  for (const auto& [name, s] : p->col_scale) plan.tensors[name].col_scale = s;
  for (const auto& [name, s] : p->row_scale) plan.tensors[name].row_scale = s;

  // pass 2: histograms of the smoothed inputs, one static scale per input
  std::map<std::string, float> scale_of;  // weight name → s_x
  if (w.static_acts) {
    for (auto& [key, i] : in) {
      double range = 0;
      for (int64_t j = 0; j < i.K; ++j) range = std::max(range, double(i.absmax[size_t(j)]) / i.div[size_t(j)]);
      i.hist = AbsHistogram(range);
    }
    std::vector<float> tmp;
    observe_inputs(src, w.windows, [&](const std::string& key, const float* x, int n) {
      Input& i = in.at(key);
      tmp.resize(size_t(n * i.K));
      for (int r = 0; r < n; ++r)
        for (int64_t j = 0; j < i.K; ++j) tmp[size_t(r * i.K + j)] = x[r * i.K + j] / i.div[size_t(j)];
      i.hist.add(tmp.data(), int64_t(tmp.size()));
    });
    for (auto& [key, i] : in) {
      const double T = choose_threshold(i.hist, w.range);
      const float s = float(T / 127.0);
      p->inputs.push_back({key, i.hist.max(), T, s});
      for (const Tensor* t : i.readers) scale_of[t->name] = s;
    }
  }

  // the model to quantize: the source's tensors with folded norms, biases and input scales
  Model::Overlay folded;
  for (const Tensor& t : src.tensors())
    if (const auto it = small.find(t.name); it != small.end())
      folded.put(owned_tensor(t.name, t.shape, Format::F32, it->second, folded.storage));
  if (w.static_acts) {
    for (const LayerWeights& l : src.layers())
      for (auto [wt, bt] : {std::pair{l.wq, l.bq}, {l.wk, l.bk}, {l.wv, l.bv}}) {
        if (!bt) continue;
        const auto sm = small.find(bt->name);
        const std::vector<int32_t> b =
            int_bias(*wt, sm != small.end() ? sm->second : to_f32(*bt), scale_of.at(wt->name), plan);
        folded.put(owned_tensor(bt->name, bt->shape, Format::I32, b, folded.storage));
      }
    for (const auto& [key, i] : in)
      for (size_t r = 0; r < i.readers.size(); ++r)
        folded.put(owned_tensor(i.scale_names[r], {1}, Format::F32, std::vector<float>{scale_of.at(i.readers[r]->name)},
                                folded.storage));
  }
  p->model = Model::with_tensors(src, std::move(folded), src.path() + " [w8a8]");

  p->metadata["lmq.activations"] = w.static_acts ? "int8:static" : "int8:dynamic";
  p->metadata["lmq.smooth"] = w.smooth ? fmt::format("{}", w.alpha) : "off";
  if (w.static_acts) p->metadata["lmq.act_calib"] = act_range_name(w.range);
  p->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return p;
}

}  // namespace lmq::calib
