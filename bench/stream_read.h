// Shared by the decode-stream benchmarks (BM_GgmlDecodeStream, BM_IntDecodeStream, BM_StreamRead):
// the buffers they stream weights from, and the plain read they are measured against.
//
// Why. A decode kernel's speed is only meaningful against the memory's own, and this host's read
// bandwidth moves by a third from minute to minute (34–51 GB/s, docs/results.md), so the bound is
// taken in the same process: BM_StreamRead sums buffers of the same kind and about the same size,
// split over the threads as the kernels split their rows. The buffers are the ones a load interleaves
// or repacks weights into (weight_buffer: 2 MiB-aligned, huge pages where the kernel grants them),
// so the TLB and the hardware prefetchers see what they see in `lmq run`.
#pragma once
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "lmq/mapped_file.h"

namespace lmq::bench {

// n copies of `one` (distinct memory, the same bytes), each in its own weight_buffer.
inline std::vector<std::shared_ptr<uint8_t[]>> stream_copies(const uint8_t* one, size_t bytes, int64_t n) {
  std::vector<std::shared_ptr<uint8_t[]>> out;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(weight_buffer(bytes));
    std::memcpy(out.back().get(), one, bytes);
  }
  return out;
}

// The sum of the 64-bit words of [p, p + bytes), each thread one contiguous share (as the kernels'
// static split of rows), so the bytes come in at the rate a plain sequential read gets.
inline uint64_t stream_read(const uint8_t* p, size_t bytes) {
  const auto* w = reinterpret_cast<const uint64_t*>(p);
  const int64_t n = int64_t(bytes / sizeof(uint64_t));
  uint64_t s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += w[i];
  return s;
}

}  // namespace lmq::bench
