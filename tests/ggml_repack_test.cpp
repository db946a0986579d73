// GGUF Q8_0 / Q4_0 / IQ4_NL / IQ4_XS weights repacked at load into LMQ_INT (codecs/ggml_repack.h) so they run on
// the integer kernels where the in-place kernels lack SIMD, or when a load asks:
// the repacked tensors dequantize to ggml's own dequantization bit for bit (every fixture GGUF of
// shared/gguf, and random blocks), a GGUF runs on dynamic int8 activations in blocks of 32 unless
// the run chose otherwise, and these formats read in place or repacked give the same logits up to
// float rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/ggml_repack.h"
#include "lmq/codecs/int_format.h"
#include "lmq/error.h"
#include "lmq/formats/gguf.h"
#include "lmq/formats/gguf_names.h"
#include "lmq/half.h"
#include "lmq/kernels/act_quant.h"
#include "lmq/kernels/ggml_matmul.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/model/forward.h"
#include "lmq/model/model.h"
#include "int_path_check.h"
#include "test_support.h"

using namespace lmq;
using lmq::test::run_lmq;
using lmq::test::shared_path;
using json = nlohmann::json;

namespace {

// Random ggml blocks of f (finite f16 scales of both signs, every code value) for rows × cols.
std::vector<uint8_t> random_blocks(Format f, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  const FormatTraits& t = format_traits(f);
  std::vector<uint8_t> b(size_t(rows) * format_row_bytes(f, cols));
  for (uint8_t& x : b) x = uint8_t(rng());
  for (size_t off = 0; off < b.size(); off += t.block_bytes) {
    const uint16_t d = f32_to_f16(std::ldexp(float(int(rng() % 2001) - 1000), -int(rng() % 20)));
    std::memcpy(b.data() + off, &d, 2);
  }
  return b;
}

void expect_same_floats(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    if (f32_to_bits(a[i]) != f32_to_bits(b[i])) FAIL() << what << " value " << i << ": " << a[i] << " vs " << b[i];
}

// rows × cols of f repacked, dequantized through LMQ_INT; and through ggml's codec.
void expect_repack_exact(Format f, const uint8_t* src, int64_t rows, int64_t cols, const std::string& what) {
  const IntParams p = *ggml_repack_params(f);
  std::vector<uint8_t> packed(quant::int_tensor_bytes(p, rows, cols), 0xAB);
  ggml_repack_rows(f, src, rows, cols, 0, rows, packed.data());
  std::vector<float> got(size_t(rows * cols)), want(size_t(rows * cols));
  quant::int_dequantize_rows(p, packed.data(), rows, cols, 0, rows, got.data());
  const uint64_t rb = format_row_bytes(f, cols);
  for (int64_t r = 0; r < rows; ++r) ggml_dequantize_row(f, src + uint64_t(r) * rb, want.data() + r * cols, cols);
  expect_same_floats(got, want, what);
}

}  // namespace

TEST(GgmlRepack, Q8_0Q4_0AndIq4RepackAsSymmetricG32) {
  for (const FormatTraits& t : all_format_traits()) {
    const std::optional<IntParams> p = ggml_repack_params(t.format);
    const bool iq4 = t.format == Format::IQ4_NL || t.format == Format::IQ4_XS;
    if (t.format != Format::Q8_0 && t.format != Format::Q4_0 && !iq4) {
      EXPECT_FALSE(p) << t.name;
      continue;
    }
    ASSERT_TRUE(p) << t.name;
    EXPECT_EQ(p->bits, t.format == Format::Q4_0 ? 4 : 8);
    EXPECT_FALSE(p->asym);
    EXPECT_EQ(p->group, 32);
    EXPECT_EQ(p->scale_type, t.format == Format::IQ4_XS ? ScaleType::F32 : ScaleType::F16);
    // Q8_0 / Q4_0: the same bytes, 34 per 32 values (Q8_0), 18 (Q4_0); IQ4: 8-bit codes
    if (!iq4) {
      EXPECT_EQ(quant::int_tensor_bytes(*p, 3, 64), 3 * format_row_bytes(t.format, 64)) << t.name;
    }
  }
  const std::vector<uint8_t> b = random_blocks(Format::Q4_K, 1, 256, 1);
  std::vector<uint8_t> out(1024);
  EXPECT_THROW(ggml_repack_rows(Format::Q4_K, b.data(), 1, 256, 0, 1, out.data()), Error);
}

