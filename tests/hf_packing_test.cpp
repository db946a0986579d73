// Tests of the GPTQ / AWQ / compressed-tensors packing (codecs/hf_packing.h): known words taken
// from the formats' descriptions, a reference unpacker written field by field from those
// descriptions (AutoGPTQ's 3-bit word split included), and round trips of random codes.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <vector>

#include "lmq/codecs/hf_packing.h"
#include "lmq/error.h"

using namespace lmq;
using namespace lmq::hf;

namespace {

// GPTQ qweight value (o, i) as AutoGPTQ's pack describes it: for 2/4/8 bits, 32/b fields per
// word, field j at bits j·b; for 3 bits, each 32 inputs take three words: inputs 0..9 at bits
// 3j of word 0, input 10 split (low 2 bits at 30..31 of word 0, high bit at bit 0 of word 1),
// inputs 11..20 at 3(j−11)+1 of word 1, input 21 split (low bit at 31 of word 1, high 2 bits at
// 0..1 of word 2), inputs 22..31 at 3(j−22)+2 of word 2.
uint32_t gptq_ref_field(const int32_t* q, int64_t out, int64_t o, int64_t i, int bits) {
  auto word = [&](int64_t w) { return uint32_t(q[w * out + o]); };
  if (bits != 3) {
    const int64_t per = 32 / bits;
    return (word(i / per) >> ((i % per) * bits)) & ((1u << bits) - 1);
  }
  const int64_t base = i / 32 * 3, j = i % 32;
  if (j < 10) return (word(base) >> (3 * j)) & 7;
  if (j == 10) return (word(base) >> 30) | ((word(base + 1) & 1) << 2);
  if (j < 21) return (word(base + 1) >> (3 * (j - 11) + 1)) & 7;
  if (j == 21) return (word(base + 1) >> 31) | ((word(base + 2) & 3) << 1);
  return (word(base + 2) >> (3 * (j - 22) + 2)) & 7;
}

std::vector<uint8_t> random_codes(int64_t n, int bits) {
  std::vector<uint8_t> c(static_cast<size_t>(n));
  for (auto& v : c) v = uint8_t(*rc::gen::inRange(0, 1 << bits));
  return c;
}
std::vector<int32_t> random_zeros(int64_t n, int lo, int hi) {
  std::vector<int32_t> z(static_cast<size_t>(n));
  for (auto& v : z) v = *rc::gen::inRange(lo, hi);
  return z;
}

}  // namespace

TEST(HfPacking, KnownWords) {
  // GPTQ 4-bit: inputs 0..7 of one output with codes 0..7 are one word, input 0 lowest.
  const std::vector<uint8_t> c = {0, 1, 2, 3, 4, 5, 6, 7};
  EXPECT_EQ(uint32_t(gptq_pack_qweight(c.data(), 1, 8, 4)[0]), 0x76543210u);
  // AWQ: outputs 0..7 with codes 0..7 in nibble order {0,2,4,6,1,3,5,7}.
  EXPECT_EQ(uint32_t(awq_pack_qweight(c.data(), 8, 1)[0]), 0x75316420u);
  // GPTQ v1 symmetric 4-bit zero points (8) are stored as 7: the familiar 0x77777777.
  const std::vector<int32_t> z8(8, 8);
  EXPECT_EQ(uint32_t(gptq_pack_qzeros(z8.data(), 8, 1, 4, GptqVersion::V1, "t")[0]), 0x77777777u);
  EXPECT_EQ(uint32_t(gptq_pack_qzeros(z8.data(), 8, 1, 4, GptqVersion::V2, "t")[0]), 0x88888888u);
  // compressed-tensors 4-bit: signed −8..−1 are stored +8, i.e. the unsigned codes 0..7.
  EXPECT_EQ(uint32_t(ct_pack_weight(c.data(), 1, 8, 4)[0]), 0x76543210u);
  // int8 int-quantized: two's complement of u − 128.
  const std::vector<uint8_t> u8 = {0, 127, 128, 255};
  std::vector<int8_t> q(4);
  ct_codes_to_int8(u8.data(), 4, q.data());
  EXPECT_EQ(q, (std::vector<int8_t>{-128, -1, 0, 127}));
}

TEST(HfPacking, Gptq3BitStraddlesWords) {
  // Input 10 of a 3-bit column: code 0b101 puts 01 at bits 30..31 of word 0 and 1 at bit 0 of word 1.
  std::vector<uint8_t> c(32, 0);
  c[10] = 5;
  c[21] = 6;  // 0b110: low bit 0 at bit 31 of word 1, high bits 11 at bits 0..1 of word 2
  const auto q = gptq_pack_qweight(c.data(), 1, 32, 3);
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(uint32_t(q[0]), 1u << 30);
  EXPECT_EQ(uint32_t(q[1]), 1u);
  EXPECT_EQ(uint32_t(q[2]), 3u);
}

