// The blocking of gemm_bf16 (lmq/kernels/gemm_bf16.h), shared by its portable kernel
// (gemm_bf16.cpp) and its AVX-512 BF16 one (gemm_bf16_x86.cpp): both run the same loops, so
// every output sums its products in the same order whatever the path and M.
#pragma once
#include <algorithm>
#include <cstdint>

#include "lmq/kernels/gemm_bf16.h"

namespace lmq::bf16k {

constexpr int kRows = 12;       // rows of x per tile: 12 × 2 panels = 24 accumulators of 32 zmm
constexpr int64_t kPanels = 16;  // panels (16 weight rows each) per block: 16 × 256 pairs = 256 KiB, in L2
constexpr int64_t kKB = kGemmBf16KBlock;

// A tile's work: y[r·ldy + c] (+)= Σ_{j<kc} over the pair j of x row r (xb[r·kKB + j]) and of
// weight row c (panel c/16 at w + (c/16)·pstride, word j·16 + c%16), for r < rows, c < cols.
// first: the first block of K (y = the sum), else y += the sum.
struct Tile {
  const uint32_t* xb;
  int rows;
  int64_t kc;
  const uint32_t* w;
  int64_t pstride;
  int panels;  // 1 or 2
  int cols;    // valid columns of those panels' 16 or 32
  float* y;
  int64_t ldy;
  bool first;
};

// Kern: convert(x, rows, K, j0, kc, xb) rounds pairs [j0, j0 + kc) of rows x[r·K ..] into
// xb (row stride kKB words, pairs past K zero); tile(const Tile&).
template <class Kern>
void gemm_blocks(const float* x, int64_t M, const PackedBf16& w, float* y) {
  const int64_t N = w.rows(), K = w.cols(), P = w.pairs(), np = w.panels();
  alignas(64) uint32_t xb[kRows * kKB];
  for (int64_t j0 = 0; j0 < P; j0 += kKB) {
    const int64_t kc = std::min(kKB, P - j0);
    for (int64_t p0 = 0; p0 < np; p0 += kPanels) {
      const int64_t p1 = std::min(np, p0 + kPanels);
      for (int64_t m0 = 0; m0 < M; m0 += kRows) {
        const int rows = int(std::min<int64_t>(kRows, M - m0));
        Kern::convert(x + m0 * K, rows, K, j0, kc, xb);
        for (int64_t p = p0; p < p1; p += 2) {
          const int64_t c0 = p * PackedBf16::kPanel;
          Kern::tile(Tile{xb, rows, kc, w.panel(p) + j0 * PackedBf16::kPanel, P * PackedBf16::kPanel,
                          int(std::min<int64_t>(2, p1 - p)), int(std::min<int64_t>(32, N - c0)), y + m0 * N + c0, N,
                          j0 == 0});
        }
      }
    }
  }
}

void gemm_avx512(const float* x, int64_t M, const PackedBf16& w, float* y);  // gemm_bf16_x86.cpp

}  // namespace lmq::bf16k