TEST(GgmlRepack, RandomBlocksDequantizeBitExact) {
  for (Format f : {Format::Q8_0, Format::Q4_0, Format::IQ4_NL, Format::IQ4_XS})
    for (int64_t cols : {32, 96, 256, 512})
      for (uint32_t seed = 1; seed <= 3; ++seed) {
        if (cols % ggml_block_size(f)) continue;  // IQ4_XS: 256-blocks
        const int64_t rows = 7;
        const std::vector<uint8_t> b = random_blocks(f, rows, cols, seed);
        expect_repack_exact(f, b.data(), rows, cols, fmt::format("{} {}x{} seed {}", format_name(f), rows, cols, seed));
      }
}

// The nibble order: ggml keeps value j in the low nibble of byte j and value j + 16 in its high
// nibble; a block whose codes count 0..15, 0..15 reads back in that order.
TEST(GgmlRepack, Q4_0NibbleOrder) {
  uint8_t block[18] = {};
  const uint16_t one = f32_to_f16(1.f);
  std::memcpy(block, &one, 2);
  for (int j = 0; j < 16; ++j) block[2 + j] = uint8_t(j | (15 - j) << 4);
  std::vector<uint8_t> packed(18);
  ggml_repack_rows(Format::Q4_0, block, 1, 32, 0, 1, packed.data());
  std::vector<float> x(32);
  quant::int_dequantize_rows(*ggml_repack_params(Format::Q4_0), packed.data(), 1, 32, 0, 1, x.data());
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(x[size_t(j)], float(j - 8)) << j;
    EXPECT_EQ(x[size_t(j + 16)], float(7 - j)) << j + 16;
  }
}

// Every fixture GGUF, loaded with Q8_0 / Q4_0 / IQ4 repacked and with them in place: each weight
// that repacks (on the first load) is LMQ_INT and dequantizes to the file's ggml dequantization
// bit for bit; every other tensor is the file's, untouched.
TEST(GgmlRepack, EveryFixtureGgufLoadsBitExact) {
  const std::string dir = shared_path("gguf");
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << "missing " << dir;
  int files = 0, repacked = 0, q40_repacked = 0, in_place_count = 0, q40_in_place = 0;
  for (const bool in_place : {false, true})
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().extension() != ".gguf") continue;
      const std::string path = e.path().string();
      std::unique_ptr<Model> m;
      try {
        m = Model::load(path, LoadOptions{.ggml_in_place = in_place});
      } catch (const Error& err) {  // a tensor type lmq does not read (IQ1_S, ...): nothing to repack
        std::printf("[repack] %s: not loaded (%s)\n", e.path().filename().c_str(), err.what());
        continue;
      }
      files += !in_place;
      const GgufFile f(path);
      for (const Tensor& raw : f.tensors()) {
        const std::optional<std::string> hf = hf_name_of_gguf(raw.name);
        if (!hf) continue;
        const Tensor* t = m->find(*hf);
        ASSERT_NE(t, nullptr) << raw.name;
        const bool q40 = raw.format == Format::Q8_0 || raw.format == Format::Q4_0;
        const bool either = ggml_repack_params(raw.format) && raw.shape.size() == 2;  // in place or repacked
        if (!either || in_place) {
          EXPECT_EQ(t->format, raw.format) << raw.name;
          in_place_count += either;
          q40_in_place += q40;
          ASSERT_EQ(t->nbytes, raw.nbytes) << raw.name;
          EXPECT_EQ(std::memcmp(t->data, raw.data, raw.nbytes), 0) << raw.name;
          continue;
        }
        ASSERT_EQ(t->format, Format::LMQ_INT) << path << " " << raw.name;
        EXPECT_EQ(t->q, *ggml_repack_params(raw.format));
        EXPECT_EQ(t->shape, raw.shape);
        // Q8_0 / Q4_0: the layouts take the same bytes; IQ4 levels become 8-bit codes
        EXPECT_EQ(t->nbytes, quant::int_tensor_bytes(t->q, raw.rows(), raw.cols())) << raw.name;
        if (q40) {
          EXPECT_EQ(t->nbytes, raw.nbytes) << raw.name;
        }
        const int64_t rows = raw.rows(), cols = raw.cols();
        std::vector<float> got(size_t(rows * cols)), want(size_t(rows * cols));
        dequantize_rows(*t, 0, rows, got.data());
        dequantize_rows(raw, 0, rows, want.data());
        expect_same_floats(got, want, path + " " + raw.name);
        ++repacked;
        q40_repacked += q40;
      }
    }
  std::printf("[repack] %d fixture files loaded twice, %d tensors repacked (%d Q8_0/Q4_0), %d as stored (%d Q8_0/Q4_0)\n",
              files, repacked, q40_repacked, in_place_count, q40_in_place);
  EXPECT_GE(files, 4);
  EXPECT_GE(repacked - q40_repacked, 36);  // the llama3-9m IQ4_XS file's IQ4_XS linears
  EXPECT_GE(q40_repacked, 57 * 2);  // at least every linear of the llama-25m Q8_0 and Q4_0 files
  EXPECT_GE(q40_in_place, 57 * 2);
  EXPECT_EQ(in_place_count, repacked);
}

