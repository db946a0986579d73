// Dynamic activation quantization for integer inference: each token's activations (a row of
// x) are quantized at run time to symmetric int8, q = clamp(round(x/s), -127, 127), x' = s·q,
// with one scale per row or per block of 32/64 values. A NaN input counts as 0 for the range
// and quantizes to 0 (defined output for hostile activations); the loops are SIMD
// (act_quant_simd.cpp) and equal to these formulas value for value.
//   absmax: s = absmax/127 — every value is inside the range, error <= s/2.
//   mse:    s = r·absmax/127 for the clip ratio r in {1, 0.975, ..., 0.5} (21 ratios, r = 1
//           first, ties keep the earlier) that minimizes Σ(x - x')² — never worse than absmax.
// The sums of the int8 codes over groups of `sum_group` values are kept too: integer kernels
// need Σ q_x over a weight group for the zero-point correction Σ u·q - z·Σ q.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmq {

enum class ActQuant { None, DynamicAbsmax, DynamicMse };

// "none" | "dynamic[:absmax|:mse][:b32|:b64]" (the rule defaults to absmax; bN = one scale per
// block of N values instead of per token); throws lmq::Error otherwise.
struct ActQuantSpec {
  ActQuant rule = ActQuant::None;
  int64_t block = 0;  // 0: one scale per token
};
ActQuantSpec parse_act_quant_spec(std::string_view s);
inline ActQuant parse_act_quant(std::string_view s) { return parse_act_quant_spec(s).rule; }
std::string act_quant_name(ActQuant a);

struct QuantizedActs {
  int64_t T = 0, K = 0;
  int64_t block = 0;      // values per scale (== K for one scale per row)
  int64_t sum_group = 0;  // values per code sum
  std::vector<int8_t> q;        // T × K
  std::vector<float> scale;     // T × ceil(K / block)
  std::vector<int32_t> sums;    // T × ceil(K / sum_group), Σ q over each group
  int64_t blocks_per_row() const { return (K + block - 1) / block; }
  int64_t sums_per_row() const { return (K + sum_group - 1) / sum_group; }
};

// The scale the rule picks for x[0..n) (0 for an all-zero vector). rule must not be None.
float act_scale(const float* x, int64_t n, ActQuant rule);
// q[i] = clamp(round(x[i]/s), -127, 127), round half away from zero; s = 0 gives 0.
void act_quantize_block(const float* x, int64_t n, float s, int8_t* q);
// Σ (x - s·q)² in double, for tests and the MSE search.
double act_sq_error(const float* x, int64_t n, float s);

// Quantizes x (T × K). block: 0 = one scale per row, else values per scale (e.g. 32, 64);
// sum_group: values per code sum (0 = the whole row). Parallel over rows (OpenMP) when large.
void quantize_activations(const float* x, int64_t T, int64_t K, ActQuant rule, int64_t block,
                          int64_t sum_group, QuantizedActs& out);
// Static quantization (W8A8 files): one scale s fixed at calibration for every token, so no
// range is computed at run time; values beyond ±127·s are clipped.
void quantize_activations_static(const float* x, int64_t T, int64_t K, float s, int64_t sum_group,
                                 QuantizedActs& out);

}  // namespace lmq
