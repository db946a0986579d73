// Quantizers of the lattice i-quants IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS, IQ2_XXS, IQ1_M and IQ1_S
// (layouts in codecs/iquant_blocks.h).
// lmq's own algorithm, not llama.cpp's bytes: the idea of llama.cpp's quantize_row_iq3_s_impl /
// quantize_row_iq2_xs_impl (weights, candidate scales, the sign-parity fix), but each group's
// grid entry is found by EXHAUSTIVE search of the weighted squared error over the whole grid
// (512 or 256 entries) instead of a neighbour table, and the codes are searched again against
// the sub-block scale as stored (4-bit code times the f16 super-scale), trying the code that
// rounding picks and its two neighbours.
//
// All reconstruct a value as d · (1 + 2s) · g · sign, s the 4-bit sub-block code and g a
// grid magnitude: IQ3_S's grid byte, IQ3_XXS's byte / 4, the IQ2s' byte / 8 (their
// d · (0.5 + s) · 0.5 or 0.25 · byte is the same product). So one search serves all, over grids of g stored value-major so
// the inner loop over entries vectorizes. The IQ1s fit the same mould with a signed g (no sign
// bits) and a 3-bit s: their 2048 entries of {-1, 0, 1} + 1/8 then the same - 1/8 make a grid of
// 4096 (index bit 11: the delta's sign), IQ1_M choosing the delta per group, IQ1_S per
// sub-block (every group of a sub-block searched in the same half).
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

#include "ggml_rows.h"
#include "lmq/codecs/iquant_blocks.h"
#include "lmq/codecs/iquant_lattice.h"
#include "lmq/error.h"

