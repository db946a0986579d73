// How far ahead decode (one token) fetches a weight's codes: the integer tile kernel
// (int_matmul_tiles_x86.cpp), the weight-only decode kernel (code_gemv_x86.cpp) and the
// float-activation tiles (matmul.cpp). Decode streams each weight once, and a thread's tiles
// are one sequential range, so the address this far ahead of a row's position is a later line
// of the same range; the lines go into L2 (T1), where more misses can be in flight than L1's
// buffers allow, and the hardware's own prefetchers stop at 4 KiB pages.
//
// Measured (BM_IntDecodeStream, the shared 2-core host, medians of 3; docs/results.md): at the
// 1.1B gate/up shape (5632 × 2048) int4 g128 on 2 threads 19–39 GiB/s against 15 for the
// previous prefetch into L1 one tile (4 KiB) ahead, 8–64 KiB alike within the noise; at
// 4096 × 11008 one thread reads int4 at 23–24 GiB/s one tile (22 KiB) ahead against 16–17 at
// 16 KiB. (The X16 kernels keep their own 8 KiB, measured on Q4_0_X16.)
#pragma once
#include <algorithm>
#include <cstdint>

namespace lmq {

constexpr int64_t kDecodeAhead = 16384;

// The distance for tiles of 4 rows of row_bytes each: kDecodeAhead, or one tile where longer.
inline int64_t decode_ahead(int64_t row_bytes) { return std::max(kDecodeAhead, 4 * row_bytes); }

}  // namespace lmq
