#include "lmq/kernels/matmul.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lmq/error.h"

namespace lmq {

namespace {
// Rows dequantized per step: 32 rows × K floats stay in L2 while a 4-token tile of x sits in L1.
constexpr int64_t kRowChunk = 32;
}  // namespace

void matmul(const Tensor& w, const float* x, int64_t T, float* y, const float* bias) {
  const int64_t N = w.rows(), K = w.cols();
  const int64_t chunks = (N + kRowChunk - 1) / kRowChunk;
  // F32, BF16 and F16 rows feed the tile kernel straight from the map when aligned (a hostile
  // file may put them at any byte offset); other formats are dequantized a chunk of rows at a time.
  const auto addr = reinterpret_cast<uintptr_t>(w.data);
  const bool half = w.format == Format::BF16 || w.format == Format::F16;
  const bool direct = (w.format == Format::F32 && addr % alignof(float) == 0) || (half && addr % 2 == 0);
#pragma omp parallel
  {
    std::vector<float> buf(direct ? 0 : size_t(kRowChunk * K));
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * kRowChunk, nr = std::min(kRowChunk, N - r0);
      if (direct && w.format == Format::F32) {
        dot_tile_f32(reinterpret_cast<const float*>(w.data) + r0 * K, nr, x, T, K, y + r0, N);
      } else if (direct) {
        const uint16_t* rows = reinterpret_cast<const uint16_t*>(w.data) + r0 * K;
        (w.format == Format::BF16 ? dot_tile_bf16 : dot_tile_f16)(rows, nr, x, T, K, y + r0, N);
      } else {
        dequantize_rows(w, r0, nr, buf.data());
        dot_tile_f32(buf.data(), nr, x, T, K, y + r0, N);
      }
      if (bias)
        for (int64_t t = 0; t < T; ++t)
          for (int64_t r = 0; r < nr; ++r) y[t * N + r0 + r] += bias[r0 + r];
    }
  }
}

}  // namespace lmq
