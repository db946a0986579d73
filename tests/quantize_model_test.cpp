// Quantizing the real model: the file round trip, the CLI, and what int8/MSE cost in quality.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lmq/eval/evaluate.h"
#include "lmq/mapped_file.h"
#include "lmq/model/forward.h"
#include "lmq/quant/quantize_model.h"
#include "test_support.h"

using namespace lmq;
using lmq::test::run_lmq;
using lmq::test::shared_path;
namespace fs = std::filesystem;

namespace {

const Model& llama() {
  static std::unique_ptr<Model> m = Model::load(shared_path("models/lmq-llama-25m"));
  return *m;
}

QuantizeOptions options(const std::string& scheme) {
  QuantizeOptions o;
  o.scheme = quant::parse_scheme(scheme);
  return o;
}

Windows docs_windows(int n) {
  return make_windows(llama().tokenizer(), read_text_file(shared_path("text/docs-valid.txt")), Protocol::Lmq, 512,
                      llama().config().bos_id, n);
}

std::vector<float> logits_of(const Model& m, const std::vector<int>& ids) {
  Runner run(m, int(ids.size()));
  std::vector<float> l(ids.size() * size_t(m.config().vocab));
  run.forward(ids.data(), int(ids.size()), l.data(), true);
  return l;
}

TEST(QuantizeModel, FileRoundTripIsBitExact) {
  const std::string path = lmq::test::temp_dir() + "/q.lmq";
  const QuantizeOptions o = options("int4:g128:asym:mse");
  QuantizeReport mem_report, file_report = quantize_model(llama(), path, o);
  auto mem = quantize_in_memory(llama(), o, &mem_report);
  auto file = Model::load(path);
  EXPECT_EQ(file->source_kind(), "lmq");
  EXPECT_EQ(file_report.tensor_bytes, mem_report.tensor_bytes);
  EXPECT_EQ(file->file_bytes(), fs::file_size(path));
  ASSERT_EQ(file->tensors().size(), mem->tensors().size());
  for (size_t i = 0; i < mem->tensors().size(); ++i) {
    const Tensor &a = mem->tensors()[i], &b = *file->find(a.name);
    ASSERT_EQ(a.nbytes, b.nbytes) << a.name;
    EXPECT_EQ(a.format, b.format) << a.name;
    EXPECT_EQ(a.q, b.q) << a.name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << a.name;
  }
  EXPECT_EQ(file->tokenizer().encode("The kernel"), llama().tokenizer().encode("The kernel"));
  const Windows w = docs_windows(1);
  std::vector<int> ids(w.ids[0].begin(), w.ids[0].begin() + 96);
  const auto la = logits_of(*mem, ids), lb = logits_of(*file, ids);
  ASSERT_EQ(la.size(), lb.size());
  EXPECT_EQ(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)), 0) << "logits differ";
  // Defaults: norms stay F32, embeddings at int8 per channel, the rest as asked.
  EXPECT_EQ(file->find("model.norm.weight")->format, Format::F32);
  EXPECT_EQ(file->find("model.embed_tokens.weight")->q.bits, 8);
  EXPECT_EQ(file->find("model.layers.0.mlp.up_proj.weight")->q, (IntParams{4, true, 128, ScaleType::F16}));
}

// The bar for int8 per channel: top-1 ≥ 99% and mean KLD ≤ 0.005 over 32 windows.
TEST(QuantizeModel, Int8PerChannelIsNearLossless) {
  auto q = quantize_in_memory(llama(), options("int8:channel:sym"));
  const EvalResult r = evaluate(*q, &llama(), docs_windows(32));
  std::printf("int8:channel:sym, 32 windows: KLD mean %.6f p99 %.6f, top-1 %.4f, ppl %.4f vs %.4f\n", r.kld_mean,
              r.kld_p99, r.top1_agreement, r.ppl, r.base_ppl);
  EXPECT_EQ(r.windows, 32);
  EXPECT_GE(r.top1_agreement, 0.99);
  EXPECT_LE(r.kld_mean, 0.005);
}

