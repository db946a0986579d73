// Bit packing and group dequantization of lmq's integer formats (codecs/int_bits.h).
#include "lmq/codecs/int_bits.h"

#include <immintrin.h>
// GCC 12's AVX-512 permute intrinsics start from a self-initialized undefined vector that it then
// reports as maybe uninitialized (GCC bug 105593; kernels/x86_intrinsics.h says more).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cstring>

#include "lmq/error.h"

namespace lmq::quant {

// Hot in weight-only inference: compiled for AVX-512 and AVX2 too, picked at load time (ifunc).
__attribute__((target_clones("avx512f", "avx2", "default")))
void dequantize_group(const uint8_t* u, int64_t n, GroupQ g, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = dequant_code(g.scale, u[i], g.zero);
}

// ---- bit packing ----

uint64_t packed_bytes(int64_t n, int bits) { return (uint64_t(n) * unsigned(bits) + 7) / 8; }

namespace detail {

void pack_bits_generic(const uint8_t* u, int64_t n, int bits, uint8_t* out) {
  const uint32_t mask = (1u << bits) - 1u;
  uint32_t acc = 0;  // pending stream bits, LSB first; never holds more than 15
  int have = 0;
  uint8_t* o = out;
  for (int64_t i = 0; i < n; ++i) {
    acc |= (u[i] & mask) << have;
    have += bits;
    while (have >= 8) *o++ = uint8_t(acc), acc >>= 8, have -= 8;
  }
  if (have > 0) *o = uint8_t(acc);  // high bits of the last byte stay zero
}

void unpack_bits_generic(const uint8_t* in, int64_t n, int bits, uint8_t* u) {
  const uint32_t mask = (1u << bits) - 1u;
  uint32_t acc = 0;
  int have = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (have < bits) acc |= uint32_t(*in++) << have, have += 8;
    u[i] = uint8_t(acc & mask);
    acc >>= bits;
    have -= bits;
  }
}

}  // namespace detail

void pack_bits(const uint8_t* u, int64_t n, int bits, uint8_t* out) {
  LMQ_CHECK(bits >= 1 && bits <= 8, "pack_bits with {} bits", bits);
  if (bits == 8) {
    std::copy(u, u + n, out);
  } else if (bits == 4) {
    int64_t i = 0;
    for (; i + 1 < n; i += 2) *out++ = uint8_t((u[i] & 15) | (u[i + 1] & 15) << 4);
    if (i < n) *out = uint8_t(u[i] & 15);
  } else if (bits == 2) {
    int64_t i = 0;
    for (; i + 3 < n; i += 4)
      *out++ = uint8_t((u[i] & 3) | (u[i + 1] & 3) << 2 | (u[i + 2] & 3) << 4 | (u[i + 3] & 3) << 6);
    if (i < n) detail::pack_bits_generic(u + i, n - i, 2, out);
  } else {
    detail::pack_bits_generic(u, n, bits, out);
  }
}

