// Q8_0 and Q4_0 are LMQ_INT layouts in another byte order. A block of 32 values holds one f16
// scale d and symmetric codes:
//   Q8_0: x = d·q, q int8          = LMQ_INT int8:g32:sym (f16 scales) with u = q + 128 (z = 128)
//   Q4_0: x = d·(n − 8), n a nibble = LMQ_INT int4:g32:sym (f16 scales) with u = n     (z = 8)
// so repacking moves bytes and never rounds: dequantizing the repacked tensor gives the ggml
// codec's floats bit for bit (d is copied as its f16 bits, s·(u − z) = d·q). ggml's Q4_0 block
// keeps values j and j + 16 in byte j (low and high nibble); LMQ_INT's bitstream keeps values
// 2k and 2k + 1 in byte k. Which formats repack is the traits table's int_repack_bits.
#pragma once
#include <cstdint>
#include <optional>

#include "lmq/tensor.h"

namespace lmq {

// The LMQ_INT parameters a ggml format repacks into, or nullopt (format_traits().int_repack_bits).
std::optional<IntParams> ggml_repack_params(Format f);

// Repacks rows [row0, row0 + n) of a rows × cols tensor of format f (src: the whole tensor, in
// ggml's row-major blocks) into out, the whole LMQ_INT tensor (int_tensor_bytes of
// ggml_repack_params(f)); each row's codes and scales are written, nothing else. Disjoint row
// ranges may run in parallel. Throws lmq::Error if f does not repack or cols is not whole blocks.
void ggml_repack_rows(Format f, const uint8_t* src, int64_t rows, int64_t cols, int64_t row0, int64_t n,
                      uint8_t* out);

}  // namespace lmq
