#include "lmq/quant/smooth.h"

#include <algorithm>
#include <cmath>

#include "lmq/error.h"

namespace lmq::quant {

std::vector<float> smooth_factors(const std::vector<float>& act_absmax, const std::vector<float>& w_absmax,
                                  double alpha) {
  LMQ_CHECK(act_absmax.size() == w_absmax.size(), "smooth_factors: {} vs {} columns", act_absmax.size(), w_absmax.size());
  if (!(alpha >= 0 && alpha <= 1)) fail("--smooth {}: α must be in [0, 1]", alpha);
  std::vector<float> s(act_absmax.size(), 1.0f);
  for (size_t j = 0; j < s.size(); ++j) {
    const double a = act_absmax[j], w = w_absmax[j];
    if (!(a > 0) || !(w > 0)) continue;
    s[j] = float(std::clamp(std::pow(a, alpha) / std::pow(w, 1.0 - alpha), 1e-5, 1e5));
  }
  return s;
}

void column_absmax(const float* w, int64_t rows, int64_t K, float* acc) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < K; ++j) acc[j] = std::max(acc[j], std::fabs(w[r * K + j]));
}

}  // namespace lmq::quant
