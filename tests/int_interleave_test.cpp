// LMQ_INT_X16 (codecs/int_interleave.h): an LMQ_INT tensor's 4- or 8-bit codes with 16 rows
// interleaved. The records hold the rows' bytes where the header says; every kernel on the
// interleaved weight (its own VNNI kernel, and the row kernels that gather its rows) equals the
// integer matmul's specification on the stored weight bit for bit, whatever the granularity,
// activation block, token count, bias and thread count; and an lmq file loaded for a run that
// quantizes activations interleaves its linears with logits equal to the stored layout's.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ggml_matmul_check.h"
#include "int_path_check.h"
#include "lmq/codecs/int_format.h"
#include "lmq/codecs/int_interleave.h"
#include "lmq/error.h"
#include "lmq/formats/lmq_file.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/model/model.h"
#include "lmq/quant/int_quantize.h"
#include "test_support.h"

namespace lmq {
namespace {

using namespace lmq::test;

// A quantized weight in both layouts: t (LMQ_INT) and x16 (LMQ_INT_X16, its own bytes).
struct Pair {
  std::vector<uint8_t> bytes, bytes16;
  Tensor t, x16;
};

Pair make_pair(int64_t N, int64_t K, IntParams p, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> w(size_t(N * K));
  for (float& v : w) v = nd(rng);
  Pair q;
  q.bytes.resize(quant::int_tensor_bytes(p, N, K));
  quant::quantize_tensor(w.data(), N, K, p, quant::RangeMethod::MinMax, 99.9f, nullptr, q.bytes.data(), 1);
  q.t.name = std::string(1, 'w');
  q.t.shape = {N, K};
  q.t.format = Format::LMQ_INT;
  q.t.q = p;
  q.t.data = q.bytes.data();
  q.t.nbytes = q.bytes.size();
  const quant::IntLayout l = quant::int_layout(p, N, K);
  q.bytes16 = q.bytes;  // scales and zero points as stored; the codes part rewritten
  int_x16_interleave(q.bytes.data(), N, int64_t(l.row_code_bytes), 0, N / 16, q.bytes16.data());
  q.x16 = q.t;
  q.x16.format = Format::LMQ_INT_X16;
  q.x16.data = q.bytes16.data();
  return q;
}

std::vector<float> randn(int64_t n, uint32_t seed, float scale = 2.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = nd(rng);
  return v;
}

std::vector<float> product(const Tensor& w, const QuantizedActs& xq, IntKernel k, const float* bias) {
  std::vector<float> y(size_t(xq.T * w.rows()), -1.f);
  int_matmul_q(w, xq, y.data(), bias, k);
  return y;
}

TEST(IntX16, RecordsHoldTheRowsBytesAsTheHeaderSays) {
  const int64_t rows = 48, row_bytes = 192;
  std::vector<uint8_t> src(size_t(rows * row_bytes)), out(src.size());
  std::mt19937 rng(3);
  for (uint8_t& b : src) b = uint8_t(rng());
  int_x16_interleave(src.data(), rows, row_bytes, 0, 1, out.data());  // two calls: disjoint group ranges
  int_x16_interleave(src.data(), rows, row_bytes, 1, 2, out.data());
  for (int64_t g = 0; g < rows / 16; ++g)
    for (int64_t s = 0; s < row_bytes / 64; ++s) {
      const auto* rec = reinterpret_cast<const int_x16_record*>(out.data() + (g * (row_bytes / 64) + s) * 1024);
      for (int c = 0; c < 16; ++c)
        for (int r = 0; r < 16; ++r)
          for (int m = 0; m < 4; ++m)
            ASSERT_EQ(rec->chunk[c][r][m], src[size_t((16 * g + r) * row_bytes + 64 * s + 4 * c + m)])
                << "g " << g << " s " << s << " c " << c << " r " << r << " m " << m;
    }
  std::vector<uint8_t> row(static_cast<size_t>(row_bytes));
  for (int64_t r = 0; r < rows; ++r) {
    int_x16_gather_row(out.data(), row_bytes, r, row.data());
    ASSERT_EQ(0, std::memcmp(row.data(), src.data() + r * row_bytes, size_t(row_bytes))) << "row " << r;
  }
}

TEST(IntX16, FitsFourAndEightBitRowsOfWholeSteps) {
  EXPECT_TRUE(int_x16_fits({4, false, 128, ScaleType::F16}, 32, 256));
  EXPECT_TRUE(int_x16_fits({8, true, -1, ScaleType::F16}, 16, 64));
  EXPECT_TRUE(int_x16_fits({4, true, 0, ScaleType::F32}, 16, 384));
  EXPECT_FALSE(int_x16_fits({4, false, 32, ScaleType::F16}, 16, 192));  // 96 bytes a row
  EXPECT_FALSE(int_x16_fits({8, false, 32, ScaleType::F16}, 24, 256));  // rows
  EXPECT_FALSE(int_x16_fits({8, false, 32, ScaleType::F16}, 0, 256));
  for (uint8_t bits : {2, 3, 5, 6, 7}) EXPECT_FALSE(int_x16_fits({bits, false, 32, ScaleType::F16}, 16, 512)) << int(bits);
}

// Every kernel on the interleaved weight against the specification on the stored one: weight
// granularities tensor / channel / g32 .. g256, activations per token and in blocks of 32 / 64
// (units smaller and larger than a record's step), every tail of the 4-token blocks, units not
// a multiple of 8 (the padded slots), bias or none. Its dequantized values are the stored ones.
TEST(IntX16, KernelsEqualTheSpecificationBitForBit) {
  uint32_t seed = 40;
  int cases = 0;
  for (uint8_t bits : {4, 8})
    for (bool asym : {false, true})
      for (int group : {-1, 0, 32, 64, 128, 256})
        for (auto [N, K] : {std::pair<int64_t, int64_t>{16, 128}, {48, 384}, {32, 1280}}) {
          const Pair w = make_pair(N, K, {bits, asym, group, ScaleType::F16}, ++seed);
          std::vector<float> a(size_t(N * K)), b(a.size());
          dequantize_rows(w.t, 0, N, a.data());
          dequantize_rows(w.x16, 0, N, b.data());
          expect_same_bits(a, b, "dequantized");
          const std::vector<float> bias = randn(N, seed);
          for (int64_t block : {0, 32, 64}) {
            const int64_t U = int_matmul_unit(w.t, block);
            if (U == 0) continue;
            ASSERT_EQ(U, int_matmul_unit(w.x16, block));
            for (int64_t T : {1, 2, 3, 4, 5, 9}) {
              const std::vector<float> x = randn(T * K, ++seed);
              QuantizedActs xq;
              quantize_activations(x.data(), T, K, seed % 2 ? ActQuant::DynamicMse : ActQuant::DynamicAbsmax, block, U, xq);
              const std::string what = "bits " + std::to_string(bits) + (asym ? " asym" : " sym") + " g " +
                                       std::to_string(group) + " " + std::to_string(N) + "x" + std::to_string(K) +
                                       " block " + std::to_string(block) + " T " + std::to_string(T);
              for (const float* bp : {static_cast<const float*>(nullptr), bias.data()}) {
                const std::vector<float> spec = product(w.t, xq, IntKernel::Scalar, bp);
                for (IntKernel k : {IntKernel::Scalar, IntKernel::Avx2, IntKernel::Avx512Vnni})
                  if (int_kernel_available(k)) expect_same_bits(product(w.x16, xq, k, bp), spec, what + " " + int_kernel_name(k));
              }
              ++cases;
            }
          }
        }
  EXPECT_GT(cases, 300);
}

// Codes at the ends of their range against activations at ±127 over a long row: the int32 sums
// hold exactly, as the specification's.
TEST(IntX16, ExtremeCodesEqualTheSpecification) {
  const int64_t N = 16, K = 4096;
  for (uint8_t bits : {4, 8}) {
    Pair w = make_pair(N, K, {bits, true, -1, ScaleType::F16}, 5);
    const quant::IntLayout l = quant::int_layout(w.t.q, N, K);
    for (uint64_t i = 0; i < l.codes_bytes; ++i) w.bytes[i] = i % 3 ? 0xFF : 0x00;
    int_x16_interleave(w.bytes.data(), N, int64_t(l.row_code_bytes), 0, 1, w.bytes16.data());
    std::vector<float> x(size_t(2 * K), 3.f);
    for (int64_t k = 0; k < K; k += 3) x[size_t(k)] = -3.f;
    QuantizedActs xq;
    quantize_activations(x.data(), 2, K, ActQuant::DynamicAbsmax, 0, K, xq);
    expect_same_bits(product(w.x16, xq, best_int_kernel(), nullptr), product(w.t, xq, IntKernel::Scalar, nullptr),
                     "extreme codes, bits " + std::to_string(bits));
  }
}

// Fused products mixing interleaved weights and stored ones (a shape the interleave refuses
// stays on the 4-row tiles) give each weight its own product's bits at 1–3 threads.
TEST(IntX16, FusedJobsMixingLayoutsGiveTheSameBits) {
  const int64_t K = 512;
  const int saved = omp_get_max_threads();
  for (IntParams p : {IntParams{8, false, -1, ScaleType::F16}, IntParams{4, false, 128, ScaleType::F16},
                      IntParams{4, true, 32, ScaleType::F16}}) {
    std::vector<Pair> ws;
    for (int64_t N : {64, 16, 48}) ws.push_back(make_pair(N, K, p, uint32_t(N)));
    std::vector<Tensor> ts = {ws[0].x16, ws[1].t, ws[2].x16};  // the middle one as stored
    std::vector<IntMatmulPlan> plans;
    for (const Tensor& t : ts) plans.emplace_back(t);
    const std::vector<float> bias = randn(64, 7);
    for (int64_t T : {1, 6}) {
      QuantizedActs xq;
      const std::vector<float> x = randn(T * K, uint32_t(T));
      quantize_activations(x.data(), T, K, ActQuant::DynamicAbsmax, 0, plans[0].unit(), xq);
      for (int threads : {1, 2, 3}) {
        omp_set_num_threads(threads);
        std::vector<std::vector<float>> fused(ts.size());
        std::vector<IntMatmulJob> jobs;
        for (size_t j = 0; j < ts.size(); ++j) {
          fused[j].assign(size_t(T * ts[j].rows()), -1.f);
          jobs.push_back({&plans[j], fused[j].data(), j == 0 ? bias.data() : nullptr});
        }
        int_matmul_q(jobs, xq);
        for (size_t j = 0; j < ts.size(); ++j)
          expect_same_bits(fused[j], product(ws[j].t, xq, IntKernel::Scalar, j == 0 ? bias.data() : nullptr),
                           "job " + std::to_string(j) + " threads " + std::to_string(threads) + " T " + std::to_string(T));
      }
    }
  }
  omp_set_num_threads(saved);
}

// An in-memory layout: an lmq file naming it is refused by name.
TEST(BadInputIntX16, AnLmqFileNamingItIsRefused) {
  const std::string p = temp_dir() + "/intx16.lmq";
  const std::vector<uint8_t> q(quant::int_tensor_bytes({8, false, -1, ScaleType::F16}, 16, 64));
  LmqFileWriter w(p, "{}", "tok", {}, {LmqTensorSpec{"w", {16, 64}, Format::LMQ_INT_X16, {8, false, -1, ScaleType::F16}, "", q.size()}});
  w.write_tensor("w", q.data(), q.size());
  w.commit();
  try {
    read_lmq_file(p);
    ADD_FAILURE() << "read an lmq file with an intx16 tensor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p + ": tensor format 'intx16' is an in-memory layout, never stored"),
              std::string::npos)
        << e.what();
  }
}

// lmq-llama-25m quantized at 8 bits per channel and 4 bits in groups (sym and asym), loaded for a
// run that quantizes activations: where VNNI is, every matrix (the tied embedding included:
// lm_head, and the lookup gathers its row) is LMQ_INT_X16 with the stored values, and the
// logits, per token and in blocks of 32, equal the stored layout's bit for bit.
TEST(IntX16, LmqLoadInterleavesWithTheSameLogits) {
  if (!int_matmul_takes_x16()) GTEST_SKIP() << "no AVX-512 VNNI: the codes stay as stored here";
  const std::string model = shared_path("models/lmq-llama-25m"), dir = temp_dir();
  for (const std::string scheme : {"int8:channel:sym", "int4:g128:sym", "int4:g64:asym"}) {
    const std::string out = dir + "/x16-" + scheme.substr(0, 4) + scheme.substr(5, 3) + ".lmq";
    const auto q = run_lmq({"quantize", model, "-o", out, "--scheme", scheme, "-t", "2"});
    ASSERT_EQ(q.exit_code, 0) << scheme << ": " << q.err;
    LoadOptions interleave;
    interleave.interleave_int = true;
    const auto stored = Model::load(out), x16 = Model::load(out, interleave);
    int n = 0;
    for (const Tensor& t : stored->tensors()) {
      const Tensor& c = *x16->find(t.name);
      const bool fits = t.format == Format::LMQ_INT && int_x16_fits(t.q, t.rows(), t.cols());
      EXPECT_EQ(c.format, fits ? Format::LMQ_INT_X16 : t.format) << scheme << ' ' << t.name;
      if (c.format == t.format) continue;
      ++n;
      std::vector<float> a(size_t(t.numel())), b(a.size());
      dequantize_rows(t, 0, t.rows(), a.data());
      dequantize_rows(c, 0, c.rows(), b.data());
      expect_same_bits(a, b, scheme + " " + t.name);
    }
    EXPECT_EQ(n, 8 * 7 + 1) << scheme;  // 7 linears in each of 8 blocks, and the embedding
    const std::vector<int> ids = int_path_text_ids(*stored);
    for (int64_t block : {0, 32}) {
      RunOptions ro;
      ro.act_quant = ActQuant::DynamicAbsmax, ro.act_block = block;
      expect_same_bits(int_path_logits(*x16, ids, ro), int_path_logits(*stored, ids, ro),
                       scheme + " logits, block " + std::to_string(block));
    }
  }
}

}  // namespace
}  // namespace lmq
