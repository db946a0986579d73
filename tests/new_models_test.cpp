// Today's models (issue 15) through the real CLI and Model::load: lmq-qwen3-8m (Qwen3, byte-level
// BPE without BOS) and lmq-llama3-9m (Llama-3 BPE with a template BOS, llama3 RoPE scaling, legacy
// config style). Correctness of the float pass is in reference_test.cpp; here: tokenize, streaming,
// quantization into lmq's file (standalone: tokenizer.json and RoPE settings inside), and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "lmq/error.h"
#include "lmq/mapped_file.h"
#include "lmq/model/forward.h"
#include "lmq/model/model.h"
#include "test_support.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace lmq::test;

namespace {

std::string qwen3() { return shared_path("models/lmq-qwen3-8m"); }
std::string llama3() { return shared_path("models/lmq-llama3-9m"); }

// A model directory of symlinks to a real model's files.
std::string model_copy(const std::string& src) {
  const std::string d = temp_dir();
  for (const auto& e : fs::directory_iterator(src))
    fs::create_symlink(fs::absolute(e.path()), fs::path(d) / e.path().filename());
  return d;
}

void edit_json(const std::string& dir, const std::string& name, const std::function<void(json&)>& edit) {
  const fs::path p = fs::path(dir) / name;
  json j = json::parse(read_file(p.string()));
  edit(j);
  fs::remove(p);
  write_file(p.string(), j.dump(2));
}

void expect_error(const RunResult& r, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.exit_code, 1) << "stderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr must be exactly one line: " << r.err;
  EXPECT_EQ(r.err.rfind("lmq: error: ", 0), 0u) << r.err;
  for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  EXPECT_EQ(r.out, "") << "stdout must stay empty on error";
}

// Model::load (and the tokenizer, loaded on first use) throws one lmq::Error holding every needle.
void expect_load_error(const std::string& dir, const std::vector<std::string>& needles) {
  try {
    auto m = lmq::Model::load(dir);
    (void)m->tokenizer();
    ADD_FAILURE() << "loaded";
  } catch (const lmq::Error& e) {
    const std::string what = e.what();
    for (const auto& n : needles) EXPECT_NE(what.find(n), std::string::npos) << "'" << n << "' not in: " << what;
  }
}

json reference(const std::string& model) {
  return json::parse(read_file(shared_path("reference/" + model + "/reference.json")));
}

// Calibration text: 300 lines from the start of docs-valid.txt's second half (by lines).
std::string calib_file() {
  static const std::string path = [] {
    const std::string text = read_file(shared_path("text/docs-valid.txt"));
    const size_t lines = size_t(std::count(text.begin(), text.end(), '\n'));
    size_t pos = 0;
    for (size_t i = 0; i < lines / 2; ++i) pos = text.find('\n', pos) + 1;
    size_t end = pos;
    for (int i = 0; i < 300 && end != std::string::npos; ++i) end = text.find('\n', end) + 1;
    const std::string p = temp_dir() + "/calib.txt";
    write_file(p, text.substr(pos, end - pos));
    return p;
  }();
  return path;
}

