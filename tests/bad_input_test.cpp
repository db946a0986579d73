// Bad input through the real CLI: each test builds a model directory in a temp dir from the real
// llama model's files (symlinks; a file to corrupt is replaced by a corrupted copy, never written
// through the link) and checks the rule: exit status 1, exactly one stderr line
// "lmq: error: <file>: <problem>" naming the file (or flag) and the problem, nothing on stdout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include <sys/stat.h>

#include "lmq/calib/calib.h"
#include "lmq/error.h"
#include "test_support.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace lmq::test;

namespace {

const std::string kShard1 = "model-00001-of-00003.safetensors";  // embeddings
const std::string kShard2 = "model-00002-of-00003.safetensors";  // layers 0..
const std::string kShard3 = "model-00003-of-00003.safetensors";  // the last shard
const std::string kIndex = "model.safetensors.index.json";

std::string llama() { return shared_path("models/lmq-llama-25m"); }

// A model directory of symlinks to the real llama model's files.
std::string model_copy() {
  const std::string d = temp_dir();
  for (const auto& e : fs::directory_iterator(llama()))
    fs::create_symlink(fs::absolute(e.path()), fs::path(d) / e.path().filename());
  return d;
}

// Replaces dir/name (a symlink at first) by a plain file holding bytes.
void replace(const std::string& dir, const std::string& name, const std::string& bytes) {
  const fs::path p = fs::path(dir) / name;
  fs::remove(p);
  write_file(p.string(), bytes);
}

uint64_t u64le(const std::string& s) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | uint8_t(s[size_t(i)]);
  return v;
}
std::string u64le_bytes(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}

// Parses a safetensors shard, lets edit change its header, and writes it back in place of the link.
void edit_header(const std::string& dir, const std::string& shard, const std::function<void(json&)>& edit) {
  const std::string bytes = read_file((fs::path(dir) / shard).string());
  ASSERT_GE(bytes.size(), 8u);
  const uint64_t hlen = u64le(bytes);
  json h = json::parse(bytes.substr(8, hlen));
  edit(h);
  const std::string hs = h.dump();
  replace(dir, shard, u64le_bytes(hs.size()) + hs + bytes.substr(8 + hlen));
}

void edit_json(const std::string& dir, const std::string& name, const std::function<void(json&)>& edit) {
  json j = json::parse(read_file((fs::path(dir) / name).string()));
  edit(j);
  replace(dir, name, j.dump(2));
}

std::string base(const std::string& p) { return fs::path(p).filename().string(); }

// The rule for every bad input.
void expect_error(const RunResult& r, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.exit_code, 1) << "stderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr must be exactly one line: " << r.err;
  EXPECT_TRUE(!r.err.empty() && r.err.back() == '\n') << r.err;
  EXPECT_EQ(r.err.rfind("lmq: error: ", 0), 0u) << r.err;
  for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  EXPECT_EQ(r.out, "") << "stdout must stay empty on error";
  EXPECT_EQ(r.err.find("Sanitizer"), std::string::npos);
  EXPECT_EQ(r.err.find("runtime error"), std::string::npos);  // UBSan's report (it exits 1 too)
}

}  // namespace

