// ggml's i-quant formats (IQ4_NL, IQ4_XS, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M):
//  - the table rows (names, GGUF ids, sizes) against llama.cpp b4748's values;
//  - each dequantizer on a hand-built block, expected values from the layout's formula and grid
//    entries copied here from ggml-common.h (not through lmq's tables);
//  - pseudo-random blocks and every i-quant tensor of llama.cpp's own IQ2_XS/IQ3_S/IQ4_XS files
//    against hashes of llama.cpp's own dequantization (scripts/iquant-ref.c prints them);
//  - IQ4_NL / IQ4_XS writers: bytes hashed against llama.cpp's ggml_quantize_chunk (what
//    llama-quantize calls), without and with an importance; round-trip error;
//  - bad input: NaN/Inf scales and extreme bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/error.h"
#include "lmq/formats/gguf.h"
#include "lmq/half.h"
#include "int_path_check.h"
#include "test_support.h"

using namespace lmq;
using lmq::test::shared_path;

namespace {

// IQ4_NL's levels, as ggml-quants.c (b4748) writes kvalues_iq4nl.
constexpr int kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

std::vector<float> dequant(Format f, const std::vector<uint8_t>& b) {
  const int64_t n = int64_t(b.size() / ggml_block_bytes(f)) * ggml_block_size(f);
  std::vector<float> y(static_cast<size_t>(n));
  ggml_dequantize_row(f, b.data(), y.data(), n);
  return y;
}
void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) { std::memcpy(b.data() + at, &v, 2); }
void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }
int byte_of(uint64_t entry, int j) { return int(entry >> 8 * j & 0xff); }
// ggml's ksigns_iq2xs: 7 stored sign bits, the 8th making the count of minus signs even.
uint8_t signs_of7(int k) { return uint8_t(k | (__builtin_popcount(unsigned(k)) & 1) << 7); }
float sgn(uint8_t signs, int j) { return signs >> j & 1 ? -1.f : 1.f; }

uint64_t fnv(uint64_t h, const float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, &y[i], 4);
    for (int k = 0; k < 4; ++k) h = (h ^ (b >> 8 * k & 0xff)) * 1099511628211ull;
  }
  return h;
}
constexpr uint64_t kFnvSeed = 1469598103934665603ull;

}  // namespace

TEST(IQuant, TableRowsAreGgmls) {
  struct Row { Format f; const char* name; int gguf; int64_t block; size_t bytes; };
  // GGML_TYPE_* (ggml.h), blocks and sizes (ggml-common.h), b4748
  const Row rows[] = {{Format::IQ4_NL, "iq4_nl", 20, 32, 18},    {Format::IQ4_XS, "iq4_xs", 23, 256, 136},
                      {Format::IQ2_XXS, "iq2_xxs", 16, 256, 66}, {Format::IQ2_XS, "iq2_xs", 17, 256, 74},
                      {Format::IQ2_S, "iq2_s", 22, 256, 82},     {Format::IQ3_XXS, "iq3_xxs", 18, 256, 98},
                      {Format::IQ3_S, "iq3_s", 21, 256, 110},    {Format::IQ1_S, "iq1_s", 19, 256, 50},
                      {Format::IQ1_M, "iq1_m", 29, 256, 56}};
  for (const Row& r : rows) {
    const FormatTraits& t = format_traits(r.f);
    EXPECT_EQ(t.name, r.name);
    EXPECT_EQ(t.ggml_name, r.name);  // ggml's type_name spells them the same
    EXPECT_EQ(t.gguf_type, r.gguf);
    EXPECT_EQ(t.block_size, r.block);
    EXPECT_EQ(t.block_bytes, r.bytes);
    EXPECT_TRUE(t.ggml && t.quantized);
    EXPECT_EQ(format_by_gguf_type(uint32_t(r.gguf)), r.f);
    EXPECT_EQ(format_by_name(r.name), r.f);
  }
  EXPECT_THROW(ggml_row_bytes(Format::IQ4_XS, 384), Error);  // rows of whole 256-blocks only
  EXPECT_EQ(ggml_row_bytes(Format::IQ4_NL, 96), 54u);
}

