// The stored pieces of lmq's integer formats that both writers and readers need: one group's
// parameters, the one dequantization expression, and the bit packing of codes and zero points
// (codecs/int_format.h has the tensor layout; quant/scheme.h how the parameters are chosen).
#pragma once
#include <cstdint>

namespace lmq::quant {

// One group's stored parameters. scale is already rounded to the storage ScaleType; zero is
// the unsigned code of 0.0 (2^(b-1) for symmetric). sym is not stored: it makes quantization
// clamp to code 1 (q >= -q_max) so a clipped symmetric range stays symmetric.
struct GroupQ {
  float scale = 0;
  int32_t zero = 0;
  bool sym = false;
};

inline int32_t code_max(int bits) { return (1 << bits) - 1; }
inline int32_t sym_qmax(int bits) { return (1 << (bits - 1)) - 1; }
inline int32_t sym_zero(int bits) { return 1 << (bits - 1); }
// The one dequantization expression; everything (stats, dequantize_rows) uses it so results
// agree bit for bit.
inline float dequant_code(float s, int32_t u, int32_t z) { return s * float(u - z); }

void dequantize_group(const uint8_t* u, int64_t n, GroupQ g, float* out);

// ---- bit packing: LSB-first bitstream, value i in stream bits [i·b, (i+1)·b), byte k holds
// stream bits 8k..8k+7 (bit 0 of the byte first). out has ceil(n·b/8) bytes; unused high bits
// of the last byte are zero. Only the low b bits of each u are used. b in 1..8.
uint64_t packed_bytes(int64_t n, int bits);
void pack_bits(const uint8_t* u, int64_t n, int bits, uint8_t* out);
void unpack_bits(const uint8_t* in, int64_t n, int bits, uint8_t* u);
// The value at index i of a packed stream.
uint8_t packed_at(const uint8_t* in, int64_t i, int bits);
namespace detail {  // the generic paths, exposed so tests can compare the fast paths with them
void pack_bits_generic(const uint8_t* u, int64_t n, int bits, uint8_t* out);
void unpack_bits_generic(const uint8_t* in, int64_t n, int bits, uint8_t* u);
}  // namespace detail

// Bytes that `params` values take at `bits` bits each: params·bits/8, rounded up only when
// not integral. Throws on overflow.
uint64_t bytes_at_bits(uint64_t params, unsigned bits);

}  // namespace lmq::quant
