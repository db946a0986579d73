// Q8_0, Q4_0, IQ4_NL and IQ4_XS are LMQ_INT layouts in another byte order: symmetric codes with
// one scale per 32 values.
//   Q8_0:   x = d·q, q int8          = LMQ_INT int8:g32:sym (f16 scales) with u = q + 128 (z = 128)
//   Q4_0:   x = d·(n − 8), n a nibble = LMQ_INT int4:g32:sym (f16 scales) with u = n     (z = 8)
//   IQ4_NL: x = d·v[n], v the 16 int8 levels = int8:g32:sym (f16 scales) with u = v[n] + 128
//   IQ4_XS: x = (d·(ls − 32))·v[n]  = int8:g32:sym with f32 scales d·(ls − 32) (exact in f32)
// so repacking moves bytes (or looks levels up) and never rounds: dequantizing the repacked
// tensor gives the ggml codec's floats bit for bit (d copied as its f16 bits, s·(u − z) = d·q).
// ggml's Q4_0 block keeps values j and j + 16 in byte j (low and high nibble); LMQ_INT's
// bitstream keeps values 2k and 2k + 1 in byte k. Q8_0 and Q4_0 keep their size; the IQ4 types
// double (8-bit codes for 4-bit ones): the price of running them on the int8 kernels. Which
// formats repack, and how, is the traits table's int_repack_bits / int_repack_scale /
// int_repack_block. All four are also read in place by the integer kernels
// (kernels/ggml_matmul.h), which is what a loader does where those have a SIMD kernel
// (ggml_matmul_has_simd: AVX-512 VNNI or AVX2); elsewhere it repacks them, for the LMQ_INT
// kernels (model/load_gguf.cpp).
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
// ranges may run in parallel. Returns how many blocks had a NaN/Inf scale: the caller refuses
// such a tensor (the integer kernels' activation quantization reads NaN as 0, so a NaN weight
// scale would not reach the logits as NaN). Throws lmq::Error if f does not repack or cols is
// not whole blocks.
int64_t ggml_repack_rows(Format f, const uint8_t* src, int64_t rows, int64_t cols, int64_t row0, int64_t n,
                         uint8_t* out);

// How many of the nblocks blocks at src, of a format the integer kernels read in place
// (kernels/ggml_matmul.h: Q8_0, Q4_0, Q2_K..Q6_K, the i-quants; the traits table's ggml_matmul), have a NaN/Inf
// scale (d or dmin, the table's d_at / dmin_at; without a d_at (IQ1_M), a value that is not
// finite once dequantized). As for a repacked tensor, such a weight would
// not surface as NaN at the logits: the loader refuses it. Throws lmq::Error for other formats.
int64_t ggml_nonfinite_blocks(Format f, const uint8_t* src, int64_t nblocks);

}  // namespace lmq
