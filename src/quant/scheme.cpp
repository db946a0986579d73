// Quantization math: see include/lmq/quant/scheme.h for the derivation.
#include "lmq/quant/scheme.h"

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <vector>

#include "lmq/error.h"
#include "lmq/half.h"

namespace lmq::quant {

namespace {

void check_bits(int bits) {
  if (bits < 2 || bits > 8) fail("quantization bits must be 2..8, got {}", bits);
}

// Smallest float >= s (s >= 0), or FLT_MAX if s is beyond float.
float float_up(double s) {
  if (s > double(FLT_MAX)) return FLT_MAX;
  float f = float(s);
  if (double(f) < s) f = std::nextafter(f, INFINITY);
  return std::min(f, FLT_MAX);
}

// For a positive 16-bit float pattern h (f16 or bf16) converted with `to_f32`, step it up
// once if it lies below f; clamp to the largest finite pattern `max_finite`.
template <typename ToF32>
uint16_t step_up_16(uint16_t h, float f, uint16_t max_finite, ToF32 to_f32) {
  if (h > max_finite) return max_finite;  // rounded to Inf
  if (to_f32(h) < f && h < max_finite) ++h;  // positive patterns are ordered like their values
  return h;
}

}  // namespace

float round_scale_up(double s, ScaleType t) {
  if (!(s >= 0) || std::isinf(s)) fail("internal: scale {} is not a finite non-negative number", s);
  if (s == 0) return 0;
  const float f = float_up(s);
  switch (t) {
    case ScaleType::F32:
      return f;
    case ScaleType::F16:
      return f16_to_f32(step_up_16(f32_to_f16(f), f, 0x7bff, f16_to_f32));
    case ScaleType::BF16:
      return bf16_to_f32(step_up_16(f32_to_bf16(f), f, 0x7f7f, bf16_to_f32));
  }
  LMQ_UNREACHABLE("unknown scale type");
}

GroupQ params_from_range(double lo, double hi, const IntParams& p) {
  check_bits(p.bits);
  if (!std::isfinite(lo) || !std::isfinite(hi)) fail("internal: non-finite range [{}, {}]", lo, hi);
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  if (!p.asym) {
    const double absmax = std::max(-lo, hi);
    return {round_scale_up(absmax / sym_qmax(p.bits), p.scale_type), sym_zero(p.bits), true};
  }
  const float s = round_scale_up((hi - lo) / code_max(p.bits), p.scale_type);
  if (s == 0) return {0, 0};
  // The clamp only matters when s was clamped to the type's max (range beyond the type).
  const double z = std::clamp(std::round(-lo / double(s)), 0.0, double(code_max(p.bits)));
  return {s, int32_t(z)};
}

void check_finite(const float* x, int64_t n, const char* what) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) fail("{}: value {} at index {} is not finite", what, x[i], i);
}

namespace {

// The code of one value. Clamped in float before converting: x/s may be far outside the code
// range (or Inf when a tiny f32 scale divides a large value) and float->int of that is undefined.
inline int32_t code_of(float x, GroupQ g, float top) {
  if (g.scale == 0) return g.zero;  // all-zero group: every code is the zero point
  return int32_t(std::clamp(std::round(x / g.scale) + float(g.zero), g.sym ? 1.0f : 0.0f, top));
}

}  // namespace

void quantize_group(const float* x, int64_t n, GroupQ g, int bits, uint8_t* u) {
  const float top = float(code_max(bits));
  for (int64_t i = 0; i < n; ++i) u[i] = uint8_t(code_of(x[i], g, top));
}

double group_sq_error(const float* x, int64_t n, GroupQ g, int bits, const float* w) {
  const float top = float(code_max(bits));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    // Same expressions as quantize_group + dequantize_group, fused to avoid a buffer.
    const double e = double(x[i]) - double(dequant_code(g.scale, code_of(x[i], g, top), g.zero));
    sum += (w ? double(w[i]) : 1.0) * e * e;
  }
  return sum;
}