RC_GTEST_PROP(HfPacking, GptqMatchesReferenceAndRoundTrips, ()) {
  const int bits = *rc::gen::element(2, 3, 4, 8);
  const int64_t in = 32 * *rc::gen::inRange(1, 5), out = 32 * *rc::gen::inRange(1, 3);
  const int64_t groups = *rc::gen::inRange(1, 4);
  const auto codes = random_codes(out * in, bits);
  const auto qw = gptq_pack_qweight(codes.data(), out, in, bits);
  const auto sh = gptq_shapes(out, in, bits, groups, "t");
  RC_ASSERT(int64_t(qw.size()) == sh.qweight[0] * sh.qweight[1]);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) RC_ASSERT(gptq_ref_field(qw.data(), out, o, i, bits) == codes[o * in + i]);
  std::vector<uint8_t> back(codes.size());
  gptq_unpack_qweight(qw.data(), out, in, bits, back.data());
  RC_ASSERT(back == codes);

  // Zero points: v2 raw over the whole code range, v1 from 1 up.
  const auto v2 = random_zeros(out * groups, 0, 1 << bits);
  const auto qz = gptq_pack_qzeros(v2.data(), out, groups, bits, GptqVersion::V2, "t");
  RC_ASSERT(int64_t(qz.size()) == sh.qzeros[0] * sh.qzeros[1]);
  // qzeros row g is packed like a qweight column, so the reference reads it transposed: (g, o).
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t o = 0; o < out; ++o) {
      const auto* row = qz.data() + g * (out * bits / 32);
      RC_ASSERT(int32_t(gptq_ref_field(row, 1, 0, o, bits)) == v2[o * groups + g]);
    }
  std::vector<int32_t> zb(v2.size());
  gptq_unpack_qzeros(qz.data(), out, groups, bits, GptqVersion::V2, zb.data());
  RC_ASSERT(zb == v2);
  const auto v1 = random_zeros(out * groups, 1, 1 << bits);
  const auto qz1 = gptq_pack_qzeros(v1.data(), out, groups, bits, GptqVersion::V1, "t");
  gptq_unpack_qzeros(qz1.data(), out, groups, bits, GptqVersion::V1, zb.data());
  RC_ASSERT(zb == v1);
}

RC_GTEST_PROP(HfPacking, AwqMatchesReferenceAndRoundTrips, ()) {
  const int64_t in = *rc::gen::inRange(1, 70), out = 8 * *rc::gen::inRange(1, 6);
  const int64_t groups = *rc::gen::inRange(1, 4);
  const auto codes = random_codes(out * in, 4);
  const auto qw = awq_pack_qweight(codes.data(), out, in);
  RC_ASSERT(int64_t(qw.size()) == in * out / 8);
  const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  for (int64_t i = 0; i < in; ++i)
    for (int64_t w = 0; w < out / 8; ++w)
      for (int j = 0; j < 8; ++j) {
        const uint32_t field = (uint32_t(qw[i * (out / 8) + w]) >> (4 * j)) & 15;
        RC_ASSERT(field == codes[(8 * w + order[j]) * in + i]);
      }
  std::vector<uint8_t> back(codes.size());
  awq_unpack_qweight(qw.data(), out, in, back.data());
  RC_ASSERT(back == codes);
  const auto z = random_zeros(out * groups, 0, 16);
  const auto qz = awq_pack_qzeros(z.data(), out, groups);
  std::vector<int32_t> zb(z.size());
  awq_unpack_qzeros(qz.data(), out, groups, zb.data());
  RC_ASSERT(zb == z);
  for (int64_t g = 0; g < groups; ++g)
    RC_ASSERT(int32_t(uint32_t(qz[g * (out / 8)]) & 15) == z[0 * groups + g]);  // nibble 0 = output 0
}

