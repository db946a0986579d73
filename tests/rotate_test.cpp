// Rotations fused into the weights (quant/rotate.h, `lmq quantize --rotate`): the Hadamard
// constructions are Hadamard matrices, the rotations are orthogonal and deterministic, the
// rotated float model gives the original's logits on three real models (SentencePiece llama
// with tied embeddings that must be untied, Qwen2 with q/k/v biases, a BPE Llama-3), rotated
// int4 files (lmq's, GGUF, a GPTQ directory; RTN and GPTQ) evaluate against the float model,
// and bad input is one error line.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "lmq/calib/calib.h"
#include "lmq/error.h"
#include "lmq/formats/gguf.h"
#include "lmq/model/forward.h"
#include "lmq/model/model.h"
#include "lmq/quant/rotate.h"
#include "test_support.h"

using namespace lmq;
using lmq::test::run_lmq;
using lmq::test::shared_path;
using lmq::test::temp_dir;

namespace {

std::vector<float> floats(const Tensor& t) {
  std::vector<float> v(size_t(t.numel()));
  dequantize_rows(t, 0, t.rows(), v.data());
  return v;
}

std::vector<float> logits_of(const Model& m, const std::vector<int>& ids) {
  Runner run(m, int(ids.size()));
  std::vector<float> out(ids.size() * size_t(m.config().vocab));
  run.forward(ids.data(), int(ids.size()), out.data(), true);
  return out;
}

// max |a − b| / max |a|
double rel_max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    d = std::max(d, double(std::fabs(a[i] - b[i]))), m = std::max(m, double(std::fabs(a[i])));
  return d / m;
}

// Q·Qᵀ − I, largest entry.
double orthogonality_error(const std::vector<float>& Q, int d) {
  double e = 0;
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) {
      double s = 0;
      for (int k = 0; k < d; ++k) s += double(Q[size_t(i) * d + k]) * Q[size_t(j) * d + k];
      e = std::max(e, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  return e;
}

std::vector<int> window(const Model& m, int len) {
  const std::string text = read_text_file(shared_path("text/docs-valid.txt"));
  return calib::calib_windows(m.tokenizer(), text.substr(0, 20000), 1, len, m.tokenizer().bos_id())[0];
}

}  // namespace

// Every order the constructions claim gives H·Hᵀ = n·I with ±1 entries (Sylvester, Paley I
// and II, and their Kronecker products: 384 = 12·32 is lmq-llama-25m's hidden size, 896 = 28·32
// Qwen2-0.5B's, 640 = 20·32); orders without a
// construction here give nothing.
TEST(Rotation, HadamardConstructions) {
  for (int n : {1, 2, 4, 12, 20, 24, 28, 36, 44, 60, 256, 384, 640, 896}) {
    const std::vector<float> H = quant::hadamard_matrix(n);
    ASSERT_EQ(H.size(), size_t(n) * n) << n;
    for (float x : H) ASSERT_TRUE(x == 1.0f || x == -1.0f) << n;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        double s = 0;
        for (int k = 0; k < n; ++k) s += double(H[size_t(i) * n + k]) * H[size_t(j) * n + k];
        ASSERT_EQ(s, i == j ? n : 0) << "order " << n << ", rows " << i << ", " << j;
      }
  }
  for (int n : {3, 6, 100}) EXPECT_TRUE(quant::hadamard_matrix(n).empty()) << n;
}

TEST(Rotation, MatricesAreOrthogonalAndDeterministic) {
  using quant::Rotation;
  for (Rotation k : {Rotation::Hadamard, Rotation::RandomOrthogonal})
    for (int d : {256, 384}) {
      const quant::RotateOptions o{k};
      const std::vector<float> Q = quant::rotation_matrix(o, d);
      EXPECT_LT(orthogonality_error(Q, d), 1e-5) << quant::rotation_name(k) << " " << d;
      EXPECT_EQ(Q, quant::rotation_matrix(o, d)) << "same seed, same matrix";
      EXPECT_NE(Q, quant::rotation_matrix(quant::RotateOptions{k, o.seed + 1}, d)) << "the seed matters";
      // Mixing: a randomized Hadamard spreads every input over all outputs equally, a random
      // orthogonal matrix nearly so (no entry near ±1).
      float mx = 0;
      for (float x : Q) mx = std::max(mx, std::fabs(x));
      if (k == Rotation::Hadamard) {
        EXPECT_FLOAT_EQ(mx, 1.0f / std::sqrt(float(d)));
      } else {
        EXPECT_LT(mx, 0.35f);
      }
    }
  try {
    quant::rotation_matrix(quant::RotateOptions{Rotation::Hadamard}, 100);
    FAIL() << "no Hadamard matrix of order 100 is built here";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("random-orthogonal"), std::string::npos) << e.what();
  }
}