double quantile(const float* x, int64_t n, double q) {
  if (n <= 0) return 0;
  std::vector<float> v(x, x + n);
  const double pos = std::clamp(q, 0.0, 1.0) * double(n - 1);
  const int64_t k = int64_t(std::floor(pos));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  const double a = v[k];
  if (k + 1 >= n) return a;
  const double b = *std::min_element(v.begin() + k + 1, v.end());  // the (k+1)-th order stat
  return a + (pos - double(k)) * (b - a);
}

namespace {

void check_percentile(float pct) {
  if (!(pct >= 50.0f && pct <= 100.0f)) fail("percentile must be in [50, 100], got {}", pct);
}

GroupQ percentile_params(const float* x, int64_t n, const IntParams& p, float pct) {
  const double q = double(pct) / 100.0;
  if (!p.asym) {
    std::vector<float> a(n);
    for (int64_t i = 0; i < n; ++i) a[i] = std::fabs(x[i]);
    const double c = quantile(a.data(), n, q);
    return params_from_range(-c, c, p);
  }
  return params_from_range(quantile(x, n, 1.0 - q), quantile(x, n, q), p);
}

// Tries every clip ratio of the grid on [lo, hi]; r = 1 comes first and only a strictly
// smaller error replaces it, so the result is never worse than min/max.
GroupQ mse_params(const float* x, int64_t n, const IntParams& p, double lo, double hi,
                  const float* w) {
  GroupQ best = params_from_range(lo, hi, p);
  double best_err = group_sq_error(x, n, best, p.bits, w);
  for (int k = 1; k <= kMseSteps && best_err > 0; ++k) {
    const double r = mse_ratio(k);
    const GroupQ g = params_from_range(lo * r, hi * r, p);
    const double e = group_sq_error(x, n, g, p.bits, w);
    if (e < best_err) best = g, best_err = e;
  }
  return best;
}

}  // namespace

GroupQ choose_group_params(const float* x, int64_t n, const IntParams& p, RangeMethod m,
                           const float* importance, float percentile) {
  check_bits(p.bits);
  check_finite(x, n, "quantize");
  if (n == 0) return params_from_range(0, 0, p);
  const auto [mn, mx] = std::minmax_element(x, x + n);
  switch (m) {
    case RangeMethod::MinMax:
      return params_from_range(*mn, *mx, p);
    case RangeMethod::Percentile:
      check_percentile(percentile);
      return percentile_params(x, n, p, percentile);
    case RangeMethod::Mse:
      if (importance) check_finite(importance, n, "importance");
      return mse_params(x, n, p, *mn, *mx, importance);
  }
  LMQ_UNREACHABLE("unknown range method");
}

// ---- seeds' signed forms ----

SeedAsym seed_asym_params(float alpha, float beta, int bits) {
  check_bits(bits);
  const float s = float(code_max(bits)) / (alpha - beta);
  return {s, int32_t(std::round(-s * beta)) - sym_zero(bits)};
}

int32_t seed_asym_quantize(float x, SeedAsym p, int bits) {
  const float q = std::round(p.s * x) + float(p.Z);
  return int32_t(std::clamp(q, float(-sym_zero(bits)), float(sym_zero(bits) - 1)));
}

float seed_sym_scale(float absmax, int bits) {
  check_bits(bits);
  return float(sym_qmax(bits)) / absmax;
}

int32_t seed_sym_quantize(float x, float s_seed, int bits) {
  const float qm = float(sym_qmax(bits));
  return int32_t(std::clamp(std::round(s_seed * x), -qm, qm));
}



// ---- scheme strings ----

namespace {

std::string_view scale_type_name(ScaleType t) {
  switch (t) {
    case ScaleType::F16: return "f16";
    case ScaleType::BF16: return "bf16";
    case ScaleType::F32: return "f32";
  }
  return "?";
}

// Parses all of `s` as a decimal integer; false if anything is left over or it overflows.
bool parse_int(std::string_view s, int64_t& v) {
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && end == s.data() + s.size();
}

bool parse_float(std::string_view s, float& v) {
  if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '.')) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && end == s.data() + s.size();
}

