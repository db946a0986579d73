// SmoothQuant (Xiao et al., 2023): migrate activation outliers into the weights. For a linear
// layer y = x·Wᵀ and per-input factors s_j > 0, y = (x·diag(1/s))·(W·diag(s))ᵀ exactly, so
// dividing input column j by s_j and multiplying weight column j by s_j changes nothing in
// float but moves range from activations (quantized per tensor, where outlier columns hurt)
// into weights (quantized per output channel, where a scaled column is mostly absorbed):
//     s_j = max|X_j|^α / max|W_j|^(1−α)
// with max|W_j| over every weight that reads input j. α = 1 moves all of the activation range
// into the weights, α = 0 none of it. A column with no activation or no weight range gets
// s_j = 1; s is clamped to [1e-5, 1e5] so neither side can overflow. The division is folded
// into whatever produces x (calib/w8a8.h), so it costs nothing at run time.
#pragma once
#include <cstdint>
#include <vector>

namespace lmq::quant {

std::vector<float> smooth_factors(const std::vector<float>& act_absmax, const std::vector<float>& w_absmax,
                                  double alpha);
// acc[j] = max(acc[j], max_r |w[r, j]|) for a row-major rows × K matrix.
void column_absmax(const float* w, int64_t rows, int64_t K, float* acc);

}  // namespace lmq::quant
