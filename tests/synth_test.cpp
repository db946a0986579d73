// `lmq synth` (eval/synth.h) on 2 blocks of TinyLlama-1.1B's widths (hidden 2048, ffn 5632,
// vocab 32000; 219M parameters, 438 MB of bf16), and the streaming quantizers on it: what the
// benchmarks at real sizes rely on, at a size the tests can afford.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "lmq/half.h"
#include "lmq/model/model.h"
#include "test_support.h"

namespace {

using namespace lmq;
namespace fs = std::filesystem;

std::string spm_tokenizer() { return test::shared_path("tokenizers/llama2-32k.model"); }

class SynthModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::temp_dir() + "/tiny2";
    const auto r = test::run_lmq({"synth", "tinyllama-1.1b", "-o", dir_, "--tokenizer", spm_tokenizer(), "--layers", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_NE(r.out.find("noise"), std::string::npos) << r.out;  // it says what its text is
  }
  static uint64_t model_bytes() {
    uint64_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().extension() == ".safetensors") n += e.file_size();
    return n;
  }
  static inline std::string dir_;
};

// Column RMS of a bf16 tensor.
std::vector<double> column_rms(const Tensor& t) {
  std::vector<double> s(size_t(t.cols()), 0.0);
  const auto* p = reinterpret_cast<const uint16_t*>(t.data);
  for (int64_t r = 0; r < t.rows(); ++r)
    for (int64_t c = 0; c < t.cols(); ++c) {
      const double v = bf16_to_f32(p[r * t.cols() + c]);
      s[size_t(c)] += v * v;
    }
  for (double& v : s) v = std::sqrt(v / double(t.rows()));
  return s;
}

TEST_F(SynthModel, HasTheShapeAndScaleOfTheRealModel) {
  auto m = Model::load(dir_);
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.hidden, 2048);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 32);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.ffn, 5632);
  EXPECT_EQ(c.vocab, 32000);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(m->param_count(), 32000 * 2048 * 2 + 2 * (2048 * 2048 * 2 + 256 * 2048 * 2 + 3 * 2048 * 5632 + 2 * 2048) + 2048);
  const LayerWeights& l0 = m->layers()[0];
  ASSERT_EQ(l0.wk->format, Format::BF16);
  EXPECT_EQ(l0.wk->rows(), 256);
  // linears ~N(0, 1/K) with 4 outlier input columns 4× larger
  for (const Tensor* t : {l0.wq, l0.w_down}) {
    std::vector<double> rms = column_rms(*t);
    std::sort(rms.begin(), rms.end());
    const double median = rms[rms.size() / 2], expect = 1 / std::sqrt(double(t->cols()));
    EXPECT_NEAR(median / expect, 1.0, 0.03) << t->name;
    EXPECT_LT(rms[rms.size() - 5], 1.3 * median) << t->name;  // only 4 outliers
    for (size_t i = rms.size() - 4; i < rms.size(); ++i) EXPECT_NEAR(rms[i] / median, 4.0, 0.4) << t->name;
  }
  // norms near 1 except the same 4 hidden channels, which the linears' outlier columns match
  const auto* norm = reinterpret_cast<const uint16_t*>(l0.attn_norm->data);
  const std::vector<double> q_rms = column_rms(*l0.wq);
  const double q_median = 1 / std::sqrt(2048.0);
  int big = 0;
  for (int64_t c = 0; c < 2048; ++c) {
    const float v = bf16_to_f32(norm[c]);
    if (v > 3) {
      ++big;
      EXPECT_GT(q_rms[size_t(c)], 3 * q_median) << "channel " << c;
    } else {
      EXPECT_NEAR(v, 1.0, 0.3) << "channel " << c;
    }
  }
  EXPECT_EQ(big, 4);
}

