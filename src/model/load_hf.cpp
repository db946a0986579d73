// Hugging Face directories: config.json + model.safetensors or model.safetensors.index.json
// (its weight_map names the shards) + tokenizer.model (SentencePiece), else tokenizer.json
// (byte-level BPE).
#include <filesystem>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>

#include "lmq/error.h"
#include "lmq/formats/safetensors.h"
#include "lmq/mapped_file.h"
#include "lmq/model/hf_quant.h"
#include "lmq/model/model.h"

namespace lmq {
namespace fs = std::filesystem;

std::vector<std::string> parse_shard_index(const std::string& text, const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail("{}: no weight_map object", path);
  std::set<std::string> names;
  for (const auto& [tensor, file] : j["weight_map"].items()) {
    if (!file.is_string()) fail("{}: weight_map entry '{}' is not a file name", path, tensor);
    const std::string f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "..")
      fail("{}: shard name '{}' must be a plain file name", path, f);
    names.insert(f);
  }
  if (names.empty()) fail("{}: weight_map is empty", path);
  return {names.begin(), names.end()};
}

namespace {

std::vector<std::string> shard_paths(const fs::path& dir) {
  const fs::path index = dir / "model.safetensors.index.json";
  const fs::path single = dir / "model.safetensors";
  if (fs::exists(index)) {
    std::vector<std::string> paths;
    for (const auto& n : parse_shard_index(read_text_file(index.string()), index.string())) {
      const fs::path p = dir / n;
      if (!fs::exists(p)) fail("{}: names shard '{}', which does not exist", index.string(), n);
      paths.push_back(p.string());
    }
    return paths;
  }
  if (fs::exists(single)) return {single.string()};
  fail("{}: no model.safetensors or model.safetensors.index.json: not a model directory", dir.string());
}

// transformers' LlamaTokenizer adds a BOS unless tokenizer_config.json says add_bos_token false.
bool spm_adds_bos(const fs::path& tokenizer_config) {
  if (!fs::exists(tokenizer_config)) return true;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(tokenizer_config.string()));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", tokenizer_config.string(), e.what());
  }
  const auto it = j.is_object() ? j.find("add_bos_token") : j.end();
  if (!j.is_object() || it == j.end() || it->is_null()) return true;
  if (!it->is_boolean()) fail("{}: add_bos_token must be true or false", tokenizer_config.string());
  return it->get<bool>();
}

}  // namespace

Model::Parts load_hf_parts(const std::string& path) {
  // A single .safetensors file is accepted with the config.json beside it.
  fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const fs::path cfg = dir / "config.json";
  if (!fs::exists(cfg)) fail("{}: no config.json: not a model directory", dir.string());
  Model::Parts parts;
  parts.path = path;
  parts.kind = "hf";
  const std::string cfg_text = read_text_file(cfg.string());
  parts.config = ModelConfig::from_hf_json(cfg_text, cfg.string());
  const std::vector<std::string> shards =
      fs::is_directory(path) ? shard_paths(dir) : std::vector<std::string>{path};
  const std::optional<HfQuantConfig> quant = parse_quantization_config(cfg_text, cfg.string());
  std::set<std::string> seen;
  std::vector<HfTensor> all;
  for (const auto& shard : shards) {
    auto file = std::make_shared<SafetensorsFile>(shard);
    parts.file_bytes += file->file_size();
    for (const auto& st : file->tensors()) {
      if (!seen.insert(st.tensor.name).second)
        fail("{}: tensor '{}' appears in more than one shard", shard, st.tensor.name);
      all.push_back({&st, shard});
    }
    parts.storage.push_back(file);
  }
  // A quantized checkpoint's linears become LMQ_INT tensors; everything else is taken as stored.
  const std::vector<HfTensor> plain = quant ? load_hf_quantized(*quant, all, parts) : all;
  for (const HfTensor& t : plain) {
    const StTensor& st = *t.st;
    if (st.dtype != StDType::F32 && st.dtype != StDType::F16 && st.dtype != StDType::BF16)
      fail("{}: tensor '{}' has dtype {}; weights must be F32, F16 or BF16", t.file, st.tensor.name,
           st_dtype_name(st.dtype));
    parts.tensors.push_back(st.tensor);
  }
  // A BPE tokenizer.json of a SentencePiece-style model (Metaspace) has the real thing beside it.
  const fs::path spm = dir / "tokenizer.model", bpe = dir / "tokenizer.json";
  if (fs::exists(spm)) {
    parts.tokenizer_path = spm.string();
    parts.config.add_bos = spm_adds_bos(dir / "tokenizer_config.json");
  } else if (fs::exists(bpe)) {
    parts.tokenizer_path = bpe.string();
    parts.tokenizer_kind = TokenizerKind::Bpe;
  }
  return parts;
}

}  // namespace lmq