// RowRotation (what rotate_model applies: the structured transform for hadamard, sgemm for
// random-orthogonal) is x·Q with the dense Q of rotation_matrix, for Paley I (384 = 12·32),
// Paley II (896 = 28·32) and Sylvester (256) orders.
TEST(Rotation, RowRotationIsTheDenseProduct) {
  using quant::Rotation;
  for (Rotation k : {Rotation::Hadamard, Rotation::RandomOrthogonal})
    for (int d : {256, 384, 896}) {
      const quant::RotateOptions o{k};
      const std::vector<float> Q = quant::rotation_matrix(o, d);
      std::mt19937 rng(7);
      std::normal_distribution<float> nd;
      const int rows = 5;
      std::vector<float> x(size_t(rows) * d);
      for (float& v : x) v = nd(rng);
      std::vector<float> y = x;
      quant::RowRotation(o, d).apply(y.data(), rows);
      double err = 0;
      for (int r = 0; r < rows; ++r)
        for (int j = 0; j < d; ++j) {
          double s = 0;
          for (int i = 0; i < d; ++i) s += double(x[size_t(r) * d + i]) * Q[size_t(i) * d + j];
          err = std::max(err, std::fabs(s - y[size_t(r) * d + j]));
        }
      EXPECT_LT(err, 1e-4) << quant::rotation_name(k) << " " << d;
    }
}

// The rotated float model is the same function: logits within 1e-4 of the largest |logit|,
// with R1 alone and with R2 per head (--rotate-heads; Qwen3's head_dim 96 = Paley's 12 · 8).
// Relative to the largest logit because float32 rounding in the rotated products (sums of
// d = 256..1024 terms in another basis) scales with the values summed; the figures measured
// here are printed (≈1e-6). The check can fail: a rotation with one fold left out, or the tied
// embedding kept tied, moves the logits by far more (checked below).
TEST(Rotation, FloatLogitsMatchTheOriginal) {
  using quant::Rotation;
  const quant::RotateOptions r1h{Rotation::Hadamard}, r1o{Rotation::RandomOrthogonal},
      r12h{Rotation::Hadamard, quant::kRotateSeed, true}, r12o{Rotation::RandomOrthogonal, quant::kRotateSeed, true};
  for (const char* name :
       {"models/lmq-llama-25m", "models/lmq-qwen2-21m", "models/lmq-llama3-9m", "models/lmq-qwen3-8m"}) {
    const std::string path = shared_path(name);
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "missing " << path;
    auto m = Model::load(path);
    const std::vector<int> ids = window(*m, 64);
    const std::vector<float> base = logits_of(*m, ids);
    std::vector<float> r1_wv;  // v_proj after R1 alone, to see that R2 changes it
    for (const quant::RotateOptions* op : {&r1h, &r1o, &r12h, &r12o}) {
      const quant::RotateOptions& o = *op;
      quant::RotatedModel r = quant::rotate_model(*m, o);
      const Model& rm = *r.model;
      const double rel = rel_max_diff(base, logits_of(rm, ids));
      std::printf("%s %s%s: max |Δlogit| / max |logit| = %.3g; %s\n", name, quant::rotation_name(o.kind),
                  o.heads ? " + heads" : "", rel, r.note.c_str());
      EXPECT_LT(rel, 1e-4) << name << " " << quant::rotation_name(o.kind) << (o.heads ? " + heads" : "");
      if (op == &r1h) r1_wv = floats(*rm.layers()[0].wv);
      if (op == &r12h) {
        EXPECT_GT(rel_max_diff(r1_wv, floats(*rm.layers()[0].wv)), 0.5) << "R2 left v_proj as it was";
      }
      // the weights did change: unit norms, rotated linears, embeddings in the new basis
      for (float g : floats(*rm.layers()[0].attn_norm)) ASSERT_EQ(g, 1.0f);
      for (float g : floats(rm.final_norm())) ASSERT_EQ(g, 1.0f);
      const std::vector<float> a = floats(*m->layers()[1].wq), b = floats(*rm.layers()[1].wq);
      EXPECT_GT(rel_max_diff(a, b), 0.5) << "q_proj not rotated";
      EXPECT_EQ(rm.layers()[0].wq->format, Format::F32);
      if (m->config().qkv_bias) {  // q/k biases are on the output side (v's turns with R2)
        EXPECT_EQ(floats(*rm.layers()[0].bq), floats(*m->layers()[0].bq));
        EXPECT_EQ(floats(*rm.layers()[0].bv) == floats(*m->layers()[0].bv), !o.heads);
      }
      // the source's final norm is not all ones: a tied model has to be untied
      EXPECT_EQ(r.untied, m->config().tied_embeddings);
      EXPECT_FALSE(rm.config().tied_embeddings);
      ASSERT_NE(rm.find("lm_head.weight"), nullptr);
      if (r.untied) {
        // kept tied (lm_head = the rotated embedding) the function changes: why it is untied
        Model::Overlay tied;
        tied.config = m->config();
        auto t = Model::with_tensors(rm, std::move(tied), "tied");
        EXPECT_GT(rel_max_diff(base, logits_of(*t, ids)), 1e-2);
      }
    }
  }
}

