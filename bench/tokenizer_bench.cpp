// Tokenizer speed on one thread: encoding docs-valid.txt (1.77 MB) with the byte-level BPE
// tokenizers of lmq-llama3-9m and lmq-qwen3-8m (tokenizer.json) next to libsentencepiece with
// the Llama-2 tokenizer.model, in the same run. bytes_per_second counts the text's bytes.
// "Cold" builds a fresh tokenizer for every encode (the word cache starts empty, as when a file
// is evaluated once); "Warm" reuses one. The *_lines variants encode the file line by line (what
// SentencePiece is usually given; on one 1.77 MB string it is much slower).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmq/mapped_file.h"
#include "lmq/model/tokenizer.h"
#include "lmq/tokenizer/bpe.h"

using namespace lmq;

namespace {

std::string shared(const std::string& rel) {
  const char* env = std::getenv("LMQ_SHARED");
  return std::string(env && *env ? env : LMQ_SHARED_DEFAULT) + "/" + rel;
}

const std::string& docs_valid() {
  static const std::string text = read_text_file(shared("text/docs-valid.txt"));
  return text;
}

void BM_BpeEncode(benchmark::State& st, const char* model, bool cold) {
  const std::string& text = docs_valid();
  const std::string json = read_text_file(shared(std::string("models/") + model + "/tokenizer.json"));
  auto tok = std::make_unique<BpeTokenizer>(BpeTokenizer::from_json_text(json, model));
  size_t n = 0;
  for (auto _ : st) {
    if (cold) {
      st.PauseTiming();
      tok = std::make_unique<BpeTokenizer>(BpeTokenizer::from_json_text(json, model));
      st.ResumeTiming();
    }
    n = tok->encode(text, false).size();
    benchmark::DoNotOptimize(n);
  }
  st.counters["tokens"] = double(n);
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(text.size()));
}

void BM_SentencePieceEncode(benchmark::State& st) {
  const std::string& text = docs_valid();
  const Tokenizer tok = Tokenizer::from_file(shared("tokenizers/llama2-32k.model"));
  size_t n = 0;
  for (auto _ : st) {
    n = tok.encode(text).size();
    benchmark::DoNotOptimize(n);
  }
  st.counters["tokens"] = double(n);
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(text.size()));
}

std::vector<std::string_view> lines_of(const std::string& text) {
  std::vector<std::string_view> lines;
  for (size_t b = 0; b < text.size();) {
    const size_t e = std::min(text.find('\n', b), text.size() - 1) + 1;
    lines.push_back(std::string_view(text).substr(b, e - b));
    b = e;
  }
  return lines;
}

template <typename Encode>
void encode_lines(benchmark::State& st, Encode&& encode) {
  const std::string& text = docs_valid();
  const auto lines = lines_of(text);
  size_t n = 0;
  for (auto _ : st) {
    n = 0;
    for (const auto line : lines) n += encode(line);
    benchmark::DoNotOptimize(n);
  }
  st.counters["tokens"] = double(n);
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(text.size()));
}

void BM_BpeEncodeLines(benchmark::State& st) {
  const BpeTokenizer tok = BpeTokenizer::from_file(shared("models/lmq-llama3-9m/tokenizer.json"));
  encode_lines(st, [&](std::string_view line) { return tok.encode(line, false).size(); });
}

void BM_SentencePieceEncodeLines(benchmark::State& st) {
  const Tokenizer tok = Tokenizer::from_file(shared("tokenizers/llama2-32k.model"));
  encode_lines(st, [&](std::string_view line) { return tok.encode(line).size(); });
}

BENCHMARK(BM_BpeEncodeLines)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SentencePieceEncodeLines)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BpeEncode, llama3_cold, "lmq-llama3-9m", true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BpeEncode, llama3_warm, "lmq-llama3-9m", false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BpeEncode, qwen3_cold, "lmq-qwen3-8m", true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BpeEncode, qwen3_warm, "lmq-qwen3-8m", false)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SentencePieceEncode)->Unit(benchmark::kMillisecond);

}  // namespace
