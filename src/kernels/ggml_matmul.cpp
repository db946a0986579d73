#include "lmq/kernels/ggml_matmul.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "ggml_matmul_internal.h"
#include "ggml_matmul_lattice.h"
#include "int_matmul_internal.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_interleave.h"
#include "lmq/codecs/iquant_blocks.h"
#include "lmq/error.h"
#include "lmq/half.h"

namespace lmq {

namespace ggk {
namespace {

float f16_at(const uint8_t* p) { return f16_to_f32(uint16_t(p[0] | p[1] << 8)); }

// The format whose blocks f holds: an X16 layout's (Q4_0_X16: Q4_0), else f.
Format stored_format(Format f) {
  const FormatTraits& t = format_traits(f);
  return t.row_group > 1 ? t.group_of : f;
}

// A Q4_K block's 8 sub-block scales sc and mins m (the 6-bit fields, codecs/ggml_blocks.h).
void q4k_scales(const uint8_t* s, int* sc, int* m) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    m[j] = s[j + 4] & 63;
    sc[j + 4] = (s[j + 8] & 15) | (s[j] >> 6) << 4;
    m[j + 4] = (s[j + 8] >> 4) | (s[j + 4] >> 6) << 4;
  }
}

// The 256 codes of a block, value order: Q2_K 0..3, Q3_K 0..7, Q4_K 0..15, Q5_K 0..31, Q6_K 0..63.
void q4k_codes(const uint8_t* qs, uint8_t* q) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      q[64 * c + l] = qs[32 * c + l] & 15;
      q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
    }
}
void q5k_codes(const uint8_t* qh, const uint8_t* qs, uint8_t* q) {
  q4k_codes(qs, q);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      q[64 * c + l] = uint8_t(q[64 * c + l] | (qh[l] >> (2 * c) & 1) << 4);
      q[64 * c + 32 + l] = uint8_t(q[64 * c + 32 + l] | (qh[l] >> (2 * c + 1) & 1) << 4);
    }
}
void q2k_codes(const uint8_t* qs, uint8_t* q) {
  for (int v = 0; v < 256; ++v) q[v] = qs[32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32)) & 3;
}
void q3k_codes(const uint8_t* hmask, const uint8_t* qs, uint8_t* q) {
  q2k_codes(qs, q);
  for (int v = 0; v < 256; ++v) q[v] = uint8_t(q[v] | (hmask[v % 32] >> (4 * (v / 128) + (v % 128) / 32) & 1) << 2);
}
// Q3_K's 16 scales sc − 32 (codecs/ggml_blocks.h).
void q3k_scales(const uint8_t* s, int8_t* sc) {
  for (int k = 0; k < 16; ++k) {
    const int lo = k < 8 ? s[k] & 15 : s[k - 8] >> 4, hi = s[8 + k % 4] >> (2 * (k / 4)) & 3;
    sc[k] = int8_t((lo | hi << 4) - 32);
  }
}
void q6k_codes(const uint8_t* ql, const uint8_t* qh, uint8_t* q) {
  for (int h = 0; h < 2; ++h, ql += 64, qh += 32, q += 128)
    for (int l = 0; l < 32; ++l) {
      q[l] = uint8_t((ql[l] & 15) | (qh[l] & 3) << 4);
      q[l + 32] = uint8_t((ql[l + 32] & 15) | (qh[l] >> 2 & 3) << 4);
      q[l + 64] = uint8_t((ql[l] >> 4) | (qh[l] >> 4 & 3) << 4);
      q[l + 96] = uint8_t((ql[l + 32] >> 4) | (qh[l] >> 6 & 3) << 4);
    }
}

constexpr uint8_t kOnes[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};  // Σq_x as a dot

int32_t dot(const uint8_t* q, const int8_t* x, int n, int off) {
  int32_t s = 0;
  for (int k = 0; k < n; ++k) s += (int32_t(q[k]) - off) * int32_t(x[k]);
  return s;
}

// IQ4_NL / IQ4_XS: 16 bytes of nibbles (value j low in byte j, j + 16 high) → the levels
// kv[q] + 128 as u8 (so kv[q] + 128 − 128 = kv[q]).
void iq4_levels(const uint8_t* qs, uint8_t* q) {
  for (int j = 0; j < 16; ++j)
    q[j] = uint8_t(ggml::kIq4nlValues[qs[j] & 15] + 128), q[j + 16] = uint8_t(ggml::kIq4nlValues[qs[j] >> 4] + 128);
}