// int4 through every sink, on the rotated model: lmq's file with RTN, GGUF Q4_0 with GPTQ
// (calibrated on the rotated model), a GPTQ directory; each evaluates against the unrotated
// float model within a bound set by the unrotated RTN file's KLD (a rotation applied wrongly
// on any side, e.g. calibration on unrotated activations, gives a KLD many times larger).
TEST(Rotation, RotatedInt4FilesEvaluateAgainstTheFloatModel) {
  const std::string model = shared_path("models/lmq-qwen2-21m");
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "missing model";
  const std::string dir = temp_dir();
  const std::string text = read_text_file(shared_path("text/docs-valid.txt"));
  lmq::test::write_file(dir + "/calib.txt", text.substr(text.size() / 2, 60000));
  auto kld = [&](const std::string& file) {
    auto e = run_lmq({"eval", file, "--base", model, "--text", shared_path("text/docs-valid.txt"), "--windows", "2",
                      "--ctx", "256", "--threads", "2", "--json"});
    EXPECT_EQ(e.exit_code, 0) << e.err;
    return e.exit_code == 0 ? nlohmann::json::parse(e.out)["kld_mean"].get<double>() : 1e9;
  };
  auto quantize = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"quantize", model, "--threads", "2"});
    auto r = run_lmq(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r;
  };
  quantize({"-o", dir + "/plain.lmq", "--scheme", "int4:g64"});
  const auto rl = quantize({"-o", dir + "/rot.lmq", "--scheme", "int4:g64", "--rotate", "hadamard"});
  EXPECT_NE(rl.out.find("rotated the residual stream (d = 256) by a randomized Hadamard"), std::string::npos) << rl.out;
  quantize({"-o", dir + "/rot.gguf", "--format", "gguf", "--scheme", "q4_0", "--method", "gptq", "--calib",
            dir + "/calib.txt", "--calib-samples", "4", "--calib-len", "128", "--rotate", "random-orthogonal"});
  quantize({"-o", dir + "/rot-gptq", "--format", "gptq", "--scheme", "int4:g64", "--method", "gptq", "--calib",
            dir + "/calib.txt", "--calib-samples", "4", "--calib-len", "128", "--rotate", "hadamard"});
  const double plain = kld(dir + "/plain.lmq"), lmq_rtn = kld(dir + "/rot.lmq"), gguf = kld(dir + "/rot.gguf"),
               gptq_dir = kld(dir + "/rot-gptq");
  std::printf("KLD int4:g64 rtn %.6f, rotated: rtn %.6f, gguf q4_0 gptq %.6f, gptq dir %.6f\n", plain, lmq_rtn, gguf,
              gptq_dir);
  for (double k : {lmq_rtn, gguf, gptq_dir}) {
    EXPECT_GT(k, 0.0);
    EXPECT_LT(k, 2.0 * plain);
  }
  // lmq's file records the rotation; what the GGUF holds is the rotated model: unit norm weights
  const auto rotated = Model::load(dir + "/rot.lmq");
  EXPECT_EQ(rotated->metadata().at("lmq.rotation").rfind("rotated the residual stream", 0), 0u);
  EXPECT_EQ(Model::load(dir + "/plain.lmq")->metadata().count("lmq.rotation"), 0u);
  GgufFile g(dir + "/rot.gguf");
  for (float x : floats(*g.find("blk.0.attn_norm.weight"))) ASSERT_EQ(x, 1.0f);
}

