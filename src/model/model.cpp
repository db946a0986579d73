#include "lmq/model/model.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>

#include "lmq/error.h"
#include "lmq/formats/lmq_file.h"
#include "lmq/codecs/int_format.h"
#include "lmq/codecs/int_interleave.h"
#include "lmq/formats/safetensors.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/mapped_file.h"

namespace lmq {
namespace fs = std::filesystem;

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// What the first bytes of a file say it is.
enum class FileKind { Gguf, Lmq, Safetensors, Unknown };

FileKind sniff(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open", path);
  std::array<uint8_t, 4096> buf{};
  ssize_t n = ::read(fd, buf.data(), buf.size());
  struct stat st {};
  ::fstat(fd, &st);
  ::close(fd);
  if (n < 0) fail("{}: cannot read", path);
  if (n >= 4 && std::memcmp(buf.data(), "GGUF", 4) == 0) return FileKind::Gguf;
  if (is_safetensors_magic(buf.data(), size_t(n), uint64_t(st.st_size))) {
    // lmq's file is a safetensors container whose metadata names the format first thing.
    std::string_view head(reinterpret_cast<const char*>(buf.data()) + 8, size_t(n) - 8);
    return head.find("\"lmq.format\"") != std::string_view::npos ? FileKind::Lmq : FileKind::Safetensors;
  }
  return FileKind::Unknown;
}

}  // namespace

namespace {
// A 4- or 8-bit LMQ_INT linear as LMQ_INT_X16 (codecs/int_interleave.h) in a buffer of its own:
// the codes interleaved, the scales and zero points copied; the file's pages released once copied.
Tensor interleaved(const Tensor& t, std::vector<std::shared_ptr<void>>& storage) {
  const int64_t rows = t.rows(), cols = t.cols();
  const quant::IntLayout l = quant::int_layout(t.q, rows, cols);
  std::shared_ptr<uint8_t[]> bytes = weight_buffer(l.total);
  const int64_t groups = rows / 16, rb = int64_t(l.row_code_bytes);
  constexpr int64_t kGroups = 8;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; g += kGroups)
    int_x16_interleave(t.data, rows, rb, g, std::min(kGroups, groups - g), bytes.get());
  std::memcpy(bytes.get() + l.codes_bytes, t.data + l.codes_bytes, l.total - l.codes_bytes);
  release_mapped_pages(t.data, t.nbytes);
  Tensor r = t;
  r.format = Format::LMQ_INT_X16;
  r.data = bytes.get();
  storage.push_back(std::move(bytes));
  return r;
}
}  // namespace

Model::Parts load_lmq_parts(const std::string& path, const LoadOptions& opts) {
  LmqFileContents f = read_lmq_file(path);
  Model::Parts parts;
  parts.path = path;
  parts.kind = "lmq";
  parts.file_bytes = f.file_bytes;
  parts.config = ModelConfig::from_hf_json(f.config_json, path + " (lmq.config)");
  parts.metadata = std::move(f.metadata);
  parts.tokenizer_bytes = std::move(f.tokenizer_bytes);
  // Absent in files of SentencePiece models (written before BPE existed): their kind.
  if (const auto k = parts.metadata.find("lmq.tokenizer_kind"); k != parts.metadata.end()) {
    if (k->second == "bpe") parts.tokenizer_kind = TokenizerKind::Bpe;
    else if (k->second != "sentencepiece") fail("{}: lmq.tokenizer_kind '{}' is unknown", path, k->second);
  }
  parts.tensors = std::move(f.tensors);
  if (opts.interleave_int && int_matmul_takes_x16())
    for (Tensor& t : parts.tensors)
      if (t.format == Format::LMQ_INT && t.shape.size() == 2 && int_x16_fits(t.q, t.rows(), t.cols()) && int_matmul_supported(t))
        t = interleaved(t, parts.storage);
  parts.storage.push_back(std::move(f.storage));
  return parts;
}

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& opts) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("{}: no such file or directory", path);
  if (fs::is_directory(path, ec)) return from_parts(load_hf_parts(path));
  if (!fs::is_regular_file(path, ec)) fail("{}: not a model: neither a directory nor a regular file", path);
  switch (sniff(path)) {
    case FileKind::Gguf: return from_parts(load_gguf_parts(path, opts));
    case FileKind::Lmq: return from_parts(load_lmq_parts(path, opts));
    case FileKind::Safetensors: return from_parts(load_hf_parts(path));
    case FileKind::Unknown: break;
  }
  fail("{}: not a model: neither a Hugging Face directory, a safetensors, lmq or GGUF file", path);
}

std::unique_ptr<Model> Model::from_parts(Parts p) {
  std::unique_ptr<Model> m(new Model());
  m->config_ = p.config;
  m->path_ = std::move(p.path);
  m->kind_ = std::move(p.kind);
  m->file_bytes_ = p.file_bytes;
  m->stored_tensor_bytes_ = p.stored_tensor_bytes;
  m->tensors_ = std::move(p.tensors);
  m->storage_ = std::move(p.storage);
  m->tokenizer_kind_ = p.tokenizer_kind;
  m->tokenizer_path_ = std::move(p.tokenizer_path);
  m->tokenizer_bytes_ = std::move(p.tokenizer_bytes);
  m->tokenizer_ = std::move(p.tokenizer);
  m->metadata_ = std::move(p.metadata);
  for (size_t i = 0; i < m->tensors_.size(); ++i) m->index_[m->tensors_[i].name] = i;
  m->bind_weights();
  return m;
}

