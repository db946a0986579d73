#include "lmq/calib/awq.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "lmq/error.h"
#include "lmq/quant/int_quantize.h"

namespace lmq::calib {

std::vector<float> awq_scales(const std::vector<float>& mean_abs, double alpha) {
  const size_t K = mean_abs.size();
  double mx = 0;
  for (float v : mean_abs) mx = std::max(mx, double(v));
  std::vector<float> s(K, 1.0f);
  if (!(mx > 0) || alpha == 0) return s;
  std::vector<double> p(K);
  double lo = INFINITY, hi = 0;
  for (size_t j = 0; j < K; ++j) {
    p[j] = std::pow(std::max(double(mean_abs[j]), 1e-8 * mx), alpha);
    lo = std::min(lo, p[j]);
    hi = std::max(hi, p[j]);
  }
  // normalising by the geometric middle keeps s around 1, so folded norms stay well scaled
  const double mid = std::sqrt(lo * hi);
  for (size_t j = 0; j < K; ++j) s[j] = float(p[j] / mid);
  return s;
}

void put_floats(Model::Overlay& overlay, const Model& m, const std::string& name, const std::vector<float>& w) {
  const Tensor* base = m.find(name);
  LMQ_CHECK(base, "no tensor '{}' to replace", name);
  LMQ_CHECK(uint64_t(base->numel()) == w.size(), "'{}' has {} values, the replacement {}", name, base->numel(), w.size());
  Tensor t = *base;
  t.format = Format::F32;
  t.q = {};
  t.data = reinterpret_cast<const uint8_t*>(w.data());
  t.nbytes = w.size() * sizeof(float);
  overlay.put(std::move(t));
}

std::unique_ptr<Model> with_float_tensors(const Model& m, const std::map<std::string, std::vector<float>>& w) {
  Model::Overlay scaled;
  for (const auto& [name, v] : w) put_floats(scaled, m, name, v);
  return Model::with_tensors(m, std::move(scaled), m.path() + " [scaled]");
}

namespace {

std::vector<float> floats_of(const Tensor& t) {
  std::vector<float> w(size_t(t.numel()));
  dequantize_rows(t, 0, t.rows(), w.data());
  return w;
}

void scale_cols(std::vector<float>& w, const std::vector<float>& s) {
  const size_t K = s.size();
  for (size_t i = 0; i < w.size(); ++i) w[i] *= s[i % K];
}

void divide_rows(std::vector<float>& w, const std::vector<float>& s) {  // w: s.size() rows
  const size_t K = w.size() / s.size();
  for (size_t i = 0; i < w.size(); ++i) w[i] /= s[i / K];
}

void divide(std::vector<float>& v, const std::vector<float>& s) {
  for (size_t j = 0; j < v.size(); ++j) v[j] /= s[j];
}

struct Linear {
  const Tensor* t;
  RoundTrip quant;       // empty: not quantized
  std::vector<float> w;  // the original float weights
};

// Σ tr(ΔHΔᵀ)/2 over the group's quantized linears, Δ = Q(W·diag(s))·diag(s)⁻¹ − W.
double group_error(const std::vector<const Linear*>& lins, const std::vector<float>& s, const InputStats& st) {
  double err = 0;
  std::vector<float> imp(s.size());
  for (size_t j = 0; j < s.size(); ++j) imp[j] = st.sq_mean[j] / (s[j] * s[j]);
  for (const Linear* l : lins) {
    if (!l->quant) continue;
    const int64_t rows = l->t->rows(), K = l->t->cols();
    std::vector<float> ws = l->w;
    scale_cols(ws, s);
    l->quant(ws.data(), rows, K, imp.data(), ws.data());
    for (size_t i = 0; i < ws.size(); ++i) ws[i] = ws[i] / s[i % size_t(K)] - l->w[i];  // Δ
    // tr(ΔHΔᵀ)/2 in single precision: it only ranks the α of one group (20 per group), and the
    // float product is twice as fast as a double one
    std::vector<float> M(ws.size());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(K), int(K), 1.0f, ws.data(), int(K),
                st.hessian.data(), int(K), 0.0f, M.data(), int(K));
    double e = 0;
    for (size_t i = 0; i < ws.size(); ++i) e += double(M[i]) * ws[i];
    err += e / 2;
  }
  return err;
}

// The α grid search for one group; `scales_of(α)` gives the K column scales for that α.
std::vector<float> search(const std::string& name, const std::vector<const Linear*>& lins, const InputStats& st,
                          const std::function<std::vector<float>(double)>& scales_of, const AwqOptions& o,
                          AwqBlock& out) {
  AwqGroup g;
  g.name = name;
  const bool any_int = std::any_of(lins.begin(), lins.end(), [](const Linear* l) { return bool(l->quant); });
  if (o.fixed_alpha >= 0 || !any_int) {
    g.alpha = any_int ? o.fixed_alpha : 0;
    out.groups.push_back(g);
    return scales_of(g.alpha);
  }
  std::vector<float> best;
  for (int i = 0; i < o.grid; ++i) {
    const double a = o.grid > 1 ? double(i) / (o.grid - 1) : 0.0;
    std::vector<float> s = scales_of(a);
    const double e = group_error(lins, s, st);
    if (i == 0) g.rtn_err = e;
    if (i == 0 || e < g.err) g.err = e, g.alpha = a, best = std::move(s);
  }
  out.groups.push_back(g);
  return best;
}

const InputStats& stats_for(const StatsMap& stats, const Tensor& t) {
  const InputStats* s = find_stats(stats, t.name);
  if (!s) fail("stats: no statistics for '{}'", t.name);
  if (s->K != t.cols()) fail("stats for '{}' have {} inputs, the weight {}", t.name, s->K, t.cols());
  return *s;
}

}  // namespace

