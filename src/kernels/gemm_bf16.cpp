// Packing, dispatch and the portable kernel of gemm_bf16 (lmq/kernels/gemm_bf16.h).
#include "lmq/kernels/gemm_bf16.h"

#include <cpuid.h>

#include <cstdlib>
#include <cstring>

#include "gemm_bf16_internal.h"
#include "lmq/half.h"

namespace lmq {

namespace {

// A bf16 value with a subnormal flushed to zero (sign kept), as vdpbf16ps reads it.
uint16_t flush_bf16(uint16_t h) { return (h & 0x7f80u) == 0 ? uint16_t(h & 0x8000u) : h; }

float lo_f32(uint32_t pair) { return bf16_to_f32(uint16_t(pair)); }
float hi_f32(uint32_t pair) { return bf16_to_f32(uint16_t(pair >> 16)); }

// A clone for AVX2 CPUs (no AVX-512 BF16) beside the baseline one, GCC only (as ggml_rows.h):
// the 16 lanes are independent sums and each product is exact, so vectors and FMA contraction
// change no bit.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LMQ_BF16_PORTABLE __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define LMQ_BF16_PORTABLE
#endif

// The spec of gemm_bf16's arithmetic in plain code: each tile output's sum of the block, the
// odd then the even product of each pair.
struct Portable {
  static void convert(const float* x, int rows, int64_t K, int64_t j0, int64_t kc, uint32_t* xb) {
    for (int r = 0; r < rows; ++r)
      for (int64_t j = 0; j < kc; ++j) {
        const int64_t k = 2 * (j0 + j);
        const uint16_t lo = gemm_bf16_round(x[r * K + k]);
        const uint16_t hi = k + 1 < K ? gemm_bf16_round(x[r * K + k + 1]) : 0;
        xb[r * bf16k::kKB + j] = uint32_t(lo) | uint32_t(hi) << 16;
      }
  }
  LMQ_BF16_PORTABLE static void tile(const bf16k::Tile& t) {
    for (int r = 0; r < t.rows; r += kRowStep)
      for (int q = 0; q < t.panels; ++q) rows_panel(t, r, std::min(kRowStep, t.rows - r), q);
  }

 private:
  static constexpr int kRowStep = 4;  // rows that share each pair of weights widened to float
  // Rows [r0, r0 + nr) of the tile against its panel q.
  LMQ_BF16_PORTABLE static void rows_panel(const bf16k::Tile& t, int r0, int nr, int q) {
    constexpr int L = PackedBf16::kPanel;
    float acc[kRowStep][L] = {};
    const uint32_t* w = t.w + q * t.pstride;
    for (int64_t j = 0; j < t.kc; ++j) {
      float w0[L], w1[L];
      for (int i = 0; i < L; ++i) w0[i] = lo_f32(w[j * L + i]), w1[i] = hi_f32(w[j * L + i]);
      for (int r = 0; r < nr; ++r) {
        const uint32_t xp = t.xb[(r0 + r) * bf16k::kKB + j];
        const float x0 = lo_f32(xp), x1 = hi_f32(xp);
        for (int i = 0; i < L; ++i) {
          acc[r][i] += x1 * w1[i];
          acc[r][i] += x0 * w0[i];
        }
      }
    }
    for (int r = 0; r < nr; ++r) {
      float* y = t.y + (r0 + r) * t.ldy + q * L;
      for (int i = 0; i < std::min(L, t.cols - q * L); ++i) y[i] = t.first ? acc[r][i] : y[i] + acc[r][i];
    }
  }
};

}  // namespace

uint16_t gemm_bf16_round(float f) {
  const uint32_t u = f32_to_bits(f);
  if ((u & 0x7f800000u) == 0) return uint16_t((u >> 16) & 0x8000u);  // zero or subnormal: signed zero
  return f32_to_bf16(f);
}

void PackedBf16::Free::operator()(uint32_t* p) const { std::free(p); }

PackedBf16::PackedBf16(int64_t rows, int64_t cols) : rows_(rows), cols_(cols) {
  const size_t n = bytes();
  own_.reset(static_cast<uint32_t*>(std::aligned_alloc(64, std::max<size_t>(n, 64))));  // n: a multiple of 64
  if (!own_) throw std::bad_alloc();
  data_ = own_.get();
  std::memset(data_, 0, n);
}

PackedBf16 PackedBf16::from_f32(const float* w, int64_t rows, int64_t cols) {
  PackedBf16 p(rows, cols);
  p.set_rows(0, rows, w);
  return p;
}

void PackedBf16::set_rows(int64_t r0, int64_t n, const float* w) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < pairs(); ++j) {
      const float* v = w + r * cols_ + 2 * j;
      const uint16_t hi = 2 * j + 1 < cols_ ? gemm_bf16_round(v[1]) : 0;
      *word(r0 + r, j) = uint32_t(gemm_bf16_round(v[0])) | uint32_t(hi) << 16;
    }
}

void PackedBf16::set_rows(int64_t r0, int64_t n, const uint16_t* w) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < pairs(); ++j) {
      const uint16_t* v = w + r * cols_ + 2 * j;
      const uint16_t hi = 2 * j + 1 < cols_ ? flush_bf16(v[1]) : 0;
      *word(r0 + r, j) = uint32_t(flush_bf16(v[0])) | uint32_t(hi) << 16;
    }
}

float PackedBf16::at(int64_t r, int64_t k) const {
  const uint32_t w = data_[((r / kPanel) * pairs() + k / 2) * kPanel + r % kPanel];
  return k % 2 ? hi_f32(w) : lo_f32(w);
}

bool have_avx512_bf16() {
  static const bool ok = [] {
    // (clang 14's __builtin_cpu_supports does not know avx512bf16: CPUID leaf 7.1 EAX bit 5)
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 5 & 1u);
  }();
  return ok;
}

void gemm_bf16(const float* x, int64_t M, const PackedBf16& w, float* y, const float* bias, GemmBf16Path path) {
  const int64_t N = w.rows();
  if (M <= 0 || N <= 0) return;
  if (w.cols() == 0) std::fill(y, y + M * N, 0.0f);
  else if (path == GemmBf16Path::Auto && have_avx512_bf16()) bf16k::gemm_avx512(x, M, w, y);
  else bf16k::gemm_blocks<Portable>(x, M, w, y);
  if (bias)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) y[m * N + n] += bias[n];
}

void gemm_bf16(const float* x, int64_t M, const PackedBf16& w, float* y, const float* bias) {
  gemm_bf16(x, M, w, y, bias, GemmBf16Path::Auto);
}

}  // namespace lmq
