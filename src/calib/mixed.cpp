#include "lmq/calib/mixed.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include <nlohmann/json.hpp>

#include "lmq/calib/calib.h"
#include "lmq/calib/gguf_target.h"
#include "lmq/error.h"
#include "lmq/formats/atomic_file.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/iquant_lattice.h"
#include "lmq/mapped_file.h"
#include "lmq/formats/lmq_file.h"
#include "lmq/quant/int_quantize.h"

namespace lmq::calib {

namespace {
constexpr int64_t kUnits = 20000;

uint64_t largest(const MixedTensor& t) {
  uint64_t b = 0;
  for (uint64_t x : t.bytes)
    if (x != kNotCandidate) b = std::max(b, x);
  return b;
}

constexpr int64_t kLatticeProbeRows = 256;

// The KLD probe: the first of these that is a candidate for the tensor.
int probe_of(const MixedProblem& p, const MixedTensor& t) {
  const std::string probes[] = {quant::parse_scheme("int3:g128:asym").to_string(), std::string(format_name(Format::Q3_K)),
                                std::string(format_name(Format::Q4_0))};
  for (const std::string& name : probes)
    for (size_t c = 0; c < p.candidates.size(); ++c)
      if (p.candidates[c].label == name && t.bytes[c] != kNotCandidate) return int(c);
  LMQ_UNREACHABLE("no probe candidate for '{}'", t.t->name);
}
}  // namespace

std::vector<MixedCandidate> mixed_candidates() {
  std::vector<MixedCandidate> c;
  for (const char* s : {"int2:g32", "int2:g64", "int3:g32", "int3:g64", "int3:g128", "int4:g32", "int4:g64",
                        "int4:g128", "int5:g64", "int5:g128", "int6:g128", "int8:g128"}) {
    const quant::Scheme sc = quant::parse_scheme(std::string(s) + ":asym");
    c.push_back({sc.to_string(), fmt::format("int{}", sc.p.bits), Format::LMQ_INT, sc});
  }
  return c;
}

// Every quantized GGUF block type lmq can write with every method, from the format table: a
// grid per sub-block (set_codes: the K-quants, the legacy types, IQ4_NL, IQ4_XS) or a lattice
// i-quant (IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S: codebooks, written by lmq's own search and by GPTQ
// through codecs/iquant_lattice.h), by the bit count in its name ("q4_k" 4, "iq2_xs" 2), then in
// the table's order: iq1_s iq1_m q2_k iq2_xxs iq2_xs iq2_s q3_k iq3_xxs iq3_s q4_0 … q8_0 (ties in the
// allocation go to the first). Their RTN round trip (the sensitivity's error) is the format
// table's quantize_row / dequantize_row for all of them. Sensitivity files saved before the
// lattice types were candidates lack them: load_sensitivity matches candidates by name and
// leaves those out of that allocation.
std::vector<MixedCandidate> gguf_mixed_candidates() {
  const auto bits = [](const FormatTraits& t) { return t.name[t.name.find_first_of("0123456789")] - '0'; };
  std::vector<const FormatTraits*> ts;
  for (const FormatTraits& t : all_format_traits())
    if (t.ggml && t.quantized && t.gguf_type >= 0 && t.quantize_row &&
        (t.set_codes || ggml::LatticeSuperBlock::supports(t.format)))
      ts.push_back(&t);
  std::stable_sort(ts.begin(), ts.end(), [&](const FormatTraits* a, const FormatTraits* b) { return bits(*a) < bits(*b); });
  std::vector<MixedCandidate> c;
  for (const FormatTraits* t : ts) c.push_back({std::string(t->name), std::string(t->name), t->format, {}});
  return c;
}

double MixedProblem::min_bpw() const {
  uint64_t b = fixed_bytes;
  for (const auto& t : tensors) b += *std::min_element(t.bytes.begin(), t.bytes.end());
  return 8.0 * double(b) / double(params);
}

double MixedProblem::max_bpw() const {
  uint64_t b = fixed_bytes;
  for (const auto& t : tensors) b += largest(t);
  return 8.0 * double(b) / double(params);
}

namespace {

// The bytes of t stored as its plan target.
uint64_t target_bytes(const Tensor& t, const TensorTarget& target, bool gguf) {
  if (gguf && t.shape.size() >= 2) return ggml_row_bytes(target.format, t.cols()) * uint64_t(t.rows());
  return stored_bytes(target.format, gguf ? IntParams{} : target.scheme.p, t.shape);
}

}  // namespace

MixedProblem mixed_problem(const Model& m, const QuantPlan& plan) {
  MixedProblem p;
  p.candidates = plan.gguf ? gguf_mixed_candidates() : mixed_candidates();
  for (const Tensor& t : m.tensors()) {
    p.params += uint64_t(t.numel());
    const TensorTarget* target = plan.target(t.name);
    LMQ_CHECK(target, "no target for '{}'", t.name);
    MixedTensor mt;
    mt.t = &t;
    bool any = false;
    for (const auto& c : p.candidates) {
      const bool lmq = c.format == Format::LMQ_INT;
      const bool fits = t.shape.size() >= 2 && (lmq || t.cols() % ggml_block_size(c.format) == 0);
      mt.bytes.push_back(!fits ? kNotCandidate
                         : lmq ? stored_bytes(Format::LMQ_INT, c.scheme.p, t.shape)
                               : ggml_row_bytes(c.format, t.cols()) * uint64_t(t.rows()));
      any = any || fits;
    }
    // norms, biases, user overrides; GGUF rows not of 32: llama.cpp's fallback (F16)
    if (target->fixed || !any) {
      p.fixed_bytes += target_bytes(t, *target, plan.gguf);
      continue;
    }
    mt.probe = probe_of(p, mt);
    p.tensors.push_back(std::move(mt));
  }
  if (p.params == 0) fail("{}: no parameters", m.path());
  return p;
}

void check_target(const MixedProblem& p, double target) {
  if (!std::isfinite(target)) fail("--target-bpw {}: not a finite number", target);
  const double lo = p.min_bpw(), hi = p.max_bpw();
  if (target < lo)
    fail("--target-bpw {}: below the smallest achievable {:.4f} bits per weight (every tensor at its smallest "
         "candidate)",
         target, lo);
  if (target > hi)
    fail("--target-bpw {}: above the largest candidate allocation, {:.4f} bits per weight (every tensor at {}); "
         "use --scheme for wider formats",
         target, hi, p.candidates.back().label);
}

namespace {

// Σ_ij weight_i·col_j·(w − w')² per candidate (w' its RTN round trip), with row weights
// (nullable) and column weights (nullable); also returns the probe candidate's bytes. A lattice
// i-quant's error is estimated from every step-th row of a tensor of more than kLatticeProbeRows
// rows, times step (the probe candidate is never one).
struct Errors {
  std::vector<double> e;
  std::vector<uint8_t> probe_bytes;
};

Errors candidate_errors(const MixedTensor& mt, const std::vector<MixedCandidate>& cands, const float* row_w,
                        const float* col_w, const float* col_w2, int threads) {
  const Tensor& t = *mt.t;
  const int64_t R = t.rows(), K = t.cols();
  std::vector<float> w(size_t(t.numel())), back(w.size());
  dequantize_rows(t, 0, R, w.data());
  Errors out;
  for (size_t c = 0; c < cands.size(); ++c) {
    if (mt.bytes[c] == kNotCandidate) {
      out.e.push_back(std::numeric_limits<double>::infinity());
      continue;
    }
    const MixedCandidate& s = cands[c];
    std::vector<uint8_t> q(size_t(mt.bytes[c]));
    int64_t step = 1;
    if (s.format == Format::LMQ_INT) {
      q.resize(quant::int_tensor_bytes(s.scheme.p, R, K));
      quant::quantize_tensor(w.data(), R, K, s.scheme.p, quant::RangeMethod::MinMax, 100, nullptr, q.data(), threads);
      quant::int_dequantize_rows(s.scheme.p, q.data(), R, K, 0, R, back.data());
    } else if (!ggml::LatticeSuperBlock::supports(s.format) || R <= kLatticeProbeRows) {
      ggml_round_trip(s.format, w.data(), R, K, nullptr, q.data(), back.data());
    } else {  // every step-th row only: lmq's exhaustive lattice search costs ~20× a K-quant's
      step = (R + kLatticeProbeRows - 1) / kLatticeProbeRows;
      const uint64_t rb = ggml_row_bytes(s.format, K);
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t r = 0; r < R; r += step)
        ggml_round_trip(s.format, w.data() + r * K, 1, K, nullptr, q.data() + uint64_t(r) * rb, back.data() + r * K);
    }
    double e = 0;
    for (int64_t r = 0; r < R; r += step) {
      double er = 0, er2 = 0;
      for (int64_t j = 0; j < K; ++j) {
        const double d = double(w[size_t(r * K + j)]) - back[size_t(r * K + j)];
        er += d * d * (col_w ? col_w[j] : 1.0);
        if (col_w2) er2 += d * d * col_w2[j];
      }
      e += er * (row_w ? row_w[r] : 1.0) + er2;
    }
    out.e.push_back(e * double(step));  // sampled rows stand for the step − 1 after each
    if (int(c) == mt.probe) out.probe_bytes = std::move(q);
  }
  return out;
}

// m with tensor t replaced by candidate c's bytes (held by the result).
std::unique_ptr<Model> with_candidate(const Model& m, const Tensor& t, const MixedCandidate& c,
                                      std::vector<uint8_t> bytes) {
  auto held = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  Tensor pt = t;
  pt.format = c.format;
  pt.q = c.format == Format::LMQ_INT ? c.scheme.p : IntParams{};
  pt.data = held->data();
  pt.nbytes = held->size();
  return Model::with_tensors(m, {{std::move(pt)}, {held}, {}}, m.path() + " [probe " + t.name + "]");
}

}  // namespace