TEST(BadInput, TheIntactCopyLoads) {  // the harness itself: symlinked copies are a good model
  RunResult r = run_lmq({"inspect", model_copy()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("architecture llama"), std::string::npos);
}

TEST(BadInput, TruncatedShard) {
  const std::string d = model_copy();
  const std::string bytes = read_file((fs::path(d) / kShard3).string());
  replace(d, kShard3, bytes.substr(0, bytes.size() / 2));
  expect_error(run_lmq({"inspect", d}), {kShard3, "truncated"});
}

TEST(BadInput, ShardCutInsideItsHeader) {
  const std::string d = model_copy();
  const std::string bytes = read_file((fs::path(d) / kShard3).string());
  replace(d, kShard3, bytes.substr(0, 20));
  expect_error(run_lmq({"inspect", d}), {kShard3, "header length"});
}

TEST(BadInput, ShardShorterThanItsHeaderLength) {
  const std::string d = model_copy();
  replace(d, kShard3, "abc");
  expect_error(run_lmq({"inspect", d}), {kShard3, "truncated"});
}

TEST(BadInput, HeaderLengthLargerThanFile) {
  const std::string d = model_copy();
  std::string bytes = read_file((fs::path(d) / kShard2).string());
  const std::string len = u64le_bytes(bytes.size() + 100);
  bytes.replace(0, 8, len);
  replace(d, kShard2, bytes);
  expect_error(run_lmq({"inspect", d}), {kShard2, "header length", "larger than the file"});
}

TEST(BadInput, DataOffsetsOutsideDataSection) {
  const std::string d = model_copy();
  const uint64_t size = fs::file_size(fs::path(d) / kShard2);
  edit_header(d, kShard2, [&](json& h) {
    auto& t = h["model.layers.0.input_layernorm.weight"];
    const uint64_t n = t["data_offsets"][1].get<uint64_t>() - t["data_offsets"][0].get<uint64_t>();
    t["data_offsets"] = {size, size + n};
  });
  expect_error(run_lmq({"inspect", d}), {kShard2, "model.layers.0.input_layernorm.weight", "data_offsets", "outside"});
}

TEST(BadInput, DataOffsetsReversed) {
  const std::string d = model_copy();
  edit_header(d, kShard2, [&](json& h) {
    auto& o = h["model.layers.0.input_layernorm.weight"]["data_offsets"];
    o = {o[1], o[0]};
  });
  expect_error(run_lmq({"inspect", d}), {kShard2, "model.layers.0.input_layernorm.weight", "data_offsets"});
}

TEST(BadInput, OverlappingTensors) {
  const std::string d = model_copy();
  edit_header(d, kShard2, [&](json& h) {
    h["model.layers.0.post_attention_layernorm.weight"]["data_offsets"] =
        h["model.layers.0.input_layernorm.weight"]["data_offsets"];
  });
  expect_error(run_lmq({"inspect", d}), {kShard2, "overlap", "model.layers.0.input_layernorm.weight",
                                         "model.layers.0.post_attention_layernorm.weight"});
}

TEST(BadInput, ShapeDisagreesWithByteLength) {
  const std::string d = model_copy();
  edit_header(d, kShard2, [&](json& h) { h["model.layers.0.input_layernorm.weight"]["shape"] = {385}; });
  expect_error(run_lmq({"inspect", d}), {kShard2, "model.layers.0.input_layernorm.weight", "bytes"});
}

TEST(BadInput, UnknownDtype) {
  const std::string d = model_copy();
  edit_header(d, kShard2, [&](json& h) { h["model.layers.0.input_layernorm.weight"]["dtype"] = "F8_E9"; });
  expect_error(run_lmq({"inspect", d}), {kShard2, "dtype", "F8_E9"});
}

TEST(BadInput, IntegerDtypeForAWeight) {
  const std::string d = model_copy();
  edit_header(d, kShard2, [&](json& h) {
    auto& t = h["model.layers.0.input_layernorm.weight"];  // 384 BF16 = 768 bytes = 96 I64
    t["dtype"] = "I64";
    t["shape"] = {96};
  });
  expect_error(run_lmq({"inspect", d}), {kShard2, "dtype", "I64"});
}

TEST(BadInput, HeaderIsNotJson) {
  const std::string d = model_copy();
  std::string bytes = read_file((fs::path(d) / kShard2).string());
  bytes[8 + 5] = '\x01';
  replace(d, kShard2, bytes);
  expect_error(run_lmq({"inspect", d}), {kShard2, "JSON"});
}

TEST(BadInput, UnknownModelType) {
  const std::string d = model_copy();
  edit_json(d, "config.json", [](json& j) { j["model_type"] = "gpt2"; });
  expect_error(run_lmq({"inspect", d}), {"config.json", "model_type", "gpt2"});
}

TEST(BadInput, MissingConfigKey) {
  const std::string d = model_copy();
  edit_json(d, "config.json", [](json& j) { j.erase("hidden_size"); });
  expect_error(run_lmq({"inspect", d}), {"config.json", "missing", "hidden_size"});
}

TEST(BadInput, ConfigKeyOfTheWrongType) {
  const std::string d = model_copy();
  edit_json(d, "config.json", [](json& j) { j["eos_token_id"] = {"two"}; });
  expect_error(run_lmq({"inspect", d}), {"config.json", "eos_token_id"});
}

TEST(BadInput, ConfigDimensionsDisagree) {
  const std::string d = model_copy();
  edit_json(d, "config.json", [](json& j) { j["num_attention_heads"] = 5; });  // 2 kv heads
  expect_error(run_lmq({"inspect", d}), {"config.json", "num_attention_heads"});
}

TEST(BadInput, InvalidJsonInConfig) {
  const std::string d = model_copy();
  replace(d, "config.json", "{\"model_type\": \"llama\", ");
  expect_error(run_lmq({"inspect", d}), {"config.json", "JSON"});
}

TEST(BadInput, ConfigIsNotAnObject) {
  const std::string d = model_copy();
  replace(d, "config.json", "[1, 2, 3]");
  expect_error(run_lmq({"inspect", d}), {"config.json", "object"});
}

TEST(BadInput, IndexNamesMissingShard) {
  const std::string d = model_copy();
  edit_json(d, kIndex, [](json& j) { j["weight_map"]["model.norm.weight"] = "model-00004-of-00003.safetensors"; });
  expect_error(run_lmq({"inspect", d}), {kIndex, "model-00004-of-00003.safetensors", "does not exist"});
}

TEST(BadInput, IndexIsNotJson) {
  const std::string d = model_copy();
  replace(d, kIndex, "{\"weight_map\": ");
  expect_error(run_lmq({"inspect", d}), {kIndex, "JSON"});
}

TEST(BadInput, IndexShardNameEscapesTheDirectory) {
  const std::string d = model_copy();
  edit_json(d, kIndex, [](json& j) { j["weight_map"]["model.norm.weight"] = "../etc/passwd"; });
  expect_error(run_lmq({"inspect", d}), {kIndex, "../etc/passwd"});
}

TEST(BadInput, EmptyDirectory) {
  const std::string d = temp_dir();
  expect_error(run_lmq({"inspect", d}), {d, "config.json", "not a model"});
}

TEST(BadInput, DirectoryWithOnlyConfig) {
  const std::string d = temp_dir();
  fs::copy_file(fs::path(llama()) / "config.json", fs::path(d) / "config.json");
  expect_error(run_lmq({"inspect", d}), {d, "model.safetensors", "not a model"});
}

TEST(BadInput, PromptLongerThanContext) {
  std::string prompt;
  for (int i = 0; i < 2000; ++i) prompt += "the quick brown fox ";
  expect_error(run_lmq({"run", llama(), "-p", prompt, "-n", "10"}), {"--prompt", "context", "1024", "lmq-llama-25m"});
}

TEST(BadInput, NewTokensBeyondContext) {
  expect_error(run_lmq({"run", llama(), "-p", "Once upon a time", "-n", "5000"}), {"-n 5000", "context", "lmq-llama-25m"});
}

TEST(BadInput, NegativeNewTokens) {
  expect_error(run_lmq({"run", llama(), "-p", "Once upon a time", "-n", "-3"}), {"-n", "-3"});
}

TEST(BadInput, SamplingOptionsOutOfRange) {  // checked before the prompt is echoed on stdout
  expect_error(run_lmq({"run", llama(), "-p", "Once upon a time", "-n", "2", "--temp", "-1"}), {"--temp", "-1"});
  expect_error(run_lmq({"run", llama(), "-p", "Once upon a time", "-n", "2", "--top-p", "2"}), {"--top-p", "2"});
}

TEST(BadInput, NonExistentPath) {
  const std::string p = temp_dir() + "/no-such-model";
  expect_error(run_lmq({"inspect", p}), {"no-such-model", "no such file"});
}

TEST(BadInput, TensorMissingFromShards) {
  const std::string d = model_copy();
  edit_header(d, kShard2, [](json& h) { h.erase("model.layers.0.self_attn.q_proj.weight"); });
  expect_error(run_lmq({"inspect", d}), {base(d), "missing", "model.layers.0.self_attn.q_proj.weight"});
}

TEST(BadInput, TensorWithWrongShape) {
  const std::string d = model_copy();
  edit_header(d, kShard2, [](json& h) {
    auto& s = h["model.layers.0.self_attn.k_proj.weight"]["shape"];  // [128, 384] → [384, 128]
    s = {s[1], s[0]};
  });
  expect_error(run_lmq({"inspect", d}), {base(d), "model.layers.0.self_attn.k_proj.weight", "shape", "[384, 128]"});
}

TEST(BadInput, TensorInTwoShards) {
  const std::string d = model_copy();
  edit_header(d, kShard3, [&](json& h) {
    // Any [384] tensor of shard 3, renamed to a name shard 2 already has.
    for (auto it = h.begin(); it != h.end(); ++it)
      if (it.key() != "__metadata__" && it.value()["shape"] == json{384}) {
        json t = it.value();
        h.erase(it);
        h["model.layers.0.input_layernorm.weight"] = t;
        return;
      }
    FAIL() << "no 1-d tensor in shard 3";
  });
  expect_error(run_lmq({"inspect", d}), {"model.layers.0.input_layernorm.weight", "more than one shard"});
}

TEST(BadInput, ThreadsZero) {
  expect_error(run_lmq({"inspect", llama(), "--threads", "0"}), {"--threads", "0"});
}

TEST(BadInput, ThreadsTooMany) {
  expect_error(run_lmq({"inspect", llama(), "--threads", "5000"}), {"--threads", "5000"});
}

TEST(BadInput, ThreadsNotANumber) {
  expect_error(run_lmq({"inspect", llama(), "--threads", "many"}), {"--threads", "many"});
}

// A value quoted from a file may hold control characters: escaped, so the error stays one line
// and cannot send escape sequences to the terminal (found by fuzzing, tests/fuzz/regressions).
TEST(BadInput, ControlCharactersInQuotedValue) {
  const std::string d = model_copy();
  edit_json(d, "config.json", [](json& j) { j["model_type"] = "gpt\n\x1b[2J"; });
  expect_error(run_lmq({"inspect", d}), {"config.json", "model_type 'gpt\\x0a\\x1b[2J'"});
}

// heads x head_dim must not overflow q_dim()'s int (UBSan reported it; tests/fuzz/regressions/config).
TEST(BadInput, AttentionSizeOverflow) {
  const std::string d = model_copy();
  edit_json(d, "config.json", [](json& j) {
    j["num_attention_heads"] = j["num_key_value_heads"] = j["head_dim"] = 1 << 30;
  });
  expect_error(run_lmq({"inspect", d}), {"config.json", "num_attention_heads 1073741824 x head_dim", "absurd"});
}

// libstdc++'s regex overflows (UB) on huge counts and back-references (fuzzing found the latter,
// tests/fuzz/regressions/scheme): refused before compiling, for both --override forms.
TEST(BadInput, OverrideRegexHugeCount) {
  const std::string out = temp_dir() + "/q.lmq";
  expect_error(run_lmq({"quantize", llama(), "-o", out, "--scheme", "int8", "--override", "a{99999}=int4"}),
               {"--override 'a{99999}=int4'", "over 1000"});
  expect_error(run_lmq({"quantize", llama(), "-o", out + ".gguf", "--format", "gguf", "--scheme", "q8_0",
                        "--override", "(a)\\11111111111111111111=q4_0"}),
               {"--override", "back-reference over 1000"});
  // stacked counts multiply the compiled size: this took minutes to compile before the bound
  expect_error(run_lmq({"quantize", llama(), "-o", out, "--scheme", "int8", "--override", "x*{7}**{7}{7}{7}{7}=int4"}),
               {"--override", "multiply to over 4096"});
  EXPECT_FALSE(fs::exists(out));
}

// An lmq file whose tensor's shape does not fit its block format (a Q8_0 row of 33 values): the
// error names the file and the tensor (fuzzing found it without them; the input is the
// committed regression tests/fuzz/regressions/lmq_file/ggml-row-not-whole-blocks).
TEST(BadInput, LmqFileTensorNotWholeBlocks) {
  const std::string f = std::string(LMQ_SOURCE_DIR) + "/tests/fuzz/regressions/lmq_file/ggml-row-not-whole-blocks";
  expect_error(run_lmq({"inspect", f}), {f, "tensor '", "not a whole number of 32-value Q8_0 blocks"});
}

// --calib-precision: auto, f32 or bf16, for every output format, checked before the model is read.
TEST(BadInput, QuantizeCalibPrecisionUnknown) {
  const std::string out = temp_dir() + "/p.lmq";
  const std::string text = shared_path("text/docs-valid.txt");
  expect_error(run_lmq({"quantize", llama(), "-o", out, "--method", "gptq", "--calib", text, "--calib-precision", "fp8"}),
               {"--calib-precision 'fp8': expected auto, f32 or bf16"});
  expect_error(run_lmq({"quantize", "/nonexistent.lmq", "-o", out + ".gguf", "--format", "gguf", "--calib-precision", "BF16"}),
               {"--calib-precision 'BF16'"});
  EXPECT_FALSE(fs::exists(out));
}

// quantize and sweep take --threads as well: the same 1..1024 rule, checked before any work.
TEST(BadInput, QuantizeAndSweepThreadsOutOfRange) {
  const std::string out = temp_dir() + "/q.lmq";
  expect_error(run_lmq({"quantize", llama(), "-o", out, "--scheme", "int8", "--threads", "0"}), {"--threads", "0"});
  EXPECT_FALSE(fs::exists(out));
  expect_error(run_lmq({"sweep", llama(), "--text", shared_path("text/docs-valid.txt"), "--threads", "1025"}),
               {"--threads", "1025"});
}

// A config claiming a context whose KV cache cannot fit: refused before the cache is allocated.
// 8 layers x 2^24 positions x 2 KV heads x 64 x (K and V) x 4 bytes = 128 GiB, plus 2^24 x 64 x
// 4 bytes = 4 GiB of RoPE tables; the limit is set to 64 GiB so the outcome does not depend on
// the machine.
TEST(BadInput, KvCacheLargerThanMemory) {
  const std::string d = model_copy();
  edit_json(d, "config.json", [](json& j) { j["max_position_embeddings"] = 1 << 24; });
  setenv("LMQ_MEMORY_LIMIT", std::to_string(uint64_t(64) << 30).c_str(), 1);
  const RunResult r = run_lmq({"run", d, "-p", "Once", "-n", "16777000"});
  unsetenv("LMQ_MEMORY_LIMIT");
  expect_error(r, {d, "KV cache of 16777", "needs 132.0 GiB", "more than the 64.0 GiB"});
}

// Calibration statistics are K x K: a layer claiming 2^22 input columns needs 256 TiB.
TEST(BadInput, CalibrationStatisticsLargerThanMemory) {
  try {
    lmq::calib::StatsAccumulator acc(int64_t(1) << 22);
    FAIL() << "a 2^22-column accumulator was allocated";
  } catch (const lmq::Error& e) {
    EXPECT_NE(std::string(e.what()).find("4194304 input columns needs"), std::string::npos) << e.what();
  }
}

TEST(BadInput, UnknownFlag) { expect_error(run_lmq({"inspect", llama(), "--bogus"}), {"--bogus"}); }

TEST(BadInput, NoSubcommand) { expect_error(run_lmq({}), {"subcommand"}); }

TEST(BadInput, HelpStillWorks) {
  RunResult r = run_lmq({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("inspect"), std::string::npos);
  RunResult s = run_lmq({"run", "--help"});
  EXPECT_EQ(s.exit_code, 0);
  EXPECT_NE(s.out.find("--prompt"), std::string::npos);
}

TEST(BadInput, EmptyTextForEval) {
  const std::string t = temp_dir() + "/empty.txt";
  write_file(t, "");
  expect_error(run_lmq({"eval", llama(), "--text", t}), {"empty.txt", "empty"});
}

TEST(BadInput, TextShorterThanOneWindow) {
  const std::string t = temp_dir() + "/short.txt";
  write_file(t, "Once upon a time there was a cat.");
  expect_error(run_lmq({"eval", llama(), "--text", t, "--ctx", "128"}), {"short.txt", "window"});
}

TEST(BadInput, TextFileMissing) {
  const std::string t = temp_dir() + "/absent.txt";
  expect_error(run_lmq({"eval", llama(), "--text", t}), {"absent.txt", "cannot open"});
}

TEST(BadInput, TextIsADirectory) {
  const std::string t = temp_dir();
  expect_error(run_lmq({"eval", llama(), "--text", t}), {t, "not a regular file"});
}

TEST(BadInput, EvalContextTooSmall) {
  const std::string t = temp_dir() + "/short.txt";
  write_file(t, "Once upon a time there was a cat.");
  expect_error(run_lmq({"eval", llama(), "--text", t, "--ctx", "2"}), {"--ctx", "2"});
}

TEST(BadInput, RandomBytes) {
  const std::string p = temp_dir() + "/random.bin";
  std::mt19937_64 rng(7);
  std::string bytes(1 << 16, '\0');
  for (auto& c : bytes) c = char(rng());
  write_file(p, bytes);
  expect_error(run_lmq({"inspect", p}), {"random.bin", "not a model"});
}

TEST(BadInput, RandomBytesAsShard) {
  const std::string d = model_copy();
  std::mt19937_64 rng(11);
  std::string bytes(1 << 16, '\0');
  for (auto& c : bytes) c = char(rng());
  replace(d, kShard1, bytes);
  expect_error(run_lmq({"inspect", d}), {kShard1});
}

TEST(BadInput, EmptyFile) {
  const std::string p = temp_dir() + "/empty.safetensors";
  write_file(p, "");
  expect_error(run_lmq({"inspect", p}), {"empty.safetensors", "not a model"});
}

TEST(BadInput, RandomBytesAsTokenizer) {
  const std::string d = model_copy();
  replace(d, "tokenizer.model", std::string(1000, '\x07'));
  expect_error(run_lmq({"run", d, "-p", "hello", "-n", "2"}), {"tokenizer.model", "SentencePiece"});
}

TEST(BadInput, TokenizerWithACorruptCharsmap) {
  // Found by the tokenizer fuzz target: a denormalizer whose darts trie points out of its array
  // crashed libsentencepiece when decoding.
  const std::string d = model_copy();
  replace(d, "tokenizer.model", read_file(std::string(LMQ_SOURCE_DIR) + "/tests/fuzz/regressions/tokenizer/charsmap-trie-out-of-bounds"));
  expect_error(run_lmq({"run", d, "-p", "hello", "-n", "2"}),
               {"tokenizer.model", "denormalizer's precompiled_charsmap is corrupt", "points past"});
}

TEST(BadInput, NoTokenizer) {
  const std::string d = model_copy();
  fs::remove(fs::path(d) / "tokenizer.model");
  expect_error(run_lmq({"run", d, "-p", "hello", "-n", "2"}), {base(d), "tokenizer"});
}

TEST(BadInput, ExtraEmptyTensorIsHarmless) {  // valid safetensors: shape [4, 0] must not divide by zero
  const std::string d = model_copy();
  edit_header(d, kShard3, [](json& h) {
    h["extra.empty"] = {{"dtype", "BF16"}, {"shape", {4, 0}}, {"data_offsets", {0, 0}}};
    h["extra.zero_rows"] = {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {0, 0}}};
  });
  RunResult r = run_lmq({"inspect", d});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("extra.empty"), std::string::npos);
}