TEST(IQuant, Iq4NlHandBuiltBlock) {
  std::vector<uint8_t> b(18);
  put16(b, 0, 0x3800);  // d = 0.5
  for (int j = 0; j < 16; ++j) b[size_t(2 + j)] = uint8_t(j | (15 - j) << 4);
  const auto y = dequant(Format::IQ4_NL, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[size_t(j)], 0.5f * float(kLevels[j])) << j;
    EXPECT_EQ(y[size_t(j + 16)], 0.5f * float(kLevels[15 - j])) << j;
  }
}

TEST(IQuant, Iq4XsHandBuiltBlock) {
  std::vector<uint8_t> b(136);
  put16(b, 0, 0x3400);  // d = 0.25
  int ls[8];
  uint16_t high = 0;
  for (int ib = 0; ib < 8; ++ib) {
    ls[ib] = ib * 9;  // 0 .. 63: every bit of both fields used
    b[size_t(4 + ib / 2)] = uint8_t(b[size_t(4 + ib / 2)] | (ls[ib] & 15) << 4 * (ib % 2));
    high = uint16_t(high | (ls[ib] >> 4) << 2 * ib);
  }
  put16(b, 2, high);
  for (int i = 0; i < 128; ++i) b[size_t(8 + i)] = uint8_t(i * 7 + 3);
  const auto y = dequant(Format::IQ4_XS, b);
  for (int ib = 0; ib < 8; ++ib)
    for (int j = 0; j < 16; ++j) {
      const uint8_t q = b[size_t(8 + 16 * ib + j)];
      const float dl = 0.25f * float(ls[ib] - 32);
      EXPECT_EQ(y[size_t(32 * ib + j)], dl * float(kLevels[q & 15])) << ib << ' ' << j;
      EXPECT_EQ(y[size_t(32 * ib + j + 16)], dl * float(kLevels[q >> 4])) << ib << ' ' << j;
    }
}

TEST(IQuant, Iq2XxsHandBuiltBlock) {
  // iq2xxs_grid[0], [1], [100], [255] (ggml-common.h)
  const uint64_t g[4] = {0x0808080808080808, 0x080808080808082b, 0x08192b0808081908, 0x2b2b2b1908081908};
  const int idx[4] = {0, 1, 100, 255}, sidx[4] = {0, 1, 127, 77};
  std::vector<uint8_t> b(66);
  put16(b, 0, 0x3c00);  // d = 1
  for (int l = 0; l < 4; ++l) b[size_t(2 + l)] = uint8_t(idx[l]);
  uint32_t a1 = 11u << 28;
  for (int l = 0; l < 4; ++l) a1 |= uint32_t(sidx[l]) << 7 * l;
  put32(b, 6, a1);
  const auto y = dequant(Format::IQ2_XXS, b);
  const float db = (0.5f + 11) * 0.25f;
  for (int l = 0; l < 4; ++l)
    for (int j = 0; j < 8; ++j)
      EXPECT_EQ(y[size_t(8 * l + j)], db * float(byte_of(g[l], j)) * sgn(signs_of7(sidx[l]), j)) << l << ' ' << j;
  // the other sub-blocks: all-zero bytes are grid entry 0 (all 8s), no signs, scale 0.5 · 0.25
  for (size_t i = 32; i < 256; ++i) EXPECT_EQ(y[i], 0.125f * 8) << i;
}

TEST(IQuant, Iq2XsHandBuiltBlock) {
  const uint64_t g[3] = {0x0808080808080808, 0x1908190808191908, 0x2b2b2b2b2b2b2b2b};  // iq2xs_grid[0, 300, 511]
  const int idx[4] = {300, 511, 0, 300}, sidx[4] = {5, 127, 64, 0};
  const uint64_t* ge[4] = {&g[1], &g[2], &g[0], &g[1]};
  std::vector<uint8_t> b(74);
  put16(b, 0, 0x4000);  // d = 2
  for (int l = 0; l < 4; ++l) put16(b, size_t(2 + 2 * (4 * 3 + l)), uint16_t(idx[l] | sidx[l] << 9));  // sub-block 3
  b[66 + 3] = 0x6d;  // scales of sub-block 3: 13 (groups 0-1), 6 (groups 2-3)
  const auto y = dequant(Format::IQ2_XS, b);
  for (int l = 0; l < 4; ++l) {
    const float db = 2.f * (0.5f + float(l < 2 ? 13 : 6)) * 0.25f;
    for (int j = 0; j < 8; ++j)
      EXPECT_EQ(y[size_t(96 + 8 * l + j)], db * float(byte_of(*ge[l], j)) * sgn(signs_of7(sidx[l]), j)) << l << ' ' << j;
  }
  EXPECT_EQ(y[0], 2.f * 0.5f * 0.25f * 8);
}

