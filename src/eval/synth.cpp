// Synthetic models; see include/lmq/eval/synth.h.
#include "lmq/eval/synth.h"

#include <fmt/format.h>
#include <omp.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "lmq/error.h"
#include "lmq/formats/atomic_file.h"
#include "lmq/half.h"
#include "lmq/mapped_file.h"

namespace lmq {

namespace fs = std::filesystem;
using json = nlohmann::json;

SynthShape synth_preset(const std::string& name) {
  // the shapes of TinyLlama-1.1B, Llama-2-7B and Llama-3-8B (their config.json)
  if (name == "tinyllama-1.1b") return {name, 2048, 22, 32, 4, 5632, 32000, 2048, 10000, 1e-5};
  if (name == "llama2-7b") return {name, 4096, 32, 32, 32, 11008, 32000, 4096, 10000, 1e-5};
  if (name == "llama3-8b") return {name, 4096, 32, 32, 8, 14336, 128256, 8192, 500000, 1e-5};
  fail("synth preset '{}': expected one of tinyllama-1.1b, llama2-7b, llama3-8b", name);
}

std::vector<std::string> synth_preset_names() { return {"tinyllama-1.1b", "llama2-7b", "llama3-8b"}; }

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a, then mixed
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return splitmix(h);
}

// ≈ N(0, 1): the sum of four 16-bit uniforms (Irwin–Hall), centred and scaled; cheap enough to
// fill 8 billion weights in seconds, and normal enough for speed and memory figures.
float normal(uint64_t& s) {
  const uint64_t x = splitmix(s);
  const double u = double((x & 0xFFFF) + ((x >> 16) & 0xFFFF) + ((x >> 32) & 0xFFFF) + (x >> 48)) / 65536.0;
  return float((u - 2.0) * 1.7320508075688772);
}

enum class Kind { Embed, Linear, Norm };

struct SynthTensor {
  std::string name;
  int64_t rows, cols;  // a norm: 1 × cols
  Kind kind;
  uint64_t bytes() const { return uint64_t(rows * cols) * 2; }
};

std::vector<SynthTensor> tensor_list(const SynthShape& s, int64_t layers) {
  const int64_t hd = s.hidden / s.heads, q = s.heads * hd, kv = s.kv_heads * hd;
  std::vector<SynthTensor> v{{"model.embed_tokens.weight", s.vocab, s.hidden, Kind::Embed}};
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    v.push_back({p + "input_layernorm.weight", 1, s.hidden, Kind::Norm});
    v.push_back({p + "self_attn.q_proj.weight", q, s.hidden, Kind::Linear});
    v.push_back({p + "self_attn.k_proj.weight", kv, s.hidden, Kind::Linear});
    v.push_back({p + "self_attn.v_proj.weight", kv, s.hidden, Kind::Linear});
    v.push_back({p + "self_attn.o_proj.weight", s.hidden, q, Kind::Linear});
    v.push_back({p + "post_attention_layernorm.weight", 1, s.hidden, Kind::Norm});
    v.push_back({p + "mlp.gate_proj.weight", s.ffn, s.hidden, Kind::Linear});
    v.push_back({p + "mlp.up_proj.weight", s.ffn, s.hidden, Kind::Linear});
    v.push_back({p + "mlp.down_proj.weight", s.hidden, s.ffn, Kind::Linear});
  }
  v.push_back({"model.norm.weight", 1, s.hidden, Kind::Norm});
  v.push_back({"lm_head.weight", s.vocab, s.hidden, Kind::Linear});
  return v;
}

// The outlier input channels of width K: the same for every tensor of that input width, so
// the hidden state's outliers sit in the same channels through all layers.
std::set<int64_t> outlier_channels(int64_t K, uint64_t seed) {
  std::set<int64_t> c;
  uint64_t s = seed ^ (uint64_t(K) * 0x2545F4914F6CDD1Dull);
  while (int64_t(c.size()) < std::min<int64_t>(4, K)) c.insert(int64_t(splitmix(s) % uint64_t(K)));
  return c;
}

// Row r of tensor t as bf16.
void fill_row(const SynthTensor& t, int64_t r, uint64_t tseed, const std::vector<float>& col_scale, uint16_t* out) {
  uint64_t s = tseed ^ (uint64_t(r) * 0xD1B54A32D192ED03ull);
  splitmix(s);
  const float scale = t.kind == Kind::Embed ? 0.02f : t.kind == Kind::Linear ? float(1 / std::sqrt(double(t.cols))) : 0.05f;
  for (int64_t c = 0; c < t.cols; ++c) {
    const float z = normal(s) * scale;
    out[c] = f32_to_bf16(t.kind == Kind::Norm ? (1 + z) * col_scale[size_t(c)] : z * col_scale[size_t(c)]);
  }
}

void write_tensor(AtomicFile& f, const SynthTensor& t, uint64_t seed) {
  const uint64_t tseed = hash_name(t.name, seed);
  std::vector<float> col_scale(size_t(t.cols), 1.0f);
  if (t.kind != Kind::Embed)
    for (int64_t c : outlier_channels(t.cols, seed)) col_scale[size_t(c)] = t.kind == Kind::Norm ? 6.0f : 4.0f;
  const int64_t chunk = std::max<int64_t>(1, (int64_t(8) << 20) / (2 * t.cols));  // ~8 MiB of rows
  std::vector<uint16_t> buf(size_t(std::min(chunk, t.rows) * t.cols));
  for (int64_t r0 = 0; r0 < t.rows; r0 += chunk) {
    const int64_t n = std::min(chunk, t.rows - r0);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) fill_row(t, r0 + i, tseed, col_scale, buf.data() + i * t.cols);
    f.write(buf.data(), size_t(n * t.cols) * 2);
  }
}