void measure_sensitivity(const Model& m, MixedProblem& p, const std::vector<std::vector<int>>& windows,
                         const SensitivityOptions& o, const KldOfModels& kld) {
  if (windows.empty()) fail("--target-bpw: needs calibration windows (--calib FILE)");
  const std::vector<std::vector<int>> stat_win(windows.begin(),
                                               windows.begin() + std::min<size_t>(windows.size(), o.stat_windows));
  const StatsMap stats = collect_stats(m, stat_win);
  std::vector<float> freq(size_t(m.config().vocab), 0.0f);
  double ntok = 0;
  for (const auto& w : stat_win)
    for (int id : w) freq[size_t(id)] += 1, ntok += 1;
  for (float& f : freq) f = float(f / ntok);

  const bool tied = &m.lm_head() == &m.embed();
  std::vector<std::unique_ptr<Model>> probes;
  std::vector<Errors> errs;
  for (MixedTensor& mt : p.tensors) {
    const Tensor& t = *mt.t;
    const InputStats* st = find_stats(stats, t.name);
    const float* col = st ? st->sq_mean.data() : nullptr;
    Errors e = &t == &m.embed() ? candidate_errors(mt, p.candidates, freq.data(), nullptr, tied && st ? col : nullptr,
                                                   o.threads)
                                : candidate_errors(mt, p.candidates, nullptr, col, nullptr, o.threads);
    probes.push_back(with_candidate(m, t, p.candidates[size_t(mt.probe)], std::move(e.probe_bytes)));
    errs.push_back(std::move(e));
  }
  std::vector<std::vector<int>> pw;
  for (size_t i = 0; i < windows.size() && int(i) < o.probe_windows; ++i)
    pw.emplace_back(windows[i].begin(), windows[i].begin() + std::min<size_t>(windows[i].size(), o.probe_len));
  std::vector<const Model*> ptrs;
  for (const auto& pm : probes) ptrs.push_back(pm.get());
  const std::vector<double> r = kld(ptrs, m, pw);
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    MixedTensor& mt = p.tensors[i];
    mt.probe_kld = r[i];
    const double ep = errs[i].e[size_t(mt.probe)];
    mt.sens.clear();
    for (double e : errs[i].e) mt.sens.push_back(ep > 0 ? mt.probe_kld * e / ep : 0.0);
  }
}

