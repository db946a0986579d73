#include "lmq/kernels/int_matmul.h"

#include <omp.h>

#include <algorithm>
#include <numeric>
#include <span>
#include <vector>

#include "int_matmul_internal.h"
#include "lmq/error.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/int_bits.h"
#include "lmq/codecs/int_format.h"
#include "lmq/codecs/int_interleave.h"

namespace lmq {

namespace intk {

void unpack_scalar(const uint8_t* packed, int64_t K, int bits, uint8_t* out) {
  quant::detail::unpack_bits_generic(packed, K, bits, out);
}

// The specification (int_matmul.h), written plainly.
void row_scalar(const RowArgs& a) {
  for (int t = 0; t < a.nt; ++t) {
    const int8_t* x = a.x + t * a.ldx;
    const float* sx = a.sx + t * a.ld;
    const int32_t* xs = a.xs + t * a.ld;
    float slot[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t u = 0; u < a.nu8; ++u) {
      int32_t d = 0;
      if (u < a.nu) {
        const int64_t k0 = u * a.U, k1 = std::min(a.K, k0 + a.U);
        for (int64_t k = k0; k < k1; ++k) d += int32_t(a.w[k]) * int32_t(x[k]);
        d -= a.zw[u] * xs[u];
      }
      const float f = float(d) * (a.sw[u] * sx[u]);
      slot[u % 8] = slot[u % 8] + f;
    }
    a.y[t * a.ldy] = combine_slots(slot);
  }
}

}  // namespace intk

bool int_kernel_available(IntKernel k) {
  switch (k) {
    case IntKernel::Auto:
    case IntKernel::Scalar: return true;
    case IntKernel::Avx2: return intk::have_avx2();
    case IntKernel::Avx512Vnni: return intk::have_avx512vnni();
  }
  return false;
}

const char* int_kernel_name(IntKernel k) {
  switch (k) {
    case IntKernel::Auto: return "auto";
    case IntKernel::Scalar: return "scalar";
    case IntKernel::Avx2: return "avx2";
    case IntKernel::Avx512Vnni: return "avx512vnni";
  }
  return "?";
}

IntKernel best_int_kernel() {
  static const IntKernel best = intk::have_avx512vnni() ? IntKernel::Avx512Vnni
                                : intk::have_avx2()     ? IntKernel::Avx2
                                                        : IntKernel::Scalar;
  return best;
}

bool int_matmul_takes_x16() { return intk::have_avx512vnni(); }

int64_t int_matmul_unit(const Tensor& w, int64_t act_block) {
  if (!format_traits(w.format).int_matmul || w.shape.size() != 2) return 0;
  if (w.q.bits < 2 || w.q.bits > 8) return 0;
  const int64_t K = w.cols();
  if (K <= 0 || K % 32 != 0) return 0;
  if (w.q.group > 0 && w.q.group % 32 != 0) return 0;
  if (act_block < 0 || (act_block > 0 && act_block % 32 != 0)) return 0;
  const int64_t uw = w.q.group > 0 ? std::min<int64_t>(w.q.group, K) : K;
  const int64_t ua = act_block > 0 ? std::min(act_block, K) : K;
  const int64_t lo = std::min(uw, ua), hi = std::max(uw, ua);
  // Every unit must lie inside one weight group and one activation block.
  if (hi < K && hi % lo != 0) return 0;
  if (lo > 65536) return 0;
  return lo;
}

IntMatmulPlan::IntMatmulPlan(const Tensor& w, int64_t act_block) : w_(&w), U_(int_matmul_unit(w, act_block)) {
  if (U_ == 0) fail("int_matmul: weight {} ({}) is not supported", w.name, tensor_format_label(w));
  const int64_t N = w.rows(), K = w.cols();
  nu_ = (K + U_ - 1) / U_;
  R_ = w.format == Format::LMQ_INT_X16 ? 16 : 4;
  LMQ_CHECK(R_ == 4 || int_x16_fits(w.q, N, K), "LMQ_INT_X16 weight {}: {} × {} at {} bits", w.name, N, K, int(w.q.bits));
  const quant::IntView v = quant::int_view(w.q, w.data, N, K);
  const int64_t gpr = v.layout.groups_per_row, G = w.q.group > 0 ? w.q.group : K;
  const size_t n = size_t((N + R_ - 1) / R_ * nu_ * R_);
  sw_.assign(n, 0.f);
  if (w.q.asym) zw_.assign(n, 0);
  zc_ = w.q.asym ? 0 : quant::int_zero_at(v, 0);
  for (int64_t o = 0; o < N; ++o)
    for (int64_t u = 0; u < nu_; ++u) {
      const int64_t idx = w.q.group > 0 ? o * gpr + (u * U_) / G : w.q.group == -1 ? o : 0;
      const size_t at = size_t(((o / R_) * nu_ + u) * R_ + o % R_);
      sw_[at] = quant::int_scale_at(v, idx);
      if (w.q.asym) zw_[at] = quant::int_zero_at(v, idx);
    }
}

namespace {

void check_acts(const IntMatmulPlan& plan, const QuantizedActs& xq) {
  const Tensor& w = plan.weight();
  if (xq.K != w.cols()) fail("int_matmul: activations have {} columns, weight {} has {}", xq.K, w.name, w.cols());
  if (xq.sum_group != plan.unit() || int_matmul_unit(w, xq.block == xq.K ? 0 : xq.block) != plan.unit())
    fail("int_matmul: weight {} ({}) with activation block {} / sum group {} does not match its plan (unit {})",
         w.name, tensor_format_label(w), xq.block, xq.sum_group, plan.unit());
}

// Per token, every unit's activation scale and code sum, `rep` times each, in rows of ld
// (padded with zeros): the order the kernels read them.
void expand_act_scales(const QuantizedActs& xq, int64_t U, int64_t nu, int64_t ld, int rep, std::vector<float>& sx,
                       std::vector<int32_t>& xs) {
  const int64_t T = xq.T, nb = xq.blocks_per_row();
  sx.assign(size_t(T * ld), 0.f);
  xs.assign(size_t(T * ld), 0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t u = 0; u < nu; ++u)
      for (int r = 0; r < rep; ++r) {
        sx[size_t(t * ld + u * rep + r)] = xq.scale[size_t(t * nb + u * U / xq.block)];
        xs[size_t(t * ld + u * rep + r)] = xq.sums[size_t(t * nu + u)];
      }
}

// The VNNI kernels over every job at once (4-row tiles; groups of 16 rows for LMQ_INT_X16): the
// tiles and groups of all jobs, in order, are split into one contiguous share per thread, so a
// fused product (q/k/v) costs one parallel region and each thread one kernel call per weight it
// touches.
void matmul_vnni(std::span<const IntMatmulJob> jobs, const QuantizedActs& xq) {
  const IntMatmulPlan& p0 = *jobs[0].plan;
  const int64_t K = p0.weight().cols(), T = xq.T, U = p0.unit(), nu = p0.units_per_row();
  // Scratch kept per thread: decode calls this ~60 times per token.
  thread_local std::vector<float> sx4, sx;
  thread_local std::vector<int32_t> xs4, xs;
  thread_local std::vector<int8_t> split;
  const auto x16 = [](const IntMatmulJob& j) { return j.plan->weight().format == Format::LMQ_INT_X16; };
  if (!std::all_of(jobs.begin(), jobs.end(), x16)) expand_act_scales(xq, U, nu, nu * 4, 4, sx4, xs4);
  if (std::any_of(jobs.begin(), jobs.end(), x16)) expand_act_scales(xq, U, nu, nu, 1, sx, xs);
  const int8_t* x = xq.q.data();
  if (p0.weight().q.bits == 4) {
    split.resize(xq.q.size());
    intk::split_nibble_order(x, T, K, split.data());
    x = split.data();
  }
  std::vector<intk::TileArgs> tiles(jobs.size());
  std::vector<intk::X16Args> groups(jobs.size());
  std::vector<int64_t> first(jobs.size() + 1, 0);  // first[j]: job j's first tile or group in the joint order
  for (size_t j = 0; j < jobs.size(); ++j) {
    const IntMatmulPlan& plan = *jobs[j].plan;
    const Tensor& w = plan.weight();
    const quant::IntView v = quant::int_view(w.q, w.data, w.rows(), K);
    if (x16(jobs[j])) {
      intk::X16Args& a = groups[j];
      a.codes = v.codes, a.N = w.rows(), a.bits = w.q.bits;
      a.K = K, a.U = U, a.nu = nu;
      a.x = x, a.ldx = K, a.T = T;
      a.sx = sx.data(), a.xs = xs.data(), a.ld = nu;
      a.sw16 = plan.tile_scales(0), a.zw16 = plan.tile_zeros(0), a.zc = plan.sym_zero();
      a.bias = jobs[j].bias;
      a.y = jobs[j].y, a.ldy = w.rows();
      first[j + 1] = first[j] + w.rows() / 16;
      continue;
    }
    intk::TileArgs& a = tiles[j];
    a.codes = v.codes, a.row_bytes = v.layout.row_code_bytes, a.N = w.rows();
    a.bits = w.q.bits;
    a.K = K, a.U = U, a.nu = nu;
    a.x = x, a.ldx = K, a.T = T;
    a.sx4 = sx4.data(), a.xs4 = xs4.data(), a.ld4 = nu * 4;
    a.sw4 = plan.tile_scales(0), a.zw4 = plan.tile_zeros(0), a.zc = plan.sym_zero();
    a.bias = jobs[j].bias;
    a.y = jobs[j].y, a.ldy = w.rows();
    a.prefetch = T == 1;
    a.vbmi = intk::use_vbmi();
    first[j + 1] = first[j] + (w.rows() + 3) / 4;
  }
  intk::split_tiles(first, [&](size_t j, int64_t a, int64_t b) {
    if (x16(jobs[j])) intk::x16_avx512vnni(groups[j], a, b);
    else intk::tiles_avx512vnni(tiles[j], a, b);
  });
}

// One row at a time (every layout): the scalar specification, AVX2, and VNNI's row form.
void matmul_rows(const IntMatmulPlan& plan, const QuantizedActs& xq, float* y, const float* bias, IntKernel kern) {
  const intk::RowFn row = kern == IntKernel::Avx512Vnni ? intk::row_avx512vnni
                          : kern == IntKernel::Avx2     ? intk::row_avx2
                                                        : intk::row_scalar;
  const intk::UnpackFn unpack = kern == IntKernel::Scalar ? intk::unpack_scalar : quant::unpack_bits;
  const Tensor& w = plan.weight();
  const int64_t N = w.rows(), K = w.cols(), T = xq.T, U = plan.unit(), nu = plan.units_per_row();
  const quant::IntView v = quant::int_view(w.q, w.data, N, K);
  const int bits = w.q.bits;
  const bool x16 = w.format == Format::LMQ_INT_X16;  // each row's codes gathered from its group's records
  const int64_t rb = int64_t(v.layout.row_code_bytes), R = plan.rows_per_tile();
  const int64_t nu8 = (nu + 7) / 8 * 8;
  std::vector<float> sx;
  std::vector<int32_t> xs;
  expand_act_scales(xq, U, nu, nu8, 1, sx, xs);

  constexpr int64_t kRows = 32;
  const int64_t chunks = (N + kRows - 1) / kRows;
#pragma omp parallel
  {
    std::vector<uint8_t> codes(bits != 8 || x16 ? size_t(kRows * K) : 0);  // packed rows as bytes
    std::vector<uint8_t> gathered(x16 ? size_t(rb) : 0);
    std::vector<float> sw(size_t(kRows * nu8), 0.f);
    std::vector<int32_t> zw(size_t(kRows * nu8), 0);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * kRows, nr = std::min(kRows, N - r0);
      for (int64_t r = 0; r < nr; ++r) {  // this row's scales and zero points, padded to nu8
        const int64_t o = r0 + r;
        const uint8_t* row_codes = v.codes + o * rb;
        if (x16) int_x16_gather_row(v.codes, rb, o, gathered.data()), row_codes = gathered.data();
        if (bits != 8) unpack(row_codes, K, bits, codes.data() + r * K);
        else if (x16) std::copy(row_codes, row_codes + K, codes.data() + r * K);
        const float* ts = plan.tile_scales(o / R);
        const int32_t* tz = plan.tile_zeros(o / R);
        for (int64_t u = 0; u < nu; ++u) {
          sw[size_t(r * nu8 + u)] = ts[u * R + o % R];
          zw[size_t(r * nu8 + u)] = tz ? tz[u * R + o % R] : plan.sym_zero();
        }
      }
      for (int64_t t0 = 0; t0 < T; t0 += 4) {
        const int nt = int(std::min<int64_t>(4, T - t0));
        for (int64_t r = 0; r < nr; ++r) {
          const int64_t o = r0 + r;
          intk::RowArgs a;
          a.w = bits != 8 || x16 ? codes.data() + r * K : v.codes + o * rb;
          a.small_codes = bits <= 4;
          a.K = K, a.U = U, a.nu = nu, a.nu8 = nu8;
          a.x = xq.q.data() + t0 * K;
          a.ldx = K;
          a.nt = nt;
          a.sx = sx.data() + t0 * nu8;
          a.xs = xs.data() + t0 * nu8;
          a.ld = nu8;
          a.sw = sw.data() + r * nu8;
          a.zw = zw.data() + r * nu8;
          a.y = y + t0 * N + o;
          a.ldy = N;
          row(a);
          if (bias)
            for (int t = 0; t < nt; ++t) a.y[t * N] += bias[o];
        }
      }
    }
  }
}

}  // namespace

