// The whole-tensor quantizer of lmq's integer formats (quant/int_quantize.h).
#include "lmq/quant/int_quantize.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <vector>

#include "lmq/error.h"

namespace lmq::quant {

// ---- whole-tensor quantizer ----

namespace {

void check_tensor_finite(const float* w, int64_t rows, int64_t cols, const float* imp) {
  for (int64_t i = 0; i < rows * cols; ++i)
    if (!std::isfinite(w[i]))
      fail("weight {} at row {}, column {} is not finite", w[i], i / cols, i % cols);
  if (imp) check_finite(imp, cols, "column importance");
}

// Per-tensor parameters: the range is over the whole tensor. The MSE search sums row errors
// (in parallel, per row, then in row order) so it is deterministic.
GroupQ tensor_params(const float* w, int64_t rows, int64_t cols, const IntParams& p,
                     RangeMethod m, float pct, const float* imp, int threads) {
  const int64_t n = rows * cols;
  if (m == RangeMethod::Percentile) return choose_group_params(w, n, p, m, nullptr, pct);
  const auto [mn, mx] = std::minmax_element(w, w + n);
  const double lo = n ? *mn : 0.0, hi = n ? *mx : 0.0;
  GroupQ best = params_from_range(lo, hi, p);
  if (m == RangeMethod::MinMax) return best;
  std::vector<double> err(static_cast<size_t>(rows));
  auto total_error = [&](GroupQ g) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; ++r) err[r] = group_sq_error(w + r * cols, cols, g, p.bits, imp);
    double s = 0;
    for (double e : err) s += e;
    return s;
  };
  double best_err = total_error(best);
  for (int k = 1; k <= kMseSteps && best_err > 0; ++k) {  // r = 1 first, as in the group search
    const GroupQ g = params_from_range(lo * mse_ratio(k), hi * mse_ratio(k), p);
    const double e = total_error(g);
    if (e < best_err) best = g, best_err = e;
  }
  return best;
}

// Quantizes one row: chooses its groups' parameters (unless per tensor), writes packed codes,
// records the GroupQ of each of its scale indices, and measures the error of what was stored.
QuantStats quantize_row(const float* x, int64_t r, int64_t cols, const IntParams& p, RangeMethod m,
                      float pct, const float* imp, const IntLayout& l, GroupQ* qs,
                      std::vector<uint8_t>& u, uint8_t* out) {
  const int64_t span = p.group > 0 ? p.group : std::max<int64_t>(cols, 1);
  QuantStats st;
  for (int64_t c0 = 0; c0 < cols; c0 += span) {
    const int64_t len = std::min(span, cols - c0);
    const int64_t idx = int_scale_index(p, l.groups_per_row, r, c0);
    if (p.group != 0) qs[idx] = choose_group_params(x + c0, len, p, m, imp ? imp + c0 : nullptr, pct);
    const GroupQ g = qs[idx];
    quantize_group(x + c0, len, g, p.bits, u.data() + c0);
    for (int64_t c = c0; c < c0 + len; ++c) {
      st.add(double(x[c]), double(dequant_code(g.scale, u[c], g.zero)));
    }
  }
  pack_bits(u.data(), cols, p.bits, out + uint64_t(r) * l.row_code_bytes);
  return st;
}

}  // namespace

QuantStats quantize_tensor(const float* w, int64_t rows, int64_t cols, const IntParams& p,
                           RangeMethod m, float percentile, const float* col_importance,
                           uint8_t* out, int threads) {
  const IntLayout l = int_layout(p, rows, cols);
  if (threads <= 0) threads = omp_get_max_threads();
  check_tensor_finite(w, rows, cols, col_importance);
  if (m == RangeMethod::Percentile && !(percentile >= 50.0f && percentile <= 100.0f))
    fail("percentile must be in [50, 100], got {}", percentile);
  std::memset(out, 0, l.total);  // padding and unused bits are zero, so output is deterministic

  std::vector<GroupQ> qs(static_cast<size_t>(l.n_scales));
  if (p.group == 0) qs[0] = tensor_params(w, rows, cols, p, m, percentile, col_importance, threads);

  std::vector<QuantStats> row_stats(static_cast<size_t>(rows));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(rows));  // exceptions must not leave the omp region
#pragma omp parallel num_threads(threads)
  {
    std::vector<uint8_t> u(static_cast<size_t>(cols));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      try {
        row_stats[r] = quantize_row(w + r * cols, r, cols, p, m, percentile, col_importance, l,
                                    qs.data(), u, out);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    }
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);

  // Scales and zero points: serial, since zero points of different rows share bytes.
  store_int_params(p, l, qs.data(), out);

  QuantStats s;
  for (const QuantStats& r : row_stats) s.merge(r);  // in row order: same sums for any thread count
  return s.finish();
}

}  // namespace lmq::quant
