#include "lmq/calib/act_calib.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <limits>

#include "lmq/error.h"

namespace lmq::calib {

namespace {
constexpr int kLevels = 128;  // |q| in 0..127
}

ActRangeRule parse_act_range(std::string_view s) {
  ActRangeRule r;
  if (s == "minmax") r.kind = ActRange::MinMax;
  else if (s == "mse") r.kind = ActRange::Mse;
  else if (s == "kl") r.kind = ActRange::Kl;
  else if (s.substr(0, 3) == "pct") {
    const std::string num(s.substr(3));
    char* end = nullptr;
    r.percentile = std::strtod(num.c_str(), &end);
    if (num.empty() || *end != '\0' || !(r.percentile > 50 && r.percentile <= 100))
      fail("--act-calib '{}': the percentile must be a number in (50, 100], e.g. pct99.9", s);
    r.kind = ActRange::Percentile;
  } else {
    fail("--act-calib '{}': expected minmax, pctP (e.g. pct99.9), mse or kl", s);
  }
  return r;
}

std::string act_range_name(const ActRangeRule& r) {
  switch (r.kind) {
    case ActRange::MinMax: return "minmax";
    case ActRange::Mse: return "mse";
    case ActRange::Kl: return "kl";
    case ActRange::Percentile: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "pct%g", r.percentile);
      return buf;
    }
  }
  return "?";
}

AbsHistogram::AbsHistogram(double range) : range_(range), counts_(kBins, 0.0) {}

void AbsHistogram::add(const float* x, int64_t n) {
  const double inv = range_ > 0 ? kBins / range_ : 0;
  for (int64_t i = 0; i < n; ++i) {
    const double a = std::fabs(double(x[i]));
    max_ = std::max(max_, a);
    const int b = range_ > 0 ? int(std::min<double>(a * inv, kBins - 1)) : 0;
    counts_[size_t(b)] += 1;
  }
  total_ += n;
}

double hist_sq_error(const AbsHistogram& h, double T) {
  const double s = T / (kLevels - 1), w = h.width();
  double e = 0;
  for (int b = 0; b < AbsHistogram::kBins; ++b) {
    const double n = h.counts()[size_t(b)];
    if (n == 0) continue;
    const double c = (b + 0.5) * w;
    const double q = s > 0 ? s * std::min(std::round(c / s), double(kLevels - 1)) : 0;
    e += n * (c - q) * (c - q);
  }
  return e;
}

double kl_divergence_at(const AbsHistogram& h, int i) {
  const auto& hist = h.counts();
  std::vector<double> p(hist.begin(), hist.begin() + i), q(size_t(i), 0.0);
  for (int b = i; b < AbsHistogram::kBins; ++b) p[size_t(i - 1)] += hist[size_t(b)];
  // Q: bins [0, i) merged into 128 levels (bin j → level ⌊128·j/i⌋), each level's count spread
  // evenly over its non-empty bins.
  double sum[kLevels] = {};
  int nonzero[kLevels] = {};
  for (int j = 0; j < i; ++j) {
    const int lvl = int(int64_t(j) * kLevels / i);
    sum[lvl] += hist[size_t(j)];
    nonzero[lvl] += hist[size_t(j)] != 0;
  }
  for (int j = 0; j < i; ++j) {
    const int lvl = int(int64_t(j) * kLevels / i);
    q[size_t(j)] = hist[size_t(j)] != 0 ? sum[lvl] / nonzero[lvl] : 0.0;
  }
  double ps = 0, qs = 0;
  for (int j = 0; j < i; ++j) ps += p[size_t(j)], qs += q[size_t(j)];
  if (!(ps > 0) || !(qs > 0)) return std::numeric_limits<double>::infinity();
  double kl = 0;
  for (int j = 0; j < i; ++j) {
    if (p[size_t(j)] == 0) continue;
    if (q[size_t(j)] == 0) return std::numeric_limits<double>::infinity();
    const double pj = p[size_t(j)] / ps, qj = q[size_t(j)] / qs;
    kl += pj * std::log(pj / qj);
  }
  return kl;
}

namespace {

int last_nonzero_bin(const AbsHistogram& h) {
  for (int b = AbsHistogram::kBins - 1; b >= 0; --b)
    if (h.counts()[size_t(b)] != 0) return b;
  return -1;
}

double percentile_threshold(const AbsHistogram& h, double pct) {
  const double want = pct / 100.0 * double(h.total());
  double cum = 0;
  for (int b = 0; b < AbsHistogram::kBins; ++b) {
    cum += h.counts()[size_t(b)];
    if (cum >= want) return std::min((b + 1) * h.width(), h.max());
  }
  return h.max();
}

double mse_threshold(const AbsHistogram& h) {
  double best = h.max(), best_err = hist_sq_error(h, best);
  for (int i = kLevels; i <= AbsHistogram::kBins; ++i) {
    const double T = i * h.width();
    if (T >= h.max()) break;
    const double e = hist_sq_error(h, T);
    if (e < best_err) best_err = e, best = T;
  }
  return best;
}

double kl_threshold(const AbsHistogram& h) {
  const int last = last_nonzero_bin(h);
  if (last + 1 < kLevels) return h.max();
  int best_i = last + 1;
  double best = std::numeric_limits<double>::infinity();
  for (int i = kLevels; i <= last + 1; ++i) {
    const double kl = kl_divergence_at(h, i);
    if (kl < best) best = kl, best_i = i;
  }
  return std::min(best_i * h.width(), h.max());
}

}  // namespace

double choose_threshold(const AbsHistogram& h, const ActRangeRule& r) {
  if (!(h.max() > 0)) return 0;
  switch (r.kind) {
    case ActRange::MinMax: return h.max();
    case ActRange::Percentile: return percentile_threshold(h, r.percentile);
    case ActRange::Mse: return mse_threshold(h);
    case ActRange::Kl: return kl_threshold(h);
  }
  return h.max();
}

}  // namespace lmq::calib