// Q8_0 / Q4_0 / IQ4_NL and the X16 layouts (blocks of 32, one per activation block): row o,
// token t into the 8 slots. Q4_0_X16 / Q8_0_X16 are Q4_0 / Q8_0 block for block, each gathered
// from its group's record.
void slots_q32(const Args& a, const Acts& x, int64_t o, int64_t t, float* slot) {
  const FormatTraits& ft = format_traits(a.f);
  const int64_t na = a.K / 32, bb = int64_t(ft.block_bytes);
  const bool q4 = stored_format(a.f) == Format::Q4_0;
  uint8_t q[32];  // codes as u8: Q8_0's q + 128 (so q + 128 − 128 = q), Q4_0's nibbles, IQ4_NL's kv + 128
  uint8_t gathered[sizeof(ggml::block_q8_0)];
  for (int64_t ia = 0; ia < na; ++ia) {
    const uint8_t* blk = a.w + o * a.row_bytes + ia * bb;
    if (ft.gather_block) ft.gather_block(a.w, a.K, o, ia, gathered), blk = gathered;
    if (q4) {
      for (int j = 0; j < 16; ++j) q[j] = blk[2 + j] & 15, q[j + 16] = uint8_t(blk[2 + j] >> 4);
    } else if (a.f == Format::IQ4_NL) {
      iq4_levels(blk + 2, q);
    } else {
      for (int j = 0; j < 32; ++j) q[j] = uint8_t(blk[2 + j] ^ 0x80u);
    }
    const int32_t i = dot(q, x.q + t * a.K + ia * 32, 32, q4 ? 8 : 128);
    const float f = x.sx[t * na + ia] * (f16_at(blk) * float(i));
    slot[ia % 8] = slot[ia % 8] + f;
  }
}

}  // namespace

// The specification (ggml_matmul.h), written plainly.
void rows_scalar(const Args& a, const Acts& x, int64_t o0, int64_t o1) {
  if (lattice_format(a.f)) return lattice_rows_scalar(a, x, o0, o1);
  const Format f = stored_format(a.f);
  if (f == Format::Q8_0 || f == Format::Q4_0 || f == Format::IQ4_NL) {
    for (int64_t o = o0; o < o1; ++o)
      for (int64_t t = 0; t < a.T; ++t) {
        float slot[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        slots_q32(a, x, o, t, slot);
        float y = intk::combine_slots(slot);
        if (a.bias) y = y + a.bias[o];
        a.y[t * a.N + o] = y;
      }
    return;
  }
  const int64_t nsb = a.K / ggml::QK_K, na = a.K / 32;
  const int64_t bb = int64_t(ggml_block_bytes(f));
  const auto gather = format_traits(a.f).gather_block;  // Q4_K_X16, Q6_K_X16: each row's blocks from its group's records
  uint8_t q[ggml::QK_K], gathered[sizeof(ggml::block_q6_K)];
  for (int64_t o = o0; o < o1; ++o)
    for (int64_t t = 0; t < a.T; ++t) {
      const int8_t* xt = x.q + t * a.K;
      const float* sx = x.sx + t * na;
      const int32_t* xs = x.xs + t * na;
      float slot[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t b = 0; b < nsb; ++b) {
        const uint8_t* blk = a.w + o * a.row_bytes + b * bb;
        if (gather) gather(a.w, a.K, o, b, gathered), blk = gathered;
        const int8_t* xb = xt + b * ggml::QK_K;
        if (f == Format::Q4_K || f == Format::Q5_K) {
          const float d = f16_at(blk), dmin = f16_at(blk + 2);
          int sc[8], m[8];
          q4k_scales(blk + 4, sc, m);
          if (f == Format::Q4_K) q4k_codes(blk + 16, q);
          else q5k_codes(blk + 16, blk + 48, q);
          for (int j = 0; j < 8; ++j) {
            const int64_t ia = b * 8 + j;
            const int32_t i = dot(q + 32 * j, xb + 32 * j, 32, 0);
            const float ds = d * float(sc[j]), dm = dmin * float(m[j]);
            const float f = sx[ia] * (float(i) * ds - float(xs[ia]) * dm);
            slot[j] = slot[j] + f;
          }
        } else if (f == Format::Q2_K) {
          const float d = f16_at(blk + 80), dmin = f16_at(blk + 82);
          q2k_codes(blk + 16, q);
          for (int j = 0; j < 8; ++j) {
            const int64_t ia = b * 8 + j;
            int32_t i = 0, mi = 0;
            for (int s = 2 * j; s < 2 * j + 2; ++s) {
              const int8_t* xs16 = xb + 16 * s;
              i += (blk[s] & 15) * dot(q + 16 * s, xs16, 16, 0);
              mi += (blk[s] >> 4) * dot(kOnes, xs16, 16, 0);
            }
            const float f = sx[ia] * (d * float(i) - dmin * float(mi));
            slot[j] = slot[j] + f;
          }
        } else if (f == Format::IQ4_XS) {
          const float d = f16_at(blk);
          for (int j = 0; j < 8; ++j) {
            const int64_t ia = b * 8 + j;
            iq4_levels(blk + offsetof(ggml::block_iq4_xs, qs) + 16 * j, q);
            const int32_t i = (ggml::iq4_xs_scale(blk, j) - 32) * dot(q, xb + 32 * j, 32, 128);
            const float f = sx[ia] * (d * float(i));
            slot[j] = slot[j] + f;
          }
        } else {  // Q6_K, Q3_K
          const bool q3 = f == Format::Q3_K;
          const float d = f16_at(blk + (q3 ? 108 : 208));
          int8_t sc[16];
          if (q3) q3k_scales(blk + 96, sc), q3k_codes(blk, blk + 32, q);
          else std::memcpy(sc, blk + 192, 16), q6k_codes(blk, blk + 128, q);
          const int off = q3 ? 4 : 32;
          for (int j = 0; j < 8; ++j) {
            const int64_t ia = b * 8 + j;
            const int32_t i = sc[2 * j] * dot(q + 32 * j, xb + 32 * j, 16, off) +
                              sc[2 * j + 1] * dot(q + 32 * j + 16, xb + 32 * j + 16, 16, off);
            const float f = sx[ia] * (d * float(i));
            slot[j] = slot[j] + f;
          }
        }
      }
      float y = intk::combine_slots(slot);
      if (a.bias) y = y + a.bias[o];
      a.y[t * a.N + o] = y;
    }
}

}  // namespace ggk

