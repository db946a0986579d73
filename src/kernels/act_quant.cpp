#include "lmq/kernels/act_quant.h"

#include <algorithm>
#include <cmath>

#include "act_quant_simd.h"
#include "lmq/error.h"

namespace lmq {

namespace {
constexpr int kClipSteps = 20;  // ratios 1, 0.975, ..., 0.5
}  // namespace

ActQuantSpec parse_act_quant_spec(std::string_view s) {
  const auto bad = [&]() {
    fail("unknown --act-quant '{}' (none, or dynamic[:absmax|:mse][:b32|:b64])", s);
  };
  if (s == "none") return {};
  if (!s.starts_with("dynamic")) bad();
  ActQuantSpec spec{ActQuant::DynamicAbsmax, 0};
  std::string_view rest = s.substr(7);
  const auto take = [&](std::string_view part) {
    if (!rest.starts_with(part) || (rest.size() > part.size() && rest[part.size()] != ':')) return false;
    rest.remove_prefix(part.size());
    return true;
  };
  if (take(":absmax")) spec.rule = ActQuant::DynamicAbsmax;
  else if (take(":mse")) spec.rule = ActQuant::DynamicMse;
  if (take(":b32")) spec.block = 32;
  else if (take(":b64")) spec.block = 64;
  if (!rest.empty()) bad();
  return spec;
}

std::string act_quant_name(ActQuant a) {
  switch (a) {
    case ActQuant::None: return "none";
    case ActQuant::DynamicAbsmax: return "dynamic:absmax";
    case ActQuant::DynamicMse: return "dynamic:mse";
  }
  return "?";
}

void act_quantize_block(const float* x, int64_t n, float s, int8_t* q) {
  if (!(s > 0)) {
    std::fill(q, q + n, int8_t(0));
    return;
  }
  simd_quantize_i8(x, n, 1.0f / s, q);
}

double act_sq_error(const float* x, int64_t n, float s) {
  double e = 0;
  const float inv = s > 0 ? 1.0f / s : 0.f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] * inv;
    const float q = s > 0 && v == v ? std::clamp(std::round(v), -127.0f, 127.0f) : 0.f;
    const double d = double(x[i]) - double(s * q);
    e += d * d;
  }
  return e;
}

float act_scale(const float* x, int64_t n, ActQuant rule) {
  const float amax = simd_absmax(x, n);
  if (!(amax > 0)) return 0.f;
  const float s1 = amax / 127.0f;
  if (rule != ActQuant::DynamicMse) return s1;
  float best = s1;
  double best_err = act_sq_error(x, n, s1);
  for (int k = 1; k <= kClipSteps; ++k) {
    const float s = float(1.0 - 0.5 * k / kClipSteps) * s1;
    const double e = act_sq_error(x, n, s);
    if (e < best_err) best_err = e, best = s;
  }
  return best;
}

namespace {

// Shared row loop: scale_of(row block) gives each block's scale; codes and code sums follow.
template <class ScaleOf>
void quantize_rows(const float* x, int64_t T, int64_t K, int64_t block, int64_t sum_group, QuantizedActs& out,
                   const ScaleOf& scale_of) {
  if (block < 0 || sum_group < 0) fail("quantize_activations: negative block");
  out.T = T;
  out.K = K;
  out.block = block == 0 ? K : block;
  out.sum_group = sum_group == 0 ? K : sum_group;
  const int64_t nb = out.blocks_per_row(), ns = out.sums_per_row();
  out.q.resize(size_t(T * K));
  out.scale.resize(size_t(T * nb));
  out.sums.resize(size_t(T * ns));
#pragma omp parallel for schedule(static) if (T * K >= 16384)
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * K;
    int8_t* qr = out.q.data() + t * K;
    // Code sums come with the codes when the sum groups tile the scale blocks (they do for
    // every integer matmul: its unit never spans two blocks); otherwise they are added after.
    const bool nested = out.block % out.sum_group == 0;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t c0 = b * out.block, n = std::min(out.block, K - c0);
      const float s = scale_of(xr + c0, n);
      out.scale[size_t(t * nb + b)] = s;
      if (!nested) {
        act_quantize_block(xr + c0, n, s, qr + c0);
        continue;
      }
      for (int64_t g0 = c0; g0 < c0 + n; g0 += out.sum_group) {
        const int64_t m = std::min(out.sum_group, c0 + n - g0);
        int32_t sum = 0;
        if (s > 0) sum = simd_quantize_i8(xr + g0, m, 1.0f / s, qr + g0);
        else std::fill(qr + g0, qr + g0 + m, int8_t(0));
        out.sums[size_t(t * ns + g0 / out.sum_group)] = sum;
      }
    }
    for (int64_t g = 0; g < ns && !nested; ++g) {
      const int64_t c0 = g * out.sum_group, c1 = std::min(K, c0 + out.sum_group);
      int32_t sum = 0;
      for (int64_t c = c0; c < c1; ++c) sum += qr[c];
      out.sums[size_t(t * ns + g)] = sum;
    }
  }
}

}  // namespace

void quantize_activations(const float* x, int64_t T, int64_t K, ActQuant rule, int64_t block,
                          int64_t sum_group, QuantizedActs& out) {
  if (rule == ActQuant::None) fail("quantize_activations: rule is none");
  quantize_rows(x, T, K, block, sum_group, out,
                [rule](const float* xb, int64_t n) { return act_scale(xb, n, rule); });
}

void quantize_activations_static(const float* x, int64_t T, int64_t K, float s, int64_t sum_group,
                                 QuantizedActs& out) {
  if (!(s >= 0) || !std::isfinite(s)) fail("quantize_activations_static: bad scale {}", s);
  quantize_rows(x, T, K, 0, sum_group, out, [s](const float*, int64_t) { return s; });
}

}  // namespace lmq
