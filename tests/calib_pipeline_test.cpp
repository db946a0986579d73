// Calibration's fast path: Runner's BLAS mode (sgemm linears, causally chunked attention,
// inputs-only stop) against the tile kernels, its bf16 linears (--calib-precision bf16) against
// its F32 ones, and the window-parallel block pipeline's statistics against the plain
// single-threaded collection and across thread counts, in f32 and bf16.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "lmq/calib/awq.h"
#include "lmq/calib/calib.h"
#include "lmq/calib/pipeline.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/error.h"
#include "lmq/mapped_file.h"
#include "lmq/calib/block_runner.h"
#include "lmq/kernels/gemm_bf16.h"
#include "lmq/quant/quantize_model.h"
#include "lmq/quant/scheme.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::calib;
using lmq::test::shared_path;

namespace {

const Model& load(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Model>> models;
  auto& m = models[name];
  if (!m) m = Model::load(shared_path("models/" + name));
  return *m;
}
const Model& llama() { return load("lmq-llama-25m"); }

// The model with every decoder linear as F32 (what the pipeline hands the BLAS path).
std::unique_ptr<Model> dense(const Model& m, std::map<std::string, std::vector<float>>& held) {
  for (const LayerWeights& lw : m.layers())
    for (const Tensor* t : {lw.wq, lw.wk, lw.wv, lw.wo, lw.w_gate, lw.w_up, lw.w_down}) {
      std::vector<float>& w = held[t->name];
      w.resize(size_t(t->numel()));
      dequantize_rows(*t, 0, t->rows(), w.data());
    }
  return with_float_tensors(m, held);
}

std::vector<std::vector<int>> windows(int n, int len, const Model& m = llama()) {
  const std::string text = read_text_file(shared_path("text/docs-valid.txt"));
  const std::string part = text.substr(text.find('\n', text.size() / 2) + 1, 60000);
  return calib_windows(m.tokenizer(), part, n, len, m.config().bos_id);
}

// Every observed linear input of a run, in order.
struct Observed {
  std::vector<std::string> names;
  std::vector<std::vector<float>> x;
  void attach(BlockRunner& r) {
    r.set_observer([this](const Tensor& t, const float* v, int n) {
      names.push_back(t.name);
      x.emplace_back(v, v + int64_t(n) * t.cols());
    });
  }
};

double rel_rms_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, r = 0;
  for (size_t i = 0; i < a.size(); ++i) d += (double(a[i]) - b[i]) * (double(a[i]) - b[i]), r += double(a[i]) * a[i];
  return std::sqrt(d / r);
}

}  // namespace

// 300 tokens in two calls (200, then 100 at position 200): both query chunkings of the BLAS
// attention, a partial chunk and a non-zero start, through all layers; qwen2 adds the biases.
class RunnerBlas : public ::testing::TestWithParam<std::string> {};

TEST_P(RunnerBlas, MatchesTileKernels) {
  std::map<std::string, std::vector<float>> held;
  const auto m = dense(load(GetParam()), held);
  const auto win = windows(1, 300, load(GetParam()))[0];
  const int D = m->config().hidden, L = m->config().n_layers;
  std::vector<float> x0(size_t(300) * D);
  BlockRunner tile(*m, 300), blas(*m, 300);
  blas.set_blas(true);
  tile.embed_tokens(win.data(), 300, x0.data());
  std::vector<float> xt = x0, xb = x0;
  Observed ot, ob;
  ot.attach(tile);
  ob.attach(blas);
  for (auto [r, x] : {std::pair{&tile, &xt}, std::pair{&blas, &xb}}) {
    r->forward_layers(x->data(), 200, 0, L);
    r->forward_layers(x->data() + size_t(200) * D, 100, 0, L);
  }
  const double out = rel_rms_diff(xt, xb);
  std::printf("BLAS vs tile: relative RMS difference of the output %.3g\n", out);
  EXPECT_LT(out, 1e-4);  // summation order only (measured 8e-7)
  EXPECT_GT(out, 0.0);   // the BLAS path really ran
  ASSERT_EQ(ot.names, ob.names);
  for (size_t i = 0; i < ot.x.size(); ++i) EXPECT_LT(rel_rms_diff(ot.x[i], ob.x[i]), 1e-4) << ot.names[i];
}

