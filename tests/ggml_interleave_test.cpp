// Q4_0_X16 (codecs/ggml_interleave.h): Q4_0's blocks with 16 rows interleaved. The layout holds
// the file's bytes (every block comes back as it was, every value dequantizes to Q4_0's bits),
// its kernels compute exactly Q4_0's products (kernels/ggml_matmul.h: the same sums in the same
// order), and a GGUF load interleaves the Q4_0 linears where the CPU runs them (AVX-512 VNNI) with
// logits equal to the blocks read in place, bit for bit.
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ggml_matmul_check.h"
#include "int_path_check.h"
#include "lmq/codecs/ggml_interleave.h"
#include "lmq/error.h"
#include "lmq/formats/lmq_file.h"
#include "lmq/model/model.h"
#include "test_support.h"

namespace lmq {
namespace {

using namespace lmq::test;

std::vector<uint8_t> interleaved(const std::vector<uint8_t>& q40, int64_t rows, int64_t cols) {
  std::vector<uint8_t> out(q40.size(), 0xAB);
  EXPECT_EQ(q4_0x16_interleave(q40.data(), rows, cols, 0, rows / 16, out.data()), 0);
  return out;
}

TEST(Q4_0X16, RecordsHoldTheBlocksAsTheHeaderSays) {
  const int64_t rows = 48, cols = 96, nb = cols / 32;
  const std::vector<uint8_t> q = gaussian_blocks(Format::Q4_0, rows, cols, 7);
  const std::vector<uint8_t> x = interleaved(q, rows, cols);
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t a = 0; a < nb; ++a) {
      const uint8_t* blk = q.data() + (o * nb + a) * 18;
      const uint8_t* rec = x.data() + ((o / 16) * nb + a) * 288;  // record a of group o / 16
      const int64_t r = o % 16;
      ASSERT_EQ(std::memcmp(rec + 2 * r, blk, 2), 0) << o << ' ' << a;  // d[r]
      for (int64_t c = 0; c < 4; ++c)
        for (int64_t m = 0; m < 4; ++m) ASSERT_EQ(rec[32 + 64 * c + 4 * r + m], blk[2 + 4 * c + m]) << o << ' ' << a;
      uint8_t back[18];
      q4_0x16_block(x.data(), cols, o, a, back);
      ASSERT_EQ(std::memcmp(back, blk, 18), 0) << o << ' ' << a;
    }
  // dequantized, the same floats as the Q4_0 rows (any row range)
  const Tensor tq = tensor_of(Format::Q4_0, q, rows, cols), tx = tensor_of(Format::Q4_0_X16, x, rows, cols);
  std::vector<float> a(size_t(rows * cols)), b(a.size());
  dequantize_rows(tq, 0, rows, a.data());
  dequantize_rows(tx, 0, rows, b.data());
  expect_same_bits(a, b, "dequantized");
  dequantize_rows(tx, 17, 3, b.data());
  expect_same_bits(std::vector<float>(a.begin() + 17 * cols, a.begin() + 20 * cols),
                   std::vector<float>(b.begin(), b.begin() + 3 * cols), "rows 17..19");
  EXPECT_TRUE(q4_0x16_eligible(tq));
  EXPECT_FALSE(q4_0x16_eligible(tensor_of(Format::Q4_0, q, 8, 2 * cols)));  // 8 rows: not a group
  EXPECT_EQ(format_traits(Format::Q4_0_X16).row_group, 16);
}

// Every kernel on the interleaved weight equals the scalar specification on the Q4_0 blocks it
// came from, bit for bit (the VNNI tile and the one-lane-per-row group kernel are different code
// for the same arithmetic); K not a multiple of 256 (or of 8 blocks) included; with a bias.
TEST(Q4_0X16, KernelsEqualQ4_0sSpecificationBitForBit) {
  uint32_t seed = 0;
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{16, 32}, {32, 96}, {48, 288}, {16, 4096 + 32}}) {
    const std::vector<uint8_t> q = gaussian_blocks(Format::Q4_0, rows, cols, ++seed);
    const std::vector<uint8_t> x = interleaved(q, rows, cols);
    const Tensor tq = tensor_of(Format::Q4_0, q, rows, cols), tx = tensor_of(Format::Q4_0_X16, x, rows, cols);
    std::vector<float> bias(static_cast<size_t>(rows));
    for (int64_t o = 0; o < rows; ++o) bias[size_t(o)] = 0.125f * float(o % 5) - 0.25f;
    for (int64_t T : {1, 2, 3, 4, 5, 9}) {
      const QuantizedActs xq = random_acts(T, cols, ++seed, true);
      const std::vector<float> want = product(tq, xq, IntKernel::Scalar), want_b = product(tq, xq, IntKernel::Scalar, bias.data());
      for (IntKernel k : {IntKernel::Scalar, IntKernel::Avx2, IntKernel::Avx512Vnni}) {
        if (!int_kernel_available(k)) continue;
        const std::string what = fmt::format("{} {}x{} T={}", int_kernel_name(k), rows, cols, T);
        expect_same_bits(product(tx, xq, k), want, what);
        expect_same_bits(product(tx, xq, k, bias.data()), want_b, what + " bias");
      }
    }
  }
}

