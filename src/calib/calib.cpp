#include "lmq/calib/calib.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lmq/error.h"
#include "lmq/formats/atomic_file.h"
#include "lmq/formats/safetensors.h"
#include "lmq/mapped_file.h"
#include "lmq/calib/block_runner.h"
#include "lmq/model/memory_limit.h"

namespace lmq::calib {

std::vector<std::vector<int>> calib_windows(const Tokenizer& tok, const std::string& text, int samples, int len,
                                            int bos) {
  if (samples < 1) fail("--calib-samples {}: must be ≥ 1", samples);
  if (len < 2) fail("--calib-len {}: must be ≥ 2", len);
  const std::vector<int> ids = tok.encode(text);
  const int64_t body = bos >= 0 ? len - 1 : len;  // bos < 0: the tokenizer adds none
  if (int64_t(ids.size()) < body)
    fail("calibration text has {} tokens, fewer than one window of {}", ids.size(), len);
  const int64_t starts = int64_t(ids.size()) - body + 1;
  std::vector<std::vector<int>> w;
  for (int k = 0; k < samples; ++k) {
    const int64_t s = samples == 1 ? 0 : int64_t(k) * (starts - 1) / (samples - 1);
    std::vector<int> win;
    if (bos >= 0) win.push_back(bos);
    win.insert(win.end(), ids.begin() + s, ids.begin() + s + body);
    w.push_back(std::move(win));
  }
  return w;
}

namespace {
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
}  // namespace

void check_no_overlap(const std::string& calib_path, const std::string& eval_path) {
  namespace fs = std::filesystem;
  std::error_code e1, e2;
  const fs::path a = fs::canonical(calib_path, e1), b = fs::canonical(eval_path, e2);
  if (!e1 && !e2 && a == b)
    fail("--calib {}: is the evaluation text {} (pass --allow-calib-overlap to allow it)", calib_path, eval_path);
  const std::string ta = read_text_file(calib_path), tb = read_text_file(eval_path);
  if (ta.size() == tb.size() && fnv1a(ta) == fnv1a(tb) && ta == tb)
    fail("--calib {}: has the same content as the evaluation text {} (pass --allow-calib-overlap to allow it)",
         calib_path, eval_path);
}

std::string stat_key(const std::string& name) {
  auto swap = [&](const std::string& from, const std::string& to) -> std::string {
    const size_t p = name.find(from);
    if (p == std::string::npos) return "";
    std::string r = name;
    r.replace(p, from.size(), to);
    return r;
  };
  std::string k = name;
  if (auto r = swap("self_attn.k_proj", "self_attn.q_proj"); !r.empty()) k = r;
  else if (auto r2 = swap("self_attn.v_proj", "self_attn.q_proj"); !r2.empty()) k = r2;
  else if (auto r3 = swap("mlp.up_proj", "mlp.gate_proj"); !r3.empty()) k = r3;
  if (k.size() > 7 && k.ends_with(".weight")) k.resize(k.size() - 7);
  return k;
}

namespace {
// Checks the K × K accumulator (double) and its float copies fit before the members allocate.
int64_t checked_columns(int64_t K) {
  require_memory(uint64_t(K) * uint64_t(K) * (sizeof(double) + 2 * sizeof(float)),
                 fmt::format("calibration statistics of a layer with {} input columns", K));
  return K;
}
}  // namespace

StatsAccumulator::StatsAccumulator(int64_t K)
    : K_(checked_columns(K)), xtx_(static_cast<size_t>(K * K), 0.0), sum_abs_(static_cast<size_t>(K), 0.0), sum_sq_(static_cast<size_t>(K), 0.0),
      min_(static_cast<size_t>(K), INFINITY), max_(static_cast<size_t>(K), -INFINITY) {}

void StatsBatch::compute(const float* x, int rows, int64_t cols, const float* ref) {
  K = cols;
  n = rows;
  xtx.resize(size_t(K * K));
  if (rows > 0)  // XᵀX (upper triangle) in float for these rows
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, int(K), rows, 1.0f, x, int(K), 0.0f, xtx.data(), int(K));
  if (!ref) xtr.clear();
  else {
    xtr.resize(size_t(K * K));
    if (rows > 0)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(K), int(K), rows, 1.0f, x, int(K), ref, int(K), 0.0f,
                  xtr.data(), int(K));
    else std::fill(xtr.begin(), xtr.end(), 0.f);
  }
  sum_abs.assign(size_t(K), 0.0);
  sum_sq.assign(size_t(K), 0.0);
  min.assign(size_t(K), INFINITY);
  max.assign(size_t(K), -INFINITY);
  for (int t = 0; t < rows; ++t) {
    const float* r = x + int64_t(t) * K;
    for (int64_t j = 0; j < K; ++j) {
      const float v = r[j];
      sum_abs[j] += std::fabs(v);
      sum_sq[j] += double(v) * v;
      min[j] = std::min(min[j], v);
      max[j] = std::max(max[j], v);
    }
  }
}