namespace lmq::ggml {
namespace iq {
#include "iquant_grids.inc"
}  // namespace iq

namespace {

// The largest grid best_entry's table holds (iq2s_grid; the IQ1s' 4096 go through best_entry_iq1).
constexpr int kMaxEntries = 1024;
constexpr int kIq1Entries = 2048;  // iq1s_grid
constexpr int kSuperTries = 2;  // candidate super-scales per super-block

// A grid as value-major floats: g[j * n + e] is magnitude j of entry e.
struct Lattice {
  int n = 0;                // grid entries: 512, 256 (IQ3_XXS, IQ2_XXS), 1024 (IQ2_S), 4096 (IQ1_*)
  int group = 0;            // values per grid entry: 4 (IQ3_S) or 8 (IQ2_XS)
  int sub = 0;              // values per sub-block scale: 32 (IQ3_S) or 16 (IQ2_XS)
  bool even_signs = false;  // the sign byte keeps 7 bits and implies even parity (all but IQ3_S)
  float gmax = 0;           // largest magnitude in the grid
  std::vector<float> g;
  int max_code = 15;          // sub-block codes 0..max_code: multiples 1, 3, ..., 2·max_code + 1 of d
  bool signed_grid = false;   // IQ1_*: g carries the sign, no sign bits (targets are the values)
  bool shared_delta = false;  // IQ1_S: a sub-block's groups all lie in one half of the grid
  // IQ1_*: each iq1s_grid entry as two base-3 numbers (digit g + 1) of its values 0-3 (a) and
  // 4-7 (b), grouped by a: entries by_a[at[a] .. at[a + 1]) have first quad a, with their b
  // in quad_b (best_entry_iq1)
  std::vector<uint16_t> at, by_a;
  std::vector<uint8_t> quad_b;
};

template <class Entry, size_t N>
Lattice make_lattice(const Entry (&grid)[N], int group, int sub, bool even_signs, float unit) {
  static_assert(N <= kMaxEntries);
  const int n = int(N);
  Lattice L;
  L.n = n, L.group = group, L.sub = sub, L.even_signs = even_signs, L.gmax = 0;
  L.g.resize(size_t(group) * N);
  for (int e = 0; e < n; ++e)
    for (int j = 0; j < group; ++j) {
      const float v = float(uint64_t(grid[e]) >> (8 * j) & 0xff) * unit;
      L.g[size_t(j) * N + size_t(e)] = v;
      if (v > L.gmax) L.gmax = v;
    }
  return L;
}

const Lattice& iq3s_lattice() {
  static const Lattice L = make_lattice(iq::iq3s_grid, 4, 32, false, 1.f);
  return L;
}
const Lattice& iq2xs_lattice() {
  static const Lattice L = make_lattice(iq::iq2xs_grid, 8, 16, true, 0.125f);
  return L;
}
const Lattice& iq2s_lattice() {  // all 8 sign bits stored: no parity
  static const Lattice L = make_lattice(iq::iq2s_grid, 8, 16, false, 0.125f);
  return L;
}
const Lattice& iq3xxs_lattice() {  // d · (0.5 + s) · 0.5 · byte = d · (1 + 2s) · byte / 4
  static const Lattice L = make_lattice(iq::iq3xxs_grid, 4, 32, true, 0.25f);
  return L;
}
const Lattice& iq2xxs_lattice() {  // d · (0.5 + s) · 0.25 · byte = d · (1 + 2s) · byte / 8
  static const Lattice L = make_lattice(iq::iq2xxs_grid, 8, 32, true, 0.125f);
  return L;
}
// IQ1_*: entry e < 2048 is iq1s_grid[e] + 1/8, entry 2048 + e the same - 1/8.
Lattice iq1_lattice(int sub, bool shared_delta) {
  Lattice L;
  L.n = 2 * kIq1Entries, L.group = 8, L.sub = sub, L.even_signs = false, L.gmax = 1 + kIq1Delta;
  L.g.resize(size_t(8 * L.n));
  L.max_code = 7, L.signed_grid = true, L.shared_delta = shared_delta;
  auto quad = [](int e, int q) {
    int code = 0;
    for (int j = 3; j >= 0; --j) code = 3 * code + int8_t(iq::iq1s_grid[e] >> (8 * (4 * q + j)) & 0xff) + 1;
    return code;
  };
  L.at.assign(82, 0);
  for (int e = 0; e < kIq1Entries; ++e) ++L.at[size_t(quad(e, 0) + 1)];
  for (size_t a = 1; a < L.at.size(); ++a) L.at[a] = uint16_t(L.at[a] + L.at[a - 1]);
  std::vector<uint16_t> fill(L.at.begin(), L.at.end() - 1);
  L.by_a.resize(kIq1Entries), L.quad_b.resize(kIq1Entries);
  for (int e = 0; e < kIq1Entries; ++e) {  // in increasing e within each a
    const uint16_t i = fill[size_t(quad(e, 0))]++;
    L.by_a[i] = uint16_t(e), L.quad_b[i] = uint8_t(quad(e, 1));
  }
  for (int h = 0; h < 2; ++h)
    for (int e = 0; e < kIq1Entries; ++e)
      for (int j = 0; j < 8; ++j)
        L.g[size_t(j * L.n + h * kIq1Entries + e)] =
            float(int8_t(iq::iq1s_grid[e] >> (8 * j) & 0xff)) + (h ? -kIq1Delta : kIq1Delta);
  return L;
}
const Lattice& iq1s_lattice() {
  static const Lattice L = iq1_lattice(32, true);
  return L;
}
const Lattice& iq1m_lattice() {
  static const Lattice L = iq1_lattice(16, false);
  return L;
}

// best_entry for the IQ1s: per half of the grid (its delta) the errors of the 81 patterns of
// {−1, 0, 1} on values 0-3 (A) and on 4-7 (B), each entry's error being A[a] + B[b]; the
// patterns a are visited from the best A on, and one whose A[a] + min B cannot beat the best so
// far is skipped with all its entries (float addition is monotone, so nothing better is lost).
// Exact as the full search (the same minimum), 4.5× faster on a whole model (pure-iq1_m of
// lmq-llama3-9m: 27 s → 6 s). Ties go to the first entry found.
int best_entry_iq1(const Lattice& L, const float* x, const float* w, float s, float* err, int e0, int e1) {
  float best = INFINITY;
  int best_e = e0;
  for (int h = e0 / kIq1Entries; h * kIq1Entries < e1; ++h) {
    const float delta = h ? -kIq1Delta : kIq1Delta;
    float c[8][3];  // value j's error at grid value t − 1
    for (int j = 0; j < 8; ++j)
      for (int t = 0; t < 3; ++t) {
        const float d = s * (float(t - 1) + delta) - x[j];
        c[j][t] = w[j] * d * d;
      }
    float A[81], B[81];  // pattern t0 + 3t1 + 9t2 + 27t3: ((c0 + c1) + c2) + c3, partial sums shared
    for (int q = 0; q < 2; ++q) {
      float* Q = q ? B : A;
      const float(*cq)[3] = c + 4 * q;
      float s01[9], s012[27];
      for (int i = 0; i < 9; ++i) s01[i] = cq[0][i % 3] + cq[1][i / 3];
      for (int i = 0; i < 27; ++i) s012[i] = s01[i % 9] + cq[2][i / 9];
      for (int i = 0; i < 81; ++i) Q[i] = s012[i % 27] + cq[3][i / 27];
    }
    // min B and argmin A from the per-value minima: rounding is monotone, so the sum of the
    // smallest terms (in the same order) is the smallest sum
    auto tmin = [&](int j) { return int(c[j][1] < c[j][0] ? (c[j][2] < c[j][1] ? 2 : 1) : (c[j][2] < c[j][0] ? 2 : 0)); };
    const float bmin = ((c[4][tmin(4)] + c[5][tmin(5)]) + c[6][tmin(6)]) + c[7][tmin(7)];
    const int a0 = tmin(0) + 3 * tmin(1) + 9 * tmin(2) + 27 * tmin(3);
    for (int k = 0; k <= 81; ++k) {
      const int a = k == 0 ? a0 : k - 1;  // the best A first, then all in order
      if ((k > 0 && a == a0) || !(A[a] + bmin < best)) continue;
      for (int i = L.at[size_t(a)]; i < L.at[size_t(a) + 1]; ++i) {
        const float cost = A[a] + B[L.quad_b[size_t(i)]];
        if (cost < best) best = cost, best_e = h * kIq1Entries + L.by_a[size_t(i)];
      }
    }
  }
  *err = best;
  return best_e;
}

// The entry of [e0, e1) (default: the whole grid) minimizing Σ w (s·g − x)² over one group (x
// the non-negative targets, except an element whose sign was flipped for parity: its target is
// −|x|; signed grids: the values themselves); its error goes to *err.
int best_entry(const Lattice& L, const float* x, const float* w, float s, float* err, int e0 = 0, int e1 = -1) {
  if (e1 < 0) e1 = L.n;
  if (L.signed_grid) return best_entry_iq1(L, x, w, s, err, e0, e1);
  std::array<float, kMaxEntries> cost;  // only [e0, e1) used (zeroing it all would cost the small grids)
  std::fill(cost.begin() + e0, cost.begin() + e1, 0.f);
  for (int j = 0; j < L.group; ++j) {
    const float* gj = L.g.data() + size_t(j) * size_t(L.n);
    for (int e = e0; e < e1; ++e) {
      const float d = s * gj[e] - x[j];
      cost[size_t(e)] += w[j] * d * d;
    }
  }
  int best = e0;
  for (int e = e0 + 1; e < e1; ++e)
    if (cost[size_t(e)] < cost[size_t(best)]) best = e;
  *err = cost[size_t(best)];
  return best;
}

// Codes of one sub-block at scale s into idx (one a group); returns the weighted error. IQ1_S:
// both halves of the grid (the sub-block's delta sign) searched, the better kept.
float search_codes(const Lattice& L, const float* x, const float* w, float s, uint16_t* idx) {
  const int halves = L.shared_delta ? 2 : 1, span = L.n / halves;
  float best = INFINITY;
  for (int h = 0; h < halves; ++h) {
    uint16_t hidx[8];
    float total = 0, err;
    for (int k = 0; k < L.sub / L.group; ++k) {
      hidx[k] = uint16_t(best_entry(L, x + L.group * k, w + L.group * k, s, &err, h * span, (h + 1) * span));
      total += err;
    }
    if (h == 0 || total < best) best = total, std::copy(hidx, hidx + L.sub / L.group, idx);  // NaN/Inf: the first
  }
  return best;
}

// The best sub-block scale: for each candidate, codes by search, then the weighted
// least-squares scale for those codes; the candidate whose refit error is least wins
// (maximizing sumqx²/sumq2 is minimizing Σ w (s·g − x)² at the refit s). 0 for zeros.
float fit_sub_scale(const Lattice& L, const float* x, const float* w) {
  float xmax = 0;
  for (int j = 0; j < L.sub; ++j) xmax = std::fmax(xmax, L.signed_grid ? std::fabs(x[j]) : x[j]);
  if (xmax < kGroupMaxEps) return 0;
  uint16_t idx[8] = {};
  float best_s = xmax / L.gmax, best = -1;
  for (int is = -6; is <= 6; is += 2) {  // the largest value from 0.7 to 1.3 of the top level
    const float s = xmax / (L.gmax * (1 + 0.05f * float(is)));
    search_codes(L, x, w, s, idx);
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < L.sub; ++j) {
      const float q = L.g[size_t(j % L.group) * size_t(L.n) + idx[j / L.group]];
      sumqx += w[j] * q * x[j];
      sumq2 += w[j] * q * q;
    }
    if (sumq2 > 0 && sumqx > 0 && sumqx * sumqx > best * sumq2) best_s = sumqx / sumq2, best = best_s * sumqx;
  }
  return best_s;
}

// The error weights: with importance llama.cpp's imp · sqrt(σ² + x²) (codecs/ggml_rows.h
// iq_weights); without, 1 (plain squared error). Not x² as llama.cpp: an exhaustive search
// takes such weights at their word and gives the small values of a group whatever magnitude
// helps the large ones, where llama.cpp's neighbour search starts from each value's own rounding.
// On gaussian IQ3_S rows rel RMS is 0.234 with x², 0.134 with σ² + x², 0.129 with 1; on
// lmq-llama3-9m --scheme iq3_s (100 windows, llama.cpp protocol) KLD 0.0551 with σ² + x², 0.0523
// with 1.
void lattice_weights(const float* x, const float* imp, float sigma2, int n, float* w) {
  bool any = false;
  for (int j = 0; imp && j < n; ++j) any = any || imp[j] > 0;
  if (any) return iq_weights(x, imp, sigma2, n, w);
  for (int j = 0; j < n; ++j) w[j] = 1;
}

using Codes = LatticeCodes;

// The signs of n (8, or 4 without parity) values, and their magnitudes as targets. With
// even_signs an odd count of negatives is made even by flipping the sign whose flip costs least
// (the smallest w·x²); that value's target becomes −|x| so the search gives it a small magnitude.
// A signed grid (IQ1_*) has no sign bits: the targets are the values, the signs 0.
uint8_t signs_and_targets(const Lattice& L, const float* x, const float* w, float* xval, int n = 8) {
  if (L.signed_grid) {
    std::copy(x, x + n, xval);
    return 0;
  }
  const bool even_signs = L.even_signs;
  uint8_t s = 0;
  for (int j = 0; j < n; ++j) {
    xval[j] = std::fabs(x[j]);
    if (x[j] < 0) s = uint8_t(s | 1 << j);
  }
  if (even_signs && std::popcount(s) % 2) {
    int jmin = 0;
    for (int j = 1; j < 8; ++j)
      if (w[j] * x[j] * x[j] < w[jmin] * x[jmin] * x[jmin]) jmin = j;
    s = uint8_t(s ^ 1 << jmin);
    xval[jmin] = -xval[jmin];
  }
  return s;
}

// Scale codes and grid entries of a super-block at super-scale c.d: each sub-block tries the
// 4-bit code that rounding its fitted scale gives and the two beside it, searching its codes
// against the scale as the dequantizer will compute it. Returns the total weighted error.
float codes_at(const Lattice& L, const float* xval, const float* w, const float* scales, Codes& c) {
  uint16_t idx[8];
  float total = 0;
  for (int ib = 0; ib < QK_K / L.sub; ++ib) {
    const int o = L.sub * ib;
    const int l0 = nearest_int(0.5f * (scales[ib] / c.d - 1));
    float best = INFINITY;
    for (int l = l0 - 1; l <= l0 + 1; ++l) {
      if (l < 0 || l > L.max_code) continue;
      const float err = search_codes(L, xval + o, w + o, c.d * float(1 + 2 * l), idx);
      if (!(err >= best)) {  // the first try also wins when err is NaN
        best = err;
        c.scale[ib] = uint8_t(l);
        std::memcpy(c.idx + o / L.group, idx, sizeof(uint16_t) * size_t(L.sub / L.group));
      }
    }
    total += best;
  }
  return total;
}

Codes quantize_super_block(const Lattice& L, const float* x, const float* imp) {
  Codes c;
  float w[QK_K], xval[QK_K], scales[16];
  const float sigma2 = iq_sigma2(x, QK_K);
  const int nsub = QK_K / L.sub;
  float max_scale = 0;
  for (int ib = 0; ib < nsub; ++ib) {
    const int o = L.sub * ib;
    lattice_weights(x + o, imp ? imp + o : nullptr, sigma2, L.sub, w + o);
    for (int k = 0; k < L.sub / 8; ++k) c.signs[o / 8 + k] = signs_and_targets(L, x + o + 8 * k, w + o + 8 * k, xval + o + 8 * k);
    scales[ib] = fit_sub_scale(L, xval + o, w + o);
    max_scale = std::fmax(max_scale, scales[ib]);
  }
  if (max_scale == 0) {
    std::memset(c.signs, 0, sizeof c.signs);  // an all-zero block: d = 0, every value 0
    return c;
  }
  // the super-scale: the largest sub-block scale on the top code 31·d, or slightly above it
  // (fewer sub-blocks then sit on the coarse low codes); the best total error wins
  float best = INFINITY;
  for (int t = 0; t < kSuperTries; ++t) {
    Codes ct = c;
    ct.d = f16_to_f32(f32_to_f16(max_scale / float(2 * L.max_code + 1 - t)));  // the scale as stored
    const float err = codes_at(L, xval, w, scales, ct);
    if (!(err >= best)) best = err, c = ct;  // the first try also wins when err is NaN
  }
  return c;
}

// The packers: one super-block's codes into the format's bytes.
void pack_iq3_s(const Codes& c, uint8_t* out) {
  std::memset(out, 0, sizeof(block_iq3_s));
  f2h(out, c.d);
  uint8_t* qs = out + offsetof(block_iq3_s, qs);
  uint8_t* qh = out + offsetof(block_iq3_s, qh);
  for (int k = 0; k < QK_K / 4; ++k) {  // index k: low 8 bits in qs[k], bit 8 in qh[k / 8] bit k % 8
    qs[k] = uint8_t(c.idx[k] & 0xff);
    qh[k / 8] = uint8_t(qh[k / 8] | (c.idx[k] >> 8) << (k % 8));
  }
  std::memcpy(out + offsetof(block_iq3_s, signs), c.signs, QK_K / 8);
  uint8_t* scales = out + offsetof(block_iq3_s, scales);
  for (int ib = 0; ib < 8; ++ib) scales[ib / 2] = uint8_t(scales[ib / 2] | c.scale[ib] << 4 * (ib % 2));
}

void pack_iq2_xs(const Codes& c, uint8_t* out) {
  f2h(out, c.d);
  uint8_t* qs = out + offsetof(block_iq2_xs, qs);
  for (int k = 0; k < QK_K / 8; ++k) {  // 9 bits of index, the sign byte's low 7 bits (parity implied)
    const uint16_t q = uint16_t(c.idx[k] | (c.signs[k] & 127) << 9);
    std::memcpy(qs + 2 * k, &q, 2);
  }
  uint8_t* scales = out + offsetof(block_iq2_xs, scales);
  for (int ib = 0; ib < 8; ++ib) scales[ib] = uint8_t(c.scale[2 * ib] | c.scale[2 * ib + 1] << 4);
}

void pack_iq2_s(const Codes& c, uint8_t* out) {
  std::memset(out, 0, sizeof(block_iq2_s));
  f2h(out, c.d);
  uint8_t* qs = out + offsetof(block_iq2_s, qs);
  uint8_t* qh = out + offsetof(block_iq2_s, qh);
  for (int k = 0; k < QK_K / 8; ++k) {  // group k = 4·ib + l: low 8 bits in qs[k], bits 8-9 at qh[ib] bit 2l
    qs[k] = uint8_t(c.idx[k] & 0xff);
    qh[k / 4] = uint8_t(qh[k / 4] | (c.idx[k] >> 8) << 2 * (k % 4));
  }
  std::memcpy(qs + QK_K / 8, c.signs, QK_K / 8);
  uint8_t* scales = out + offsetof(block_iq2_s, scales);
  for (int ib = 0; ib < 8; ++ib) scales[ib] = uint8_t(c.scale[2 * ib] | c.scale[2 * ib + 1] << 4);
}

// IQ3_XXS and IQ2_XXS: per sub-block 8 bytes of grid indices, then a uint32 holding each
// group's 7 sign bits at 7l and the 4-bit scale at 28.
uint32_t signs_and_scale(const Codes& c, int ib) {
  uint32_t a = uint32_t(c.scale[ib]) << 28;
  for (int l = 0; l < 4; ++l) a |= uint32_t(c.signs[4 * ib + l] & 127) << 7 * l;
  return a;
}

void pack_iq3_xxs(const Codes& c, uint8_t* out) {
  f2h(out, c.d);
  uint8_t* qs = out + offsetof(block_iq3_xxs, qs);
  for (int k = 0; k < QK_K / 4; ++k) qs[k] = uint8_t(c.idx[k]);  // index 8·ib + k: values 4k..4k+3
  for (int ib = 0; ib < 8; ++ib) {
    const uint32_t a = signs_and_scale(c, ib);
    std::memcpy(qs + QK_K / 4 + 4 * ib, &a, 4);
  }
}

void pack_iq2_xxs(const Codes& c, uint8_t* out) {
  f2h(out, c.d);
  uint8_t* qs = out + offsetof(block_iq2_xxs, qs);
  for (int ib = 0; ib < 8; ++ib, qs += 8) {
    for (int l = 0; l < 4; ++l) qs[l] = uint8_t(c.idx[4 * ib + l]);
    const uint32_t a = signs_and_scale(c, ib);
    std::memcpy(qs + 4, &a, 4);
  }
}

// IQ1_S: per sub-block 4 index bytes, then qh: 3 high index bits a group, the scale at 12, the
// delta's sign at 15 (the sub-block's groups share it: index bit 11 of its first).
void pack_iq1_s(const Codes& c, uint8_t* out) {
  f2h(out, c.d);
  uint8_t* qs = out + offsetof(block_iq1_s, qs);
  for (int ib = 0; ib < 8; ++ib) {
    uint16_t h = uint16_t(c.scale[ib] << 12 | (c.idx[4 * ib] >> 11 & 1) << 15);
    for (int l = 0; l < 4; ++l) {
      qs[4 * ib + l] = uint8_t(c.idx[4 * ib + l]);
      h = uint16_t(h | (c.idx[4 * ib + l] >> 8 & 7) << 3 * l);
    }
    std::memcpy(out + offsetof(block_iq1_s, qh) + 2 * ib, &h, 2);
  }
}

// IQ1_M: index bytes; a nibble a group (3 high index bits, the delta's sign); the 3-bit scales
// six bits a sub-block, the f16 d in the scale words' top nibbles.
void pack_iq1_m(const Codes& c, uint8_t* out) {
  std::memset(out, 0, sizeof(block_iq1_m));
  uint8_t* qs = out + offsetof(block_iq1_m, qs);
  uint8_t* qh = out + offsetof(block_iq1_m, qh);
  for (int k = 0; k < QK_K / 8; ++k) {
    qs[k] = uint8_t(c.idx[k]);
    qh[k / 2] = uint8_t(qh[k / 2] | (c.idx[k] >> 8 & 15) << 4 * (k % 2));  // bit 11 lands on bit 3
  }
  const uint16_t d = f32_to_f16(c.d);
  for (int w = 0; w < 4; ++w) {
    const int s = c.scale[4 * w] | c.scale[4 * w + 1] << 3 | c.scale[4 * w + 2] << 6 | c.scale[4 * w + 3] << 9;
    const uint16_t v = uint16_t(s | (d >> 4 * w & 15) << 12);
    std::memcpy(out + offsetof(block_iq1_m, scales) + 2 * w, &v, 2);
  }
}

struct LatticeFormat {
  const Lattice& (*lattice)();
  void (*pack)(const Codes&, uint8_t*);
  size_t bytes;
};

const LatticeFormat* lattice_format(Format f) {
  static const LatticeFormat iq3s{iq3s_lattice, pack_iq3_s, sizeof(block_iq3_s)};
  static const LatticeFormat iq2xs{iq2xs_lattice, pack_iq2_xs, sizeof(block_iq2_xs)};
  static const LatticeFormat iq2s{iq2s_lattice, pack_iq2_s, sizeof(block_iq2_s)};
  static const LatticeFormat iq3xxs{iq3xxs_lattice, pack_iq3_xxs, sizeof(block_iq3_xxs)};
  static const LatticeFormat iq2xxs{iq2xxs_lattice, pack_iq2_xxs, sizeof(block_iq2_xxs)};
  static const LatticeFormat iq1s{iq1s_lattice, pack_iq1_s, sizeof(block_iq1_s)};
  static const LatticeFormat iq1m{iq1m_lattice, pack_iq1_m, sizeof(block_iq1_m)};
  switch (f) {
    case Format::IQ3_S: return &iq3s;
    case Format::IQ2_XS: return &iq2xs;
    case Format::IQ2_S: return &iq2s;
    case Format::IQ3_XXS: return &iq3xxs;
    case Format::IQ2_XXS: return &iq2xxs;
    case Format::IQ1_S: return &iq1s;
    case Format::IQ1_M: return &iq1m;
    default: return nullptr;
  }
}

void quantize_rows(Format f, const float* x, uint8_t* out, int64_t nb, const float* imp) {
  const LatticeFormat& F = *lattice_format(f);
  for (int64_t i = 0; i < nb; ++i, x += QK_K, out += F.bytes)
    F.pack(quantize_super_block(F.lattice(), x, imp ? imp + i * QK_K : nullptr), out);
}

}  // namespace