json eval_json(const std::string& model, const std::string& base, int windows) {
  RunResult r = run_lmq({"eval", model, "--text", shared_path("text/docs-valid.txt"), "--windows",
                         std::to_string(windows), "--base", base, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

}  // namespace

// tokenize --json: the ids transformers' tokenizer gives (the greedy prompt of the references,
// with Llama-3's template BOS, without a BOS for Qwen3), their pieces and the decoded text.
TEST(Tokenize, JsonMatchesReferencePromptIds) {
  for (const auto& [dir, name] : {std::pair{qwen3(), "lmq-qwen3-8m"}, {llama3(), "lmq-llama3-9m"}}) {
    const json ref = reference(name);
    RunResult r = run_lmq({"tokenize", dir, "-p", ref["greedy"]["prompt"].get<std::string>(), "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["ids"], ref["greedy"]["prompt_ids"]) << name;
    EXPECT_EQ(j["pieces"].size(), j["ids"].size());
    EXPECT_EQ(j["pieces"].back(), "Ġkernel");
  }
  // every tokenizer case through the CLI, specials added as the tokenizer adds them
  const json ref = reference("lmq-llama3-9m");
  for (const json& c : ref["tokenizer_cases"]) {
    RunResult r = run_lmq({"tokenize", llama3(), "-p", c["text"].get<std::string>(), "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["ids"], c["ids"]) << c["text"];
    EXPECT_EQ(j["text"], c["decoded"]) << c["text"];
  }
}

// run streams token by token; a multi-byte character split over two byte-level tokens must come
// out whole: the streamed text equals the prompt + the decoded ids of --json.
TEST(RunStreaming, MultiByteTextEqualsDecodedIds) {
  const std::string prompt = "Größe über 😀 —";
  for (const std::string& dir : {qwen3(), llama3()}) {
    RunResult plain = run_lmq({"run", dir, "-p", prompt, "-n", "24", "--temp", "0"});
    RunResult js = run_lmq({"run", dir, "-p", prompt, "-n", "24", "--temp", "0", "--json"});
    ASSERT_EQ(plain.exit_code, 0) << plain.err;
    ASSERT_EQ(js.exit_code, 0) << js.err;
    EXPECT_EQ(plain.out, prompt + json::parse(js.out)["text"].get<std::string>() + "\n") << dir;
  }
}

// int4 GPTQ of Qwen3 into lmq's file: a standalone file (tokenizer.json, head_dim, q/k norms and
// RoPE settings inside) that tokenizes like the source and stays close to it.
TEST(NewModelsQuantize, Qwen3Int4GptqRoundTripsAndStaysClose) {
  const std::string out = temp_dir() + "/q.lmq";
  RunResult q = run_lmq({"quantize", qwen3(), "-o", out, "--scheme", "int4:g128:asym", "--method", "gptq", "--calib",
                         calib_file(), "--calib-samples", "4", "--calib-len", "128"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  auto src = lmq::Model::load(qwen3());
  auto m = lmq::Model::load(out);
  EXPECT_EQ(m->config().arch, lmq::Arch::Qwen3);
  EXPECT_TRUE(m->config().qk_norm);
  EXPECT_EQ(m->config().head_dim, 96);
  EXPECT_EQ(m->config().rope.theta, src->config().rope.theta);
  EXPECT_EQ(m->metadata().at("lmq.tokenizer_kind"), "bpe");
  EXPECT_EQ(m->tokenizer().kind(), lmq::TokenizerKind::Bpe);
  EXPECT_FALSE(m->tokenizer().adds_bos());
  const std::string text = read_file(shared_path("text/docs-valid.txt")).substr(0, 20000);
  EXPECT_EQ(m->tokenizer().encode(text), src->tokenizer().encode(text));
  // q_norm stays float, value for value (a norm, not a linear)
  for (auto w : {&lmq::LayerWeights::q_norm, &lmq::LayerWeights::k_norm}) {
    std::vector<float> a(96), b(96);
    lmq::dequantize_rows(*(m->layers()[3].*w), 0, 1, a.data());
    lmq::dequantize_rows(*(src->layers()[3].*w), 0, 1, b.data());
    EXPECT_EQ(a, b);
  }
  const json e = eval_json(out, qwen3(), 4);
  EXPECT_LT(e["kld_mean"].get<double>(), 0.05);  // 0.019 measured
  EXPECT_GT(e["top1_agreement"].get<double>(), 0.8);
}

// W8A8 (static int8 activations) of Llama-3 keeps its llama3 RoPE scaling and BOS rule.
TEST(NewModelsQuantize, Llama3W8A8KeepsRopeScaling) {
  const std::string out = temp_dir() + "/w8a8.lmq";
  RunResult q = run_lmq({"quantize", llama3(), "-o", out, "--scheme", "int8:channel:sym", "--activations", "int8",
                         "--calib", calib_file(), "--calib-samples", "4", "--calib-len", "128"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  auto m = lmq::Model::load(out);
  const lmq::RopeParams& r = m->config().rope;
  EXPECT_EQ(r.type, lmq::RopeType::Llama3);
  EXPECT_EQ(r.factor, 32);
  EXPECT_EQ(r.low_freq_factor, 1);
  EXPECT_EQ(r.high_freq_factor, 4);
  EXPECT_EQ(r.original_max_position_embeddings, 8192);
  EXPECT_EQ(m->tokenizer().bos_id(), 16376);
  const json e = eval_json(out, llama3(), 2);
  EXPECT_LT(e["kld_mean"].get<double>(), 0.05);
}

// ---- bad input
TEST(BadInputNewModels, UnknownRopeType) {
  const std::string d = model_copy(llama3());
  edit_json(d, "config.json", [](json& j) { j["rope_scaling"]["rope_type"] = "longrope"; });
  expect_load_error(d, {"config.json", "longrope"});
  expect_error(run_lmq({"inspect", d}), {"config.json", "longrope"});
}

TEST(BadInputNewModels, MissingRopeParameter) {
  const std::string d = model_copy(llama3());
  edit_json(d, "config.json", [](json& j) { j["rope_scaling"].erase("low_freq_factor"); });
  expect_load_error(d, {"config.json", "low_freq_factor", "missing"});
  expect_error(run_lmq({"inspect", d}), {"config.json", "low_freq_factor"});
}

TEST(BadInputNewModels, AbsurdRopeParameter) {
  const std::string d = model_copy(qwen3());
  edit_json(d, "config.json", [](json& j) { j["rope_parameters"]["rope_theta"] = -1.0; });
  expect_load_error(d, {"config.json", "rope_theta", "absurd"});
  const std::string d2 = model_copy(llama3());
  edit_json(d2, "config.json", [](json& j) { j["rope_scaling"]["factor"] = 0.25; });
  expect_error(run_lmq({"run", d2, "-p", "x", "-n", "1"}), {"config.json", "factor", "absurd"});
}

TEST(BadInputNewModels, QNormOfTheWrongSize) {
  const std::string d = model_copy(qwen3());
  // layer 1's q_norm declared as [2, 48]: the same bytes, not the [head_dim] a q_norm is.
  const std::string name = "model.layers.1.self_attn.q_norm.weight";
  const json index = json::parse(read_file(d + "/model.safetensors.index.json"));
  const fs::path shard = fs::path(d) / index["weight_map"][name].get<std::string>();
  const std::string bytes = read_file(shard.string());
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | uint8_t(bytes[size_t(i)]);
  json h = json::parse(bytes.substr(8, hlen));
  h[name]["shape"] = {2, 48};
  std::string hs = h.dump();
  hs.resize(hlen, ' ');  // same header length: the data offsets stay valid
  fs::remove(shard);
  write_file(shard.string(), bytes.substr(0, 8) + hs + bytes.substr(8 + hlen));
  expect_load_error(d, {name, "[2, 48]", "[96]"});
  expect_error(run_lmq({"inspect", d}), {"q_norm", "[2, 48]", "[96]"});
}

TEST(BadInputNewModels, MistralSlidingWindowTooSmall) {
  const std::string d = model_copy(llama3());
  edit_json(d, "config.json", [](json& j) {
    j["model_type"] = "mistral";
    j["sliding_window"] = 16;
  });
  expect_error(run_lmq({"run", d, "-p", "The kernel", "-n", "32"}), {"sliding_window 16", "config.json"});
  // A window at least as long as the run is no window at all.
  edit_json(d, "config.json", [](json& j) { j["sliding_window"] = 4096; });
  RunResult ok = run_lmq({"run", d, "-p", "The kernel", "-n", "4", "--temp", "0"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  edit_json(d, "config.json", [](json& j) { j["sliding_window"] = nullptr; });
  EXPECT_EQ(run_lmq({"run", d, "-p", "The kernel", "-n", "4"}).exit_code, 0);
}

TEST(BadInputNewModels, UnsupportedTokenizerJsonKind) {
  const std::string d = model_copy(qwen3());
  edit_json(d, "tokenizer.json", [](json& j) { j["model"]["type"] = "WordPiece"; });
  expect_load_error(d, {"tokenizer.json", "WordPiece"});
  expect_error(run_lmq({"tokenize", d, "-p", "hello"}), {"tokenizer.json", "WordPiece"});
}

// max_position_embeddings 131072 must not size the KV cache: a 64-token run of Llama-3 stays
// within its file + 64 MiB of peak RSS (38 MB measured for a 17 MB file).
TEST(NewModelsMemory, Llama3RunPeakRssWithinFilePlus64MiB) {
  RunResult r = run_lmq({"run", llama3(), "-p", "The kernel", "-n", "64", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  uint64_t file_bytes = 0;
  for (const auto& e : fs::directory_iterator(llama3()))
    if (e.path().extension() == ".safetensors") file_bytes += e.file_size();
  EXPECT_LE(json::parse(r.out)["peak_rss_bytes"].get<uint64_t>(), file_bytes + (uint64_t(64) << 20));
}