void Model::Overlay::put(Tensor t) {
  for (Tensor& o : tensors)
    if (o.name == t.name) {
      o = std::move(t);
      return;
    }
  tensors.push_back(std::move(t));
}

std::unique_ptr<Model> Model::with_tensors(const Model& base, Overlay overlay, std::string path) {
  Parts p;
  p.config = overlay.config ? *overlay.config : base.config_;
  p.path = std::move(path);
  p.kind = "memory";
  p.tensors = base.tensors_;
  for (Tensor& t : overlay.tensors) {
    const auto it = base.index_.find(t.name);
    if (it != base.index_.end()) p.tensors[it->second] = std::move(t);
    else p.tensors.push_back(std::move(t));
  }
  for (const Tensor& t : p.tensors) p.file_bytes += t.nbytes;  // what it holds in memory
  p.storage = base.storage_;
  p.storage.insert(p.storage.end(), overlay.storage.begin(), overlay.storage.end());
  p.tokenizer_kind = base.tokenizer_kind_;
  p.tokenizer_path = base.tokenizer_path_;
  p.tokenizer_bytes = base.tokenizer_bytes_;
  p.tokenizer = base.tokenizer_;
  p.metadata = base.metadata_;
  return from_parts(std::move(p));
}

void Model::check_token(int token) const {
  if (token < 0 || token >= config_.vocab) fail("{}: token id {} is outside the vocabulary of {}", path_, token, config_.vocab);
}

const Tensor* Model::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const Tokenizer& Model::tokenizer() const {
  if (!tokenizer_) {
    std::optional<Tokenizer> t;
    if (!tokenizer_bytes_.empty()) t.emplace(Tokenizer::from_serialized(tokenizer_kind_, tokenizer_bytes_, path_));
    else if (tokenizer_path_.empty()) fail("{}: the model has no tokenizer", path_);
    else if (tokenizer_kind_ == TokenizerKind::Bpe) t.emplace(Tokenizer::from_bpe_file(tokenizer_path_));
    else t.emplace(Tokenizer::from_file(tokenizer_path_));
    t->set_bos(config_.add_bos, config_.bos_id);
    tokenizer_ = std::make_shared<const Tokenizer>(std::move(*t));
  }
  // Fewer tokens than embedding rows is fine (padding rows, as real Qwen models have).
  if (tokenizer_->vocab_size() > config_.vocab)
    fail("{}: tokenizer has {} pieces but the model's vocabulary is {}", path_, tokenizer_->vocab_size(),
         config_.vocab);
  return *tokenizer_;
}

uint64_t Model::param_count() const {
  uint64_t n = 0;
  for (const auto& t : tensors_) n += uint64_t(t.numel());
  return n;
}

uint64_t Model::tensor_bytes() const {
  if (stored_tensor_bytes_ != 0) return stored_tensor_bytes_;
  uint64_t n = 0;
  for (const auto& t : tensors_) n += t.nbytes;
  return n;
}

// Finds every weight the forward pass needs and checks its shape and format.
void Model::bind_weights() {
  const ModelConfig& c = config_;
  // int_ok: W8A8 biases may be int32 (model/static_acts.h).
  auto get = [&](const std::string& name, std::vector<int64_t> shape, bool required = true,
                 bool int_ok = false) -> const Tensor* {
    const Tensor* t = find(name);
    if (!t) {
      if (required) fail("{}: missing tensor '{}'", path_, name);
      return nullptr;
    }
    if (t->shape != shape)
      fail("{}: tensor '{}' has shape {}, expected {}", path_, name, shape_str(t->shape), shape_str(shape));
    if (t->format == Format::I32 && !int_ok) fail("{}: tensor '{}' has an integer dtype, expected floating point", path_, name);
    return t;
  };
  const int64_t H = c.hidden, Q = c.q_dim(), KV = c.kv_dim(), F = c.ffn, V = c.vocab;
  embed_ = get("model.embed_tokens.weight", {V, H});
  final_norm_ = get("model.norm.weight", {H});
  lm_head_ = c.tied_embeddings ? embed_ : get("lm_head.weight", {V, H});
  layers_.clear();
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights w;
    w.attn_norm = get(p + "input_layernorm.weight", {H});
    w.wq = get(p + "self_attn.q_proj.weight", {Q, H});
    w.wk = get(p + "self_attn.k_proj.weight", {KV, H});
    w.wv = get(p + "self_attn.v_proj.weight", {KV, H});
    w.wo = get(p + "self_attn.o_proj.weight", {H, Q});
    w.bq = get(p + "self_attn.q_proj.bias", {Q}, c.qkv_bias, true);
    w.bk = get(p + "self_attn.k_proj.bias", {KV}, c.qkv_bias, true);
    w.bv = get(p + "self_attn.v_proj.bias", {KV}, c.qkv_bias, true);
    w.q_norm = get(p + "self_attn.q_norm.weight", {c.head_dim}, c.qk_norm);
    w.k_norm = get(p + "self_attn.k_norm.weight", {c.head_dim}, c.qk_norm);
    if (!c.qk_norm && (w.q_norm || w.k_norm))
      fail("{}: tensor '{}' is a Qwen3 q/k norm but the model is {}", path_, p + "self_attn.q_norm.weight",
           arch_name(c.arch));
    w.ffn_norm = get(p + "post_attention_layernorm.weight", {H});
    w.w_gate = get(p + "mlp.gate_proj.weight", {F, H});
    w.w_up = get(p + "mlp.up_proj.weight", {F, H});
    w.w_down = get(p + "mlp.down_proj.weight", {H, F});
    layers_.push_back(w);
  }
}

}  // namespace lmq
