// The K-quants' scale searches (make_qkx2_quants, make_qx_quants in ggml_blocks.cpp) for all
// sub-blocks of a super-block at once, one sub-block per SIMD lane. Each search is a chain of
// float sums in a fixed order — llama.cpp's, which lmq must match bit for bit — so it cannot be
// vectorized along a sub-block; across sub-blocks it can: lane j runs exactly the scalar
// function's operations on sub-block j (same order, no FMA contraction: CMakeLists.txt), and
// every branch of the scalar code becomes a per-lane select. The results equal one scalar call
// per sub-block (tests/ggml_fit_lanes_test.cpp). The lanes are GCC/Clang vector types: the
// compiler maps them onto each target_clones clone's registers (one AVX2/AVX-512 register in
// the x86-64-v4 clone, pairs of SSE registers in the baseline one). This is what makes RTN into the K-quants as
// fast as llama-quantize's or faster: the search is ~90% of that work.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ggml_rows.h"

// The lane helpers below take and return vectors wider than the baseline ABI's registers; they
// are internal and always inlined into each clone, so no call ever crosses that ABI.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace lmq::ggml {
namespace {

template <int N>
struct Lanes;
template <>
struct Lanes<8> {
  typedef float F __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
};
template <>
struct Lanes<16> {
  typedef float F __attribute__((vector_size(64)));
  typedef int32_t I __attribute__((vector_size(64)));
};

// llama.cpp's nearest_int (ggml_rows.h) in every lane.
template <class F, class I>
[[gnu::always_inline]] inline I nearest_int_lanes(F v) {
  const F t = v + 12582912.f;
  I i;
  std::memcpy(&i, &t, sizeof i);
  return (i & 0x007fffff) - 0x00400000;
}
template <class F, class I>
[[gnu::always_inline]] inline F abs_lanes(F v) {
  I i;
  std::memcpy(&i, &v, sizeof i);
  i &= 0x7fffffff;
  std::memcpy(&v, &i, sizeof v);
  return v;
}
template <class I>
[[gnu::always_inline]] inline I clamp_lanes(I l, int lo, int hi) {
  l = l > hi ? hi : l;  // std::min(hi, l) …
  return l < lo ? lo : l;  // … then std::max(lo, ·), as the scalar code
}

// Sub-block-major x (lane j's values at x[j·n + i]) → t[i] = lane vector of value i.
template <int N, class F>
void transpose_in(const float* x, int n, F* t) {
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < N; ++j) t[i][j] = x[j * n + i];
}

// Per lane: the first value of largest magnitude (mx) and that magnitude (amax), as the scalar
// loops find them (strictly larger replaces; NaN never does).
template <class F, class I>
void signed_absmax_lanes(const F* xt, int n, F& mx, F& amax) {
  mx = amax = F{};
  for (int i = 0; i < n; ++i) {
    const F ax = abs_lanes<F, I>(xt[i]);
    const I larger = ax > amax;
    mx = larger ? xt[i] : mx;
    amax = larger ? ax : amax;
  }
}