bool ggml_matmul_supported(const Tensor& w, int64_t act_block) {
  const FormatTraits& f = format_traits(w.format);
  return f.ggml_matmul && w.shape.size() == 2 && act_block == 32 && w.cols() > 0 && w.cols() % f.block_size == 0 &&
         w.rows() > 0 && w.rows() % f.row_group == 0;
}

namespace {

ggk::Args args_of(const GgmlMatmulJob& j, int64_t T) {
  const Tensor& w = *j.w;
  return {w.format, w.data, int64_t(format_row_bytes(w.format, w.cols())), w.rows(), w.cols(), T, j.bias, j.y};
}

void check(const GgmlMatmulJob& j, const QuantizedActs& xq) {
  const Tensor& w = *j.w;
  if (!ggml_matmul_supported(w, 32)) fail("ggml_matmul: weight {} ({}) is not supported", w.name, format_name(w.format));
  if (w.nbytes < uint64_t(w.rows()) * format_row_bytes(w.format, w.cols()))
    fail("ggml_matmul: weight {} holds {} bytes, fewer than its shape needs", w.name, w.nbytes);
  if (xq.K != w.cols() || xq.block != 32 || xq.sum_group != 32)
    fail("ggml_matmul: weight {} needs activations of {} columns in blocks of 32 (got {} columns, block {}, sum group {})",
         w.name, w.cols(), xq.K, xq.block, xq.sum_group);
}

// The jobs' tiles of rows_per_tile rows, split over the threads (intk::split_tiles).
template <class Fn>
void split_tiles(std::span<const GgmlMatmulJob> jobs, int64_t rows_per_tile, Fn&& run) {
  std::vector<int64_t> first(jobs.size() + 1, 0);
  for (size_t j = 0; j < jobs.size(); ++j) first[j + 1] = first[j] + (jobs[j].w->rows() + rows_per_tile - 1) / rows_per_tile;
  intk::split_tiles(first, run);
}

// The activations in VnniActs::q40's order (ggml_matmul_internal.h): per token ld values, each
// 128 as the first 16 of its 4 blocks of 32, then their last 16; zeros past K.
void reorder_q40(const int8_t* x, int64_t T, int64_t K, int64_t ld, int8_t* out) {
  std::memset(out, 0, size_t(T * ld));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K / 32; ++k) {
      int8_t* o = out + t * ld + 128 * (k / 4) + 16 * (k % 4);
      std::memcpy(o, x + t * K + 32 * k, 16);
      std::memcpy(o + 64, x + t * K + 32 * k + 16, 16);
    }
}

bool any_format(std::span<const GgmlMatmulJob> jobs, std::initializer_list<Format> fs) {
  return std::any_of(jobs.begin(), jobs.end(),
                     [&](const GgmlMatmulJob& j) { return std::find(fs.begin(), fs.end(), j.w->format) != fs.end(); });
}