INSTANTIATE_TEST_SUITE_P(Models, RunnerBlas, ::testing::Values("lmq-llama-25m", "lmq-qwen2-21m"));

// inputs_only: the same inputs, bit for bit, up to and including the last layer's down_proj.
TEST(RunnerBlasInputsOnly, ObservesTheSameInputs) {
  std::map<std::string, std::vector<float>> held;
  const auto m = dense(llama(), held);
  const auto win = windows(1, 160)[0];
  const int D = m->config().hidden;
  std::vector<float> x0(size_t(160) * D);
  BlockRunner full(*m, 160), part(*m, 160);
  full.set_blas(true);
  part.set_blas(true);
  part.set_inputs_only(true);
  full.embed_tokens(win.data(), 160, x0.data());
  std::vector<float> xf = x0, xp = x0;
  Observed of, op;
  of.attach(full);
  op.attach(part);
  full.forward_layers(xf.data(), 160, 2, 4);
  part.forward_layers(xp.data(), 160, 2, 4);
  ASSERT_EQ(op.names, of.names);
  EXPECT_EQ(op.names.back(), "model.layers.3.mlp.down_proj.weight");
  for (size_t i = 0; i < of.x.size(); ++i) EXPECT_EQ(of.x[i], op.x[i]) << of.names[i];
}

// BLAS mode with the linears packed to bf16: the first linear's input is the float one, bit for
// bit; what follows differs from the F32 path by bf16's rounding (~2⁻⁹ relative per value), far
// more than BLAS's summation order (~1e-6) and far less than a wrong product.
TEST_P(RunnerBlas, Bf16LinearsFollowTheF32Path) {
  std::map<std::string, std::vector<float>> held;
  const auto m = dense(load(GetParam()), held);
  BlockRunner::PackedLinears packed;
  for (const LayerWeights& lw : m->layers())
    for (const Tensor* t : {lw.wq, lw.wk, lw.wv, lw.wo, lw.w_gate, lw.w_up, lw.w_down})
      packed.emplace(t, PackedBf16::from_f32(held.at(t->name).data(), t->rows(), t->cols()));
  const int n = 200, D = m->config().hidden, L = m->config().n_layers;
  const auto win = windows(1, n, load(GetParam()))[0];
  BlockRunner f32(*m, n), bf16(*m, n);
  f32.set_blas(true);
  bf16.set_blas(true, &packed);
  std::vector<float> xf(size_t(n) * D);
  f32.embed_tokens(win.data(), n, xf.data());
  std::vector<float> xb = xf;
  Observed of, ob;
  of.attach(f32);
  ob.attach(bf16);
  f32.forward_layers(xf.data(), n, 0, L);
  bf16.forward_layers(xb.data(), n, 0, L);
  ASSERT_EQ(of.names, ob.names);
  EXPECT_EQ(of.x[0], ob.x[0]);  // q_proj of layer 0: the normed embedding, before any linear ran
  const double out = rel_rms_diff(xf, xb);
  std::printf("bf16 vs f32 linears: relative RMS difference of the output %.3g\n", out);
  EXPECT_GT(out, 1e-4);
  EXPECT_LT(out, 3e-2);
  for (size_t i = 0; i < of.x.size(); ++i) EXPECT_LT(rel_rms_diff(of.x[i], ob.x[i]), 3e-2) << of.names[i];
}