TEST(IQuant, Iq2SHandBuiltBlock) {
  const uint64_t g700 = 0x1919082b2b080808, g1023 = 0x2b2b2b2b2b2b2b2b;  // iq2s_grid[700], [1023]
  std::vector<uint8_t> b(82);
  put16(b, 0, 0x3c00);
  // sub-block 1, group 2: index 700 = 0x2bc (low byte 0xbc, high bits 2); group 3: 1023
  b[2 + 4 + 2] = 0xbc, b[2 + 4 + 3] = 0xff;
  b[2 + 32 + 4 + 2] = 0xa5, b[2 + 32 + 4 + 3] = 0x01;  // signs as they are, no parity rule
  b[66 + 1] = uint8_t(2 << 4 | 3 << 6);                 // qh[1]: bits 4-5 = 2, bits 6-7 = 3
  b[74 + 1] = 0x90;                                     // scales[1]: 0 (groups 0-1), 9 (groups 2-3)
  const auto y = dequant(Format::IQ2_S, b);
  const float db = (0.5f + 9) * 0.25f;
  for (int j = 0; j < 8; ++j) {
    EXPECT_EQ(y[size_t(32 + 16 + j)], db * float(byte_of(g700, j)) * sgn(0xa5, j)) << j;
    EXPECT_EQ(y[size_t(32 + 24 + j)], db * float(byte_of(g1023, j)) * sgn(0x01, j)) << j;
  }
}

TEST(IQuant, Iq3XxsHandBuiltBlock) {
  const uint32_t g[4] = {0x04040404, 0x04040414, 0x2c043e04, 0x3e341c04};  // iq3xxs_grid[0, 1, 200, 255]
  std::vector<uint8_t> b(98);
  put16(b, 0, 0x3c00);
  // sub-block 7, group 1: indices 200 (values 0-3) and 255 (values 4-7); group 2: 1 and 0
  b[2 + 56 + 2] = 200, b[2 + 56 + 3] = 255, b[2 + 56 + 4] = 1, b[2 + 56 + 5] = 0;
  const uint32_t a = 5u << 28 | 99u << 7 | 42u << 14;
  put32(b, 2 + 64 + 28, a);
  const auto y = dequant(Format::IQ3_XXS, b);
  const float db = (0.5f + 5) * 0.5f;
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(y[size_t(224 + 8 + j)], db * float(byte_of(g[2], j)) * sgn(signs_of7(99), j)) << j;
    EXPECT_EQ(y[size_t(224 + 12 + j)], db * float(byte_of(g[3], j)) * sgn(signs_of7(99), j + 4)) << j;
    EXPECT_EQ(y[size_t(224 + 16 + j)], db * float(byte_of(g[1], j)) * sgn(signs_of7(42), j)) << j;
    EXPECT_EQ(y[size_t(224 + 20 + j)], db * float(byte_of(g[0], j)) * sgn(signs_of7(42), j + 4)) << j;
  }
}