// A tied model rotated into GGUF is written untied (output.weight), and says so.
TEST(Rotation, TiedModelIsUntiedInGguf) {
  const std::string model = shared_path("models/lmq-llama3-9m");
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "missing model";
  const std::string out = temp_dir() + "/rot.gguf";
  auto r = run_lmq({"quantize", model, "-o", out, "--format", "gguf", "--scheme", "q8_0", "--rotate", "hadamard",
                    "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("embeddings untied"), std::string::npos) << r.out;
  GgufFile g(out);
  EXPECT_NE(g.find("output.weight"), nullptr);
  auto e = run_lmq({"eval", out, "--base", model, "--text", shared_path("text/docs-valid.txt"), "--windows", "2",
                    "--ctx", "256", "--threads", "2", "--act-quant", "none", "--json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const double k = nlohmann::json::parse(e.out)["kld_mean"].get<double>();
  std::printf("lmq-llama3-9m rotated q8_0 GGUF: KLD %.6f\n", k);
  EXPECT_LT(k, 0.01);
}

TEST(BadInputRotate, BadValueIsOneErrorLine) {
  auto r = run_lmq({"quantize", shared_path("models/lmq-llama3-9m"), "-o", temp_dir() + "/x.lmq", "--rotate", "qr"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "lmq: error: --rotate 'qr': expected hadamard or random-orthogonal\n");
}

// A W8A8 file carries static input scales, which a rotation would leave in the wrong basis.
TEST(BadInputRotate, W8A8SourceIsRefused) {
  const std::string model = shared_path("models/lmq-llama3-9m");
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "missing model";
  const std::string dir = temp_dir();
  const std::string text = read_text_file(shared_path("text/docs-valid.txt"));
  lmq::test::write_file(dir + "/calib.txt", text.substr(text.size() / 2, 20000));
  ASSERT_EQ(run_lmq({"quantize", model, "-o", dir + "/w8.lmq", "--activations", "int8:static", "--calib",
                     dir + "/calib.txt", "--calib-samples", "2", "--calib-len", "64", "--threads", "2"})
                .exit_code,
            0);
  auto r = run_lmq({"quantize", dir + "/w8.lmq", "-o", dir + "/x.lmq", "--rotate", "hadamard"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("lmq: error: --rotate: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("rotate the float model instead"), std::string::npos) << r.err;
}

// Statistics gathered on the unrotated model describe activations in another basis.
TEST(BadInputRotate, StatsOfAnotherRotationAreRefused) {
  const std::string model = shared_path("models/lmq-llama3-9m");
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "missing model";
  const std::string dir = temp_dir();
  const std::string text = read_text_file(shared_path("text/docs-valid.txt"));
  lmq::test::write_file(dir + "/calib.txt", text.substr(text.size() / 2, 20000));
  ASSERT_EQ(run_lmq({"quantize", model, "-o", dir + "/a.lmq", "--scheme", "int4:g64", "--method", "gptq", "--calib",
                     dir + "/calib.txt", "--calib-samples", "2", "--calib-len", "64", "--save-stats",
                     dir + "/plain.stats", "--threads", "2"})
                .exit_code,
            0);
  auto r = run_lmq({"quantize", model, "-o", dir + "/b.lmq", "--scheme", "int4:g64", "--method", "gptq", "--stats",
                    dir + "/plain.stats", "--rotate", "hadamard", "--threads", "2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "lmq: error: --stats " + dir +
                "/plain.stats: statistics gathered with rotation 'none', this run's is 'hadamard seed 0x5eed0001' "
                "(activations in another basis)\n");
}

TEST(BadInputRotate, HeadsWithoutRotation) {
  auto r = run_lmq({"quantize", shared_path("models/lmq-llama3-9m"), "-o", temp_dir() + "/x.lmq", "--rotate-heads"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "lmq: error: --rotate-heads: needs --rotate hadamard or --rotate random-orthogonal\n");
}
