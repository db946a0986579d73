// Quantization math for lmq's integer formats: scales, zero points, range selection and the
// scheme strings the CLI accepts ("int4:g128:asym:mse").
//
// ---------------------------------------------------------------------------------------------
// Derivation (b = bits, all codes stored unsigned, u in [0, 2^b - 1])
//
// Symmetric (absmax). The grid is {-q_max..q_max}·s with q_max = 2^(b-1) - 1, so that 0 is a
// grid point and the range [-absmax, absmax] is covered exactly when s = absmax / q_max:
//     q = clamp(round(x / s), -q_max, q_max),   x' = q·s.
// Stored as u = q + 2^(b-1) in [1, 2^b - 1] (code 0 is never used), i.e. x' = s·(u - z) with an
// implicit zero point z = 2^(b-1) that is not stored.
//
// Asymmetric (min/max with zero point). The range is widened to contain 0,
// [lo, hi] = [min(x, 0), max(x, 0)], and split into 2^b - 1 steps: s = (hi - lo) / (2^b - 1).
// The zero point is the code of 0.0, rounded to an integer so that 0 stays exact:
//     z = round(-lo / s) in [0, 2^b - 1],  u = clamp(round(x / s) + z, 0, 2^b - 1),
//     x' = s·(u - z).
// Since |z - (-lo/s)| <= 1/2, lo lands within 1/2 of code 0 and hi within 1/2 of code
// (hi - lo)/s = 2^b - 1. round() is half away from zero throughout. With a clipped range
// (percentile, MSE) symmetric codes are clamped to [1, 2^b - 1] so the grid stays symmetric.
//
// Stored scale. The scale is stored as a ScaleType (f16 by default). We round s to that type
// FIRST and compute z and the codes with the rounded s, so the stored bytes reproduce x'
// exactly. We round UP (to the smallest representable value >= s): a larger step still
// covers [lo, hi] (for asym: x/s + z lies in [-1/2, 2^b - 1/2] for every x in [lo, hi] because
// (hi - lo)/s <= 2^b - 1 and |z - (-lo/s)| <= 1/2), so every in-range value has error <= s/2
// with s the stored scale. Rounding to nearest could shrink s by up to 2^-9 (bf16) and then
// the top of a 255-step range would fall outside the grid by ~s. Two edge cases:
//   * s above the type's largest finite value (f16: 65504) is clamped to it: values beyond
//     q_max·s_max are clipped (only for |x| > ~8e6 in f16; real weights never get there).
//   * tiny nonzero s cannot flush to 0 since rounding up gives at least the smallest subnormal.
// An all-zero group has s = 0, codes = z (z = 0 for asym) and dequantizes to exact zeros.
// NaN or Inf in the input throws lmq::Error (the message gives the index; the caller adds the
// tensor name).
//
// The seeds' signed form (used in the worked examples; kept as a cross-check). There the
// "scale" is the reciprocal, q = round(s·x + Z), in the signed range [-2^(b-1), 2^(b-1) - 1]:
//     asym: s_seed = (2^b - 1)/(α - β), Z = round(-s_seed·β) - 2^(b-1),
//           q = clamp(round(s_seed·x) + Z, -2^(b-1), 2^(b-1) - 1), x' = (q - Z)/s_seed;
//     sym:  s_seed = q_max/absmax, q = clamp(round(s_seed·x), -q_max, q_max), x' = q/s_seed.
// With u = q + 2^(b-1) and z = Z + 2^(b-1) this is the unsigned form above with s = 1/s_seed;
// the two can differ only where x·s_seed and x/s land on opposite sides of a .5 tie.
// ---------------------------------------------------------------------------------------------
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "lmq/codecs/int_bits.h"
#include "lmq/tensor.h"

namespace lmq::quant {

enum class RangeMethod { MinMax, Percentile, Mse };

// Rounds s >= 0 up to the nearest value representable in t (clamped to t's max finite).
float round_scale_up(double s, ScaleType t);

// Parameters for the range [lo, hi] (lo <= 0 <= hi is enforced by widening); symmetric uses
// max(-lo, hi). Throws if lo or hi is not finite.
GroupQ params_from_range(double lo, double hi, const IntParams& p);

// Chooses scale/zero for x[0..n). importance (nullable, length n) weights the MSE search
// (activation-weighted clipping); percentile in [50, 100] is used by RangeMethod::Percentile.
GroupQ choose_group_params(const float* x, int64_t n, const IntParams& p, RangeMethod m,
                           const float* importance, float percentile = 99.9f);

// u[i] = clamp(round(x[i]/s) + z, sym ? 1 : 0, 2^bits - 1), round half away from zero;
// s = 0 gives u = z. x must be finite.
void quantize_group(const float* x, int64_t n, GroupQ g, int bits, uint8_t* u);

// Σ w_j (x_j - x'_j)² (w = nullptr: all ones), accumulated in double in index order.
double group_sq_error(const float* x, int64_t n, GroupQ g, int bits, const float* w);

// Throws lmq::Error naming the first NaN/Inf index of x[0..n).
void check_finite(const float* x, int64_t n, const char* what);

// Linear-interpolated quantile (q in [0,1]) of a (copied) array.
double quantile(const float* x, int64_t n, double q);

// Default clip-ratio grid of the MSE search: 1.0, 0.99, ..., 0.5 (51 ratios, 1.0 first).
inline constexpr int kMseSteps = 50;
inline double mse_ratio(int k) { return 1.0 - 0.5 * k / kMseSteps; }

// ---- the seeds' signed forms (cross-check and worked examples) ----
struct SeedAsym {
  float s;    // reciprocal scale, codes per unit
  int32_t Z;  // signed zero point
};
SeedAsym seed_asym_params(float alpha, float beta, int bits);
int32_t seed_asym_quantize(float x, SeedAsym p, int bits);
inline float seed_asym_dequantize(int32_t q, SeedAsym p) { return float(q - p.Z) / p.s; }
float seed_sym_scale(float absmax, int bits);  // q_max / absmax
int32_t seed_sym_quantize(float x, float s_seed, int bits);

// ---- scheme strings ----
// Grammar: intB[:GRAN][:sym|:asym][:minmax|:mse|:pctP][:s=f16|bf16|f32]
//   B in 2..8; GRAN = tensor | channel | gN (N >= 1); P in [50, 100].
//   Defaults: channel, sym, minmax, s=f16. The options may come in any order, each once.
// or one of f32 | f16 | bf16 (also fp32, fp16). Case-insensitive.
struct Scheme {
  enum Kind { Int, F32, F16, BF16 } kind = Int;
  IntParams p{};
  RangeMethod range = RangeMethod::MinMax;
  float percentile = 99.9f;
  // Canonical form: "f16", or "intB:GRAN:sym|asym:minmax|mse|pctP:s=TYPE" with every field.
  std::string to_string() const;
  bool operator==(const Scheme&) const = default;
};
Scheme parse_scheme(std::string_view s);

}  // namespace lmq::quant