namespace {
StatsMap pipeline_stats(const std::vector<std::vector<int>>& wins, int threads, std::string* bytes,
                        CalibPrecision precision = CalibPrecision::F32) {
  const std::string path = lmq::test::temp_dir() + "/s.safetensors";
  QuantizeOptions o;
  o.scheme = quant::parse_scheme("int4:g32:asym");
  o.overrides.push_back(parse_override("layers\\.[2-7]\\.=bf16"));  // GPTQ on blocks 0–1 only, to stay fast
  CalibQuantOptions c;
  c.method = Method::Gptq;
  c.windows = wins;
  c.stats_out = path;
  c.precision = precision;
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  QuantPlan plan = plan_targets(llama(), o);
  prepare_calibrated(llama(), plan, c);
  omp_set_num_threads(before);
  *bytes = "";
  for (const auto& [name, tp] : plan.tensors) {
    const std::vector<uint8_t> b = tp.bytes.read();
    bytes->append(b.begin(), b.end());
  }
  return load_stats(path);
}
}  // namespace

// Five windows: with 2 threads two full rounds and a last one of a single window. The merged
// statistics must not depend on the thread count, and block 0's (whose input is the float
// embedding either way) must match collect_stats on the tile path.
TEST(CalibPipeline, StatsMatchSerialCollectionAndIgnoreThreadCount) {
  const auto wins = windows(5, 96);
  std::string q1, q2;
  const StatsMap s1 = pipeline_stats(wins, 1, &q1), s2 = pipeline_stats(wins, 2, &q2);
  ASSERT_EQ(s1.size(), 32u);  // 8 blocks × (qkv, o, gate/up, down)
  for (const auto& [key, a] : s1) {
    const InputStats& b = s2.at(key);
    EXPECT_EQ(a.tokens, 5 * 96) << key;
    EXPECT_EQ(a.hessian, b.hessian) << key;
    EXPECT_EQ(a.mean_abs, b.mean_abs) << key;
    EXPECT_EQ(a.min, b.min) << key;
  }
  EXPECT_FALSE(q1.empty());
  EXPECT_EQ(q1, q2);  // GPTQ's row slices do not change the result either

  const StatsMap ref = collect_stats(llama(), wins, [](const std::string& n) { return n.starts_with("model.layers.0."); });
  ASSERT_EQ(ref.size(), 4u);
  for (const auto& [key, r] : ref) {
    const InputStats& p = s1.at(key);
    EXPECT_LT(rel_rms_diff(r.hessian, p.hessian), 1e-4) << key;
    EXPECT_LT(rel_rms_diff(r.sq_mean, p.sq_mean), 1e-4) << key;
    EXPECT_EQ(r.tokens, p.tokens) << key;
  }
}

// bf16 forward passes: still independent of the thread count; block 0's q/k/v statistics (of
// the embedding, before any linear) equal f32's bit for bit, the others are close; GPTQ's codes
// come from them.
TEST(CalibPipeline, Bf16PassesIgnoreThreadCountAndStayCloseToF32) {
  const auto wins = windows(5, 96);
  std::string q1, q2, qf;
  const StatsMap s1 = pipeline_stats(wins, 1, &q1, CalibPrecision::Bf16);
  const StatsMap s2 = pipeline_stats(wins, 2, &q2, CalibPrecision::Bf16);
  const StatsMap f = pipeline_stats(wins, 2, &qf);
  ASSERT_EQ(s1.size(), f.size());
  for (const auto& [key, a] : s1) {
    EXPECT_EQ(a.hessian, s2.at(key).hessian) << key;
    const double d = rel_rms_diff(f.at(key).hessian, a.hessian);
    if (key.starts_with("model.layers.0.self_attn.q")) EXPECT_EQ(d, 0.0) << key;
    else EXPECT_LT(d, 5e-2) << key;
  }
  EXPECT_EQ(q1, q2);
  EXPECT_NE(q1, qf);  // the bf16 path ran
}

