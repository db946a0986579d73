// The X16 layouts (codecs/ggml_interleave.h): Q4_0's / Q8_0's / Q4_K's / Q6_K's blocks with 16
// rows interleaved. The layouts hold the file's bytes (every block comes back as it was,
// every value dequantizes to the stored format's bits), their kernels compute exactly the stored
// format's products (kernels/ggml_matmul.h: the same sums in the same order), and a GGUF load
// interleaves the Q4_0 / Q8_0 / Q4_K / Q6_K linears where the CPU runs them (AVX-512 VNNI) with logits
// equal to the blocks read in place, bit for bit.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ggml_matmul_check.h"
#include "int_path_check.h"
#include "lmq/codecs/ggml_interleave.h"
#include "lmq/codecs/ggml_repack.h"
#include "lmq/error.h"
#include "lmq/formats/lmq_file.h"
#include "lmq/model/model.h"
#include "test_support.h"

namespace lmq {
namespace {

using namespace lmq::test;

// The stored formats, their interleaved layouts, and the record geometry the header states: the
// block's fields in the record's order, each `count` elements of `size` bytes (2: an f16 scale,
// 1: a scale byte, 4: a word of codes) from block offset `at`, element e of row r at
// 16·size·e + size·r of the field's part of the record.
struct Field {
  int64_t at, size, count;
};
struct X16Case {
  Format stored, x16;
  int64_t values;
  size_t record;
  std::vector<Field> fields;
};
const X16Case kX16[] = {
    {Format::Q4_0, Format::Q4_0_X16, 32, sizeof(ggml::block_q4_0x16), {{0, 2, 1}, {2, 4, 4}}},
    {Format::Q8_0, Format::Q8_0_X16, 32, sizeof(ggml::block_q8_0x16), {{0, 2, 1}, {2, 4, 8}}},
    {Format::Q4_K, Format::Q4_K_X16, 256, sizeof(ggml::block_q4_kx16), {{0, 2, 2}, {4, 1, 12}, {16, 4, 32}}},
    {Format::Q6_K, Format::Q6_K_X16, 256, sizeof(ggml::block_q6_kx16), {{208, 2, 1}, {192, 1, 16}, {0, 4, 32}, {128, 4, 16}}}};

std::vector<uint8_t> interleaved(Format stored, const std::vector<uint8_t>& q, int64_t rows, int64_t cols) {
  std::vector<uint8_t> out(q.size(), 0xAB);
  EXPECT_EQ(x16_interleave(stored, q.data(), rows, cols, 0, rows / 16, out.data()), 0);
  return out;
}

// Blocks of the stored format for Gaussian rows; Q8_0's extreme codes −128 and 127 (which
// llama.cpp's quantizer never writes, a file may hold) and random scale bytes (Q4_K: all 12, so
// every 6-bit scale and min, high bits included; Q6_K: the 16 int8 scales, −128 included) in
// every third block.
std::vector<uint8_t> test_blocks(Format stored, int64_t rows, int64_t cols, uint32_t seed) {
  std::vector<uint8_t> q = gaussian_blocks(stored, rows, cols, seed);
  const size_t bb = format_traits(stored).block_bytes;
  std::mt19937 rng(seed);
  for (size_t at = 0; at < q.size(); at += 3 * bb) {
    if (stored == Format::Q8_0) q[at + 2] = 0x80, q[at + 33] = 0x7f;
    if (stored == Format::Q4_K)
      for (size_t k = 4; k < 16; ++k) q[at + k] = uint8_t(rng());
    if (stored == Format::Q6_K) {
      for (size_t k = 192; k < 208; ++k) q[at + k] = uint8_t(rng());
      q[at + 192] = 0x80;
    }
  }
  return q;
}

TEST(X16, RecordsHoldTheBlocksAsTheHeaderSays) {
  for (const X16Case& xc : kX16) {
    const int64_t rows = 48, cols = 3 * xc.values, nb = 3;
    const int64_t bb = int64_t(format_traits(xc.stored).block_bytes), rec_bytes = int64_t(xc.record);
    int64_t field_bytes = 0;
    for (const Field& f : xc.fields) field_bytes += f.size * f.count;
    EXPECT_EQ(field_bytes, bb) << "the fields cover the block";
    EXPECT_EQ(16 * bb, rec_bytes) << "the same bytes as the stored blocks";
    const std::vector<uint8_t> q = test_blocks(xc.stored, rows, cols, 7);
    const std::vector<uint8_t> x = interleaved(xc.stored, q, rows, cols);
    for (int64_t o = 0; o < rows; ++o)
      for (int64_t a = 0; a < nb; ++a) {
        const uint8_t* blk = q.data() + (o * nb + a) * bb;
        const uint8_t* rec = x.data() + ((o / 16) * nb + a) * rec_bytes;  // record a of group o / 16
        const int64_t r = o % 16;
        int64_t part = 0;  // where the field's part of the record starts
        for (const Field& f : xc.fields) {
          for (int64_t e = 0; e < f.count; ++e)
            ASSERT_EQ(std::memcmp(rec + part + 16 * f.size * e + f.size * r, blk + f.at + f.size * e, size_t(f.size)), 0)
                << o << ' ' << a << " field at " << f.at << " element " << e;
          part += 16 * f.size * f.count;
        }
        uint8_t back[256];
        format_traits(xc.x16).gather_block(x.data(), cols, o, a, back);
        ASSERT_EQ(std::memcmp(back, blk, size_t(bb)), 0) << o << ' ' << a;
      }
    // dequantized, the same floats as the stored rows (any row range)
    const Tensor tq = tensor_of(xc.stored, q, rows, cols), tx = tensor_of(xc.x16, x, rows, cols);
    std::vector<float> a(size_t(rows * cols)), b(a.size());
    dequantize_rows(tq, 0, rows, a.data());
    dequantize_rows(tx, 0, rows, b.data());
    expect_same_bits(a, b, "dequantized");
    dequantize_rows(tx, 17, 3, b.data());
    expect_same_bits(std::vector<float>(a.begin() + 17 * cols, a.begin() + 20 * cols),
                     std::vector<float>(b.begin(), b.begin() + 3 * cols), "rows 17..19");
    EXPECT_EQ(x16_layout_of(tq), xc.x16);
    EXPECT_EQ(x16_layout_of(tensor_of(xc.stored, q, 8, 2 * cols)), std::nullopt);  // 8 rows: not a group
    EXPECT_EQ(x16_layout_of(tensor_of(xc.stored, q, 16, xc.values + 16)), std::nullopt) << "cols not whole blocks";
    EXPECT_EQ(format_traits(xc.x16).row_group, 16);
    EXPECT_EQ(format_traits(xc.x16).group_of, xc.stored);
  }
  EXPECT_EQ(x16_layout_of(tensor_of(Format::Q5_K, std::vector<uint8_t>(176 * 16), 16, 256)), std::nullopt);
}

// Every kernel on the interleaved weight equals the scalar specification on the blocks it came
// from, bit for bit (the VNNI tile and the one-lane-per-row group kernel are different code for
// the same arithmetic); K not a multiple of 256 (or of 8 blocks) included for Q4_0 / Q8_0; with a
// bias; test_blocks' extreme codes and scales.
TEST(X16, KernelsEqualTheStoredFormatsSpecificationBitForBit) {
  uint32_t seed = 0;
  for (const X16Case& xc : kX16) {
    const int64_t v = xc.values;
    for (const auto& [rows, blocks] : {std::pair<int64_t, int64_t>{16, 1}, {32, 3}, {48, 9}, {16, 4096 / v + 1}}) {
      const int64_t cols = blocks * v;
      const std::vector<uint8_t> q = test_blocks(xc.stored, rows, cols, ++seed);
      const std::vector<uint8_t> x = interleaved(xc.stored, q, rows, cols);
      const Tensor tq = tensor_of(xc.stored, q, rows, cols), tx = tensor_of(xc.x16, x, rows, cols);
      std::vector<float> bias(static_cast<size_t>(rows));
      for (int64_t o = 0; o < rows; ++o) bias[size_t(o)] = 0.125f * float(o % 5) - 0.25f;
      for (int64_t T : {1, 2, 3, 4, 5, 9}) {
        const QuantizedActs xq = random_acts(T, cols, ++seed, true);
        const std::vector<float> want = product(tq, xq, IntKernel::Scalar), want_b = product(tq, xq, IntKernel::Scalar, bias.data());
        for (IntKernel k : {IntKernel::Scalar, IntKernel::Avx2, IntKernel::Avx512Vnni}) {
          if (!int_kernel_available(k)) continue;
          const std::string what = fmt::format("{} {} {}x{} T={}", format_name(xc.x16), int_kernel_name(k), rows, cols, T);
          expect_same_bits(product(tx, xq, k), want, what);
          expect_same_bits(product(tx, xq, k, bias.data()), want_b, what + " bias");
        }
      }
    }
  }
}

// Fused with other formats on one input (a thread's share may start inside a group of 16: the
// groups go to one thread each), at 1, 2 and 3 threads: one call per weight's bits.
TEST(X16, FusedJobsAndThreadCountsGiveTheSameBits) {
  const int64_t cols = 256;
  const std::vector<uint8_t> q = test_blocks(Format::Q4_0, 80, cols, 3);
  const std::vector<uint8_t> x = interleaved(Format::Q4_0, q, 80, cols);
  const std::vector<uint8_t> q8 = test_blocks(Format::Q8_0, 48, cols, 5);
  const std::vector<uint8_t> x8 = interleaved(Format::Q8_0, q8, 48, cols);
  const std::vector<uint8_t> k4 = test_blocks(Format::Q4_K, 48, cols, 4);
  const std::vector<uint8_t> xk = interleaved(Format::Q4_K, k4, 48, cols);
  const std::vector<uint8_t> k6 = test_blocks(Format::Q6_K, 32, cols, 6);
  const std::vector<uint8_t> x6 = interleaved(Format::Q6_K, k6, 32, cols);
  const std::vector<Tensor> w = {tensor_of(Format::Q4_K, k4, 12, cols),    tensor_of(Format::Q4_0_X16, x, 80, cols),
                                 tensor_of(Format::Q8_0_X16, x8, 48, cols), tensor_of(Format::Q4_K_X16, xk, 48, cols),
                                 tensor_of(Format::Q6_K_X16, x6, 32, cols), tensor_of(Format::Q4_0, q, 36, cols)};
  for (int64_t T : {1, 6}) expect_fused_equals_single(w, random_acts(T, cols, 11 + uint32_t(T)));
}

TEST(BadInputX16, ShapesTheKernelsCannotTakeAreRefused) {
  for (const X16Case& xc : kX16) {
    const std::vector<uint8_t> q = gaussian_blocks(xc.stored, 16, 2 * xc.values, 1);
    const Tensor t = tensor_of(xc.x16, q, 8, 4 * xc.values);  // 8 rows: not whole groups of 16
    EXPECT_FALSE(ggml_matmul_supported(t, 32));
    const QuantizedActs xq = random_acts(1, 4 * xc.values, 2);
    std::vector<float> y(8);
    EXPECT_THROW(ggml_matmul_q(t, xq, y.data()), Error);
  }
}

// A NaN/Inf d (Q4_K: or dmin) in any of a record's 16 rows is counted (the loader refuses the tensor).
TEST(BadInputX16, NonFiniteScalesAreCounted) {
  for (const X16Case& xc : kX16) {
    std::vector<uint8_t> q = gaussian_blocks(xc.stored, 32, 2 * xc.values, 9);
    const int64_t bb = int64_t(format_traits(xc.stored).block_bytes), d = xc.fields[0].at;  // d: the first field
    const uint16_t nan = 0x7e00, inf = 0x7c00;
    std::memcpy(q.data() + 17 * 2 * bb + bb + d, &nan, 2);  // row 17, block 1
    std::memcpy(q.data() + 3 * 2 * bb + d, &inf, 2);         // row 3, block 0
    const bool dmin = xc.fields[0].count == 2;
    if (dmin) std::memcpy(q.data() + 30 * 2 * bb + d + 2, &nan, 2);  // row 30, block 0
    const int64_t want = 2 + dmin;
    std::vector<uint8_t> out(q.size());
    EXPECT_EQ(x16_interleave(xc.stored, q.data(), 32, 2 * xc.values, 0, 2, out.data()), want) << format_name(xc.x16);
    EXPECT_EQ(ggml_nonfinite_blocks(xc.x16, out.data(), 32 * 2), want) << format_name(xc.x16);
  }
}

// An in-memory layout: an lmq file naming it is refused by name.
TEST(BadInputX16, AnLmqFileNamingItIsRefused) {
  const std::string p = temp_dir() + "/x16.lmq";
  const std::vector<uint8_t> q = gaussian_blocks(Format::Q4_0, 16, 32, 1);
  LmqFileWriter w(p, "{}", "tok", {}, {LmqTensorSpec{"w", {16, 32}, Format::Q4_0_X16, {}, "", q.size()}});
  w.write_tensor("w", q.data(), q.size());
  w.commit();
  try {
    read_lmq_file(p);
    ADD_FAILURE() << "read an lmq file with a q4_0x16 tensor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p + ": tensor format 'q4_0x16' is an in-memory layout, never stored"),
              std::string::npos)
        << e.what();
  }
}

// GGUF files loaded as the CPU chooses: where VNNI is, every Q4_0 / Q8_0 / Q4_K / Q6_K linear of
// whole groups of 16 rows is its X16 layout (the embedding, whose rows are looked up,
// stays as stored), the file's pages of those released; its tensors dequantize to the file's
// floats and its logits equal the in-place load's bit for bit.
TEST(X16, GgufLoadInterleavesLinearsWithTheSameLogits) {
  if (!ggml_matmul_takes_x16()) GTEST_SKIP() << "no AVX-512 VNNI: the blocks stay as stored here";
  for (const char* name : {"lmq-llama-25m-Q4_0.gguf", "lmq-llama-25m-Q8_0.gguf", "lmq-llama3-9m-Q4_K_M.gguf"}) {
    const std::string p = shared_path(std::string("gguf/") + name);
    if (!std::filesystem::exists(p)) GTEST_SKIP() << "missing " << p;
    const auto chosen = Model::load(p), in_place = Model::load(p, LoadOptions{.ggml_in_place = true});
    int x16 = 0;
    for (const Tensor& t : in_place->tensors()) {
      const Tensor& c = *chosen->find(t.name);
      const std::optional<Format> layout = x16_layout_of(t);
      EXPECT_EQ(c.format, layout && t.name != "model.embed_tokens.weight" ? *layout : t.format) << name << ' ' << t.name;
      if (c.format == t.format) continue;
      ++x16;
      std::vector<float> a(size_t(t.numel())), b(a.size());
      dequantize_rows(t, 0, t.rows(), a.data());
      dequantize_rows(c, 0, c.rows(), b.data());
      expect_same_bits(a, b, t.name);
    }
    // lmq-llama-25m: every linear of its 8 blocks; lmq-llama3-9m Q4_K_M: its Q4_K and Q6_K linears
    EXPECT_GE(x16, std::string(name).find("Q4_K") != std::string::npos ? 10 : 56) << name;
    const std::vector<int> ids = int_path_text_ids(*in_place);
    const RunOptions ro{.act_quant_from_model = true};
    expect_same_bits(int_path_logits(*chosen, ids, ro), int_path_logits(*in_place, ids, ro), p + " logits");
  }
}

}  // namespace
}  // namespace lmq
