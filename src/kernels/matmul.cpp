#include "lmq/kernels/matmul.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "lmq/error.h"
#include "lmq/codecs/int_format.h"
#include "lmq/codecs/int_bits.h"

#include "code_gemv.h"
#include "decode_prefetch.h"

namespace lmq {

namespace {
// Rows dequantized per step: 32 rows × K floats stay in L2 while a 4-token tile of x sits in L1.
constexpr int64_t kRowChunk = 32;

// y[t·N + r] += bias[r] for the chunk's rows [r0, r0 + nr); nothing without a bias.
void add_bias(float* y, int64_t T, int64_t N, int64_t r0, int64_t nr, const float* bias) {
  if (!bias) return;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r = 0; r < nr; ++r) y[t * N + r0 + r] += bias[r0 + r];
}

// LMQ_INT weights (every width) whose groups are whole 16-value steps take dot_tile_codes; G = 0
// when the layout does not fit (odd groups), which dequantizes instead.
int64_t code_tile_group(const Tensor& w) {
  if (w.format != Format::LMQ_INT || w.shape.size() != 2) return 0;
  const int64_t K = w.cols(), G = w.q.group > 0 ? w.q.group : K;
  return K > 0 && K % 16 == 0 && G % 16 == 0 && K % G == 0 ? G : 0;
}

// The lines kDecodeAhead bytes past [p, p + n) (not past end) are fetched into L2 while this
// tile computes (decode_prefetch.h).
void prefetch_ahead(const uint8_t* p, int64_t n, const uint8_t* end) {
  for (const uint8_t* a = p + kDecodeAhead; a < p + kDecodeAhead + n && a < end; a += 64) __builtin_prefetch(a, 0, 2);
}

// The weight-only integer path: per chunk of rows, the rows' group scales and zero points, then
// 4 rows (one tile) at a time either the decode kernel of packed codes (one token, 2..7-bit codes
// read where they lie, code_gemv.h) or dot_tile_codes: 8-bit codes read where they lie, packed
// ones unpacked to bytes a tile at a time, so they stay in L1 while the tile reads them. At
// decode, codes read in place are fetched ahead row by row as they are read; otherwise the lines
// ahead of a tile before it. Either way the tiles are the same 4 rows, so the results do not
// depend on the thread count.
void matmul_codes(const Tensor& w, int64_t G, const float* x, int64_t T, float* y, const float* bias) {
  const int64_t N = w.rows(), K = w.cols(), ng = K / G;
  const quant::IntView v = quant::int_view(w.q, w.data, N, K);
  LMQ_CHECK(v.layout.groups_per_row == ng, "{} groups per row, {} expected", v.layout.groups_per_row, ng);
  const int64_t chunks = (N + kRowChunk - 1) / kRowChunk, ldc = int64_t(v.layout.row_code_bytes);
  const bool packed = w.q.bits != 8;
  const bool gemv = T == 1 && codek::code_gemv_available(w.q.bits) && codek::code_gemv_fits(w.q.bits, K, G);
  std::vector<float> xp(gemv ? size_t(K) : 0);
  if (gemv) codek::code_gemv_prepare_x(w.q.bits, x, K, xp.data());
  const uint8_t* end = v.codes + N * ldc;
#pragma omp parallel
  {
    std::vector<uint8_t> codes(packed ? size_t(4 * K) : 0);
    std::vector<float> sc(size_t(kRowChunk * ng));
    std::vector<int32_t> zc(size_t(kRowChunk * ng));
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * kRowChunk, nr = std::min(kRowChunk, N - r0);
      quant::int_rows_params(v, r0, nr, sc.data(), zc.data());
      for (int64_t s = 0; s < nr; s += 4) {
        const int64_t ns = std::min<int64_t>(4, nr - s);
        const uint8_t* rows = v.codes + (r0 + s) * ldc;
        const float* sg = sc.data() + s * ng;
        const int32_t* zg = zc.data() + s * ng;
        const bool inside = (r0 + s + ns) * ldc + decode_ahead(ldc) <= N * ldc;  // the lines ahead are this weight's
        const int64_t ahead = T == 1 && inside ? decode_ahead(ldc) : 0;
        if (gemv) {
          codek::code_gemv_rows({w.q.bits, rows, ldc, K, G, xp.data(), sg, zg, ahead}, int(ns), y + r0 + s);
        } else if (!packed) {
          if (ahead == 0) prefetch_ahead(rows, ns * ldc, end);
          dot_tile_codes(rows, ldc, ns, x, T, K, G, sg, zg, y + r0 + s, N, ahead);
        } else {
          prefetch_ahead(rows, ns * ldc, end);
          for (int64_t r = 0; r < ns; ++r) quant::unpack_bits(rows + r * ldc, K, w.q.bits, codes.data() + r * K);
          dot_tile_codes(codes.data(), K, ns, x, T, K, G, sg, zg, y + r0 + s, N);
        }
      }
      add_bias(y, T, N, r0, nr, bias);
    }
  }
}

}  // namespace

void matmul(const Tensor& w, const float* x, int64_t T, float* y, const float* bias) {
  if (const int64_t G = code_tile_group(w); G > 0) return matmul_codes(w, G, x, T, y, bias);
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
      add_bias(y, T, N, r0, nr, bias);
    }
  }
}

}  // namespace lmq