void q_iq3_s(const float* x, uint8_t* out, int64_t nb, const float* imp) {
  quantize_rows(Format::IQ3_S, x, out, nb, imp);
}
void q_iq2_xs(const float* x, uint8_t* out, int64_t nb, const float* imp) {
  quantize_rows(Format::IQ2_XS, x, out, nb, imp);
}
void q_iq2_s(const float* x, uint8_t* out, int64_t nb, const float* imp) {
  quantize_rows(Format::IQ2_S, x, out, nb, imp);
}
void q_iq3_xxs(const float* x, uint8_t* out, int64_t nb, const float* imp) {
  quantize_rows(Format::IQ3_XXS, x, out, nb, imp);
}
void q_iq2_xxs(const float* x, uint8_t* out, int64_t nb, const float* imp) {
  quantize_rows(Format::IQ2_XXS, x, out, nb, imp);
}
void q_iq1_s(const float* x, uint8_t* out, int64_t nb, const float* imp) {
  quantize_rows(Format::IQ1_S, x, out, nb, imp);
}
void q_iq1_m(const float* x, uint8_t* out, int64_t nb, const float* imp) {
  quantize_rows(Format::IQ1_M, x, out, nb, imp);
}

// ---- LatticeSuperBlock (codecs/iquant_lattice.h) ----