void StatsAccumulator::add(const float* x, int n) {
  if (n <= 0) return;
  tmp_.compute(x, n, K_);
  merge(tmp_);
}

void StatsAccumulator::merge(const StatsBatch& b) {
  if (b.n <= 0) return;
  LMQ_CHECK(b.K == K_, "statistics of {} columns merged into {}", b.K, K_);
  const int64_t K = K_;
  // a reference in every batch or in none: the cross term would otherwise miss tokens
  LMQ_CHECK(n_ == 0 || b.xtr.empty() == xtr_.empty(), "statistics merged with and without reference inputs");
  if (!b.xtr.empty() && xtr_.empty()) xtr_.assign(size_t(K * K), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < K; ++i) {
    for (int64_t j = i; j < K; ++j) xtx_[size_t(i * K + j)] += b.xtx[size_t(i * K + j)];
    if (!b.xtr.empty())
      for (int64_t j = 0; j < K; ++j) xtr_[size_t(i * K + j)] += b.xtr[size_t(i * K + j)];
  }
  for (int64_t j = 0; j < K; ++j) {
    sum_abs_[j] += b.sum_abs[j];
    sum_sq_[j] += b.sum_sq[j];
    min_[j] = std::min(min_[j], b.min[j]);
    max_[j] = std::max(max_[j], b.max[j]);
  }
  n_ += b.n;
}

InputStats StatsAccumulator::finish() const {
  InputStats s;
  s.K = K_;
  s.tokens = n_;
  const int64_t K = K_;
  const double f = n_ > 0 ? 2.0 / double(n_) : 0.0;
  s.hessian.resize(size_t(K * K));
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = i; j < K; ++j)
      s.hessian[size_t(i * K + j)] = s.hessian[size_t(j * K + i)] = float(f * xtx_[size_t(i * K + j)]);
  if (!xtr_.empty()) {
    s.cross.resize(size_t(K * K));
    for (int64_t i = 0; i < K * K; ++i) s.cross[size_t(i)] = float(f * xtr_[size_t(i)]);
  }
  s.mean_abs.resize(size_t(K));
  s.sq_mean.resize(size_t(K));
  s.min = min_;
  s.max = max_;
  for (int64_t j = 0; j < K; ++j) {
    s.mean_abs[j] = n_ ? float(sum_abs_[j] / double(n_)) : 0.f;
    s.sq_mean[j] = n_ ? float(sum_sq_[j] / double(n_)) : 0.f;
    if (!n_) s.min[j] = s.max[j] = 0.f;
  }
  return s;
}

StatsMap collect_stats(const Model& m, const std::vector<std::vector<int>>& windows,
                       const std::function<bool(const std::string&)>& want) {
  std::map<std::string, StatsAccumulator> acc;
  SharedInputFilter shared;
  int maxlen = 1;
  for (const auto& w : windows) maxlen = std::max(maxlen, int(w.size()));
  BlockRunner run(m, maxlen);
  run.set_observer([&](const Tensor& t, const float* x, int n) {
    if (want && !want(t.name)) return;
    const std::string key = stat_key(t.name);
    if (!shared.first(x, key)) return;
    auto it = acc.find(key);
    if (it == acc.end()) it = acc.emplace(key, StatsAccumulator(t.cols())).first;
    it->second.add(x, n);
  });
  std::vector<float> logits(static_cast<size_t>(m.config().vocab));
  for (const auto& w : windows) {
    run.reset();
    shared.reset();
    run.forward(w.data(), int(w.size()), logits.data(), false);
  }
  StatsMap out;
  for (const auto& [k, a] : acc) out.emplace(k, a.finish());
  return out;
}