template <int N>
void qkx2_lanes(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* scales, float* the_mins,
                float rmin, float rdelta, int nstep, bool use_mad) {
  using F = typename Lanes<N>::F;
  using I = typename Lanes<N>::I;
  const F zero = {};
  F xt[32] = {}, wt[32] = {};  // (n <= 32 used)
  I best_l[32] = {}, cand_l[32] = {};
  transpose_in<N>(x, n, xt);
  transpose_in<N>(weights, n, wt);
  F mn = xt[0], mx = xt[0], sum_w = wt[0], sum_x = wt[0] * xt[0];
  for (int i = 1; i < n; ++i) {
    mn = xt[i] < mn ? xt[i] : mn;
    mx = xt[i] > mx ? xt[i] : mx;
    sum_w += wt[i];
    sum_x += wt[i] * xt[i];
  }
  mn = mn > zero ? zero : mn;
  const I flat = mx == mn;  // the scalar function's early return: codes 0, scale 0, this min
  const F flat_min = mn;
  F scale = 1.f / (float(nmax) / (mx - mn)), best = zero;
  for (int i = 0; i < n; ++i) {
    best_l[i] = clamp_lanes(nearest_int_lanes<F, I>(float(nmax) / (mx - mn) * (xt[i] - mn)), 0, nmax);
    F diff = scale * __builtin_convertvector(best_l[i], F) + mn - xt[i];
    diff = use_mad ? abs_lanes<F, I>(diff) : diff * diff;
    best += wt[i] * diff;
  }
  for (int is = 0; is <= nstep && nstep >= 1; ++is) {
    const F iscale = (rmin + rdelta * float(is) + float(nmax)) / (mx - mn);
    F sum_l = zero, sum_l2 = zero, sum_xl = zero, cur = zero;
    for (int i = 0; i < n; ++i) {
      cand_l[i] = clamp_lanes(nearest_int_lanes<F, I>(iscale * (xt[i] - mn)), 0, nmax);
      const F l = __builtin_convertvector(cand_l[i], F), wl = wt[i] * l;
      sum_l += wl;
      sum_l2 += wl * l;
      sum_xl += wl * xt[i];
    }
    const F D = sum_w * sum_l2 - sum_l * sum_l;
    F this_scale = (sum_w * sum_xl - sum_x * sum_l) / D, this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    const I clip = this_min > zero;
    this_scale = clip ? sum_xl / sum_l2 : this_scale;
    this_min = clip ? zero : this_min;
    for (int i = 0; i < n; ++i) {
      F diff = this_scale * __builtin_convertvector(cand_l[i], F) + this_min - xt[i];
      diff = use_mad ? abs_lanes<F, I>(diff) : diff * diff;
      cur += wt[i] * diff;
    }
    const I take = (D > zero) & (cur < best);
    best = take ? cur : best;
    scale = take ? this_scale : scale;
    mn = take ? this_min : mn;
    for (int i = 0; i < n; ++i) best_l[i] = take ? cand_l[i] : best_l[i];
  }
  for (int j = 0; j < N; ++j) {
    for (int i = 0; i < n; ++i) L[j * n + i] = flat[j] ? 0 : uint8_t(best_l[i][j]);
    scales[j] = flat[j] ? 0.f : scale[j];
    the_mins[j] = -(flat[j] ? flat_min[j] : mn[j]);
  }
}

template <int N>
void qx_lanes(int n, int nmax, const float* x, int8_t* L, const float* qw, float* scales) {
  using F = typename Lanes<N>::F;
  using I = typename Lanes<N>::I;
  const F zero = {};
  F xt[32] = {}, wt[32] = {};  // (n <= 32 used)
  I best_l[32] = {}, cand_l[32] = {};
  transpose_in<N>(x, n, xt);
  if (qw) transpose_in<N>(qw, n, wt);
  else
    for (int i = 0; i < n; ++i) wt[i] = xt[i] * xt[i];
  F mx, amax;
  signed_absmax_lanes<F, I>(xt, n, mx, amax);
  // One pass at iscale: the codes (+ nmax) into cand_l, the two sums.
  auto search = [&](F iscale, F& sumlx, F& suml2) {
    sumlx = suml2 = zero;
    for (int i = 0; i < n; ++i) {
      const I l = clamp_lanes(nearest_int_lanes<F, I>(iscale * xt[i]), -nmax, nmax - 1);
      cand_l[i] = l + nmax;
      const F fl = __builtin_convertvector(l, F);
      sumlx += wt[i] * xt[i] * fl;
      suml2 += wt[i] * fl * fl;
    }
  };
  F sumlx, suml2;
  search(float(-nmax) / mx, sumlx, suml2);
  F scale = suml2 != zero ? sumlx / suml2 : zero;
  F best = scale * sumlx;
  for (int i = 0; i < n; ++i) best_l[i] = cand_l[i];
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    search(-(float(nmax) + 0.1f * float(is)) / mx, sumlx, suml2);
    const I take = (suml2 > zero) & (sumlx * sumlx > best * suml2);
    scale = take ? sumlx / suml2 : scale;
    best = take ? scale * sumlx : best;
    for (int i = 0; i < n; ++i) best_l[i] = take ? cand_l[i] : best_l[i];
  }
  for (int j = 0; j < N; ++j) {
    const bool tiny = amax[j] < kGroupMaxEps;  // the scalar function's early return
    for (int i = 0; i < n; ++i) L[j * n + i] = tiny ? 0 : int8_t(best_l[i][j]);
    scales[j] = tiny ? 0.f : scale[j];
  }
}