// A GGUF runs its linears on int8 activations in blocks of 32 when the run leaves the choice to
// the model; a run that chose (none included) gets what it chose; other sources are unaffected.
TEST(GgmlRepack, GgufDefaultsToDynamicInt8Blocks) {
  const std::string q8 = shared_path("gguf/lmq-llama-25m-Q8_0.gguf");
  if (!std::filesystem::exists(q8)) GTEST_SKIP() << "missing " << q8;
  auto m = Model::load(q8);
  EXPECT_EQ(Runner(*m, 8, RunOptions{.act_quant_from_model = true}).act_quant(), ActQuant::DynamicAbsmax);
  EXPECT_EQ(Runner(*m, 8, RunOptions{.act_quant_from_model = true}).act_block(), 32);
  EXPECT_EQ(Runner(*m, 8, RunOptions{}).act_quant(), ActQuant::None);
  // Q8_0 stays the file's blocks where the integer kernels read them in SIMD (interleaved 16 rows
  // at a time where that SIMD is AVX-512 VNNI), else repacks
  EXPECT_EQ(m->find("model.layers.0.mlp.down_proj.weight")->format,
            ggml_matmul_takes_x16() ? Format::Q8_0_X16 : ggml_matmul_has_simd() ? Format::Q8_0 : Format::LMQ_INT);
  // --act-quant none loads the file's blocks as they are (the float path as before)
  const LoadOptions as_stored{.repack_ggml = false, .ggml_in_place = {}};
  EXPECT_EQ(Model::load(q8, as_stored)->find("model.layers.0.mlp.down_proj.weight")->format, Format::Q8_0);
  auto hf = Model::load(shared_path("models/lmq-llama-25m"));
  EXPECT_EQ(Runner(*hf, 8, RunOptions{.act_quant_from_model = true}).act_quant(), ActQuant::None);

  auto bench = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"bench", q8, "--prefill", "4", "--decode", "2", "--reps", "1", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_lmq(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out)["activations"].get<std::string>() : "";
  };
  EXPECT_EQ(bench({}), "dynamic:absmax:b32");
  EXPECT_EQ(bench({"--act-quant", "none"}), "none");
  EXPECT_EQ(bench({"--act-quant", "dynamic"}), "dynamic:absmax");
  auto help = run_lmq({"bench", "--help"});
  EXPECT_NE(help.out.find("dynamic:b32 for a GGUF file"), std::string::npos) << help.out;
}