void run_vnni(std::span<const GgmlMatmulJob> jobs, const QuantizedActs& xq) {
  const int64_t T = xq.T, K = xq.K, na = K / 32;
  // Scratch kept per thread: decode calls this ~60 times per token.
  thread_local std::vector<int8_t> q4k, q40;
  thread_local std::vector<float> sx4;
  thread_local std::vector<int32_t> xs4, x16s4;
  ggk::VnniActs x{};
  x.q = xq.q.data();
  x.ld4 = na * 4, x.ld16 = na * 8;
  sx4.resize(size_t(T * x.ld4));
  xs4.resize(size_t(T * x.ld4));
  x16s4.resize(size_t(T * x.ld16));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t ia = 0; ia < na; ++ia) {
      const int8_t* q = xq.q.data() + t * K + ia * 32;
      int32_t s0 = 0, s1 = 0;
      for (int k = 0; k < 16; ++k) s0 += q[k], s1 += q[k + 16];
      for (int r = 0; r < 4; ++r) {
        sx4[size_t(t * x.ld4 + ia * 4 + r)] = xq.scale[size_t(t * na + ia)];
        xs4[size_t(t * x.ld4 + ia * 4 + r)] = xq.sums[size_t(t * na + ia)];
        x16s4[size_t(t * x.ld16 + ia * 8 + r)] = 32 * s0;
        x16s4[size_t(t * x.ld16 + ia * 8 + 4 + r)] = 32 * s1;
      }
    }
  x.sx4 = sx4.data(), x.xs4 = xs4.data(), x.x16s4 = x16s4.data();
  x.q4k = x.q40 = nullptr;
  if (any_format(jobs, {Format::Q4_K, Format::Q5_K})) {
    q4k.resize(xq.q.size());
    ggk::reorder_q4k_vnni(xq.q.data(), T * K, q4k.data());
    x.q4k = q4k.data();
  }
  if (any_format(jobs, {Format::Q8_0, Format::Q4_0, Format::IQ4_NL, Format::IQ4_XS})) {
    x.ld40 = (K + 127) / 128 * 128;
    q40.resize(size_t(T * x.ld40));
    reorder_q40(xq.q.data(), T, K, x.ld40, q40.data());
    x.q40 = q40.data();
  }
  x.sx = xq.scale.data(), x.xs = xq.sums.data();
  split_tiles(jobs, 4, [&](size_t j, int64_t a, int64_t b) {
    const ggk::Args args = args_of(jobs[j], T);
    // The X16 layouts: 4 tiles make a group of 16 rows; the thread whose share starts inside
    // a group leaves it to the one before (both round the same boundary up)
    if (format_traits(args.f).row_group > 1) return ggk::groups_x16_vnni(args, x, (a + 3) / 4, (b + 3) / 4);
    ggk::tiles_vnni(args, x, a, b);
  });
}

}  // namespace

bool ggml_matmul_has_simd() { return ggk::have_vnni() || ggk::have_avx2(); }
bool ggml_matmul_takes_x16() { return ggk::have_vnni(); }

void ggml_matmul_q(std::span<const GgmlMatmulJob> jobs, const QuantizedActs& xq, IntKernel kern) {
  if (jobs.empty()) return;
  for (const GgmlMatmulJob& j : jobs) check(j, xq);
  if (kern == IntKernel::Auto)
    kern = ggk::have_vnni() ? IntKernel::Avx512Vnni : ggk::have_avx2() ? IntKernel::Avx2 : IntKernel::Scalar;
  if ((kern == IntKernel::Avx512Vnni && !ggk::have_vnni()) || (kern == IntKernel::Avx2 && !ggk::have_avx2()))
    fail("ggml_matmul: kernel {} is not available here", int_kernel_name(kern));
  if (kern == IntKernel::Avx512Vnni) return run_vnni(jobs, xq);
  // Avx2: its tiles where the format has one (ggk::avx2_format), the specification elsewhere.
  const bool avx2 = kern == IntKernel::Avx2;
  const ggk::Acts x{xq.q.data(), xq.scale.data(), xq.sums.data()};
  constexpr int64_t kRows = 16;
  split_tiles(jobs, kRows, [&](size_t j, int64_t a, int64_t b) {
    const ggk::Args args = args_of(jobs[j], xq.T);
    const int64_t o0 = a * kRows, o1 = std::min(args.N, b * kRows);
    if (avx2 && ggk::avx2_format(args.f)) ggk::rows_avx2(args, x, o0, o1);
    else ggk::rows_scalar(args, x, o0, o1);
  });
}

void ggml_matmul_q(const Tensor& w, const QuantizedActs& xq, float* y, const float* bias, IntKernel k) {
  const GgmlMatmulJob job{&w, y, bias};
  ggml_matmul_q(std::span<const GgmlMatmulJob>(&job, 1), xq, k);
}

}  // namespace lmq