TEST(IQuant, Iq3SHandBuiltBlock) {
  const uint32_t g1 = 0x01010103, g300 = 0x07030503, g511 = 0x0f0f0101;  // iq3s_grid[1, 300, 511]
  std::vector<uint8_t> b(110);
  put16(b, 0, 0x3800);  // d = 0.5
  // sub-block 5 (odd: high nibble of scales[2]), group 3: indices 6 and 7 of the sub-block
  b[2 + 40 + 6] = uint8_t(300 & 255), b[2 + 40 + 7] = uint8_t(511 & 255);
  b[66 + 5] = 0xc0;                     // qh[5]: bit 6 and bit 7 set (the 9th index bits)
  b[74 + 20 + 3] = 0x3c;                // signs[4*5 + 3]
  b[106 + 2] = 0x70;                    // scales[2]: sub-block 4 → 0, sub-block 5 → 7
  b[2 + 40 + 0] = 1;                    // group 0, first index 1, no 9th bit
  const auto y = dequant(Format::IQ3_S, b);
  const float db = 0.5f * float(1 + 2 * 7);
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(y[size_t(160 + 24 + j)], db * float(byte_of(g300, j)) * sgn(0x3c, j)) << j;
    EXPECT_EQ(y[size_t(160 + 28 + j)], db * float(byte_of(g511, j)) * sgn(0x3c, j + 4)) << j;
    EXPECT_EQ(y[size_t(160 + j)], db * float(byte_of(g1, j))) << j;
  }
  EXPECT_EQ(y[128], 0.5f * 1 * 1);  // sub-block 4: scale 0 → d · 1, grid[0] = 1s
}

// An IQ1_S block by hand: iq1s_grid[0], [1], [700], [2047] (ggml-common.h; bytes 0xff = -1,
// 0, 1) in sub-block 0 with scale 5 and delta +1/8, sub-block 1 with delta -1/8.
TEST(IQuant, Iq1SHandBuiltBlock) {
  const uint64_t g[4] = {0xffffffffffffffff, 0xffffffffffffff01, 0x00ff00ff0000ff00, 0x0101010101010101};
  const int idx[4] = {0, 1, 700, 2047};
  std::vector<uint8_t> b(50);
  put16(b, 0, 0x3800);  // d = 0.5
  uint16_t qh = 5 << 12;
  for (int l = 0; l < 4; ++l) b[size_t(2 + l)] = uint8_t(idx[l]), qh = uint16_t(qh | (idx[l] >> 8) << 3 * l);
  put16(b, 34, qh);
  put16(b, 36, 0x8000);  // sub-block 1: grid[0] everywhere, scale 0, delta -1/8
  const auto y = dequant(Format::IQ1_S, b);
  auto val = [](uint64_t e, int j) { return float(int8_t(e >> 8 * j & 0xff)); };
  for (int l = 0; l < 4; ++l)
    for (int j = 0; j < 8; ++j) EXPECT_EQ(y[size_t(8 * l + j)], 0.5f * 11 * (val(g[l], j) + 0.125f)) << l << ' ' << j;
  for (size_t i = 32; i < 64; ++i) EXPECT_EQ(y[i], 0.5f * (-1 - 0.125f)) << i;
  for (size_t i = 64; i < 256; ++i) EXPECT_EQ(y[i], 0.5f * (-1 + 0.125f)) << i;
}

// An IQ1_M block by hand: d = 2 from the scale words' top nibbles, groups of sub-block 1 with
// their own delta signs and 3-bit scales 3 (groups 0-1) and 6 (groups 2-3).
TEST(IQuant, Iq1MHandBuiltBlock) {
  const uint64_t g[4] = {0x0101010101010101, 0xffffffffff00ff00, 0x01ff00ff00ffff00, 0xffffffffffffff01};
  const int idx[4] = {2047, 5, 1500, 1};
  const bool neg[4] = {false, true, true, false};
  std::vector<uint8_t> b(56);
  for (int l = 0; l < 4; ++l) {
    b[size_t(4 + l)] = uint8_t(idx[l]);
    b[size_t(34 + l / 2)] = uint8_t(b[size_t(34 + l / 2)] | ((idx[l] >> 8) | (neg[l] ? 8 : 0)) << 4 * (l % 2));
  }
  put16(b, 48, uint16_t((3 | 6 << 3) << 6));  // sc[0]: sub-block 1's scales at bits 6 and 9
  lmq::test::set_block_d(Format::IQ1_M, b.data(), 0x4000);  // d = 2
  const auto y = dequant(Format::IQ1_M, b);
  auto val = [](uint64_t e, int j) { return float(int8_t(e >> 8 * j & 0xff)); };
  for (int l = 0; l < 4; ++l)
    for (int j = 0; j < 8; ++j) {
      const float dl = 2.f * float(l < 2 ? 7 : 13), delta = neg[l] ? -0.125f : 0.125f;
      EXPECT_EQ(y[size_t(32 + 8 * l + j)], dl * (val(g[l], j) + delta)) << l << ' ' << j;
    }
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(y[i], 2.f * (-1 + 0.125f)) << i;  // all-zero bytes: grid[0], scale 0
}