Allocation allocate(const MixedProblem& p, double target) {
  check_target(p, target);
  const size_t n = p.tensors.size(), C = p.candidates.size();
  uint64_t most = 1;
  for (const auto& t : p.tensors) most += largest(t);
  const uint64_t unit = (most + kUnits - 1) / kUnits;
  const double budget_bytes = std::floor(target * double(p.params) / 8.0) - double(p.fixed_bytes);
  const int64_t B = budget_bytes <= 0 ? -1 : int64_t(budget_bytes / double(unit));
  auto units = [&](size_t i, size_t c) { return int64_t((p.tensors[i].bytes[c] + unit - 1) / unit); };
  const double inf = std::numeric_limits<double>::infinity();
  // dp[b]: the smallest summed sensitivity of the tensors so far within b units
  std::vector<double> dp(size_t(std::max<int64_t>(B + 1, 0)), 0.0), next(dp.size());
  std::vector<uint8_t> choice(n * dp.size(), 0);
  for (size_t i = 0; i < n; ++i) {
    LMQ_CHECK(p.tensors[i].sens.size() == C, "tensor '{}' has no sensitivity", p.tensors[i].t->name);
    for (int64_t b = 0; b <= B; ++b) {
      double best = inf;
      for (size_t c = 0; c < C; ++c) {
        if (p.tensors[i].bytes[c] == kNotCandidate) continue;
        const int64_t u = units(i, c);
        if (u > b) continue;
        const double v = dp[size_t(b - u)] + p.tensors[i].sens[c];
        if (v < best) best = v, choice[i * dp.size() + size_t(b)] = uint8_t(c);
      }
      next[size_t(b)] = best;
    }
    std::swap(dp, next);
  }
  if (B < 0 || !std::isfinite(dp[size_t(B)]))
    fail("--target-bpw {}: too close to the smallest achievable {:.4f} bits per weight", target, p.min_bpw());
  Allocation a;
  a.pick.assign(n, 0);
  a.bytes = p.fixed_bytes;
  a.sens = dp[size_t(B)];
  int64_t b = B;
  for (size_t i = n; i-- > 0;) {
    const int c = choice[i * dp.size() + size_t(b)];
    a.pick[i] = c;
    a.bytes += p.tensors[i].bytes[size_t(c)];
    b -= units(i, size_t(c));
  }
  a.bpw = 8.0 * double(a.bytes) / double(p.params);
  return a;
}