// MSE-optimal clipping must lower the divergence against min/max at 4 bits and below.
TEST(QuantizeModel, MseClippingBeatsMinMaxAtLowBits) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"int4:g128:asym", "int4:g128:asym:mse"}, {"int3:g128:asym", "int3:g128:asym:mse"}, {"int2:g64:asym", "int2:g64:asym:mse"}};
  std::vector<std::unique_ptr<Model>> models;
  std::vector<const Model*> ptrs;
  for (const auto& [a, b] : pairs)
    for (const auto& s : {a, b}) {
      models.push_back(quantize_in_memory(llama(), options(s)));
      ptrs.push_back(models.back().get());
    }
  const auto rs = evaluate_models(ptrs, &llama(), docs_windows(8));
  for (size_t i = 0; i < pairs.size(); ++i) {
    std::printf("%s KLD %.5f  vs  %s KLD %.5f\n", pairs[i].first.c_str(), rs[2 * i].kld_mean, pairs[i].second.c_str(),
                rs[2 * i + 1].kld_mean);
    EXPECT_LT(rs[2 * i + 1].kld_mean, rs[2 * i].kld_mean) << pairs[i].second;
  }
}

TEST(QuantizeCli, JsonReportOverridesAndAtomicReplace) {
  const std::string dir = lmq::test::temp_dir(), out = dir + "/m.lmq";
  lmq::test::write_file(out, "the previous file");
  auto r = run_lmq({"quantize", shared_path("models/lmq-llama-25m"), "-o", out, "--scheme", "int4:g64:sym",
                    "--override", "mlp\\.down_proj=int8:channel:sym", "--override", "layers\\.0\\.=int6:g32:asym",
                    "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  std::map<std::string, std::string> scheme;
  for (const auto& t : j["tensors"]) {
    scheme[t["name"]] = t["scheme"];
    EXPECT_GE(t["rel_rms"].get<double>(), 0.0);
    EXPECT_GT(t["bpw"].get<double>(), 0.0);
  }
  EXPECT_EQ(scheme["model.layers.1.mlp.down_proj.weight"], "int8:channel:sym:minmax:s=f16");
  EXPECT_EQ(scheme["model.layers.0.mlp.down_proj.weight"], "int8:channel:sym:minmax:s=f16");  // first match wins
  EXPECT_EQ(scheme["model.layers.0.mlp.up_proj.weight"], "int6:g32:asym:minmax:s=f16");
  EXPECT_EQ(scheme["model.layers.1.mlp.up_proj.weight"], "int4:g64:sym:minmax:s=f16");
  EXPECT_EQ(scheme["model.layers.1.input_layernorm.weight"], "f32");
  EXPECT_EQ(scheme["model.embed_tokens.weight"], "int8:channel:sym:minmax:s=f16");
  EXPECT_EQ(j["file_bytes"].get<uint64_t>(), fs::file_size(out));
  EXPECT_EQ(j["bpw"].get<double>(), 8.0 * j["tensor_bytes"].get<double>() / j["params"].get<double>());
  // Only the finished file remains: no temporary files beside it.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  // A quantized file is a model like any other.
  auto inspect = run_lmq({"inspect", out, "--json"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(nlohmann::json::parse(inspect.out)["params"].get<uint64_t>(), 24877440u);
}

// Running a quantized model holds no float copy of it: peak RSS ≤ file size + 64 MiB.
TEST(QuantizeCli, RunningAQuantizedModelStaysWithinItsFileSize) {
  const std::string out = lmq::test::temp_dir() + "/m.lmq";
  ASSERT_EQ(run_lmq({"quantize", shared_path("models/lmq-llama-25m"), "-o", out, "--scheme", "int4:g32:sym"}).exit_code, 0);
  // The process reports its own peak (getrusage after exec); the spawning test process's
  // memory would blur a measurement taken from outside.
  auto r = run_lmq({"run", out, "-p", "The kernel", "-n", "32", "--temp", "0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const uint64_t peak = nlohmann::json::parse(r.out)["peak_rss_bytes"].get<uint64_t>();
  std::printf("peak RSS %.1f MiB, file %.1f MiB\n", peak / 1048576.0, fs::file_size(out) / 1048576.0);
  EXPECT_GT(peak, 0u);
  EXPECT_LE(peak, fs::file_size(out) + (64u << 20));
}

}  // namespace