bool LatticeSuperBlock::supports(Format f) { return lattice_format(f) != nullptr; }

LatticeSuperBlock::LatticeSuperBlock(Format f) : f_(f) {
  if (!supports(f)) fail("{}: not a lattice i-quant lmq writes", format_name(f));
}

int LatticeSuperBlock::unit() const {
  const Lattice& L = lattice_format(f_)->lattice();
  return L.even_signs ? 8 : L.group;
}

void LatticeSuperBlock::fit_scales(const float* x, const float* imp) {
  c_ = quantize_super_block(lattice_format(f_)->lattice(), x, imp);
}

void LatticeSuperBlock::choose(int o, const float* x, const float* w, float* y) {
  const LatticeFormat& F = *lattice_format(f_);
  const Lattice& L = F.lattice();
  const int n = unit();
  const float scale = c_.d * float(1 + 2 * c_.scale[o / L.sub]);
  float xval[8], err;
  const uint8_t s = signs_and_targets(L, x, w, xval, n);
  const uint8_t mask = uint8_t(((1 << n) - 1) << o % 8);
  c_.signs[o / 8] = uint8_t((c_.signs[o / 8] & ~mask) | s << o % 8);
  for (int k = 0; k < n; k += L.group) {
    uint16_t& idx = c_.idx[(o + k) / L.group];
    // IQ1_S: the sub-block's delta sign as fit_scales chose it (the half its groups are in)
    const int e0 = L.shared_delta && idx >= L.n / 2 ? L.n / 2 : 0, e1 = L.shared_delta ? e0 + L.n / 2 : L.n;
    idx = uint16_t(best_entry(L, xval + k, w + k, scale, &err, e0, e1));
  }
  // the values as the dequantizer computes them (its own float operations): pack and read back
  uint8_t bytes[sizeof(block_iq3_s)];
  float back[QK_K];
  F.pack(c_, bytes);
  ggml_dequantize_row(f_, bytes, back, QK_K);
  std::memcpy(y, back + o, sizeof(float) * size_t(n));
}

