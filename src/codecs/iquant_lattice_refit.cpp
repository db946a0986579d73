// lattice_refit_row_scales (codecs/iquant_lattice.h): what GPTQ's chosen grid entries want of
// the scales they were chosen under, in the row's whole output error. Every lattice i-quant
// reconstructs d·(1 + 2s)·G (iquant_lattice_quantize.cpp), so one descent serves all.
#include <cmath>
#include <vector>

#include "ggml_rows.h"
#include "lmq/codecs/iquant_lattice.h"
#include "lmq/error.h"
#include "row_fit.h"

namespace lmq::ggml {

namespace {

double multiplier(float d, int s) { return double(d * float(1 + 2 * s)); }  // the dequantizer's d·(1 + 2s) in f32

struct SuperBlockFit {
  int64_t c0;            // first column
  int sub;               // values per sub-block code
  int codes;             // sub-block codes: 16, or 8 (IQ1_*)
  float d;
  uint8_t scale[16];
  const double* G;       // QK_K signed grid magnitudes
};

// Sub-block ib's code: the one of all that lowers the error most.
void refit_sub(RowFit& rf, SuperBlockFit& b, int ib) {
  const int64_t s0 = b.c0 + int64_t(ib) * b.sub;
  double eps[32], best_eps[32], best = 0;
  int best_s = b.scale[ib];
  for (int s = 0; s < b.codes; ++s) {
    if (s == b.scale[ib]) continue;
    const double m = multiplier(b.d, s);
    for (int i = 0; i < b.sub; ++i) eps[i] = m * b.G[s0 - b.c0 + i] - rf.what[size_t(s0 + i)];
    const double c = rf.cost(s0, eps, b.sub);
    if (c < best) best = c, best_s = s, std::copy(eps, eps + b.sub, best_eps);
  }
  if (best_s == b.scale[ib]) return;
  b.scale[ib] = uint8_t(best_s);
  rf.apply(s0, best_eps, b.sub);
}

// The super-scale by least squares in ΔᵀHΔ (the other super-blocks as they are), rounded to f16.
void refit_super(RowFit& rf, SuperBlockFit& b) {
  double A[QK_K];
  for (int i = 0; i < QK_K; ++i) A[i] = double(1 + 2 * b.scale[i / b.sub]) * b.G[i];
  double aa = 0, ga = 0;
  for (int i = 0; i < QK_K; ++i) {
    const float* h = rf.H + (b.c0 + i) * rf.K + b.c0;
    double ha = 0;
    for (int k = 0; k < QK_K; ++k) ha += double(h[k]) * A[k];
    aa += A[i] * ha, ga += A[i] * rf.g[size_t(b.c0 + i)];
  }
  if (!(aa > 0)) return;
  const float d = f16_to_f32(f32_to_f16(float(double(b.d) + ga / aa)));
  if (!std::isfinite(d) || d == b.d) return;
  double eps[QK_K];
  for (int i = 0; i < QK_K; ++i) eps[i] = multiplier(d, b.scale[i / b.sub]) * b.G[i] - rf.what[size_t(b.c0 + i)];
  if (rf.cost(b.c0, eps, QK_K) < 0) b.d = d, rf.apply(b.c0, eps, QK_K);
}

}  // namespace

void lattice_refit_row_scales(const float* w, int64_t K, const float* H, LatticeSuperBlock* blocks, int passes) {
  if (K % QK_K != 0) fail("lattice_refit_row_scales: {} values are not whole {}-value blocks", K, QK_K);
  const int64_t nb = K / QK_K;
  std::vector<double> G(static_cast<size_t>(K)), what(static_cast<size_t>(K));
  std::vector<SuperBlockFit> fits(static_cast<size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) {
    SuperBlockFit& f = fits[size_t(b)];
    const LatticeCodes& c = blocks[b].codes();
    f = {b * QK_K, blocks[b].sub(), blocks[b].max_code() + 1, c.d, {}, G.data() + b * QK_K};
    std::copy(c.scale, c.scale + 16, f.scale);
    blocks[b].signed_grid(G.data() + b * QK_K);
    for (int i = 0; i < QK_K; ++i) what[size_t(b * QK_K + i)] = multiplier(f.d, f.scale[i / f.sub]) * f.G[i];
  }
  RowFit rf(H, K, w, std::move(what));
  for (int pass = 0; pass < passes; ++pass)
    for (SuperBlockFit& f : fits) {
      if (f.d == 0 || !std::isfinite(f.d)) continue;  // an all-zero super-block stays one
      for (int ib = 0; ib < QK_K / f.sub; ++ib) refit_sub(rf, f, ib);
      refit_super(rf, f);
    }
  for (int64_t b = 0; b < nb; ++b) blocks[b].set_scales(fits[size_t(b)].d, fits[size_t(b)].scale);
}

}  // namespace lmq::ggml
