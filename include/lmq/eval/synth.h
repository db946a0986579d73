// Synthetic models for speed and memory benchmarks (`lmq synth`): a Hugging Face directory of
// a real model's shape (config.json, bf16 safetensors shards + model.safetensors.index.json, a
// tokenizer copied from a file the caller names) filled with deterministic pseudo-random weights
// of realistic scale. THE TEXT SUCH A MODEL PRODUCES IS NOISE: it exists to measure speed and
// memory at real sizes (1B-8B), never quality.
//
// Weights: linears ~N(0, 1/in) (an Irwin–Hall approximation of the normal), with a few outlier
// input channels (the same hidden channels in every layer, as trained models have) whose columns
// are 4× larger; RMSNorm weights 1 ± 0.05, 6× in the outlier channels; embeddings ~N(0, 0.02²).
// Each row's values come from its own generator seeded by (seed, tensor name, row), so the bytes
// depend on neither the thread count nor the chunking.
//
// Streaming: the safetensors headers are computed up front and the data written row chunk by
// row chunk (a few MiB in memory, whatever the model's size). The directory is written under a
// temporary name beside the destination and renamed into place at the end.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmq {

struct SynthShape {
  std::string preset;
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, ffn = 0, vocab = 0, max_pos = 0;
  double rope_theta = 10000, norm_eps = 1e-5;
};

// tinyllama-1.1b, llama2-7b, llama3-8b; an unknown name is an lmq::Error listing them. The
// tokenizer is the caller's: with a smaller one than the vocabulary (llama3-8b with a 16k BPE),
// `lmq run` fails at the first sampled id beyond it; bench and quantize never decode.
SynthShape synth_preset(const std::string& name);
std::vector<std::string> synth_preset_names();

struct SynthOptions {
  std::string out_dir;         // must not exist yet
  std::string tokenizer;       // tokenizer.model (SentencePiece) or tokenizer.json (BPE), copied
  int64_t layers = -1;         // keep the first N decoder blocks (-1: the preset's count)
  uint64_t seed = 0;
  uint64_t shard_bytes = uint64_t(2) << 30;  // a shard holds whole tensors up to this size
};

struct SynthReport {
  int64_t params = 0;
  uint64_t bytes = 0;  // tensor bytes written
  int shards = 0;
};

SynthReport write_synthetic_model(const SynthShape& shape, const SynthOptions& o);

}  // namespace lmq
