// Quantizers of the lattice i-quants IQ3_S, IQ3_XXS, IQ2_XS and IQ2_XXS (layouts in
// codecs/iquant_blocks.h).
// lmq's own algorithm, not llama.cpp's bytes: the idea of llama.cpp's quantize_row_iq3_s_impl /
// quantize_row_iq2_xs_impl (weights, candidate scales, the sign-parity fix), but each group's
// grid entry is found by EXHAUSTIVE search of the weighted squared error over the whole grid
// (512 or 256 entries) instead of a neighbour table, and the codes are searched again against
// the sub-block scale as stored (4-bit code times the f16 super-scale), trying the code that
// rounding picks and its two neighbours.
//
// All four reconstruct a value as d · (1 + 2s) · g · sign, s the 4-bit sub-block code and g a
// grid magnitude: IQ3_S's grid byte, IQ3_XXS's byte / 4, the IQ2s' byte / 8 (their
// d · (0.5 + s) · 0.5 or 0.25 · byte is the same product). So one search serves all, over grids of g stored value-major so
// the inner loop over entries vectorizes.
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

constexpr int kMaxEntries = 1024;  // the largest grid searched (iq2s_grid)
constexpr int kMaxCode = 15;   // 4-bit sub-block codes: scale multiples 1, 3, ..., 31 of d
constexpr int kSuperTries = 2;  // candidate super-scales per super-block

// A grid as value-major floats: g[j * n + e] is magnitude j of entry e.
struct Lattice {
  int n;           // grid entries: 512, or 256 (IQ3_XXS, IQ2_XXS)
  int group;       // values per grid entry: 4 (IQ3_S) or 8 (IQ2_XS)
  int sub;         // values per sub-block scale: 32 (IQ3_S) or 16 (IQ2_XS)
  bool even_signs; // the sign byte keeps 7 bits and implies even parity (all but IQ3_S)
  float gmax;      // largest magnitude in the grid
  std::vector<float> g;
};

template <class Entry, size_t N>
Lattice make_lattice(const Entry (&grid)[N], int group, int sub, bool even_signs, float unit) {
  static_assert(N <= kMaxEntries);
  const int n = int(N);
  Lattice L{n, group, sub, even_signs, 0.f, std::vector<float>(size_t(group) * N)};
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

// The entry minimizing Σ w (s·g − x)² over one group (x the non-negative targets, except an
// element whose sign was flipped for parity: its target is −|x|); its error goes to *err.
int best_entry(const Lattice& L, const float* x, const float* w, float s, float* err) {
  std::array<float, kMaxEntries> cost{};
  for (int j = 0; j < L.group; ++j) {
    const float* gj = L.g.data() + size_t(j) * size_t(L.n);
    for (int e = 0; e < L.n; ++e) {
      const float d = s * gj[e] - x[j];
      cost[size_t(e)] += w[j] * d * d;
    }
  }
  int best = 0;
  for (int e = 1; e < L.n; ++e)
    if (cost[size_t(e)] < cost[size_t(best)]) best = e;
  *err = cost[size_t(best)];
  return best;
}

// Codes of one sub-block at scale s into idx (one a group); returns the weighted error.
float search_codes(const Lattice& L, const float* x, const float* w, float s, uint16_t* idx) {
  float total = 0, err;
  for (int k = 0; k < L.sub / L.group; ++k) {
    idx[k] = uint16_t(best_entry(L, x + L.group * k, w + L.group * k, s, &err));
    total += err;
  }
  return total;
}

// The best sub-block scale: for each candidate, codes by search, then the weighted
// least-squares scale for those codes; the candidate whose refit error is least wins
// (maximizing sumqx²/sumq2 is minimizing Σ w (s·g − x)² at the refit s). 0 for zeros.
float fit_sub_scale(const Lattice& L, const float* x, const float* w) {
  float xmax = 0;
  for (int j = 0; j < L.sub; ++j) xmax = std::fmax(xmax, x[j]);
  if (xmax < kGroupMaxEps) return 0;
  uint16_t idx[8];
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
uint8_t signs_and_targets(const float* x, const float* w, bool even_signs, float* xval, int n = 8) {
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
      if (l < 0 || l > kMaxCode) continue;
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
    for (int k = 0; k < L.sub / 8; ++k) c.signs[o / 8 + k] = signs_and_targets(x + o + 8 * k, w + o + 8 * k, L.even_signs, xval + o + 8 * k);
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
    ct.d = f16_to_f32(f32_to_f16(max_scale / float(2 * kMaxCode + 1 - t)));  // the scale as stored
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
  switch (f) {
    case Format::IQ3_S: return &iq3s;
    case Format::IQ2_XS: return &iq2xs;
    case Format::IQ2_S: return &iq2s;
    case Format::IQ3_XXS: return &iq3xxs;
    case Format::IQ2_XXS: return &iq2xxs;
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
  const uint8_t s = signs_and_targets(x, w, L.even_signs, xval, n);
  const uint8_t mask = uint8_t(((1 << n) - 1) << o % 8);
  c_.signs[o / 8] = uint8_t((c_.signs[o / 8] & ~mask) | s << o % 8);
  for (int k = 0; k < n; k += L.group) c_.idx[(o + k) / L.group] = uint16_t(best_entry(L, xval + k, w + k, scale, &err));
  // the values as the dequantizer computes them (its own float operations): pack and read back
  uint8_t bytes[sizeof(block_iq3_s)];
  float back[QK_K];
  F.pack(c_, bytes);
  ggml_dequantize_row(f_, bytes, back, QK_K);
  std::memcpy(y, back + o, sizeof(float) * size_t(n));
}

int LatticeSuperBlock::sub() const { return lattice_format(f_)->lattice().sub; }

void LatticeSuperBlock::refit_sub(int ib, const float* x, const float* w) {
  const Lattice& L = lattice_format(f_)->lattice();
  if (c_.d == 0) return;
  float xval[32];
  for (int k = 0; k < L.sub; k += 8) signs_and_targets(x + k, w + k, L.even_signs, xval + k);
  const int l0 = nearest_int(0.5f * (fit_sub_scale(L, xval, w) / c_.d - 1));
  uint16_t idx[8];
  float best = search_codes(L, xval, w, c_.d * float(1 + 2 * c_.scale[ib]), idx);
  for (int l = l0 - 1; l <= l0 + 1; ++l) {
    if (l < 0 || l > kMaxCode || l == c_.scale[ib]) continue;
    const float err = search_codes(L, xval, w, c_.d * float(1 + 2 * l), idx);
    if (err < best) best = err, c_.scale[ib] = uint8_t(l);
  }
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