// --json says which arithmetic the calibration passes used: "none" without passes, the flag's
// choice, and auto resolved by the CPU (bf16 only with AVX-512 BF16).
TEST(CalibPipeline, JsonSaysWhichPrecisionRan) {
  const std::string dir = lmq::test::temp_dir(), text = dir + "/calib.txt";
  lmq::test::write_file(text, read_text_file(shared_path("text/docs-valid.txt")).substr(0, 4000));
  auto precision = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"quantize", shared_path("models/lmq-llama-25m"), "-o", dir + "/out.lmq",
                                  "--scheme", "int4:g128:asym", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = lmq::test::run_lmq(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const size_t at = r.out.find("\"calib_precision\": \"");
    if (at == std::string::npos) return std::string("(absent)");
    const size_t from = at + 20;
    return r.out.substr(from, r.out.find('"', from) - from);
  };
  const std::vector<std::string> gptq{"--method", "gptq", "--calib", text, "--calib-samples", "1", "--calib-len", "64"};
  EXPECT_EQ(precision({}), "none");
  std::vector<std::string> f32 = gptq, automatic = gptq;
  f32.insert(f32.end(), {"--calib-precision", "f32"});
  EXPECT_EQ(precision(f32), "f32");
  EXPECT_EQ(precision(automatic), have_avx512_bf16() ? "bf16" : "f32");
}

