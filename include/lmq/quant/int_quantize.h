// The whole-tensor quantizer of lmq's integer formats: chooses every group's parameters
// (quant/scheme.h) and writes the LMQ_INT layout (codecs/int_format.h).
#pragma once
#include <cstdint>

#include "lmq/codecs/int_format.h"
#include "lmq/quant/scheme.h"

namespace lmq::quant {

struct QuantStats {
  double rel_rms = 0;  // sqrt(Σ(w - w')² / Σw²), 0 when Σw² = 0
  double max_abs = 0;  // max |w - w'|
  double sq_err = 0;   // Σ(w - w')²
  double sq_ref = 0;   // Σw²
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