void int_matmul_q(std::span<const IntMatmulJob> jobs, const QuantizedActs& xq, IntKernel kern) {
  if (jobs.empty()) return;
  for (const IntMatmulJob& j : jobs) check_acts(*j.plan, xq);
  if (kern == IntKernel::Auto) kern = best_int_kernel();
  if (!int_kernel_available(kern)) fail("int_matmul: kernel {} is not available here", int_kernel_name(kern));
  const int bits = jobs[0].plan->weight().q.bits;
  const bool tiles = kern == IntKernel::Avx512Vnni && std::all_of(jobs.begin(), jobs.end(), [&](const IntMatmulJob& j) {
                       const Tensor& w = j.plan->weight();
                       return w.q.bits == bits && intk::tile_kernel_fits(w.q.bits, w.cols(), j.plan->unit());
                     });
  if (tiles) return matmul_vnni(jobs, xq);
  for (const IntMatmulJob& j : jobs) matmul_rows(*j.plan, xq, j.y, j.bias, kern);
}

void int_matmul_q(const IntMatmulPlan& plan, const QuantizedActs& xq, float* y, const float* bias, IntKernel kern) {
  const IntMatmulJob job{&plan, y, bias};
  int_matmul_q(std::span<const IntMatmulJob>(&job, 1), xq, kern);
}

void int_matmul_q(const Tensor& w, const QuantizedActs& xq, float* y, const float* bias, IntKernel kern) {
  const IntMatmulPlan plan(w, xq.block == xq.K ? 0 : xq.block);
  int_matmul_q(plan, xq, y, bias, kern);
}

void int_matmul(const Tensor& w, const float* x, int64_t T, float* y, const float* bias, ActQuant rule,
                int64_t act_block, IntKernel k) {
  const int64_t U = int_matmul_unit(w, act_block);
  if (U == 0) fail("int_matmul: weight {} ({}) is not supported", w.name, tensor_format_label(w));
  thread_local QuantizedActs xq;
  quantize_activations(x, T, w.cols(), rule, act_block, U, xq);
  int_matmul_q(w, xq, y, bias, k);
}

}  // namespace lmq