template <int N>
void q3_lanes(int n, int nmax, const float* x, int8_t* L, float* scales) {
  using F = typename Lanes<N>::F;
  using I = typename Lanes<N>::I;
  const F zero = {};
  F xt[32] = {};  // (n <= 32 used)
  I l[32] = {};
  transpose_in<N>(x, n, xt);
  F mx, amax;
  signed_absmax_lanes<F, I>(xt, n, mx, amax);
  const F iscale = float(-nmax) / mx;
  F sumlx = zero, suml2 = zero;
  for (int i = 0; i < n; ++i) {
    l[i] = clamp_lanes(nearest_int_lanes<F, I>(iscale * xt[i]), -nmax, nmax - 1);
    const F fl = __builtin_convertvector(l[i], F), w = xt[i] * xt[i];
    sumlx += w * xt[i] * fl;
    suml2 += w * fl * fl;
  }
  // The coordinate descent: a lane whose pass changed nothing is at a fixed point (the next
  // pass computes the same), so running it on while other lanes still change equals the
  // scalar code's early break.
  for (int itry = 0; itry < 5; ++itry) {
    I changed = {};
    for (int i = 0; i < n; ++i) {
      const F w = xt[i] * xt[i], fl = __builtin_convertvector(l[i], F);
      const F slx = sumlx - w * xt[i] * fl;
      const F sl2 = suml2 - w * fl * fl;
      const I new_l = clamp_lanes(nearest_int_lanes<F, I>(xt[i] * sl2 / slx), -nmax, nmax - 1);
      const F fnew = __builtin_convertvector(new_l, F);
      const F slx_new = slx + w * xt[i] * fnew, sl2_new = sl2 + w * fnew * fnew;
      const I take = (slx > zero) & (new_l != l[i]) & (sl2_new > zero) &
                     (slx_new * slx_new * suml2 > sumlx * sumlx * sl2_new);
      l[i] = take ? new_l : l[i];
      sumlx = take ? slx_new : sumlx;
      suml2 = take ? sl2_new : suml2;
      changed |= take;
    }
    bool any = false;
    for (int j = 0; j < N; ++j) any = any || changed[j] != 0;
    if (!any) break;
  }
  for (int j = 0; j < N; ++j) {
    const bool tiny = amax[j] < kGroupMaxEps;  // the scalar function's early return
    for (int i = 0; i < n; ++i) L[j * n + i] = tiny ? 0 : int8_t(l[i][j] + nmax);
    scales[j] = tiny ? 0.f : suml2[j] > 0.0f ? sumlx[j] / suml2[j] : 0.0f;
  }
}

}  // namespace

LMQ_ROW_CODEC void make_qkx2_quants_x8(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                                      float* scales, float* the_mins, float rmin, float rdelta, int nstep,
                                      bool use_mad) {
  qkx2_lanes<8>(n, nmax, x, weights, L, scales, the_mins, rmin, rdelta, nstep, use_mad);
}

LMQ_ROW_CODEC void make_qx_quants_x16(int n, int nmax, const float* x, int8_t* L, const float* qw, float* scales) {
  qx_lanes<16>(n, nmax, x, L, qw, scales);
}

LMQ_ROW_CODEC void make_q3_quants_x16(int n, int nmax, const float* x, int8_t* L, float* scales) {
  q3_lanes<16>(n, nmax, x, L, scales);
}

}  // namespace lmq::ggml