void apply_allocation(const MixedProblem& p, const Allocation& a, QuantPlan& plan) {
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const MixedCandidate& c = p.candidates[size_t(a.pick[i])];
    TensorTarget target;  // a chosen ggml type fits the row: no fallback, no note
    if (c.format == Format::LMQ_INT) target = lmq_target(c.scheme);
    else target.format = c.format;
    plan.tensors[p.tensors[i].t->name].target = std::move(target);
  }
}

bool MixedProblem::measured(size_t c) const {
  return std::find(unmeasured.begin(), unmeasured.end(), candidates[c].label) == unmeasured.end();
}

void save_sensitivity(const std::string& path, const MixedProblem& p) {
  nlohmann::json j;
  j["candidates"] = nlohmann::json::array();
  for (size_t c = 0; c < p.candidates.size(); ++c)
    if (p.measured(c)) j["candidates"].push_back(p.candidates[c].label);
  for (const auto& t : p.tensors) {
    nlohmann::json sens = nlohmann::json::array();  // a type the tensor cannot take (∞): null, JSON has no ∞
    for (size_t c = 0; c < t.sens.size(); ++c)
      if (p.measured(c)) sens.push_back(std::isfinite(t.sens[c]) ? nlohmann::json(t.sens[c]) : nlohmann::json(nullptr));
    j["tensors"][t.t->name] = {{"probe_kld", t.probe_kld}, {"sens", sens}};
  }
  const std::string text = j.dump(1) + "\n";
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

namespace {

// Where each of p's candidates sits in a file's list (-1: not there); a name p does not have
// (another lmq, the other output format) refuses the file.
std::vector<int> saved_positions(const std::string& path, const MixedProblem& p,
                                 const std::vector<std::string>& saved) {
  std::vector<int> at(p.candidates.size(), -1);
  for (size_t s = 0; s < saved.size(); ++s) {
    size_t c = 0;
    while (c < p.candidates.size() && p.candidates[c].label != saved[s]) ++c;
    if (c == p.candidates.size()) {
      std::string ours;
      for (const auto& x : p.candidates) ours += (ours.empty() ? "" : " ") + x.label;
      fail("{}: measured for candidate '{}', which is not one of this run's ({})", path, saved[s], ours);
    }
    if (at[c] >= 0) fail("{}: candidate '{}' listed twice", path, saved[s]);
    at[c] = int(s);
  }
  return at;
}

}  // namespace

void load_sensitivity(const std::string& path, MixedProblem& p) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
    const auto saved = j.at("candidates").get<std::vector<std::string>>();
    const std::vector<int> at = saved_positions(path, p, saved);
    p.unmeasured.clear();
    for (size_t c = 0; c < at.size(); ++c)
      if (at[c] < 0) p.unmeasured.push_back(p.candidates[c].label);
    for (MixedTensor& t : p.tensors) {
      const auto& e = j.at("tensors").at(t.t->name);
      t.probe_kld = e.at("probe_kld").get<double>();
      const auto& v = e.at("sens");
      if (v.size() != saved.size())
        fail("{}: '{}' has {} values for {} candidates", path, t.t->name, v.size(), saved.size());
      t.sens.assign(p.candidates.size(), std::numeric_limits<double>::infinity());
      bool any = false;
      for (size_t c = 0; c < at.size(); ++c) {
        if (at[c] < 0) t.bytes[c] = kNotCandidate;  // not measured: not a choice in this allocation
        if (t.bytes[c] == kNotCandidate) continue;
        const auto& x = v[size_t(at[c])];
        if (x.is_null()) fail("{}: '{}' has no sensitivity for {}", path, t.t->name, p.candidates[c].label);
        t.sens[c] = x.get<double>();
        any = true;
      }
      if (!any) fail("{}: '{}' has no sensitivity for any type it can take", path, t.t->name);
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not a sensitivity file of this model: {}", path, e.what());
  }
}