RoundTripOf int_round_trips(const std::function<quant::Scheme(const Tensor&)>& scheme_of, int threads) {
  return [scheme_of, threads](const Tensor& t) -> RoundTrip {
    const quant::Scheme s = scheme_of(t);
    if (s.kind != quant::Scheme::Int) return {};
    return [p = s.p, threads](const float* w, int64_t rows, int64_t K, const float*, float* back) {
      std::vector<uint8_t> q(quant::int_tensor_bytes(p, rows, K));
      quant::quantize_tensor(w, rows, K, p, quant::RangeMethod::MinMax, 100, nullptr, q.data(), threads);
      quant::int_dequantize_rows(p, q.data(), rows, K, 0, rows, back);
    };
  };
}

InputStats scaled_stats(const InputStats& st, const std::vector<float>& s) {
  InputStats r = st;
  const int64_t K = st.K;
  for (int64_t i = 0; i < K; ++i) {
    for (int64_t j = 0; j < K; ++j) r.hessian[size_t(i * K + j)] /= s[size_t(i)] * s[size_t(j)];
    r.sq_mean[size_t(i)] /= s[size_t(i)] * s[size_t(i)];
  }
  return r;
}

AwqBlock awq_block(const Model& m, int layer, const StatsMap& stats,
                   const std::function<quant::Scheme(const Tensor&)>& scheme_of, const AwqOptions& o) {
  return awq_block(m, layer, stats, int_round_trips(scheme_of, o.threads), o);
}

AwqBlock awq_block(const Model& m, int layer, const StatsMap& stats, const RoundTripOf& round_trip_of,
                   const AwqOptions& o) {
  const ModelConfig& c = m.config();
  const LayerWeights& lw = m.layers()[size_t(layer)];
  auto lin = [&](const Tensor* t) { return Linear{t, round_trip_of(*t), floats_of(*t)}; };
  const Linear q = lin(lw.wq), k = lin(lw.wk), v = lin(lw.wv), wo = lin(lw.wo), gate = lin(lw.w_gate),
               up = lin(lw.w_up), down = lin(lw.w_down);
  const std::string pre = "model.layers." + std::to_string(layer);
  AwqBlock out;

  const InputStats& st_attn = stats_for(stats, *lw.wq);
  const auto s_attn = search(pre + ".attn", {&q, &k, &v}, st_attn,
                             [&](double a) { return awq_scales(st_attn.mean_abs, a); }, o, out);

  // o_proj: one scale per (KV head, dim), shared by the query heads that read that KV head
  const InputStats& st_o = stats_for(stats, *lw.wo);
  const int hd = c.head_dim, per_kv = c.n_heads / c.n_kv_heads;
  std::vector<float> m_v(size_t(c.kv_dim()), 0.0f);
  for (int h = 0; h < c.n_heads; ++h)
    for (int d = 0; d < hd; ++d) m_v[size_t((h / per_kv) * hd + d)] += st_o.mean_abs[size_t(h * hd + d)] / per_kv;
  auto expand = [&](const std::vector<float>& sv) {
    std::vector<float> so(size_t(c.q_dim()));
    for (int h = 0; h < c.n_heads; ++h)
      for (int d = 0; d < hd; ++d) so[size_t(h * hd + d)] = sv[size_t((h / per_kv) * hd + d)];
    return so;
  };
  const auto s_o = search(pre + ".o", {&wo}, st_o, [&](double a) { return expand(awq_scales(m_v, a)); }, o, out);
  const std::vector<float> s_v = awq_scales(m_v, out.groups.back().alpha);

  const InputStats& st_mlp = stats_for(stats, *lw.w_gate);
  const auto s_mlp = search(pre + ".mlp", {&gate, &up}, st_mlp,
                            [&](double a) { return awq_scales(st_mlp.mean_abs, a); }, o, out);
  const InputStats& st_down = stats_for(stats, *lw.w_down);
  const auto s_down = search(pre + ".down", {&down}, st_down,
                             [&](double a) { return awq_scales(st_down.mean_abs, a); }, o, out);

  // fold: inputs' producers divided by s, the linears' columns multiplied by s
  auto put = [&](const Linear& l, const std::vector<float>& s) -> std::vector<float>& {
    auto& w = out.weights[l.t->name] = l.w;
    scale_cols(w, s);
    out.col_scale[l.t->name] = s;
    return w;
  };
  put(q, s_attn);
  put(k, s_attn);
  divide_rows(put(v, s_attn), s_v);
  put(wo, s_o);
  put(gate, s_mlp);
  divide_rows(put(up, s_mlp), s_down);
  put(down, s_down);
  auto fold_vec = [&](const Tensor* t, const std::vector<float>& s) {
    if (!t) return;
    auto& w = out.weights[t->name] = floats_of(*t);
    divide(w, s);
  };
  fold_vec(lw.attn_norm, s_attn);
  fold_vec(lw.bv, s_v);
  fold_vec(lw.ffn_norm, s_mlp);
  return out;
}

}  // namespace lmq::calib