TEST(BadInput, OddDataSectionStillRunsTheSame) {  // header padded so every tensor sits at an odd address
  const std::string d = model_copy();
  for (const std::string& shard : {kShard1, kShard2, kShard3}) {
    const std::string bytes = read_file((fs::path(d) / shard).string());
    const uint64_t hlen = u64le(bytes);
    std::string hs = bytes.substr(8, hlen);
    while ((8 + hs.size()) % 2 == 0 || hs.size() == hlen) hs += ' ';
    replace(d, shard, u64le_bytes(hs.size()) + hs + bytes.substr(8 + hlen));
  }
  const std::vector<std::string> args{"-p", "Once upon a time", "-n", "4", "--temp", "0", "--json"};
  std::vector<std::string> a{"run", llama()}, b{"run", d};
  a.insert(a.end(), args.begin(), args.end());
  b.insert(b.end(), args.begin(), args.end());
  RunResult want = run_lmq(a), got = run_lmq(b);
  ASSERT_EQ(want.exit_code, 0) << want.err;
  EXPECT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.err, "");
  // The same ids and text; the peak memory the JSON also reports is the process's own.
  auto g = nlohmann::json::parse(got.out), w = nlohmann::json::parse(want.out);
  g.erase("peak_rss_bytes");
  w.erase("peak_rss_bytes");
  EXPECT_EQ(g, w);
}

TEST(BadInput, FifoAndDeviceDoNotHang) {  // opening a FIFO would wait for a writer; /dev/zero never ends
  const std::string f = temp_dir() + "/fifo";
  ASSERT_EQ(mkfifo(f.c_str(), 0600), 0);
  expect_error(run_lmq({"inspect", f}), {"fifo", "not a model"});
  expect_error(run_lmq({"eval", llama(), "--text", f}), {"fifo", "not a regular file"});
  expect_error(run_lmq({"eval", llama(), "--text", "/dev/zero"}), {"/dev/zero", "not a regular file"});
  const std::string d = model_copy();
  fs::remove(fs::path(d) / kShard2);
  ASSERT_EQ(mkfifo((fs::path(d) / kShard2).c_str(), 0600), 0);
  expect_error(run_lmq({"inspect", d}), {kShard2, "not a regular file"});
}
