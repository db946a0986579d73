// GGUF export of byte-level BPE models (`lmq quantize --format gguf`): lmq-llama3-9m at q8_0 is
// tensor for tensor the bytes of llama.cpp's own lmq-llama3-9m-Q8_0.gguf (rope_freqs included)
// with the metadata llama.cpp needs; Qwen3 goes out with llama.cpp's qwen3 keys and
// attn_q_norm/attn_k_norm tensors and reads back to the Hugging Face reference logits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmq/formats/gguf.h"
#include "lmq/formats/safetensors.h"
#include "lmq/mapped_file.h"
#include "lmq/model/forward.h"
#include "lmq/model/model.h"
#include "test_support.h"

using namespace lmq;
using lmq::test::run_lmq;
using lmq::test::shared_path;
namespace fs = std::filesystem;

namespace {

std::string export_gguf_of(const std::string& model_dir, const std::string& scheme, const std::string& name) {
  const std::string out = lmq::test::temp_dir() + "/" + name;
  auto r = run_lmq({"quantize", model_dir, "-o", out, "--format", "gguf", "--scheme", scheme});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

}  // namespace

TEST(GgufBpeExport, Llama3Q8_0IsLlamaCppsTensorBytes) {
  const GgufFile want(shared_path("gguf/lmq-llama3-9m-Q8_0.gguf"));
  const GgufFile got(export_gguf_of(shared_path("models/lmq-llama3-9m"), "q8_0", "llama3-q8_0.gguf"));
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (const Tensor& w : want.tensors()) {
    const Tensor* g = got.find(w.name);
    ASSERT_NE(g, nullptr) << w.name;
    EXPECT_EQ(g->format, w.format) << w.name;
    EXPECT_EQ(g->shape, w.shape) << w.name;
    ASSERT_EQ(g->nbytes, w.nbytes) << w.name;
    EXPECT_EQ(std::memcmp(g->data, w.data, w.nbytes), 0) << w.name << " differs";
  }
  // The metadata llama.cpp reads: the same values as its converter wrote.
  for (const char* key : {"general.architecture", "llama.block_count", "llama.context_length", "llama.embedding_length",
                          "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
                          "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "llama.attention.key_length",
                          "llama.attention.value_length", "llama.vocab_size", "llama.rope.dimension_count",
                          "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.merges",
                          "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "general.file_type"}) {
    ASSERT_TRUE(got.has(key)) << key;
    EXPECT_TRUE(got.get(key) == want.get(key)) << key;
  }
  const auto& gt = std::get<std::vector<GgufValue>>(got.get("tokenizer.ggml.token_type").v);
  const auto& wt = std::get<std::vector<GgufValue>>(want.get("tokenizer.ggml.token_type").v);
  ASSERT_EQ(gt.size(), wt.size());
  for (size_t i = 0; i < gt.size(); ++i) ASSERT_EQ(std::get<int64_t>(gt[i].v), std::get<int64_t>(wt[i].v)) << i;
  EXPECT_TRUE(got.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(got.has("llama.rope.scaling.type"));  // Llama-3 scaling travels as rope_freqs only
}

TEST(GgufBpeExport, Qwen3WithLlamaCppsKeysAndNamesReadsBackToTheReference) {
  const std::string name = "lmq-qwen3-8m";
  const std::string out = export_gguf_of(shared_path("models/" + name), "f32", "qwen3-f32.gguf");
  {
    const GgufFile g(out);
    EXPECT_EQ(g.get_string("general.architecture"), "qwen3");
    for (const char* key : {"qwen3.block_count", "qwen3.embedding_length", "qwen3.attention.head_count",
                            "qwen3.attention.head_count_kv", "qwen3.attention.key_length", "qwen3.rope.freq_base",
                            "qwen3.attention.layer_norm_rms_epsilon", "qwen3.feed_forward_length"})
      EXPECT_TRUE(g.has(key)) << key;
    EXPECT_EQ(g.get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(g.get_string("tokenizer.ggml.pre"), "qwen2");
    EXPECT_FALSE(g.get_bool("tokenizer.ggml.add_bos_token"));
    ASSERT_NE(g.find("blk.0.attn_q_norm.weight"), nullptr);
    ASSERT_NE(g.find("blk.0.attn_k_norm.weight"), nullptr);
    EXPECT_EQ(g.find("blk.0.attn_q.bias"), nullptr);
    EXPECT_EQ(g.find("blk.0.attn_q_norm.weight")->format, Format::F32);
  }
  const auto m = Model::load(out);
  ASSERT_EQ(m->config().arch, Arch::Qwen3);
  EXPECT_TRUE(m->config().qk_norm);
  EXPECT_FALSE(m->config().rope_interleaved);  // Qwen GGUFs are stored unpermuted
  SafetensorsFile ref(shared_path("reference/" + name + "/reference.safetensors"));
  const int V = m->config().vocab;
  const StTensor* wins = ref.find("wiki.windows_0_1");
  const StTensor* first16 = ref.find("wiki.window_0.logits_first16");
  ASSERT_TRUE(wins && first16);
  ASSERT_EQ(first16->tensor.shape, (std::vector<int64_t>{16, V}));
  Runner run(*m, 512);
  std::vector<float> logits(size_t(512) * V);
  std::vector<int> ids(reinterpret_cast<const int32_t*>(wins->tensor.data),
                       reinterpret_cast<const int32_t*>(wins->tensor.data) + 512);
  run.forward(ids.data(), 512, logits.data(), true);
  // The bounds of reference_test.cpp: transformers' float32 noise, after each row's offset.
  const float* want = reinterpret_cast<const float*>(first16->tensor.data);
  for (int p = 0; p < 16; ++p) {
    const float* ours = logits.data() + size_t(p) * V;
    const float* r = want + size_t(p) * V;
    double mean = 0, sq = 0, worst = 0;
    for (int i = 0; i < V; ++i) mean += double(ours[i]) - r[i];
    mean /= V;
    for (int i = 0; i < V; ++i) {
      const double d = double(ours[i]) - r[i] - mean;
      sq += d * d;
      worst = std::max(worst, std::fabs(d));
    }
    EXPECT_LT(worst, 1e-2) << "position " << p;
    EXPECT_LT(std::sqrt(sq / V), 1.5e-3) << "position " << p;
  }
}

// A tokenizer.json whose regex llama.cpp does not know: written as "default" with one warning.
TEST(GgufBpeExport, UnknownPreTokenizerRegexIsWarnedByName) {
  const std::string src = shared_path("models/lmq-qwen3-8m");
  const std::string dir = lmq::test::temp_dir() + "/odd-qwen3";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "tokenizer.json") fs::create_symlink(e.path(), dir + "/" + e.path().filename().string());
  nlohmann::json tj = nlohmann::json::parse(read_text_file(src + "/tokenizer.json"));
  tj["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{L}+|\\p{N}|\\s+|[^\\s\\p{L}\\p{N}]+";
  std::ofstream(dir + "/tokenizer.json") << tj.dump();
  const std::string out = lmq::test::temp_dir() + "/odd.gguf";
  auto r = run_lmq({"quantize", dir, "-o", out, "--format", "gguf", "--scheme", "q8_0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("lmq: warning: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'\\p{L}+|\\p{N}|\\s+|[^\\s\\p{L}\\p{N}]+' matches none of llama.cpp's"), std::string::npos) << r.err;
  EXPECT_EQ(GgufFile(out).get_string("tokenizer.ggml.pre"), "default");
}

// YaRN goes out as llama.cpp's rope.scaling.* keys and reads back to the same RoPE: the GGUF
// (f32) gives the logits of the Hugging Face directory it came from.
TEST(GgufBpeExport, YarnKeysRoundTrip) {
  const std::string src = shared_path("models/lmq-qwen3-8m");
  const std::string dir = lmq::test::temp_dir() + "/yarn-qwen3";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "config.json") fs::create_symlink(e.path(), dir + "/" + e.path().filename().string());
  nlohmann::json cj = nlohmann::json::parse(read_text_file(src + "/config.json"));
  cj["rope_parameters"] = {{"rope_theta", 1000000.0}, {"rope_type", "yarn"}, {"factor", 4.0},
                           {"original_max_position_embeddings", 512}, {"beta_fast", 16.0}};
  std::ofstream(dir + "/config.json") << cj.dump();
  const std::string out = export_gguf_of(dir, "f32", "yarn.gguf");
  const GgufFile g(out);
  EXPECT_EQ(g.get_string("qwen3.rope.scaling.type"), "yarn");
  EXPECT_EQ(g.get_f32("qwen3.rope.scaling.factor"), 4.0f);
  EXPECT_EQ(g.get_u32("qwen3.rope.scaling.original_context_length"), 512u);
  EXPECT_EQ(g.get_f32("qwen3.rope.scaling.yarn_beta_fast"), 16.0f);
  EXPECT_EQ(g.get_f32("qwen3.rope.scaling.yarn_beta_slow"), 1.0f);
  const auto hf = Model::load(dir);
  const auto back = Model::load(out);
  EXPECT_EQ(back->config().rope.type, RopeType::Yarn);
  EXPECT_EQ(back->config().rope.factor, 4.0);
  EXPECT_EQ(back->config().rope.original_max_position_embeddings, 512);
  const std::vector<int> ids = hf->tokenizer().encode(read_text_file(shared_path("text/docs-valid.txt")).substr(0, 4000));
  ASSERT_GE(ids.size(), 600u);
  const int n = 600, V = hf->config().vocab;  // past the original context, where YaRN matters
  std::vector<float> a(size_t(n) * V), b(size_t(n) * V);
  Runner(*hf, n).forward(ids.data(), n, a.data(), true);
  Runner(*back, n).forward(ids.data(), n, b.data(), true);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  EXPECT_LT(worst, 1e-3);
}