RC_GTEST_PROP(HfPacking, CompressedTensorsMatchesReferenceAndRoundTrips, ()) {
  const int bits = *rc::gen::element(2, 4, 8);
  const int64_t in = *rc::gen::inRange(1, 100), out = *rc::gen::inRange(1, 40);  // odd shapes: padded words
  const int64_t groups = *rc::gen::inRange(1, 4);
  const auto codes = random_codes(out * in, bits);
  const auto p = ct_pack_weight(codes.data(), out, in, bits);
  const int64_t per = 32 / bits, words = (in + per - 1) / per;
  RC_ASSERT(int64_t(p.size()) == out * words);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      const uint32_t field = (uint32_t(p[o * words + i / per]) >> ((i % per) * bits)) & ((1u << bits) - 1);
      RC_ASSERT(field == codes[o * in + i]);
    }
  if (in % per) {  // the tail of each row's last word is zero padding
    const uint32_t tail = uint32_t(p[words - 1]) >> ((in % per) * bits);
    RC_ASSERT(tail == 0u);
  }
  std::vector<uint8_t> back(codes.size());
  ct_unpack_weight(p.data(), out, in, bits, back.data());
  RC_ASSERT(back == codes);

  const auto z = random_zeros(out * groups, 0, 1 << bits);
  const auto pz = ct_pack_zero_point(z.data(), out, groups, bits);
  const int64_t zwords = (out + per - 1) / per;
  RC_ASSERT(int64_t(pz.size()) == zwords * groups);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      const uint32_t field = (uint32_t(pz[(o / per) * groups + g]) >> ((o % per) * bits)) & ((1u << bits) - 1);
      RC_ASSERT(int32_t(field) == z[o * groups + g]);
    }
  std::vector<int32_t> zb(z.size());
  ct_unpack_zero_point(pz.data(), out, groups, bits, zb.data());
  RC_ASSERT(zb == z);

  std::vector<int8_t> q(codes.size());
  std::vector<uint8_t> u8(codes.size());
  ct_codes_to_int8(codes.data(), int64_t(codes.size()), q.data());
  ct_int8_to_codes(q.data(), int64_t(q.size()), u8.data());
  RC_ASSERT(u8 == codes);
}

TEST(HfPacking, ShapesAndZeroPointsRefused) {
  EXPECT_THROW(gptq_shapes(64, 64, 5, 1, "t"), Error);
  EXPECT_THROW(gptq_shapes(64, 48, 3, 1, "t"), Error);  // 48·3 not a multiple of 32
  EXPECT_THROW(gptq_shapes(4, 64, 4, 1, "t"), Error);   // 4 outputs·4 bits
  EXPECT_NO_THROW(gptq_shapes(32, 32, 3, 1, "t"));
  EXPECT_THROW(awq_check(64, 3, "t"), Error);
  EXPECT_THROW(awq_check(12, 4, "t"), Error);
  const std::vector<int32_t> z(8, 0);
  EXPECT_THROW(gptq_pack_qzeros(z.data(), 8, 1, 4, GptqVersion::V1, "t"), Error);
  // v1 stored 15 reads back as 16, which the caller must refuse as outside the 4-bit range.
  const std::vector<int32_t> all15 = {int32_t(0xffffffffu)};
  std::vector<int32_t> zb(8);
  gptq_unpack_qzeros(all15.data(), 8, 1, 4, GptqVersion::V1, zb.data());
  EXPECT_EQ(zb[3], 16);
}

TEST(HfPacking, ActOrderPermutation) {
  // Monotone g_idx (i / 2) needs no permutation.
  const std::vector<int32_t> mono = {0, 0, 1, 1, 2, 2};
  EXPECT_TRUE(act_order_perm(mono.data(), 6, 2, "t").empty());
  EXPECT_TRUE(act_order_perm(std::vector<int32_t>(6, 0).data(), 6, -1, "t").empty());
  // desc_act: groups in the order the columns were quantized; sorted stably by group.
  const std::vector<int32_t> g = {2, 0, 1, 0, 2, 1};
  const auto perm = act_order_perm(g.data(), 6, 2, "t");
  EXPECT_EQ(perm, (std::vector<int32_t>{1, 3, 2, 5, 0, 4}));
  const std::vector<uint8_t> m = {10, 11, 12, 13, 14, 15};
  std::vector<uint8_t> pm(6);
  permute_columns(m.data(), 1, 6, perm.data(), pm.data());
  EXPECT_EQ(pm, (std::vector<uint8_t>{11, 13, 12, 15, 10, 14}));
  // Uneven groups cannot be laid out as lmq's consecutive groups.
  const std::vector<int32_t> uneven = {0, 0, 0, 1, 1, 2};
  EXPECT_THROW(act_order_perm(uneven.data(), 6, 2, "t"), Error);
  EXPECT_THROW(check_g_idx(g.data(), 6, 2, "t"), Error);
  EXPECT_NO_THROW(check_g_idx(g.data(), 6, 3, "t"));
  EXPECT_EQ(sequential_g_idx(5, 2), (std::vector<int32_t>{0, 0, 1, 1, 2}));
  const std::vector<float> s = {1, 2, 3, 4, 5, 6};  // [2, 3]
  EXPECT_EQ(transpose(s.data(), 2, 3), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}