// Pseudo-random bytes (every index, sign and scale field at random) with the f16 scale of each
// block set to 0x2e66: lmq's values hash to what llama.cpp's own dequantizers gave
// (scripts/iquant-ref.c, libggml-base of llama.cpp b4748).
TEST(IQuant, RandomBlocksMatchLlamaCpp) {
  const std::pair<Format, uint64_t> want[] = {
      {Format::IQ4_NL, 0xc236eaef1a805845}, {Format::IQ4_XS, 0xce6414a21316dbf5},
      {Format::IQ2_XXS, 0x55e5c3e95099451b}, {Format::IQ2_XS, 0x534d17028e93f906},
      {Format::IQ2_S, 0x531f7b1990736680}, {Format::IQ3_XXS, 0x6ed1b8d9c6580c01},
      {Format::IQ3_S, 0x226ef160a8376e92}, {Format::IQ1_S, 0x6163f7aea4061390},
      {Format::IQ1_M, 0x3558ad0b06dfbbaf}};
  for (int t = 0; t < 9; ++t) {
    const Format f = want[t].first;
    const size_t bb = ggml_block_bytes(f);
    std::vector<uint8_t> q(4 * bb);
    uint64_t x = 0x9e3779b97f4a7c15ull + uint64_t(t);
    for (uint8_t& c : q) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      c = uint8_t(x >> 56);
    }
    for (size_t b = 0; b < 4; ++b) lmq::test::set_block_d(f, q.data() + b * bb, 0x2e66);
    const auto y = dequant(f, q);
    EXPECT_EQ(fnv(kFnvSeed, y.data(), y.size()), want[t].second) << format_traits(f).name;
  }
}

// Every i-quant tensor of llama.cpp's own files, dequantized, in file order: the hash of
// llama.cpp's dequantization of the same tensors (scripts/iquant-ref.c).
TEST(IQuant, LlamaCppFilesDequantizeAsLlamaCpp) {
  const std::pair<const char*, uint64_t> files[] = {{"lmq-llama3-9m-IQ2_XS.gguf", 0x0c77b0c8f04767d1},
                                                    {"lmq-llama3-9m-IQ3_S.gguf", 0x9f2ccfc1e4c2646f},
                                                    {"lmq-llama3-9m-IQ4_XS.gguf", 0x9eaab552c34b3066}};
  for (const auto& [name, hash] : files) {
    const std::string p = shared_path(std::string("gguf/") + name);
    if (!std::filesystem::exists(p)) GTEST_SKIP() << p << " missing";
    GgufFile f(p);
    uint64_t h = kFnvSeed;
    int n = 0;
    for (const Tensor& t : f.tensors()) {
      if (!format_traits(t.format).name.starts_with("iq")) continue;
      std::vector<float> y(size_t(t.numel()));
      dequantize_rows(t, 0, t.rows(), y.data());
      h = fnv(h, y.data(), y.size());
      ++n;
    }
    EXPECT_EQ(n, 36) << name;
    EXPECT_EQ(h, hash) << name;
  }
}

namespace {
uint64_t fnv_bytes(const std::vector<uint8_t>& b) {
  uint64_t h = kFnvSeed;
  for (uint8_t c : b) h = (h ^ c) * 1099511628211ull;
  return h;
}
// scripts/iquant-ref.c's quant_input(): 4 rows of 512, a run of zeros, an outlier per row, and a
// per-column importance (its first 512 values: llama-quantize uses one imatrix row for all rows).
constexpr int kRows = 4, kCols = 512;
void quant_input(std::vector<float>& x, std::vector<float>& imp) {
  x.resize(kRows * kCols), imp.resize(kRows * kCols);
  uint64_t r = 12345;
  for (int i = 0; i < kRows * kCols; ++i) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    const int32_t u = int32_t(r >> 40) - (1 << 23);
    x[size_t(i)] = float(u) * 0x1p-23f * float(1 + i / kCols) * 0.03125f;
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    imp[size_t(i)] = 0.01f + float(r >> 40) * 0x1p-24f;
  }
  for (int i = 0; i < 64; ++i) x[size_t(kCols + 64 + i)] = 0;
  for (int row = 0; row < kRows; ++row) x[size_t(row * kCols + 37 * (row + 1))] = 0.75f * float(row + 1);
}
}  // namespace

