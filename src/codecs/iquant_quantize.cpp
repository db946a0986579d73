// Quantizers of IQ4_NL and IQ4_XS, written from the algorithm of llama.cpp's
// quantize_row_iq4_nl_impl (ggml-quants.c, b4748) as llama-quantize runs it (quantize_iq4_nl /
// quantize_iq4_xs, ntry = 7): per 32-value sub-block a weighted least-squares scale against the
// 16 levels, searched over 15 candidate scales; IQ4_XS then stores each sub-block scale as a
// 6-bit multiple of an f16 super-scale and re-picks the codes against it. Operation order and
// float types follow llama.cpp so the bytes equal llama-quantize's.
#include <cmath>
#include <cstddef>
#include <cstring>

#include "ggml_rows.h"
#include "lmq/codecs/iquant_blocks.h"

namespace lmq::ggml {
namespace {

constexpr int kNtry = 7;  // what llama-quantize uses (quantize_iq4_nl/_xs); the _ref rows use -1

// The level nearest x (llama.cpp's best_index_int8: bisection, a tie goes to the upper level).
int nearest_level(float x) {
  const int8_t* v = kIq4nlValues;
  if (x <= v[0]) return 0;
  if (x >= v[15]) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (x < v[mid]) hi = mid;
    else lo = mid;
  }
  return x - v[hi - 1] < v[hi] - x ? hi - 1 : hi;
}

}  // namespace

// The error weights of one sub-block of n values: x² without importance; with it llama.cpp's
// imatrix weighting imp_j · sqrt(σ² + x_j²) (σ² = 2·mean x² over the whole block). An importance
// that is zero over the whole sub-block would leave the fit 0/0 (llama.cpp writes a NaN scale
// there): such a sub-block falls back to x².
void iq_weights(const float* x, const float* imp, float sigma2, int n, float* w) {
  bool any = false;
  if (imp)
    for (int j = 0; j < n; ++j) {
      w[j] = imp[j] * sqrtf(sigma2 + x[j] * x[j]);
      any = any || w[j] > 0;
    }
  if (!any)
    for (int j = 0; j < n; ++j) w[j] = x[j] * x[j];
}

float iq_sigma2(const float* x, int n) {
  float s = 0;
  for (int j = 0; j < n; ++j) s += x[j] * x[j];
  return s * (2.f / float(n));
}

namespace {

// Weighted fit of one sub-block's scale d (x ≈ d · level): 0 for a block of (near) zeros.
float fit_scale(const float* x, const float* w) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) amax = ax, max = x[j];
  }
  if (amax < kGroupMaxEps) return 0;
  const float v0 = kIq4nlValues[0];
  // the sums of levels chosen at inverse scale id: Σ w·q·x and Σ w·q²
  auto sums = [&](float id, float& sumqx, float& sumq2) {
    sumqx = sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const float q = kIq4nlValues[nearest_level(id * x[j])];
      sumqx += w[j] * q * x[j];
      sumq2 += w[j] * q * q;
    }
  };
  float sumqx, sumq2;
  sums(1 / (-max / v0), sumqx, sumq2);  // the extreme value on the most negative level
  float d = sumqx / sumq2, best = d * sumqx;
  for (int itry = -kNtry; itry <= kNtry; ++itry) {
    sums(float(itry + kIq4nlValues[0]) / max, sumqx, sumq2);
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) d = sumqx / sumq2, best = d * sumqx;
  }
  return d;
}

// 32 codes into 16 bytes: value j in the low nibble of byte j, value j+16 in its high nibble.
void pack_nibbles(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = uint8_t(L[j] | L[16 + j] << 4);
}

}  // namespace

void q_iq4_nl(const float* x, uint8_t* out, int64_t nb, const float* imp) {
  float w[32];
  uint8_t L[32];
  for (int64_t i = 0; i < nb; ++i, x += QK4_NL, out += sizeof(block_iq4_nl)) {
    iq_weights(x, imp ? imp + i * QK4_NL : nullptr, iq_sigma2(x, QK4_NL), 32, w);
    const float d = fit_scale(x, w);
    f2h(out, d);
    const float id = d != 0 ? 1 / d : 0;  // codes against the unrounded scale, as llama.cpp
    for (int j = 0; j < 32; ++j) L[j] = uint8_t(nearest_level(id * x[j]));
    pack_nibbles(L, out + offsetof(block_iq4_nl, qs));
  }
}

void q_iq4_xs(const float* x, uint8_t* out, int64_t nb, const float* imp) {
  float w[32], scales[8];
  uint8_t L[32];
  for (int64_t i = 0; i < nb; ++i, x += QK_K, out += sizeof(block_iq4_xs)) {
    const float sigma2 = iq_sigma2(x, QK_K);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < 8; ++ib) {
      iq_weights(x + 32 * ib, imp ? imp + i * QK_K + 32 * ib : nullptr, sigma2, 32, w);
      scales[ib] = fit_scale(x + 32 * ib, w);
      if (std::fabs(scales[ib]) > amax_scale) amax_scale = std::fabs(scales[ib]), max_scale = scales[ib];
    }
    // the super-scale maps the largest sub-block scale to the 6-bit code -32
    const float d = -max_scale / 32;
    f2h(out, d);
    const float id = d != 0 ? 1 / d : 0;
    uint16_t scales_h = 0;
    uint8_t* scales_l = out + offsetof(block_iq4_xs, scales_l);
    std::memset(scales_l, 0, QK_K / 64);
    for (int ib = 0; ib < 8; ++ib) {
      int l = nearest_int(id * scales[ib]);
      l = l < -32 ? -32 : l > 31 ? 31 : l;
      const float dl = d * float(l);
      const float idl = dl != 0 ? 1 / dl : 0;
      for (int j = 0; j < 32; ++j) L[j] = uint8_t(nearest_level(idl * x[32 * ib + j]));
      pack_nibbles(L, out + offsetof(block_iq4_xs, qs) + 16 * ib);
      l += 32;
      scales_l[ib / 2] = uint8_t(scales_l[ib / 2] | (l & 15) << 4 * (ib % 2));
      scales_h = uint16_t(scales_h | (l >> 4) << 2 * ib);
    }
    std::memcpy(out + offsetof(block_iq4_xs, scales_h), &scales_h, 2);
  }
}

}  // namespace lmq::ggml