// The asymmetric target's quantized stream starts from the embedding rows as the file stores
// them: embedding_as_stored equals the rows of the GGUF writer's own token_embd (a calibrated
// plan's weighted fit; `--method mse` gives the writer the same fit without calibration).
TEST(CalibPipeline, EmbeddingAsStoredIsWhatTheGgufWriterStores) {
  const std::string dir = lmq::test::temp_dir(), out = dir + "/e.gguf";
  const auto r = lmq::test::run_lmq({"quantize", shared_path("models/lmq-llama-25m"), "-o", out, "--format", "gguf",
                                     "--scheme", "q2_k", "--method", "mse"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::unique_ptr<Model> stored = Model::load(out);
  const Tensor& e = stored->embed();
  ASSERT_TRUE(format_traits(e.format).ggml && format_traits(e.format).quantized) << format_traits(e.format).ggml_name;
  QuantPlan plan;
  plan.gguf = true;
  plan.tensors[llama().embed().name].target = TensorTarget{e.format, {}, "", false};
  const std::vector<int> tokens{1, 0, 29, 1, 500, llama().config().vocab - 1};
  const std::vector<float> got = embedding_as_stored(llama(), plan, tokens);
  const int64_t D = llama().config().hidden;
  std::vector<float> want(static_cast<size_t>(D));
  double moved = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    dequantize_rows(e, tokens[i], 1, want.data());
    std::vector<float> src(static_cast<size_t>(D));
    dequantize_rows(llama().embed(), tokens[i], 1, src.data());
    for (int64_t j = 0; j < D; ++j) {
      ASSERT_EQ(got[i * size_t(D) + size_t(j)], want[size_t(j)]) << "token " << tokens[i] << " column " << j;
      moved += std::fabs(double(src[size_t(j)]) - want[size_t(j)]);
    }
  }
  EXPECT_GT(moved, 0) << "the stored rows are rounded";
  EXPECT_THROW(embedding_as_stored(llama(), plan, {llama().config().vocab}), lmq::Error);
}

// --asym-calib α: runs (the file records it, its bytes differ from plain GPTQ's) and is refused
// where it has no meaning: outside [0, 1], without GPTQ, with --stats.
TEST(CalibPipeline, AsymCalibRunsAndIsRefusedWhereItCannot) {
  const std::string dir = lmq::test::temp_dir(), text = dir + "/calib.txt";
  lmq::test::write_file(text, read_text_file(shared_path("text/docs-valid.txt")).substr(0, 4000));
  auto quantize = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args{"quantize", shared_path("models/lmq-llama-25m"), "-o", dir + "/" + out, "--scheme",
                                  "int3:g64", "--calib", text, "--calib-samples", "2", "--calib-len", "64",
                                  "--calib-precision", "f32", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return lmq::test::run_lmq(args);
  };
  const auto plain = quantize("plain.lmq", {"--method", "gptq"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const auto asym = quantize("asym.lmq", {"--method", "gptq", "--asym-calib", "0.5"});
  ASSERT_EQ(asym.exit_code, 0) << asym.err;
  EXPECT_NE(asym.out.find("\"asym_calib\": 0.5"), std::string::npos) << asym.out.substr(0, 400);
  const std::unique_ptr<Model> a = Model::load(dir + "/plain.lmq"), b = Model::load(dir + "/asym.lmq");
  for (size_t l = 0; l < a->layers().size(); ++l) {  // the codes differ in every block's down_proj
    const Tensor &ta = *a->layers()[l].w_down, &tb = *b->layers()[l].w_down;
    ASSERT_EQ(ta.nbytes, tb.nbytes);
    EXPECT_NE(std::memcmp(ta.data, tb.data, ta.nbytes), 0) << "block " << l;
  }
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--method", "gptq", "--asym-calib", "1.5"},
        std::vector<std::string>{"--method", "gptq", "--asym-calib", "-0.1"},
        std::vector<std::string>{"--method", "awq", "--asym-calib", "0.5"},
        std::vector<std::string>{"--method", "rtn", "--asym-calib", "0.5"}}) {
    const auto r = quantize("bad.lmq", bad);
    EXPECT_EQ(r.exit_code, 1) << bad[1] << " " << bad[3];
    EXPECT_NE(r.err.find("--asym-calib"), std::string::npos) << r.err;
  }
}

// With --asym-calib an untied lm_head (lmq-qwen2-21m's) is quantized by GPTQ too, towards the
// float model's logits: it joins the report's layers and its codes differ from plain GPTQ's,
// which leaves it to the writer's round to nearest.
TEST(CalibPipeline, AsymCalibQuantizesAnUntiedLmHead) {
  const std::string dir = lmq::test::temp_dir(), text = dir + "/calib.txt";
  lmq::test::write_file(text, read_text_file(shared_path("text/docs-valid.txt")).substr(0, 4000));
  auto quantize = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args{"quantize", shared_path("models/lmq-qwen2-21m"), "-o", dir + "/" + out, "--scheme",
                                  "int4:g128", "--method", "gptq", "--calib", text, "--calib-samples", "2",
                                  "--calib-len", "64", "--calib-precision", "f32", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = lmq::test::run_lmq(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  const std::string plain = quantize("plain.lmq", {}), asym = quantize("asym.lmq", {"--asym-calib", "0.5"});
  auto calibrated = [](const std::string& out) {
    std::vector<std::string> names;
    const nlohmann::json j = nlohmann::json::parse(out);
    for (const auto& l : j.at("gptq_layers")) names.push_back(l.at("name"));
    return names;
  };
  const std::vector<std::string> p = calibrated(plain), q = calibrated(asym);
  EXPECT_EQ(std::count(p.begin(), p.end(), "lm_head.weight"), 0);
  EXPECT_EQ(std::count(q.begin(), q.end(), "lm_head.weight"), 1);
  EXPECT_EQ(q.size(), p.size() + 1);
  const std::unique_ptr<Model> a = Model::load(dir + "/plain.lmq"), b = Model::load(dir + "/asym.lmq");
  ASSERT_NE(&a->lm_head(), &a->embed());
  ASSERT_EQ(a->lm_head().nbytes, b->lm_head().nbytes);
  EXPECT_NE(std::memcmp(a->lm_head().data, b->lm_head().data, a->lm_head().nbytes), 0);
  EXPECT_EQ(std::memcmp(a->embed().data, b->embed().data, a->embed().nbytes), 0) << "the embedding stays the writer's";
}