// lmq's IQ4_NL / IQ4_XS bytes are llama.cpp's (ggml_quantize_chunk, scripts/iquant-ref.c).
TEST(IQuant, Iq4WritersMatchLlamaCppBytes) {
  std::vector<float> x, imp;
  quant_input(x, imp);
  const struct { Format f; bool weighted; uint64_t hash; } cases[] = {
      {Format::IQ4_NL, false, 0xd5209e3bd7ce1daa}, {Format::IQ4_NL, true, 0x1fc7ef4b0c0ab00f},
      {Format::IQ4_XS, false, 0x14a89f4ae0a3f3ec}, {Format::IQ4_XS, true, 0xd251e9118b6fa3de}};
  for (const auto& c : cases) {
    const uint64_t rb = ggml_row_bytes(c.f, kCols);
    std::vector<uint8_t> q(size_t(rb * kRows));
    for (int r = 0; r < kRows; ++r)
      ggml_quantize_row(c.f, x.data() + r * kCols, q.data() + r * rb, kCols, c.weighted ? imp.data() : nullptr);
    EXPECT_EQ(fnv_bytes(q), c.hash) << format_traits(c.f).name << (c.weighted ? " with importance" : "");
    // and what was written dequantizes close to the input
    std::vector<float> y(size_t(kRows * kCols));
    for (int r = 0; r < kRows; ++r) ggml_dequantize_row(c.f, q.data() + r * rb, y.data() + r * kCols, kCols);
    double se = 0, sx = 0;
    for (size_t i = 0; i < y.size(); ++i) se += double(y[i] - x[i]) * (y[i] - x[i]), sx += double(x[i]) * x[i];
    EXPECT_LT(se / sx, 0.02) << format_traits(c.f).name;  // uniform values on 16 levels: ~1.4% measured
    // a sub-block of zeros gets scale 0 (the levels have no 0: only the scale gives zeros)
    for (int j = 96; j < 128; ++j) EXPECT_EQ(y[size_t(kCols + j)], 0.f) << format_traits(c.f).name << ' ' << j;
  }
}

// An importance that is zero over a whole sub-block (llama.cpp would divide 0 by 0 there and
// store a NaN scale) falls back to the unweighted fit: finite scales, same bytes as no importance.
TEST(IQuant, Iq4ZeroImportanceFallsBackToThePlainFit) {
  std::vector<float> x, imp;
  quant_input(x, imp);
  std::vector<float> zero(kCols, 0.f);
  for (Format f : {Format::IQ4_NL, Format::IQ4_XS}) {
    const uint64_t rb = ggml_row_bytes(f, kCols);
    std::vector<uint8_t> a(rb), b(rb);
    ggml_quantize_row(f, x.data(), a.data(), kCols, nullptr);
    ggml_quantize_row(f, x.data(), b.data(), kCols, zero.data());
    EXPECT_EQ(a, b) << format_traits(f).name;
  }
}

