// Weighted refinement of a Q2_K / Q3_K block's stored parameters (see ggml_rows.h): coordinate
// descent over exactly what the block stores. With the f16 super-scale(s) fixed, each sub-block's
// integer scale (and min) is the exhaustive optimum, its codes the nearest grid values; with the
// integers and codes fixed, the super-scale(s) are the weighted least-squares solution, rounded to
// f16. Each step can only lower the weighted error (a step that does not is not taken), so the
// result is never worse than the fit it starts from. llama.cpp's fits choose the sub-block scales
// as floats and round them to 4 or 6 bits afterwards, which at 2–3 bits costs a lot.
//
// ggml_refit_row_scales (codecs/ggml_blocks.h) is the same descent with the codes fixed and the
// error a quadratic form (w − ŵ)ᵀH(w − ŵ) over a whole row: what GPTQ's codes want of the scales.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ggml_rows.h"
#include "row_fit.h"
#include "lmq/error.h"

namespace lmq::ggml {

namespace {

constexpr int kSub = 16, kNsub = QK_K / kSub, kMaxRounds = 8;

float f16_round(float v) { return f16_to_f32(f32_to_f16(v)); }

// ---- Q2_K: value = d·s·q − dmin·m, s and m in 0..15, q in 0..3 ----

struct Q2Params {
  float d = 0, dmin = 0;
  int s[kNsub] = {}, m[kNsub] = {};
};

// Error of 16 values on the grid a·q − c (q nearest, 0..3), its codes into L.
float q2_sub_error(const float* x, const float* w, float a, float c, uint8_t* L) {
  float e = 0;
  const float ia = a != 0 ? 1 / a : 0;
  for (int i = 0; i < kSub; ++i) {
    const int q = a != 0 ? std::clamp(nearest_int((x[i] + c) * ia), 0, 3) : 0;
    const float diff = x[i] - (a * float(q) - c);
    e += w[i] * diff * diff;
    if (L) L[i] = uint8_t(q);
  }
  return e;
}

float q2_error(const float* x, const float* w, const Q2Params& p, uint8_t* L) {
  float e = 0;
  for (int j = 0; j < kNsub; ++j)
    e += q2_sub_error(x + kSub * j, w + kSub * j, p.d * float(p.s[j]), p.dmin * float(p.m[j]), L ? L + kSub * j : nullptr);
  return e;
}

// The best integers of every sub-block for p's d and dmin (exhaustive: 256 pairs).
void q2_best_integers(const float* x, const float* w, Q2Params& p) {
  for (int j = 0; j < kNsub; ++j) {
    float best = q2_sub_error(x + kSub * j, w + kSub * j, p.d * float(p.s[j]), p.dmin * float(p.m[j]), nullptr);
    for (int s = 0; s < 16; ++s)
      for (int m = 0; m < 16; ++m) {
        const float e = q2_sub_error(x + kSub * j, w + kSub * j, p.d * float(s), p.dmin * float(m), nullptr);
        if (e < best) best = e, p.s[j] = s, p.m[j] = m;
      }
  }
}

// Weighted least squares for (d, dmin) given the integers and codes L: x ≈ d·(s q) − dmin·m.
bool q2_fit_super(const float* x, const float* w, const uint8_t* L, Q2Params& p) {
  double aa = 0, ab = 0, bb = 0, xa = 0, xb = 0;
  for (int i = 0; i < QK_K; ++i) {
    const double A = double(p.s[i / kSub]) * L[i], B = -double(p.m[i / kSub]);
    aa += w[i] * A * A, ab += w[i] * A * B, bb += w[i] * B * B, xa += w[i] * x[i] * A, xb += w[i] * x[i] * B;
  }
  const double det = aa * bb - ab * ab;
  if (!(det > 1e-12 * aa * bb) || aa <= 0) {  // no min in use: d alone
    if (aa <= 0) return false;
    p.d = f16_round(float(xa / aa));
    return std::isfinite(p.d);
  }
  p.d = f16_round(float((xa * bb - xb * ab) / det));
  p.dmin = f16_round(float((aa * xb - ab * xa) / det));
  return std::isfinite(p.d) && std::isfinite(p.dmin);
}

// ---- Q3_K: value = d·sc·q, sc in −32..31, q in −4..3 ----

struct Q3Params {
  float d = 0;
  int sc[kNsub] = {};
};

float q3_sub_error(const float* x, const float* w, float a, int8_t* L) {
  float e = 0;
  const float ia = a != 0 ? 1 / a : 0;
  for (int i = 0; i < kSub; ++i) {
    const int q = a != 0 ? std::clamp(nearest_int(x[i] * ia), -4, 3) : 0;
    const float diff = x[i] - a * float(q);
    e += w[i] * diff * diff;
    if (L) L[i] = int8_t(q);
  }
  return e;
}

float q3_error(const float* x, const float* w, const Q3Params& p, int8_t* L) {
  float e = 0;
  for (int j = 0; j < kNsub; ++j)
    e += q3_sub_error(x + kSub * j, w + kSub * j, p.d * float(p.sc[j]), L ? L + kSub * j : nullptr);
  return e;
}

void q3_best_integers(const float* x, const float* w, Q3Params& p) {
  for (int j = 0; j < kNsub; ++j) {
    float best = q3_sub_error(x + kSub * j, w + kSub * j, p.d * float(p.sc[j]), nullptr);
    for (int sc = -32; sc < 32; ++sc) {
      const float e = q3_sub_error(x + kSub * j, w + kSub * j, p.d * float(sc), nullptr);
      if (e < best) best = e, p.sc[j] = sc;
    }
  }
}

bool q3_fit_super(const float* x, const float* w, const int8_t* L, Q3Params& p) {
  double aa = 0, xa = 0;
  for (int i = 0; i < QK_K; ++i) {
    const double A = double(p.sc[i / kSub]) * L[i];
    aa += w[i] * A * A, xa += w[i] * x[i] * A;
  }
  if (aa <= 0) return false;
  p.d = f16_round(float(xa / aa));
  return std::isfinite(p.d) && p.d != 0;
}

// The descent shared by both formats: integers for the super-scales, then the super-scales for
// the integers and codes, while the error falls.
template <class P, class Code, class Err, class Ints, class Super>
P descend(P p, Err err, Ints ints, Super super) {
  Code L[QK_K];
  float best = err(p, L);
  for (int round = 0; round < kMaxRounds; ++round) {
    P t = p;
    ints(t);
    float e = err(t, L);
    const bool ints_better = e < best;
    if (ints_better) p = t, best = e;
    t = p;
    err(t, L);
    bool super_better = false;
    if (super(L, t)) {
      e = err(t, nullptr);
      if (e < best) p = t, best = e, super_better = true;
    }
    if (!ints_better && !super_better) break;
  }
  return p;
}

}  // namespace

void refine_q2_K(const float* x, const float* w, uint8_t* block) {
  block_q2_K y;
  std::memcpy(&y, block, sizeof y);
  Q2Params p;
  p.d = f16_to_f32(y.d), p.dmin = f16_to_f32(y.dmin);
  for (int j = 0; j < kNsub; ++j) p.s[j] = y.scales[j] & 0xF, p.m[j] = y.scales[j] >> 4;
  if (!std::isfinite(p.d) || !std::isfinite(p.dmin) || p.d == 0) return;
  auto run = [&](const Q2Params& start) {
    return descend<Q2Params, uint8_t>(
        start, [&](const Q2Params& q, uint8_t* L) { return q2_error(x, w, q, L); },
        [&](Q2Params& q) { q2_best_integers(x, w, q); },
        [&](const uint8_t* L, Q2Params& q) { return q2_fit_super(x, w, L, q); });
  };
  p = run(p);
  y.d = f32_to_f16(p.d), y.dmin = f32_to_f16(p.dmin);
  for (int j = 0; j < kNsub; ++j) y.scales[j] = uint8_t(p.s[j] | (p.m[j] << 4));
  std::memcpy(block, &y, sizeof y);
  set_nearest_codes(Format::Q2_K, x, block);
}

void refine_q3_K(const float* x, const float* w, uint8_t* block) {
  Q3Params p;
  p.d = h2f(block + offsetof(block_q3_K, d));
  q3_scales(block + offsetof(block_q3_K, scales), p.sc);
  if (!std::isfinite(p.d) || p.d == 0) return;
  p = descend<Q3Params, int8_t>(
      p, [&](const Q3Params& q, int8_t* L) { return q3_error(x, w, q, L); },
      [&](Q3Params& q) { q3_best_integers(x, w, q); },
      [&](const int8_t* L, Q3Params& q) { return q3_fit_super(x, w, L, q); });
  f2h(block + offsetof(block_q3_K, d), p.d);
  pack_q3_scales(p.sc, block + offsetof(block_q3_K, scales));
  set_nearest_codes(Format::Q3_K, x, block);
}

}  // namespace lmq::ggml