namespace {

// Groups of 8 codes, `bits` whole bytes each: read as one little-endian word and shifted apart.
void unpack_words(const uint8_t* in, int64_t groups, int bits, uint8_t* u) {
  const uint64_t mask = (1u << bits) - 1u;
  for (int64_t g = 0; g < groups; ++g, in += bits, u += 8) {
    uint64_t q = 0;
    std::memcpy(&q, in, size_t(bits));
    for (int j = 0; j < 8; ++j) u[j] = uint8_t(q >> (j * bits) & mask);
  }
}

// The same with BMI2's pdep, which deposits the word's low 8·b bits into the low b bits of its
// 8 bytes at once (several times the shift loop: the weight-only matmul unpacks every row).
// An 8-byte read from a group's start: groups whose read would pass the last one's end take
// the loop above.
__attribute__((target("bmi2"))) void unpack_words_pdep(const uint8_t* in, int64_t groups, int bits, uint8_t* u) {
  const uint64_t mask = 0x0101010101010101ull * ((1u << bits) - 1u);
  const int64_t safe = std::max<int64_t>(0, groups - (8 + bits - 1) / bits + 1);
  for (int64_t g = 0; g < safe; ++g) {
    uint64_t q;
    std::memcpy(&q, in + g * bits, 8);
    const uint64_t v = _pdep_u64(q, mask);
    std::memcpy(u + 8 * g, &v, 8);
  }
  unpack_words(in + safe * bits, groups - safe, bits, u + 8 * safe);
}

// 64 codes (8·b bytes) a step with AVX-512 VBMI: vpermb gathers each 8 codes' b bytes into a
// qword, vpmultishiftqb moves code i of a qword to byte i, an and keeps b bits (the integer
// kernels' tiles unpack in registers the same way). The rest of the groups: pdep.
__attribute__((target("avx512f,avx512bw,avx512vbmi,bmi2"))) void unpack_words_vbmi(const uint8_t* in, int64_t groups,
                                                                                 int bits, uint8_t* u) {
  alignas(64) uint8_t perm[64], shift[64];
  for (int j = 0; j < 8; ++j)
    for (int i = 0; i < 8; ++i) perm[8 * j + i] = uint8_t(j * bits + i), shift[8 * j + i] = uint8_t(i * bits);
  const __m512i p = _mm512_load_si512(perm), sh = _mm512_load_si512(shift);
  const __m512i mask = _mm512_set1_epi8(char((1 << bits) - 1));
  const __mmask64 load = (__mmask64(1) << (8 * bits)) - 1;
  int64_t g = 0;
  for (; g + 8 <= groups; g += 8) {
    const __m512i v = _mm512_maskz_loadu_epi8(load, in + g * bits);
    const __m512i codes = _mm512_and_si512(_mm512_multishift_epi64_epi8(sh, _mm512_permutexvar_epi8(p, v)), mask);
    _mm512_storeu_si512(u + 8 * g, codes);
  }
  unpack_words_pdep(in + g * bits, groups - g, bits, u + 8 * g);
}

bool have_bmi2() {
  static const bool ok = __builtin_cpu_supports("bmi2");
  return ok;
}
bool have_vbmi() {
  static const bool ok = __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw") && have_bmi2();
  return ok;
}

}  // namespace

void unpack_bits(const uint8_t* in, int64_t n, int bits, uint8_t* u) {
  LMQ_CHECK(bits >= 1 && bits <= 8, "unpack_bits with {} bits", bits);
  if (bits == 8) {
    std::copy(in, in + n, u);
  } else if (bits == 4) {
    // 16 bytes at a time (SSE2: the low and high nibbles interleaved; the weight-only matmul
    // unpacks every row per call, and the compiler's own vectorization of the loop below took a
    // third of its time), then the rest byte by byte, then an odd last code.
    const int64_t pairs = n / 2;
    int64_t b = 0;
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (; b + 16 <= pairs; b += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + b));
      const __m128i lo = _mm_and_si128(v, low4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), low4);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(u + 2 * b), _mm_unpacklo_epi8(lo, hi));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(u + 2 * b + 16), _mm_unpackhi_epi8(lo, hi));
    }
    for (; b < pairs; ++b) {
      u[2 * b] = uint8_t(in[b] & 15);
      u[2 * b + 1] = uint8_t(in[b] >> 4);
    }
    if (n & 1) u[n - 1] = uint8_t(in[pairs] & 15);
  } else {
    const int64_t groups = n / 8;  // 8 codes are `bits` whole bytes
    (have_vbmi() ? unpack_words_vbmi : have_bmi2() ? unpack_words_pdep : unpack_words)(in, groups, bits, u);
    detail::unpack_bits_generic(in + groups * bits, n - groups * 8, bits, u + groups * 8);
  }
}

uint8_t packed_at(const uint8_t* in, int64_t i, int bits) {
  const uint64_t bit = uint64_t(i) * unsigned(bits);
  const uint64_t byte = bit / 8;
  const unsigned shift = unsigned(bit % 8);
  uint32_t v = in[byte] >> shift;
  if (shift + unsigned(bits) > 8) v |= uint32_t(in[byte + 1]) << (8 - shift);  // straddles
  return uint8_t(v & ((1u << bits) - 1u));
}

uint64_t bytes_at_bits(uint64_t params, unsigned bits) {
  const uint64_t total_bits = checked_mul(params, bits, "bytes_at_bits");
  return total_bits / 8 + (total_bits % 8 != 0);
}

}  // namespace lmq::quant