int LatticeSuperBlock::sub() const { return lattice_format(f_)->lattice().sub; }

int LatticeSuperBlock::max_code() const { return lattice_format(f_)->lattice().max_code; }

void LatticeSuperBlock::refit_sub(int ib, const float* x, const float* w) {
  const Lattice& L = lattice_format(f_)->lattice();
  if (c_.d == 0) return;
  float xval[32];
  for (int k = 0; k < L.sub; k += 8) signs_and_targets(L, x + k, w + k, xval + k);
  const int l0 = nearest_int(0.5f * (fit_sub_scale(L, xval, w) / c_.d - 1));
  uint16_t idx[8], best_idx[8];
  float best = search_codes(L, xval, w, c_.d * float(1 + 2 * c_.scale[ib]), best_idx);
  for (int l = l0 - 1; l <= l0 + 1; ++l) {
    if (l < 0 || l > L.max_code || l == c_.scale[ib]) continue;
    const float err = search_codes(L, xval, w, c_.d * float(1 + 2 * l), idx);
    if (err < best) best = err, c_.scale[ib] = uint8_t(l), std::copy(idx, idx + L.sub / L.group, best_idx);
  }
  // IQ1_S: each scale was judged with the delta sign (grid half) that suits it best, so the
  // sub-block takes that one with it: its codes as searched (choose() then re-picks them in it)
  if (L.shared_delta) std::copy(best_idx, best_idx + L.sub / L.group, c_.idx + ib * L.sub / L.group);
}

void LatticeSuperBlock::pack(uint8_t* out) const { lattice_format(f_)->pack(c_, out); }

void LatticeSuperBlock::signed_grid(double* G) const {
  const Lattice& L = lattice_format(f_)->lattice();
  for (int k = 0; k < QK_K; ++k) {
    const double g = L.g[size_t(k % L.group) * size_t(L.n) + c_.idx[k / L.group]];
    G[k] = c_.signs[k / 8] >> (k % 8) & 1 ? -g : g;
  }
}

void LatticeSuperBlock::set_scales(float d, const uint8_t* scale) {
  c_.d = d;
  std::memcpy(c_.scale, scale, size_t(QK_K / sub()));
}

}  // namespace lmq::ggml