// Q8_0, Q4_0, IQ4_NL and IQ4_XS reach the integer kernels two ways (model/load_gguf.cpp): read
// in place where those kernels have SIMD (AVX-512 VNNI), else repacked into LMQ_INT for the
// LMQ_INT kernels (AVX2). Both forced on this CPU: the repacked model's tensors of these formats
// are LMQ_INT, the in-place one's the file's formats, and the two integer paths (the same integer
// dot products, scaled in another float order) give the same products up to rounding and close
// logits.
TEST(GgmlRepack, IntPathsInPlaceAndRepackedAgree) {
  for (const char* name : {"lmq-llama-25m-Q8_0.gguf", "lmq-llama-25m-Q4_0.gguf", "lmq-llama3-9m-IQ4_XS.gguf"}) {
    const std::string p = shared_path(std::string("gguf/") + name);
    if (!std::filesystem::exists(p)) GTEST_SKIP() << "missing " << p;
    const auto in_place = Model::load(p, LoadOptions{.ggml_in_place = true});
    const auto repacked = Model::load(p, LoadOptions{.ggml_in_place = false});
    int either = 0;
    const GgufFile file(p);
    for (const Tensor& raw : file.tensors()) {
      if (!ggml_repack_params(raw.format)) continue;
      const std::string hf = *hf_name_of_gguf(raw.name);
      EXPECT_EQ(in_place->find(hf)->format, raw.format) << name << ' ' << hf;
      EXPECT_EQ(repacked->find(hf)->format, Format::LMQ_INT) << name << ' ' << hf;
      EXPECT_EQ(repacked->find(hf)->q, *ggml_repack_params(raw.format)) << name << ' ' << hf;
      ++either;
    }
    // every linear of lmq-llama-25m but the lm_head; lmq-llama3-9m's IQ4_XS linears
    EXPECT_GE(either, std::string(name).find("IQ4_XS") != std::string::npos ? 36 : 57) << name;
    // one linear on the same int8 activations: the same integer sums, scaled in another order
    // (s_x·(d·i) in place, i·(d·s_x) in LMQ_INT), so equal up to float rounding; the repacked
    // one on every LMQ_INT kernel this CPU has (AVX2, the one a CPU without VNNI runs)
    const std::string w = "model.layers.0.mlp.down_proj.weight";
    const Tensor &wi = *in_place->find(w), &wr = *repacked->find(w);
    const int64_t T = 5, K = wi.cols(), N = wi.rows();
    std::vector<float> x(size_t(T * K));
    std::mt19937 rng(3);
    std::normal_distribution<float> gauss;
    for (float& v : x) v = gauss(rng);
    QuantizedActs xq;
    quantize_activations(x.data(), T, K, ActQuant::DynamicAbsmax, 32, 32, xq);
    std::vector<float> yi(size_t(T * N)), yr(size_t(T * N));
    ggml_matmul_q(wi, xq, yi.data());
    const float top = std::fabs(*std::max_element(yi.begin(), yi.end(), [](float a, float b) {
      return std::fabs(a) < std::fabs(b);
    }));
    for (IntKernel k : {IntKernel::Scalar, IntKernel::Avx2, IntKernel::Avx512Vnni}) {
      if (!int_kernel_available(k)) continue;
      int_matmul_q(wr, xq, yr.data(), nullptr, k);
      float worst = 0;
      for (size_t i = 0; i < yi.size(); ++i) worst = std::max(worst, std::fabs(yi[i] - yr[i]));
      std::printf("[in place vs repacked] %s %s, %s kernel: max |Δy| / max |y| %.2g\n", name, w.c_str(),
                  int_kernel_name(k), double(worst / top));
      EXPECT_LE(worst, 1e-5f * top) << name << ' ' << int_kernel_name(k);
      EXPECT_GT(top, 0.f);
    }
    const std::vector<int> ids = lmq::test::int_path_text_ids(*in_place);
    const int n = int(ids.size()), V = in_place->config().vocab;
    const RunOptions ro{.act_quant_from_model = true};
    const lmq::test::LogitGap g = lmq::test::logit_gap(lmq::test::int_path_logits(*in_place, ids, ro),
                                                       lmq::test::int_path_logits(*repacked, ids, ro), n, V);
    std::printf("[in place vs repacked] %s: mean KLD %.3g, max |Δlogit| %.3g, top-1 %d/%d\n", name, g.kld, g.worst,
                g.agree, n);
    // int8 requantization after each layer turns those roundings into an occasional code step,
    // so the logits drift a little (measured: KLD 3e-7 / 2e-5, max 0.02 / 0.04, Q4_0 one near
    // tie flipped), an order below the int-vs-float gap (KLD 2e-4, max 0.12)
    EXPECT_LT(g.kld, 1e-4) << name;
    EXPECT_LT(g.worst, 0.1) << name;
    EXPECT_GE(g.agree, n - 1) << name;
  }
}

// A block whose f16 scale is NaN or Inf is counted, never repacked silently: the integer kernels
// read NaN activations as 0, so such a weight would not surface at the logits (the loader
// refuses the tensor with the count; BadInputIQuant.NanScaleInARealFileIsAnError end to end).
TEST(BadInputGgmlRepack, NonFiniteScalesAreCounted) {
  for (Format f : {Format::Q8_0, Format::Q4_0, Format::IQ4_NL, Format::IQ4_XS}) {
    const int64_t cols = 512, rows = 3;
    std::vector<uint8_t> b = random_blocks(f, rows, cols, 7);
    const IntParams p = *ggml_repack_params(f);
    std::vector<uint8_t> packed(quant::int_tensor_bytes(p, rows, cols));
    EXPECT_EQ(ggml_repack_rows(f, b.data(), rows, cols, 0, rows, packed.data()), 0) << format_name(f);
    const size_t bb = format_traits(f).block_bytes;
    for (uint16_t d : {uint16_t(0x7e00), uint16_t(0xfc00), uint16_t(0x7c01)}) {  // NaN, -Inf, a signalling NaN
      std::memcpy(b.data() + bb, &d, 2);
      std::memcpy(b.data() + 3 * bb, &d, 2);
      EXPECT_EQ(ggml_repack_rows(f, b.data(), rows, cols, 0, rows, packed.data()), 2) << format_name(f) << ' ' << d;
    }
  }
}