std::string allocation_table(const MixedProblem& p, const Allocation& a) {
  std::string s = fmt::format("{:<48} {:<16} {:>10} {:>8} {:>11} {:>11}\n", "tensor", "scheme", "params", "bpw",
                              "probe KLD", "sensitivity");
  struct Sum {
    int tensors = 0;
    uint64_t params = 0, bytes = 0;
  };
  std::map<std::string, Sum> by_family;
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const MixedTensor& t = p.tensors[i];
    const size_t c = size_t(a.pick[i]);
    const uint64_t n = uint64_t(t.t->numel());
    s += fmt::format("{:<48} {:<16} {:>10} {:>8.3f} {:>11.4g} {:>11.4g}\n", t.t->name, p.candidates[c].label, n,
                     8.0 * double(t.bytes[c]) / double(n), t.probe_kld, t.sens[c]);
    Sum& b = by_family[p.candidates[c].family];
    b.tensors++, b.params += n, b.bytes += t.bytes[c];
  }
  for (const auto& [family, b] : by_family)
    s += fmt::format("{}: {} tensors, {} params ({:.1f}%), {:.3f} bpw\n", family, b.tensors, b.params,
                     100.0 * double(b.params) / double(p.params), 8.0 * double(b.bytes) / double(b.params));
  if (!p.unmeasured.empty()) {
    std::string names;
    for (const auto& u : p.unmeasured) names += " " + u;
    s += fmt::format("not candidates here (the --sensitivity file has no measurement of them; measure again "
                     "without it to include them):{}\n",
                     names);
  }
  s += fmt::format("allocation: {:.4f} bits per weight (norms, biases and fixed tensors included), summed "
                   "sensitivity {:.5g}\n",
                   a.bpw, a.sens);
  return s;
}

}  // namespace lmq::calib