// Applies one ":option" of an int scheme; `seen` rejects giving the same kind twice.
void apply_option(const std::string& full, std::string_view opt, Scheme& sc, unsigned& seen) {
  auto once = [&](unsigned bit, const char* what) {
    if (seen & bit) fail("scheme '{}': {} given twice", full, what);
    seen |= bit;
  };
  int64_t n = 0;
  float f = 0;
  if (opt == "tensor" || opt == "channel") {
    once(1, "granularity");
    sc.p.group = opt == "tensor" ? 0 : -1;
  } else if (opt.size() > 1 && opt[0] == 'g' && std::isdigit(static_cast<unsigned char>(opt[1]))) {
    once(1, "granularity");
    if (!parse_int(opt.substr(1), n) || n < 1 || n > (int64_t(1) << 30))
      fail("scheme '{}': group size in '{}' must be an integer from 1 to 2^30", full, opt);
    sc.p.group = int32_t(n);
  } else if (opt == "sym" || opt == "asym") {
    once(2, "sym/asym");
    sc.p.asym = opt == "asym";
  } else if (opt == "minmax" || opt == "mse") {
    once(4, "range method");
    sc.range = opt == "mse" ? RangeMethod::Mse : RangeMethod::MinMax;
  } else if (opt.starts_with("pct")) {
    once(4, "range method");
    if (!parse_float(opt.substr(3), f) || !(f >= 50.0f && f <= 100.0f))
      fail("scheme '{}': percentile in '{}' must be a number from 50 to 100", full, opt);
    sc.range = RangeMethod::Percentile;
    sc.percentile = f;
  } else if (opt.starts_with("s=")) {
    once(8, "scale type");
    const std::string_view t = opt.substr(2);
    if (t == "f16" || t == "fp16") sc.p.scale_type = ScaleType::F16;
    else if (t == "bf16") sc.p.scale_type = ScaleType::BF16;
    else if (t == "f32" || t == "fp32") sc.p.scale_type = ScaleType::F32;
    else fail("scheme '{}': scale type '{}' must be f16, bf16 or f32", full, t);
  } else {
    fail("scheme '{}': unknown option '{}' (expected tensor|channel|gN, sym|asym, "
         "minmax|mse|pctP, s=f16|bf16|f32)", full, opt);
  }
}

}  // namespace

Scheme parse_scheme(std::string_view text) {
  const std::string full(text);
  std::string s(text);
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  Scheme sc;
  if (s == "f32" || s == "fp32") return sc.kind = Scheme::F32, sc;
  if (s == "f16" || s == "fp16") return sc.kind = Scheme::F16, sc;
  if (s == "bf16") return sc.kind = Scheme::BF16, sc;
  if (!s.starts_with("int"))
    fail("scheme '{}': expected f32, f16, bf16 or intB[:options] (e.g. int4:g128:asym)", full);
  // Split "B:opt:opt..." at ':'; an empty piece is a stray ':'.
  std::vector<std::string_view> parts;
  std::string_view rest = std::string_view(s).substr(3);
  for (size_t at; (at = rest.find(':')) != std::string_view::npos; rest.remove_prefix(at + 1))
    parts.push_back(rest.substr(0, at));
  parts.push_back(rest);
  int64_t bits = 0;
  if (!parse_int(parts[0], bits)) fail("scheme '{}': expected a bit count 2..8 after 'int'", full);
  if (bits < 2 || bits > 8) fail("scheme '{}': bits must be 2..8", full);
  sc.p.bits = uint8_t(bits);
  unsigned seen = 0;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i].empty()) fail("scheme '{}': empty option (stray ':')", full);
    apply_option(full, parts[i], sc, seen);
  }
  return sc;
}

std::string Scheme::to_string() const {
  switch (kind) {
    case F32: return "f32";
    case F16: return "f16";
    case BF16: return "bf16";
    case Int: break;
  }
  std::string gran = p.group == 0 ? "tensor" : p.group < 0 ? "channel" : fmt::format("g{}", p.group);
  std::string rng = range == RangeMethod::Mse      ? "mse"
                    : range == RangeMethod::MinMax ? "minmax"
                                                   : fmt::format("pct{}", percentile);
  return fmt::format("int{}:{}:{}:{}:s={}", int(p.bits), gran, p.asym ? "asym" : "sym", rng,
                     scale_type_name(p.scale_type));
}

}  // namespace lmq::quant
