// Static activation ranges for W8A8: one symmetric int8 scale s = T/127 per linear input,
// chosen once from calibration text. All four rules read a histogram of |x| with 2048 equal
// bins over [0, range) (range = the calibration maximum, known from a first pass; values at or
// above it fall in the last bin) plus the exact maximum:
//   minmax   T = max|x|.
//   pctP     T = the upper edge of the first bin where the cumulative count reaches P% of all
//            values (capped at max|x|).
//   mse      T minimizing Σ_bins count·(c − q_T(c))² with c the bin centre and
//            q_T(c) = s·min(round(c/s), 127): the quantization error of the histogram's values,
//            clipping included. Candidates: T = max first, then the upper edge of every bin
//            i ≥ 128 below max; a candidate replaces the best only when strictly better, so the
//            rule is never worse than minmax by this measure.
//   kl       TensorRT's entropy calibration: for i = 128..(last non-empty bin + 1),
//            P = bins [0, i) with the count of every bin ≥ i added to bin i−1; Q = the same i
//            bins (without the outliers) merged into 128 levels (level of bin j = ⌊128·j/i⌋,
//            the |x| side of int8's 255-level grid) and spread back evenly over each level's
//            non-empty bins; T = i·width for the i minimizing KL(P‖Q) = Σ p·ln(p/q) with P, Q
//            normalized (an i where q = 0 under p > 0 is skipped). Fewer than 128 non-empty
//            bins: T = max (nothing worth clipping).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmq::calib {

enum class ActRange { MinMax, Percentile, Mse, Kl };
struct ActRangeRule {
  ActRange kind = ActRange::MinMax;
  double percentile = 99.9;  // for Percentile, in (50, 100]
};
// "minmax" | "pctP" (e.g. pct99.9) | "mse" | "kl"; throws naming --act-calib otherwise.
ActRangeRule parse_act_range(std::string_view s);
std::string act_range_name(const ActRangeRule& r);

class AbsHistogram {
 public:
  static constexpr int kBins = 2048;
  explicit AbsHistogram(double range = 0);
  void add(const float* x, int64_t n);
  double range() const { return range_; }
  double width() const { return range_ / kBins; }
  double max() const { return max_; }
  int64_t total() const { return total_; }
  const std::vector<double>& counts() const { return counts_; }

 private:
  double range_, max_ = 0;
  int64_t total_ = 0;
  std::vector<double> counts_;
};

// The clipping threshold T of the rule; the int8 scale is T/127 (0 for an all-zero input).
double choose_threshold(const AbsHistogram& h, const ActRangeRule& r);

// The measures behind the rules, exposed for tests.
double kl_divergence_at(const AbsHistogram& h, int i);  // +inf where undefined
double hist_sq_error(const AbsHistogram& h, double T);

}  // namespace lmq::calib