// A NaN or Inf block scale gives NaN/Inf values (defined float arithmetic, no trap); the bytes
// that reach the furthest into the tables (all ones) stay inside them (ASan/UBSan builds run this).
TEST(BadInputIQuant, NonFiniteScalesAndExtremeBytes) {
  for (Format f : {Format::IQ4_NL, Format::IQ4_XS, Format::IQ2_XXS, Format::IQ2_XS, Format::IQ2_S, Format::IQ3_XXS,
                   Format::IQ3_S, Format::IQ1_S, Format::IQ1_M}) {
    std::vector<uint8_t> b(ggml_block_bytes(f), 0xff);
    lmq::test::set_block_d(f, b.data(), 0x3c00);
    for (float v : dequant(f, b)) EXPECT_TRUE(std::isfinite(v)) << format_traits(f).name;
    for (uint16_t d : {uint16_t(0x7e00), uint16_t(0x7c00)}) {  // NaN, +Inf
      lmq::test::set_block_d(f, b.data(), d);
      bool any_bad = false;
      for (float v : dequant(f, b)) any_bad = any_bad || !std::isfinite(v);
      EXPECT_TRUE(any_bad) << format_traits(f).name;
    }
    EXPECT_THROW(ggml_dequantize_row(f, b.data(), nullptr, ggml_block_size(f) / 2), Error);  // not a whole block
  }
}

// A llama.cpp IQ4_XS file with one block's scale turned into NaN: loading it for the integer
// kernels (the GGUF default) refuses the tensor, running it on the float path stops at the
// forward pass's check of the logits (expect_nan_scale_refused), and quantizing it names the
// non-finite weight; none writes made-up figures.
TEST(BadInputIQuant, NanScaleInARealFileIsAnError) {
  std::string bad;
  lmq::test::expect_nan_scale_refused("lmq-llama3-9m-IQ4_XS.gguf", Format::IQ4_XS, &bad);
  if (bad.empty()) return;  // skipped (no shared file) or failed before writing it
  const std::string out = lmq::test::temp_dir() + "/q.lmq";
  auto q = lmq::test::run_lmq({"quantize", bad, "-o", out, "--scheme", "int4:g128:asym"});
  EXPECT_EQ(q.exit_code, 1) << q.out;
  EXPECT_NE(q.err.find("tensor 'blk.0.attn_q.weight': a non-finite (NaN/Inf) scale in 1 block(s)"), std::string::npos)
      << q.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

// `lmq quantize --format gguf --scheme iq4_xs|iq4_nl`: the decoder linears in that type (the
// tied embedding at Q6_K by lmq's recipe), each tensor's bytes what the codec writes for the
// model's weights, and the file runs (byte equality with llama-quantize --pure:
// scripts/check-llamacpp-iquant.sh, outside CI).
TEST(IQuant, QuantizeWritesIq4Gguf) {
  const std::string model = shared_path("models/lmq-llama3-9m");
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " missing";
  const std::string dir = lmq::test::temp_dir();
  for (const char* scheme : {"iq4_nl", "iq4_xs"}) {
    const std::string out = dir + "/" + scheme + ".gguf";
    auto q = lmq::test::run_lmq({"quantize", model, "-o", out, "--format", "gguf", "--scheme", scheme});
    ASSERT_EQ(q.exit_code, 0) << q.err;
    const Format f = *format_by_name(scheme);
    GgufFile g(out);
    EXPECT_EQ(g.get_u32("general.file_type"), f == Format::IQ4_NL ? 25u : 30u);  // LLAMA_FTYPE_MOSTLY_IQ4_*
    int n = 0;
    for (const Tensor& t : g.tensors()) n += t.format == f;
    // q k v o gate up down of 6 layers (llama.cpp's own recipe for these ftypes moves attn_v to
    // Q5_K when n_gqa >= 4, as here: at least the other six)
    EXPECT_GE(n, 6 * 6) << scheme;
    auto e = lmq::test::run_lmq({"eval", out, "--text", shared_path("text/docs-valid.txt"), "--windows", "2", "--json"});
    ASSERT_EQ(e.exit_code, 0) << e.err;
  }
}

TEST(BadInputIQuant, TypesLmqDoesNotWriteAreRefused) {
  const std::string model = shared_path("models/lmq-llama3-9m");
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " missing";
  const std::string dir = lmq::test::temp_dir();
  // a ggml type lmq does not implement (the ternary TQ1_0; as a --scheme, BadInputGgufScheme)
  // in an override: one clear line, no file
  auto r = lmq::test::run_lmq(
      {"quantize", model, "-o", dir + "/b.gguf", "--format", "gguf", "--scheme", "q8_0", "--override", "ffn_down=tq1_0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'tq1_0' is not a ggml type lmq writes"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/b.gguf"));
}