// Fused with other formats on one input (a thread's share may start inside a group of 16: the
// groups go to one thread each), at 1, 2 and 3 threads: one call per weight's bits.
TEST(Q4_0X16, FusedJobsAndThreadCountsGiveTheSameBits) {
  const int64_t cols = 256;
  const std::vector<uint8_t> q = gaussian_blocks(Format::Q4_0, 80, cols, 3);
  const std::vector<uint8_t> x = interleaved(q, 80, cols);
  const std::vector<uint8_t> k4 = gaussian_blocks(Format::Q4_K, 12, cols, 4);
  const std::vector<Tensor> w = {tensor_of(Format::Q4_K, k4, 12, cols), tensor_of(Format::Q4_0_X16, x, 80, cols),
                                 tensor_of(Format::Q4_0, q, 36, cols)};
  for (int64_t T : {1, 6}) expect_fused_equals_single(w, random_acts(T, cols, 11 + uint32_t(T)));
}

TEST(BadInputQ4_0X16, ShapesTheKernelsCannotTakeAreRefused) {
  const std::vector<uint8_t> q = gaussian_blocks(Format::Q4_0, 16, 64, 1);
  const Tensor t = tensor_of(Format::Q4_0_X16, q, 8, 128);  // 8 rows: not whole groups of 16
  EXPECT_FALSE(ggml_matmul_supported(t, 32));
  const QuantizedActs xq = random_acts(1, 128, 2);
  std::vector<float> y(8);
  EXPECT_THROW(ggml_matmul_q(t, xq, y.data()), Error);
}

// An in-memory layout: an lmq file naming it is refused by name.
TEST(BadInputQ4_0X16, AnLmqFileNamingItIsRefused) {
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

// A GGUF Q4_0 model loaded as the CPU chooses: where VNNI is, every Q4_0 linear is Q4_0_X16 (the
// embedding, whose rows are looked up, stays Q4_0), the file's pages of those released; its
// tensors dequantize to the file's floats and its logits equal the in-place load's bit for bit.
TEST(Q4_0X16, GgufLoadInterleavesLinearsWithTheSameLogits) {
  const std::string p = shared_path("gguf/lmq-llama-25m-Q4_0.gguf");
  if (!std::filesystem::exists(p)) GTEST_SKIP() << "missing " << p;
  if (!ggml_matmul_takes_q4_0x16()) GTEST_SKIP() << "no AVX-512 VNNI: Q4_0 stays as stored here";
  const auto chosen = Model::load(p), in_place = Model::load(p, LoadOptions{.ggml_in_place = true});
  int x16 = 0;
  for (const Tensor& t : in_place->tensors()) {
    const Tensor& c = *chosen->find(t.name);
    if (t.format != Format::Q4_0) {
      EXPECT_EQ(c.format, t.format) << t.name;
      continue;
    }
    EXPECT_EQ(c.format, t.name == "model.embed_tokens.weight" ? Format::Q4_0 : Format::Q4_0_X16) << t.name;
    x16 += c.format == Format::Q4_0_X16;
    std::vector<float> a(size_t(t.numel())), b(a.size());
    dequantize_rows(t, 0, t.rows(), a.data());
    dequantize_rows(c, 0, c.rows(), b.data());
    expect_same_bits(a, b, t.name);
  }
  EXPECT_GE(x16, 56) << "every linear of lmq-llama-25m's 8 blocks";
  const std::vector<int> ids = int_path_text_ids(*in_place);
  const RunOptions ro{.act_quant_from_model = true};
  expect_same_bits(int_path_logits(*chosen, ids, ro), int_path_logits(*in_place, ids, ro), "logits");
}

}  // namespace
}  // namespace lmq