const InputStats* find_stats(const StatsMap& s, const std::string& weight_name) {
  auto it = s.find(stat_key(weight_name));
  return it == s.end() ? nullptr : &it->second;
}

namespace {
const char* const kFields[] = {"hessian", "mean_abs", "max", "min", "sq_mean"};  // sorted
const std::vector<float>& field(const InputStats& s, int f) {
  switch (f) {
    case 0: return s.hessian;
    case 1: return s.mean_abs;
    case 2: return s.max;
    case 3: return s.min;
    default: return s.sq_mean;
  }
}
std::vector<float>& field(InputStats& s, int f) { return const_cast<std::vector<float>&>(field(std::as_const(s), f)); }
}  // namespace

void save_stats(const std::string& path, const StatsMap& stats, const std::map<std::string, std::string>& meta) {
  nlohmann::json h = nlohmann::json::object();
  nlohmann::json md = nlohmann::json::object();
  for (const auto& [k, v] : meta) md[k] = v;
  uint64_t off = 0;
  for (const auto& [key, s] : stats) {
    md[key + ".tokens"] = std::to_string(s.tokens);
    for (int f = 0; f < 5; ++f) {
      const uint64_t bytes = field(s, f).size() * 4;
      nlohmann::json shape = f == 0 ? nlohmann::json::array({s.K, s.K}) : nlohmann::json::array({s.K});
      h[key + "." + kFields[f]] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {off, off + bytes}}};
      off += bytes;
    }
  }
  h["__metadata__"] = md;
  std::string hs = h.dump();
  while ((8 + hs.size()) % 8) hs += ' ';
  AtomicFile out(path);
  out.put<uint64_t>(hs.size());
  out.write(hs.data(), hs.size());
  for (const auto& [key, s] : stats)  // same order as the header (std::map order)
    for (int f = 0; f < 5; ++f) out.write(field(s, f).data(), field(s, f).size() * 4);
  out.commit();
}

StatsMap load_stats(const std::string& path, std::map<std::string, std::string>* meta) {
  SafetensorsFile f(path);
  StatsMap out;
  for (const auto& st : f.tensors()) {
    const std::string& name = st.tensor.name;
    const size_t dot = name.rfind('.');
    if (dot == std::string::npos) continue;
    const std::string key = name.substr(0, dot), fname = name.substr(dot + 1);
    const auto* fp = std::find_if(std::begin(kFields), std::end(kFields), [&](const char* s) { return fname == s; });
    if (fp == std::end(kFields)) continue;
    if (st.dtype != StDType::F32) fail("{}: stats tensor '{}' is not F32", path, name);
    InputStats& s = out[key];
    const int64_t K = st.tensor.shape.empty() ? 0 : st.tensor.shape.back();
    if (s.K && s.K != K) fail("{}: stats tensor '{}' has {} columns, expected {}", path, name, K, s.K);
    s.K = K;
    std::vector<float>& v = field(s, int(fp - std::begin(kFields)));
    v.resize(size_t(st.tensor.numel()));
    std::memcpy(v.data(), st.tensor.data, v.size() * 4);
  }
  for (auto& [key, s] : out) {
    if (s.hessian.size() != size_t(s.K * s.K) || s.sq_mean.size() != size_t(s.K) || s.mean_abs.size() != size_t(s.K) ||
        s.min.size() != size_t(s.K) || s.max.size() != size_t(s.K))
      fail("{}: stats of '{}' are incomplete", path, key);
    if (auto it = f.metadata().find(key + ".tokens"); it != f.metadata().end()) s.tokens = std::stoll(it->second);
  }
  if (meta) *meta = f.metadata();
  return out;
}

}  // namespace lmq::calib
