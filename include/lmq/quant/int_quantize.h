// The whole-tensor quantizer of lmq's integer formats: chooses every group's parameters
// (quant/scheme.h) and writes the LMQ_INT layout (codecs/int_format.h).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lmq/codecs/int_format.h"
#include "lmq/quant/scheme.h"

namespace lmq::quant {

// The error of a quantized tensor against its float values: lmq's one accumulator of it, value
// by value (add) or from parts (merge, in a fixed order so that sums do not depend on threads).
struct QuantStats {
  double rel_rms = 0;  // sqrt(Σ(w - w')² / Σw²), 0 when Σw² = 0 (after finish)
  double max_abs = 0;  // max |w - w'|
  double sq_err = 0;   // Σ(w - w')²
  double sq_ref = 0;   // Σw²
  void add(double w, double back) {
    const double e = w - back;
    sq_err += e * e;
    sq_ref += w * w;
    max_abs = std::max(max_abs, std::fabs(e));
  }
  void merge(const QuantStats& o) {
    sq_err += o.sq_err;
    sq_ref += o.sq_ref;
    max_abs = std::max(max_abs, o.max_abs);
  }
  const QuantStats& finish() {
    rel_rms = sq_ref > 0 ? std::sqrt(sq_err / sq_ref) : 0.0;
    return *this;
  }
};

// Quantizes w[rows·cols] into out[int_tensor_bytes(p, rows, cols)] and reports the error of
// exactly what was stored. col_importance (nullable, length cols) weights the MSE search.
// Parallel over rows with `threads` OpenMP threads (<= 0: the OpenMP default); the bytes and
// the stats do not depend on the thread count. Throws lmq::Error on NaN/Inf in w (message
// gives row and column; the caller adds the tensor name) or in col_importance.
QuantStats quantize_tensor(const float* w, int64_t rows, int64_t cols, const IntParams& p,
                           RangeMethod m, float percentile, const float* col_importance,
                           uint8_t* out, int threads);

}  // namespace lmq::quant