namespace lmq {

namespace {

using ggml::QK_K;
using ggml::RowFit;
constexpr int kSub = 16, kNsub = QK_K / kSub;

// A Q2_K / Q3_K block's stored parameters. The value of code q in sub-block j is computed as the
// dequantizer does; for the least squares it is sup[0]·A + sup[1]·B (basis()).
struct KParams {
  bool q2 = true;   // Q2_K: sup = d, dmin; i0, i1 = scale, min (0..15). Q3_K: sup[0] = d; i0 = scale − 32
  float sup[2] = {0, 0};
  int i0[kNsub] = {}, i1[kNsub] = {};

  float value(int j, int q) const {
    if (q2) return sup[0] * float(i0[j]) * float(q) - sup[1] * float(i1[j]);
    return sup[0] * float(i0[j]) * float(q - 4);
  }
  void basis(int j, int q, double& A, double& B) const {
    A = q2 ? double(i0[j]) * q : double(i0[j]) * (q - 4);
    B = q2 ? -double(i1[j]) : 0.0;
  }
};

KParams read_params(Format f, const uint8_t* b) {
  KParams p;
  p.q2 = f == Format::Q2_K;
  if (p.q2) {
    p.sup[0] = ggml::h2f(b + offsetof(ggml::block_q2_K, d)), p.sup[1] = ggml::h2f(b + offsetof(ggml::block_q2_K, dmin));
    for (int j = 0; j < kNsub; ++j) p.i0[j] = b[offsetof(ggml::block_q2_K, scales) + j] & 0xF, p.i1[j] = b[offsetof(ggml::block_q2_K, scales) + j] >> 4;
  } else {
    p.sup[0] = ggml::h2f(b + offsetof(ggml::block_q3_K, d));
    ggml::q3_scales(b + offsetof(ggml::block_q3_K, scales), p.i0);
  }
  return p;
}

void write_params(const KParams& p, uint8_t* b) {
  if (p.q2) {
    ggml::f2h(b + offsetof(ggml::block_q2_K, d), p.sup[0]);
    ggml::f2h(b + offsetof(ggml::block_q2_K, dmin), p.sup[1]);
    for (int j = 0; j < kNsub; ++j) b[offsetof(ggml::block_q2_K, scales) + j] = uint8_t(p.i0[j] | (p.i1[j] << 4));
  } else {
    ggml::f2h(b + offsetof(ggml::block_q3_K, d), p.sup[0]);
    ggml::pack_q3_scales(p.i0, b + offsetof(ggml::block_q3_K, scales));
  }
}

// Sub-block j of the block at c0: the integers within ±2 (Q2_K's scale and min) or ±3 (Q3_K's
// scale) of the current ones that lower the error most.
void refit_sub(RowFit& rf, int64_t c0, const uint8_t* codes, KParams& p, int j) {
  const int64_t s0 = c0 + kSub * j;
  const int r0 = p.q2 ? 2 : 3, lo = p.q2 ? 0 : -32, hi = p.q2 ? 15 : 31;
  const int m_lo = p.q2 ? std::max(0, p.i1[j] - 2) : 0, m_hi = p.q2 ? std::min(15, p.i1[j] + 2) : 0;
  double best = 0, eps[kSub], best_eps[kSub];
  int bi0 = p.i0[j], bi1 = p.i1[j];
  KParams t = p;
  for (int a = std::max(lo, p.i0[j] - r0); a <= std::min(hi, p.i0[j] + r0); ++a)
    for (int m = m_lo; m <= m_hi; ++m) {
      if (a == p.i0[j] && (!p.q2 || m == p.i1[j])) continue;
      t.i0[j] = a;
      if (p.q2) t.i1[j] = m;
      for (int i = 0; i < kSub; ++i) eps[i] = double(t.value(j, codes[s0 + i])) - rf.what[size_t(s0 + i)];
      const double c = rf.cost(s0, eps, kSub);
      if (c < best) best = c, bi0 = a, bi1 = m, std::copy(eps, eps + kSub, best_eps);
    }
  if (bi0 == p.i0[j] && (!p.q2 || bi1 == p.i1[j])) return;
  p.i0[j] = bi0;
  if (p.q2) p.i1[j] = bi1;
  rf.apply(s0, best_eps, kSub);
}

// The block's f16 super-scale(s) by least squares in ΔᵀHΔ (the other blocks as they are).
void refit_super(RowFit& rf, int64_t c0, const uint8_t* codes, KParams& p) {
  std::vector<double> A(QK_K), B(QK_K);
  for (int i = 0; i < QK_K; ++i) p.basis(i / kSub, codes[c0 + i], A[size_t(i)], B[size_t(i)]);
  double aa = 0, ab = 0, bb = 0, ga = 0, gb = 0;
  for (int i = 0; i < QK_K; ++i) {
    const float* h = rf.H + (c0 + i) * rf.K + c0;
    double ha = 0, hb = 0;
    for (int k = 0; k < QK_K; ++k) ha += double(h[k]) * A[size_t(k)], hb += double(h[k]) * B[size_t(k)];
    aa += A[size_t(i)] * ha, ab += A[size_t(i)] * hb, bb += B[size_t(i)] * hb;
    ga += A[size_t(i)] * rf.g[size_t(c0 + i)], gb += B[size_t(i)] * rf.g[size_t(c0 + i)];
  }
  // minimise −2εᵀg + εᵀHε over ε = δ₀A + δ₁B
  double d0 = 0, d1 = 0;
  const double det = aa * bb - ab * ab;
  if (p.q2 && det > 1e-12 * aa * bb) d0 = (ga * bb - gb * ab) / det, d1 = (aa * gb - ab * ga) / det;
  else if (aa > 0) d0 = ga / aa;
  else return;
  KParams t = p;
  t.sup[0] = f16_to_f32(f32_to_f16(float(p.sup[0] + d0)));
  t.sup[1] = f16_to_f32(f32_to_f16(float(p.sup[1] + d1)));
  if (!std::isfinite(t.sup[0]) || !std::isfinite(t.sup[1])) return;
  double eps[QK_K];
  for (int i = 0; i < QK_K; ++i) eps[i] = double(t.value(i / kSub, codes[c0 + i])) - rf.what[size_t(c0 + i)];
  if (rf.cost(c0, eps, QK_K) < 0) p = t, rf.apply(c0, eps, QK_K);
}

}  // namespace

bool ggml_refit_row_scales(Format f, const float* w, int64_t K, const float* H, const uint8_t* codes, uint8_t* row,
                           int passes) {
  if (f != Format::Q2_K && f != Format::Q3_K) return false;
  if (K % QK_K != 0) fail("ggml_refit_row_scales: {} values are not whole {}-value blocks", K, QK_K);
  const size_t bb = ggml_block_bytes(f);
  const int64_t nb = K / QK_K;
  std::vector<KParams> p(static_cast<size_t>(nb));
  std::vector<double> what(static_cast<size_t>(K));
  for (int64_t b = 0; b < nb; ++b) {
    p[size_t(b)] = read_params(f, row + b * bb);
    for (int i = 0; i < QK_K; ++i) what[size_t(b * QK_K + i)] = p[size_t(b)].value(i / kSub, codes[b * QK_K + i]);
  }
  RowFit rf(H, K, w, std::move(what));
  for (int pass = 0; pass < passes; ++pass)
    for (int64_t b = 0; b < nb; ++b) {
      if (!std::isfinite(p[size_t(b)].sup[0]) || !std::isfinite(p[size_t(b)].sup[1])) continue;
      for (int j = 0; j < kNsub; ++j) refit_sub(rf, b * QK_K, codes, p[size_t(b)], j);
      refit_super(rf, b * QK_K, codes, p[size_t(b)]);
    }
  for (int64_t b = 0; b < nb; ++b) write_params(p[size_t(b)], row + b * bb);
  return true;
}

}  // namespace lmq
