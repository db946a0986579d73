// GGUF files as models: llama.cpp's own quantizations of the shared models (../shared/gguf/)
// load, run, tokenize like the Hugging Face tokenizer, hold the HF weights under llama.cpp's
// names and Q/K row permutation, and reproduce llama-perplexity's figures (llamacpp.json).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lmq/codecs/ggml_blocks.h"
#include "lmq/error.h"
#include "lmq/formats/gguf.h"
#include "lmq/formats/gguf_writer.h"
#include "lmq/formats/safetensors.h"
#include "lmq/half.h"
#include "lmq/mapped_file.h"
#include "lmq/model/forward.h"
#include "lmq/model/model.h"
#include "test_support.h"

using namespace lmq;
using lmq::test::run_lmq;
using lmq::test::shared_path;
using json = nlohmann::json;

namespace {

const char* kLlamaQ8 = "lmq-llama-25m-Q8_0.gguf";
const std::vector<std::string> kFixtures = {"lmq-llama-25m-Q8_0.gguf", "lmq-llama-25m-Q4_0.gguf",
                                            "lmq-qwen2-21m-Q4_K_M.gguf", "lmq-qwen2-21m-Q3_K_M.gguf"};

std::string gguf_path(const std::string& name) { return shared_path("gguf/" + name); }

#define REQUIRE_FILE(p) \
  if (!std::filesystem::exists(p)) GTEST_SKIP() << "missing fixture " << (p)

// A UTF-8-safe prefix of at most n bytes.
std::string prefix(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (uint8_t(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::vector<int> run_greedy_ids(const std::string& model) {
  auto r = run_lmq({"run", model, "-p", "The kernel", "-n", "16", "--temp", "0", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return {};
  return json::parse(r.out)["ids"].get<std::vector<int>>();
}

// Llama.cpp's row permutation of Q/K (convert_hf_to_gguf.py LlamaModel.permute): within each
// head of d rows, GGUF row 2i + a holds HF row a·d/2 + i.
int64_t hf_row_of_gguf_row(int64_t r, int head_dim) {
  const int64_t head = r / head_dim, j = r % head_dim, half = head_dim / 2;
  return head * head_dim + (j % 2) * half + j / 2;
}

}  // namespace

// ---------------------------------------------------------------- loading and running

class GgufModel : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufModel, LoadsInspectsAndRuns) {
  const std::string p = gguf_path(GetParam());
  REQUIRE_FILE(p);
  auto m = Model::load(p);
  EXPECT_EQ(m->source_kind(), "gguf");
  const bool llama = GetParam().find("llama") != std::string::npos;
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.arch, llama ? Arch::Llama : Arch::Qwen2);
  EXPECT_EQ(c.rope_interleaved, llama);
  EXPECT_EQ(c.qkv_bias, !llama);
  EXPECT_EQ(c.tied_embeddings, llama);
  EXPECT_EQ(c.vocab, 32000);
  EXPECT_EQ(c.max_pos, 1024);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
  EXPECT_TRUE(c.add_bos);
  EXPECT_EQ(m->file_bytes(), std::filesystem::file_size(p));
  // The same architecture as the HF model it was converted from.
  auto hf = Model::load(shared_path(llama ? "models/lmq-llama-25m" : "models/lmq-qwen2-21m"));
  const ModelConfig& h = hf->config();
  EXPECT_EQ(c.hidden, h.hidden);
  EXPECT_EQ(c.n_layers, h.n_layers);
  EXPECT_EQ(c.n_heads, h.n_heads);
  EXPECT_EQ(c.n_kv_heads, h.n_kv_heads);
  EXPECT_EQ(c.head_dim, h.head_dim);
  EXPECT_EQ(c.ffn, h.ffn);
  EXPECT_EQ(c.rope.theta, h.rope.theta);
  EXPECT_NEAR(c.norm_eps, h.norm_eps, 1e-12);
  EXPECT_EQ(m->param_count(), hf->param_count());

  auto r = run_lmq({"inspect", p, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["source"], "gguf");
  EXPECT_EQ(j["architecture"], llama ? "llama" : "qwen2");
  EXPECT_EQ(j["params"].get<uint64_t>(), hf->param_count());
  EXPECT_EQ(j["tensor_count"].get<size_t>(), m->tensors().size());

  const std::vector<int> ids = run_greedy_ids(p);
  ASSERT_EQ(ids.size(), 3u + 16u);  // BOS "The kernel" + 16 new
  EXPECT_EQ(ids[0], 1);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GgufModel, ::testing::ValuesIn(kFixtures),
                         [](const auto& info) {
                           std::string s = info.param.substr(0, info.param.size() - 5);
                           for (char& ch : s)
                             if (!isalnum(uint8_t(ch))) ch = '_';
                           return s;
                         });

// Q8_0 is near-lossless: greedy decoding follows the HF model token for token, except where
// the HF model's top two logits nearly tie (then Q8_0's noise may pick the other one; this
// happens for this prompt: after "The kernel is a kernel module" HF has "that" 9.9367 vs
// "for" 9.9347). Checked by teacher forcing the HF greedy sequence through both models: the
// argmax agrees at every position whose HF top-2 margin is ≥ 0.05, and the CLI's greedy ids
// agree up to the first position where it does not.
TEST(GgufLlamaQ8, GreedyIdsEqualHfUpToNearTies) {
  const std::string p = gguf_path(kLlamaQ8);
  REQUIRE_FILE(p);
  const std::vector<int> gguf = run_greedy_ids(p);
  const std::vector<int> hf = run_greedy_ids(shared_path("models/lmq-llama-25m"));
  ASSERT_EQ(gguf.size(), 19u);
  ASSERT_EQ(hf.size(), 19u);
  auto mg = Model::load(p);
  auto mh = Model::load(shared_path("models/lmq-llama-25m"));
  const int V = mh->config().vocab, n = int(hf.size()), prompt = 3;
  std::vector<float> lg(size_t(n) * V), lh(size_t(n) * V);
  Runner(*mg, n).forward(hf.data(), n, lg.data(), true);
  Runner(*mh, n).forward(hf.data(), n, lh.data(), true);
  int first_flip = -1, flips = 0;
  for (int i = prompt - 1; i + 1 < n; ++i) {
    const float* g = lg.data() + size_t(i) * V;
    const float* h = lh.data() + size_t(i) * V;
    const int ag = int(std::max_element(g, g + V) - g), ah = int(std::max_element(h, h + V) - h);
    ASSERT_EQ(ah, hf[size_t(i + 1)]) << "HF teacher forcing disagrees with its own greedy run at " << i;
    if (ag == ah) continue;
    ++flips;
    if (first_flip < 0) first_flip = i;
    std::printf("[greedy] position %d: HF %d (%.4f) vs Q8_0 %d (HF logit %.4f)\n", i, ah, h[ah], ag, h[ag]);
    EXPECT_LT(h[ah] - h[ag], 0.05f) << "Q8_0 changed a clear HF choice at position " << i;
  }
  EXPECT_LE(flips, 2);
  const size_t agree_to = first_flip < 0 ? hf.size() : size_t(first_flip + 1);
  for (size_t k = 0; k < agree_to; ++k) EXPECT_EQ(gguf[k], hf[k]) << "id " << k;
  if (first_flip < 0) {
    EXPECT_EQ(gguf, hf);
  }
  std::printf("[greedy] Q8_0 = HF for %zu of %zu ids (%d near-tie flips under teacher forcing)\n", agree_to,
              hf.size(), flips);
}

// Every tensor of the Q8_0 file (as loaded: the file's Q8_0 blocks, read in place by the
// integer kernels, kernels/ggml_matmul.h) is the HF weight (bf16, so exact in the f32 conversion) after
// the name mapping and, for Q and K, llama.cpp's row permutation: within 0.6·d of each block
// (d/2 for rounding plus the f16 rounding of d), d being that block's scale. F32 tensors exactly.
TEST(GgufLlamaQ8, TensorsAreTheHfWeightsUnderTheMappingAndPermutation) {
  const std::string p = gguf_path(kLlamaQ8);
  REQUIRE_FILE(p);
  auto m = Model::load(p, LoadOptions{.ggml_in_place = true});  // the blocks as stored on any CPU
  auto hf = Model::load(shared_path("models/lmq-llama-25m"));
  const int d = m->config().head_dim;
  size_t q8 = 0, f32 = 0;
  double worst_all = 0;
  for (const Tensor& t : m->tensors()) {
    const Tensor* h = hf->find(t.name);
    ASSERT_NE(h, nullptr) << t.name;
    ASSERT_EQ(t.shape, h->shape) << t.name;
    const bool permuted = t.name.find("q_proj.weight") != std::string::npos ||
                          t.name.find("k_proj.weight") != std::string::npos;
    const int64_t cols = t.cols();
    std::vector<float> a(static_cast<size_t>(cols)), b(static_cast<size_t>(cols));
    double worst = 0;  // max |error| / d over the tensor
    for (int64_t r = 0; r < t.rows(); ++r) {
      dequantize_rows(t, r, 1, a.data());
      dequantize_rows(*h, permuted ? hf_row_of_gguf_row(r, d) : r, 1, b.data());
      if (t.format == Format::F32) {
        for (int64_t i = 0; i < cols; ++i) ASSERT_EQ(a[size_t(i)], b[size_t(i)]) << t.name << " row " << r;
        continue;
      }
      // the file's Q8_0 blocks as stored: d, then 32 int8 codes (codecs/ggml_blocks.h)
      ASSERT_EQ(t.format, Format::Q8_0) << t.name;
      const uint8_t* row = t.data + uint64_t(r) * ggml_row_bytes(Format::Q8_0, cols);
      for (int64_t blk = 0; blk < cols / 32; ++blk) {
        const uint8_t* db = row + blk * int64_t(sizeof(ggml::block_q8_0));
        const float scale = f16_to_f32(uint16_t(db[0] | db[1] << 8));
        for (int64_t i = blk * 32; i < blk * 32 + 32; ++i) {
          const double err = std::fabs(double(a[size_t(i)]) - double(b[size_t(i)]));
          ASSERT_LE(err, 0.6 * scale) << t.name << " row " << r << " col " << i;
          if (scale > 0) worst = std::max(worst, err / scale);
        }
      }
    }
    worst_all = std::max(worst_all, worst);
    if (t.format == Format::F32) ++f32;
    else ++q8;
    // Without the permutation Q/K rows would be far off; make sure the check has teeth.
    if (permuted) {
      dequantize_rows(t, 1, 1, a.data());
      dequantize_rows(*h, 1, 1, b.data());
      double diff = 0;
      for (int64_t i = 0; i < cols; ++i) diff = std::max(diff, double(std::fabs(a[size_t(i)] - b[size_t(i)])));
      EXPECT_GT(diff, 1e-3) << t.name << ": row 1 unpermuted should differ";
    }
  }
  std::printf("[q8_0] largest |gguf - hf| = %.4f d\n", worst_all);
  EXPECT_EQ(q8, 57u);
  EXPECT_EQ(f32, 17u);
}

// ---------------------------------------------------------------- tokenizer

// The SentencePiece model rebuilt from tokenizer.ggml.* encodes like the HF tokenizer.model.
TEST(GgufTokenizer, EncodesLikeTheHfTokenizer) {
  const std::string p = gguf_path(kLlamaQ8);
  REQUIRE_FILE(p);
  auto m = Model::load(p);
  const Tokenizer& g = m->tokenizer();
  const Tokenizer hf = Tokenizer::from_file(shared_path("models/lmq-llama-25m/tokenizer.model"));
  EXPECT_EQ(g.vocab_size(), hf.vocab_size());
  for (const char* file : {"docs-valid.txt", "wikitext-2-test.txt"}) {
    const std::string text = prefix(read_text_file(shared_path(std::string("text/") + file)), 20000);
    const std::vector<int> a = g.encode(text), b = hf.encode(text);
    ASSERT_GT(a.size(), 1000u);
    EXPECT_EQ(a, b) << file;
    EXPECT_EQ(g.decode(a), hf.decode(b)) << file;
  }
  for (const char* s : {"", " ", "  two  spaces", "\n\nnewlines\n", "tab\there", "ünïcödé 漢字 🙂", "<s> </s>"})
    EXPECT_EQ(g.encode(s), hf.encode(s)) << "'" << s << "'";
}

TEST(GgufTokenizer, WholeTextFirstIdsEqualReference) {
  const std::string p = gguf_path(kLlamaQ8);
  REQUIRE_FILE(p);
  auto m = Model::load(p);
  SafetensorsFile ref(shared_path("reference/lmq-llama-25m/reference.safetensors"));
  const StTensor* want = ref.find("docs_valid.first_ids");
  ASSERT_NE(want, nullptr);
  ASSERT_EQ(want->tensor.shape, std::vector<int64_t>{4096});
  const std::vector<int> ids = m->tokenizer().encode(read_text_file(shared_path("text/docs-valid.txt")));
  ASSERT_GE(ids.size(), 4096u);
  const int32_t* w = reinterpret_cast<const int32_t*>(want->tensor.data);
  for (int i = 0; i < 4096; ++i) ASSERT_EQ(ids[size_t(i)], w[i]) << "token " << i;
}

// ---------------------------------------------------------------- bad files

namespace {
// A copy of a fixture with one metadata key changed (or a tensor added), written to a temp dir.
std::string variant(const std::string& fixture, const std::string& key, const GgufValue* value,
                    const std::string& extra_tensor = "") {
  GgufFile src(gguf_path(fixture));
  const std::string out = lmq::test::temp_dir() + "/variant.gguf";
  GgufWriter w(out);
  for (const auto& [k, v] : src.metadata())
    if (k != "general.alignment") w.set(k, k == key && value ? *value : v);
  if (value && !src.has(key)) w.set(key, *value);
  for (const Tensor& t : src.tensors()) w.add_tensor(t);
  if (!extra_tensor.empty()) {
    const Tensor* norm = src.find("output_norm.weight");
    w.add_tensor(extra_tensor, norm->shape, norm->format, norm->data, norm->nbytes);
  }
  w.finish();
  return out;
}

std::string load_error(const std::string& path) {
  try {
    Model::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

// A GGUF source quantized into lmq's file keeps what GGUF holds beyond a Hugging Face config:
// the permuted Q/K rows (RoPE on adjacent pairs) and Llama-3's rope_freqs divisors. Without
// them the file ran the rows in the wrong RoPE order (KLD ~0.95 against its source).
TEST(GgufSource, QuantizedIntoAnLmqFileKeepsItsRope) {
  for (const std::string fx : {"lmq-llama-25m-Q8_0.gguf", "lmq-llama3-9m-Q8_0.gguf"}) {
    SCOPED_TRACE(fx);
    REQUIRE_FILE(gguf_path(fx));
    const std::string out = lmq::test::temp_dir() + "/from-gguf.lmq";
    const auto q = run_lmq({"quantize", gguf_path(fx), "-o", out, "--scheme", "int8:channel:sym"});
    ASSERT_EQ(q.exit_code, 0) << q.err;
    const auto src = Model::load(gguf_path(fx)), got = Model::load(out);
    EXPECT_TRUE(got->config().rope_interleaved);
    EXPECT_EQ(got->config().rope_freq_factors, src->config().rope_freq_factors);
    const auto e = run_lmq({"eval", out, "--base", gguf_path(fx), "--text", shared_path("text/docs-valid.txt"),
                            "--windows", "1", "--ctx", "128", "--json"});
    ASSERT_EQ(e.exit_code, 0) << e.err;
    EXPECT_LT(json::parse(e.out)["kld_mean"].get<double>(), 0.01);  // int8 over Q8_0's values
  }
  EXPECT_FALSE(Model::load(shared_path("gguf/lmq-llama3-9m-Q8_0.gguf"))->config().rope_freq_factors.empty());
}

TEST(GgufBadModel, ClearErrors) {
  const std::string fx = "lmq-qwen2-21m-Q3_K_M.gguf";
  REQUIRE_FILE(gguf_path(fx));
  const GgufValue gpt2 = GgufValue::str("gpt2");
  std::string p = variant(fx, "general.architecture", &gpt2);
  std::string e = load_error(p);
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("architecture 'gpt2'"), std::string::npos) << e;

  // A SentencePiece vocabulary labelled as byte-level BPE: its byte tokens give it away.
  p = variant(fx, "tokenizer.ggml.model", &gpt2);
  e = load_error(p);
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("is a byte token (type 6), which only SentencePiece vocabularies have"), std::string::npos) << e;

  p = variant(fx, "", nullptr, "blk.0.attn_qkv.weight");
  e = load_error(p);
  EXPECT_NE(e.find("unknown tensor 'blk.0.attn_qkv.weight'"), std::string::npos) << e;

  // add_space_prefix = false is honored: no dummy prefix before the first word.
  const GgufValue no = GgufValue::boolean(false);
  p = variant(fx, "tokenizer.ggml.add_space_prefix", &no);
  auto with = Model::load(gguf_path(fx)), without = Model::load(p);
  const auto a = with->tokenizer().encode("Hello"), b = without->tokenizer().encode("Hello");
  EXPECT_NE(a, b);
  EXPECT_EQ(without->tokenizer().decode(b), "Hello");
}

// ---------------------------------------------------------------- llama-perplexity's figures

namespace {
struct PplCase {
  std::string fixture;  // a GGUF file, or an HF model directory name
  double tolerance;     // relative
};
void PrintTo(const PplCase& c, std::ostream* os) { *os << c.fixture << " ±" << c.tolerance; }

// `lmq eval --protocol llamacpp --windows 100` against llamacpp.json's "ppl" (or, for an HF
// model directory, "ppl_f32": llama.cpp's f32 conversion of it).
void check_ppl(const PplCase& c) {
  const bool hf = c.fixture.find(".gguf") == std::string::npos;
  const std::string p = hf ? shared_path("models/" + c.fixture) : gguf_path(c.fixture);
  REQUIRE_FILE(p);
  const json table = json::parse(read_text_file(shared_path("gguf/llamacpp.json")));
  double want = 0;
  for (const auto& [name, row] : table["fixtures"].items()) {
    if (hf && row["model"] == c.fixture) want = row["ppl_f32"].get<double>();
    if (!hf && name == c.fixture) want = row["ppl"].get<double>();
  }
  ASSERT_GT(want, 0) << "no figure for " << c.fixture;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_lmq({"eval", p, "--text", shared_path("text/docs-valid.txt"), "--protocol", "llamacpp", "--windows",
                    "100", "--json"});
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["windows"].get<int>(), 100);
  EXPECT_EQ(j["tokens_scored"].get<int>(), 100 * 255);
  const double got = j["ppl"].get<double>();
  ::testing::Test::RecordProperty("ppl", std::to_string(got));
  std::printf("[ppl] %s: lmq %.4f, llama.cpp %.4f (%+.3f%%), %.0f s\n", c.fixture.c_str(), got, want,
              100 * (got / want - 1), secs);
  EXPECT_NEAR(got / want, 1.0, c.tolerance) << c.fixture << ": lmq " << got << " vs llama.cpp " << want;
}
}  // namespace

// The qwen2 files (6 layers, 256 wide) are cheap enough for every run.
class GgufPerplexity : public ::testing::TestWithParam<PplCase> {};
TEST_P(GgufPerplexity, MatchesLlamaCpp) { check_ppl(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Qwen2, GgufPerplexity,
                         ::testing::Values(PplCase{"lmq-qwen2-21m-Q4_K_M.gguf", 0.005},
                                           PplCase{"lmq-qwen2-21m-Q3_K_M.gguf", 0.005}),
                         [](const auto& info) { return info.param.fixture.substr(14, 6); });

// The llama files (8 layers, 384 wide) and the HF models against llama.cpp's f32 conversion: ctest
// label `slow`, registered only with -DLMQ_SLOW_TESTS=ON (see CMakeLists.txt).
class GgufPerplexitySlow : public ::testing::TestWithParam<PplCase> {};
TEST_P(GgufPerplexitySlow, MatchesLlamaCpp) { check_ppl(GetParam()); }
INSTANTIATE_TEST_SUITE_P(All, GgufPerplexitySlow,
                         ::testing::Values(PplCase{"lmq-llama-25m-Q8_0.gguf", 0.002},
                                           PplCase{"lmq-llama-25m-Q4_0.gguf", 0.005},
                                           // measured: HF llama +0.10%, qwen2 +0.15% over llama.cpp's f32
                                           // conversion, while every quantized file agrees within 0.04%
                                           PplCase{"lmq-llama-25m", 0.002}, PplCase{"lmq-qwen2-21m", 0.002}),
                         [](const auto& info) {
                           std::string s = info.param.fixture;
                           if (s.size() > 5 && s.substr(s.size() - 5) == ".gguf") s = s.substr(0, s.size() - 5);
                           else s += "_hf";
                           for (char& ch : s)
                             if (!isalnum(uint8_t(ch))) ch = '_';
                           return s;
                         });

// llama.cpp's byte-level BPE Llama-3 files (rope_freqs, llama-bpe): 86 s and 94 s wall (45 s CPU
// each) on the shared 2-core host, so `slow` too; measured -0.012% and -0.015% from llama.cpp.
// Its i-quant files (imatrix IQ2_XS / IQ3_S / IQ4_XS mixtures, ~70 s each): measured +0.018%,
// -0.006% (lattice blocks read in place, int8 activations in blocks of 32; -0.011%, -0.005% on
// the float path), -0.033% (IQ4_XS read in place; -0.026% repacked, -0.053% on the float path)
// against llama.cpp's q8_K activations.
INSTANTIATE_TEST_SUITE_P(Llama3, GgufPerplexitySlow,
                         ::testing::Values(PplCase{"lmq-llama3-9m-Q8_0.gguf", 0.002},
                                           PplCase{"lmq-llama3-9m-Q4_K_M.gguf", 0.005},
                                           PplCase{"lmq-llama3-9m-IQ2_XS.gguf", 0.005},
                                           PplCase{"lmq-llama3-9m-IQ3_S.gguf", 0.005},
                                           PplCase{"lmq-llama3-9m-IQ4_XS.gguf", 0.005}),
                         [](const auto& info) {
                           const std::string& f = info.param.fixture;
                           return f.substr(14, f.find(".gguf") - 14);
                         });
