// A loaded causal LM: its config, its tokenizer and its weights, each weight a Tensor that
// points into a memory-mapped file (never copied; except, on a CPU without AVX-512 VNNI, a GGUF's
// Q8_0/Q4_0/IQ4_NL/IQ4_XS weights, repacked at load into LMQ_INT for the integer kernels,
// model/load_gguf.cpp). Sources, recognized by content:
//   - a Hugging Face directory: config.json + model.safetensors or a sharded
//     model.safetensors.index.json, and tokenizer.model (SentencePiece) or else tokenizer.json
//     (byte-level BPE);
//   - lmq's own quantized file (a safetensors container, see docs/file-format.md);
//   - a GGUF file (llama.cpp).
// Tensors carry the Hugging Face names whatever the source ("model.layers.0.self_attn.q_proj.weight").
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmq/model/config.h"
#include "lmq/model/tokenizer.h"
#include "lmq/tensor.h"

namespace lmq {

struct LayerWeights {
  const Tensor* attn_norm = nullptr;
  const Tensor *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
  const Tensor *bq = nullptr, *bk = nullptr, *bv = nullptr;  // Qwen2 only
  const Tensor *q_norm = nullptr, *k_norm = nullptr;         // Qwen3 only: [head_dim]
  const Tensor* ffn_norm = nullptr;
  const Tensor *w_gate = nullptr, *w_up = nullptr, *w_down = nullptr;
};

// How a source is loaded.
struct LoadOptions {
  // GGUF: weights prepared for the integer kernels (repacked into LMQ_INT where ggml_in_place
  // says so, the scales of the blocks they read in place checked; model/load_gguf.cpp); false
  // keeps every block as stored and unchecked, for the float path over them (--act-quant none).
  bool repack_ggml = true;
  // GGUF Q8_0/Q4_0/IQ4_NL/IQ4_XS for the integer kernels: read in place (true) or repacked into
  // LMQ_INT (false). Unset: in place where the in-place kernels have SIMD on this CPU (AVX-512
  // VNNI or AVX2: ggml_matmul_has_simd, kernels/ggml_matmul.h), else repacked for the LMQ_INT
  // kernels. Set, it chooses for this load only, whatever the CPU (tests take both paths); unset
  // on an AVX-512 VNNI CPU, Q4_0 / Q8_0 / Q4_K / Q6_K linears are interleaved into their X16
  // layouts (codecs/ggml_interleave.h).
  std::optional<bool> ggml_in_place;
  // lmq files: on an AVX-512 VNNI CPU (int_matmul_takes_x16, kernels/int_matmul.h), 4- and 8-bit
  // LMQ_INT matrices the integer kernels take are interleaved into LMQ_INT_X16
  // (codecs/int_interleave.h), which those kernels read faster and the float path only through
  // dequantize_rows (the embedding's lookup gathers its one row): set it for runs that quantize
  // activations.
  bool interleave_int = false;
};

class Model {
 public:
  // Loads any supported source; throws lmq::Error naming the file and the problem.
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opts = {});

  const ModelConfig& config() const { return config_; }
  const std::string& path() const { return path_; }
  const std::string& source_kind() const { return kind_; }  // "hf", "lmq" or "gguf"
  uint64_t file_bytes() const { return file_bytes_; }       // bytes of the model files on disk
  // Loaded on first use (an unsupported tokenizer file fails here, naming it); SentencePiece's
  // BOS rule comes from the config's add_bos/bos_id, BPE's from its template.
  const Tokenizer& tokenizer() const;

  const std::vector<Tensor>& tensors() const { return tensors_; }  // every tensor, source order
  const Tensor* find(const std::string& name) const;
  const Tensor& embed() const { return *embed_; }
  // Throws lmq::Error naming the model when `token` is not a row of the embedding.
  void check_token(int token) const;
  const Tensor& final_norm() const { return *final_norm_; }
  const Tensor& lm_head() const { return *lm_head_; }  // the embedding when tied
  const std::vector<LayerWeights>& layers() const { return layers_; }
  // Parameters counted once (a tied lm_head is the embedding).
  uint64_t param_count() const;
  // Bytes of all tensors as the source stores them (what bits per weight counts:
  // 8 · tensor_bytes / params), also where a loader repacked them in memory.
  uint64_t tensor_bytes() const;
  // lmq-file metadata (scheme per tensor etc.); empty for other sources.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // For loaders: take ownership of whatever keeps the tensor bytes alive.
  struct Parts {
    ModelConfig config;
    std::string path, kind;
    uint64_t file_bytes = 0;
    // Bytes of the tensors as the file stores them, when a loader changed their layout in memory
    // (GGUF blocks repacked for the integer kernels); 0: the tensors' own nbytes.
    uint64_t stored_tensor_bytes = 0;
    std::vector<Tensor> tensors;
    std::vector<std::shared_ptr<void>> storage;
    // The tokenizer: a file (tokenizer.model / tokenizer.json), or its serialized bytes
    // (Tokenizer::serialized()), or one already built (shared, e.g. by GGUF's loader).
    TokenizerKind tokenizer_kind = TokenizerKind::SentencePiece;
    std::string tokenizer_path;
    std::string tokenizer_bytes;
    std::shared_ptr<const Tokenizer> tokenizer;
    std::map<std::string, std::string> metadata;
  };
  static std::unique_ptr<Model> from_parts(Parts parts);

  // Tensors to lay over a model's: each replaces the tensor of the same name, or is added
  // (appended) when the model has none; `storage` keeps their bytes alive.
  struct Overlay {
    std::vector<Tensor> tensors;
    std::vector<std::shared_ptr<void>> storage;
    // Replaces the base's config when set (a rotation that unties the embeddings, quant/rotate.h).
    std::optional<ModelConfig> config;
    void put(Tensor t);  // replaces an entry of the same name, else appends
  };
  // The one way to make a model from another (calibration's block models, AWQ's scaled
  // weights, W8A8's folded model, mixed precision's probes, rotations): base's config (unless
  // the overlay has one), tokenizer and
  // metadata with the overlay's tensors, named `path` in messages. The result shares the
  // base's storage, so the tensors it keeps stay valid after the base is gone.
  static std::unique_ptr<Model> with_tensors(const Model& base, Overlay overlay, std::string path);

 private:
  Model() = default;
  void bind_weights();

  ModelConfig config_;
  std::string path_, kind_;
  uint64_t file_bytes_ = 0;
  uint64_t stored_tensor_bytes_ = 0;  // Parts::stored_tensor_bytes
  std::vector<Tensor> tensors_;
  std::vector<std::shared_ptr<void>> storage_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  TokenizerKind tokenizer_kind_ = TokenizerKind::SentencePiece;
  std::string tokenizer_path_, tokenizer_bytes_;
  mutable std::shared_ptr<const Tokenizer> tokenizer_;
  const Tensor *embed_ = nullptr, *final_norm_ = nullptr, *lm_head_ = nullptr;
  std::vector<LayerWeights> layers_;
};

// Loaders, one per source kind (model/load_*.cpp).
Model::Parts load_hf_parts(const std::string& path);
Model::Parts load_lmq_parts(const std::string& path, const LoadOptions& opts = {});
Model::Parts load_gguf_parts(const std::string& path, const LoadOptions& opts = {});
// The shard file names (sorted, each once) that a model.safetensors.index.json's weight_map
// names; `path` names the index in errors. Shards are not opened.
std::vector<std::string> parse_shard_index(const std::string& text, const std::string& path);

}  // namespace lmq