std::string config_json(const SynthShape& s, int64_t layers, const SynthOptions& o) {
  json c{{"architectures", {"LlamaForCausalLM"}},
         {"model_type", "llama"},
         {"hidden_size", s.hidden},
         {"intermediate_size", s.ffn},
         {"num_hidden_layers", layers},
         {"num_attention_heads", s.heads},
         {"num_key_value_heads", s.kv_heads},
         {"head_dim", s.hidden / s.heads},
         {"hidden_act", "silu"},
         {"max_position_embeddings", s.max_pos},
         {"rms_norm_eps", s.norm_eps},
         {"rope_theta", s.rope_theta},
         {"tie_word_embeddings", false},
         {"attention_bias", false},
         {"mlp_bias", false},
         {"vocab_size", s.vocab},
         {"torch_dtype", "bfloat16"},
         {"lmq_synthetic", fmt::format("preset {}, seed {}: pseudo-random weights, the text it makes is noise "
                                       "(for speed and memory figures only)", s.preset, o.seed)}};
  return c.dump(2) + "\n";
}

void write_text(const fs::path& p, const std::string& s) {
  AtomicFile f(p.string());
  f.write(s.data(), s.size());
  f.commit();
}

// Writes everything into `dir` (the temporary directory).
SynthReport write_into(const fs::path& dir, const SynthShape& s, int64_t layers, const SynthOptions& o) {
  const std::vector<SynthTensor> ts = tensor_list(s, layers);
  std::vector<std::vector<const SynthTensor*>> shards(1);
  uint64_t in_shard = 0;
  for (const SynthTensor& t : ts) {
    if (in_shard > 0 && in_shard + t.bytes() > o.shard_bytes) shards.emplace_back(), in_shard = 0;
    shards.back().push_back(&t);
    in_shard += t.bytes();
  }
  SynthReport rep;
  rep.shards = int(shards.size());
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    json header{{"__metadata__", {{"format", "pt"}}}};
    uint64_t off = 0;
    for (const SynthTensor* t : shards[i]) {
      const json shape = t->kind == Kind::Norm ? json{t->cols} : json{t->rows, t->cols};
      header[t->name] = {{"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {off, off + t->bytes()}}};
      off += t->bytes();
      weight_map[t->name] = file;
      rep.params += t->rows * t->cols;
    }
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
    AtomicFile f((dir / file).string());
    f.put(uint64_t(h.size()));
    f.write(h.data(), h.size());
    for (const SynthTensor* t : shards[i]) write_tensor(f, *t, o.seed);
    f.commit();
    rep.bytes += off;
  }
  write_text(dir / "model.safetensors.index.json",
             json{{"metadata", {{"total_size", rep.bytes}, {"total_parameters", rep.params}}},
                  {"weight_map", weight_map}}
                     .dump(2) + "\n");
  write_text(dir / "config.json", config_json(s, layers, o));
  const bool spm = fs::path(o.tokenizer).extension() == ".model";
  write_text(dir / (spm ? "tokenizer.model" : "tokenizer.json"), read_text_file(o.tokenizer));
  return rep;
}

}  // namespace

SynthReport write_synthetic_model(const SynthShape& s, const SynthOptions& o) {
  const int64_t layers = o.layers < 0 ? s.layers : o.layers;
  if (layers < 1 || layers > s.layers) fail("--layers {}: must be in 1..{} for {}", o.layers, s.layers, s.preset);
  const std::string ext = fs::path(o.tokenizer).extension().string();
  if (ext != ".model" && ext != ".json")
    fail("--tokenizer {}: expected a SentencePiece tokenizer.model or a tokenizer.json", o.tokenizer);
  if (!fs::is_regular_file(o.tokenizer)) fail("--tokenizer {}: no such file", o.tokenizer);
  fs::path dest = fs::path(o.out_dir).lexically_normal();
  if (!dest.empty() && !dest.has_filename()) dest = dest.parent_path();  // "dir/" → "dir"
  if (dest.empty()) fail("-o: an output directory is required");
  std::error_code ec;
  if (fs::exists(dest, ec)) fail("{}: exists; synth writes a new directory", o.out_dir);
  std::string tmpl = dest.string() + ".tmp-XXXXXX";
  if (!mkdtemp(tmpl.data())) fail("{}: cannot create a temporary directory beside it ({})", o.out_dir, strerror(errno));
  const fs::path tmp = tmpl;
  try {
    const SynthReport r = write_into(tmp, s, layers, o);
    // mkdtemp's 0700 → a directory like any other (the files inside are AtomicFile's 0644)
    using P = fs::perms;
    fs::permissions(tmp, P::owner_all | P::group_read | P::group_exec | P::others_read | P::others_exec);
    fs::rename(tmp, dest);
    return r;
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    fail("{}: {}", o.out_dir, e.code().message());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace lmq