TEST_F(SynthModel, BytesDependOnNeitherThreadsNorLayerCount) {
  const std::string one = test::temp_dir() + "/tiny1";
  const auto r = test::run_lmq(
      {"synth", "tinyllama-1.1b", "-o", one, "--tokenizer", spm_tokenizer(), "--layers", "1", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto a = Model::load(dir_), b = Model::load(one);
  for (const char* name : {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.0.mlp.down_proj.weight", "lm_head.weight"}) {
    const Tensor *ta = a->find(name), *tb = b->find(name);
    ASSERT_TRUE(ta && tb) << name;
    ASSERT_EQ(ta->nbytes, tb->nbytes) << name;
    EXPECT_EQ(std::memcmp(ta->data, tb->data, ta->nbytes), 0) << name;
  }
  // and another seed gives other weights
  const std::string other = test::temp_dir() + "/tiny1s";
  ASSERT_EQ(test::run_lmq({"synth", "tinyllama-1.1b", "-o", other, "--tokenizer", spm_tokenizer(), "--layers", "1",
                           "--seed", "7"})
                .exit_code,
            0);
  auto c = Model::load(other);
  const Tensor *ta = a->find("model.layers.0.self_attn.q_proj.weight"), *tc = c->find("model.layers.0.self_attn.q_proj.weight");
  EXPECT_NE(std::memcmp(ta->data, tc->data, ta->nbytes), 0);
}

// The quantizers stream: their peak anonymous memory stays below the model's own bf16 bytes
// (it holds one tensor's floats at a time; the input is mmapped, page cache not counted).
TEST_F(SynthModel, QuantizersStreamIt) {
  const uint64_t bf16 = model_bytes();
  const std::string out = test::temp_dir() + "/q.lmq";
  auto r = test::run_lmq({"quantize", dir_, "-o", out, "--scheme", "int4:g128:asym"}, true);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(r.peak_anon_bytes, 0u);
  EXPECT_LT(r.peak_anon_bytes, bf16) << "lmq quantize held " << r.peak_anon_bytes << " bytes";
  r = test::run_lmq({"run", out, "-p", "The kernel", "-n", "4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;

  const std::string gguf = test::temp_dir() + "/q.gguf";
  r = test::run_lmq({"quantize", dir_, "-o", gguf, "--format", "gguf", "--scheme", "q4_0"}, true);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(r.peak_anon_bytes, bf16) << "lmq quantize --format gguf held " << r.peak_anon_bytes << " bytes";
  EXPECT_EQ(test::run_lmq({"run", gguf, "-p", "The kernel", "-n", "4"}).exit_code, 0);
}

void expect_one_error_line(const test::RunResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("lmq: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(BadInputSynth, RefusesWhatItCannotWrite) {
  const std::string dir = test::temp_dir();
  expect_one_error_line(test::run_lmq({"synth", "llama9-1t", "-o", dir + "/x", "--tokenizer", spm_tokenizer()}),
                        "expected one of tinyllama-1.1b, llama2-7b, llama3-8b");
  expect_one_error_line(test::run_lmq({"synth", "tinyllama-1.1b", "-o", dir, "--tokenizer", spm_tokenizer()}),
                        "exists");
  expect_one_error_line(
      test::run_lmq({"synth", "tinyllama-1.1b", "-o", dir + "/x", "--tokenizer", spm_tokenizer(), "--layers", "0"}),
      "--layers 0");
  expect_one_error_line(
      test::run_lmq({"synth", "tinyllama-1.1b", "-o", dir + "/x", "--tokenizer", spm_tokenizer(), "--layers", "23"}),
      "--layers 23");
  expect_one_error_line(test::run_lmq({"synth", "tinyllama-1.1b", "-o", dir + "/x", "--tokenizer", dir + "/none.model"}),
                        "no such file");
  expect_one_error_line(test::run_lmq({"synth", "tinyllama-1.1b", "-o", dir + "/x", "--tokenizer", dir}),
                        "expected a SentencePiece");
  EXPECT_FALSE(fs::exists(dir + "/x"));  // nothing left behind
  for (const auto& e : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << e.path();
}

}  // namespace
