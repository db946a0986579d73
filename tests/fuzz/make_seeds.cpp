// Writes the seed corpora of the fuzz targets from the real shared files (run by the fuzz
// build; nothing it writes is kept in the repository):
//   make_seeds <shared dir> <out dir>   → <out dir>/<target>/<seed files>
// Real inputs are large (24 MB shards, 32000-piece vocabularies); libFuzzer mutates small
// inputs far faster, so most seeds are the real structures cut down: the real header JSON
// with every shape shrunk and the data repacked, the real metadata with the vocabulary cut to
// its first pieces, a tiny complete model made of real config keys, names and bytes.
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/formats/gguf.h"
#include "lmq/formats/gguf_writer.h"
#include "lmq/formats/lmq_file.h"
#include "lmq/formats/safetensors.h"
#include "lmq/error.h"
#include "lmq/eval/sweep.h"
#include "lmq/mapped_file.h"
#include "lmq/model/config.h"
#include "lmq/model/tokenizer.h"
#include "lmq/quant/scheme.h"
#include "lmq/tokenizer/bpe.h"

#include "../charsmap_builder.h"  // tests/: the hand-built precompiled_charsmap
#include "../../src/model/proto_wire.h"  // the protobuf wire format the tokenizer.model code uses

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace lmq;

namespace {

constexpr size_t kPieces = 300;  // the vocabulary kept: specials, 256 bytes, the first merges

fs::path g_out;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_out / target);
  std::ofstream(g_out / target / name, std::ios::binary) << bytes;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char(v >> (8 * i));
  return s;
}

// A shard's header alone (the data cut off), and the same header with every dim shrunk to at
// most 3 and the real first bytes of each tensor repacked after it: a valid small file.
void safetensors_seeds(const fs::path& shard, const std::string& tag) {
  MappedFile f(shard.string());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | f.data()[i];
  const std::string header(reinterpret_cast<const char*>(f.data()) + 8, size_t(n));
  put("safetensors", tag + "-header-only", le64(n) + header);
  const uint8_t* data = f.data() + 8 + n;
  json h = json::parse(header), small = json::object();
  std::string body;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") {
      small[it.key()] = it.value();
      continue;
    }
    json t = it.value();
    uint64_t numel = 1;
    for (auto& d : t["shape"]) d = std::min<uint64_t>(d.get<uint64_t>(), 3), numel *= d.get<uint64_t>();
    const uint64_t nb = numel * (t["dtype"] == "F32" ? 4 : 2), begin = t["data_offsets"][0].get<uint64_t>();
    t["data_offsets"] = {body.size(), body.size() + nb};
    body.append(reinterpret_cast<const char*>(data + begin), nb);
    small[it.key()] = t;
    if (small.size() >= 12) break;
  }
  const std::string sh = small.dump();
  put("safetensors", tag + "-small", le64(sh.size()) + sh + body);
}

// The real tokenizer.model with only its first kPieces pieces (protobuf field 1 of ModelProto);
// trainer and normalizer specs kept byte for byte.
std::string trimmed_spm(const std::string& bytes) {
  std::string out;
  lmq::proto::Reader r{bytes};
  size_t pieces = 0;
  while (r.pos < bytes.size()) {
    const size_t start = r.pos;
    uint64_t field = 0;
    std::string_view payload;
    if (!r.next(&field, &payload)) throw std::runtime_error("tokenizer.model: malformed protobuf");
    if (field != 1 || pieces++ < kPieces) out.append(bytes, start, r.pos - start);
  }
  return out;
}

// A length-delimited protobuf field: tag, varint length, payload.
std::string spm_field(int field, const std::string& payload) {
  lmq::proto::Writer w;
  w.bytes_field(field, payload);
  return std::move(w.str());
}

GgufValue truncated(const GgufValue& v) {
  if (v.type != GgufType::ARRAY) return v;
  auto elems = std::get<std::vector<GgufValue>>(v.v);
  if (elems.size() > kPieces) elems.resize(kPieces);
  return GgufValue::array(v.elem_type, std::move(elems));
}

// A gpt2 vocabulary's merges whose tokens are all among the first kPieces (so the cut vocabulary
// still loads).
GgufValue merges_within(const GgufFile& f, const GgufValue& merges) {
  std::set<std::string> kept;
  for (const std::string& t : f.get_string_array("tokenizer.ggml.tokens")) {
    if (kept.size() == kPieces) break;
    kept.insert(t);
  }
  std::vector<std::string> out;
  for (const GgufValue& m : std::get<std::vector<GgufValue>>(merges.v)) {
    const std::string& s = std::get<std::string>(m.v);
    const size_t sp = s.find(' ');
    if (sp != std::string::npos && kept.count(s.substr(0, sp)) && kept.count(s.substr(sp + 1)) &&
        kept.count(s.substr(0, sp) + s.substr(sp + 1)))
      out.push_back(s);
  }
  return GgufValue::string_array(out);
}

// A fixture's metadata (vocabulary cut to kPieces), and with its tensor infos too, each tensor
// shrunk to one row of one block with the fixture's own first bytes.
void gguf_seeds(const fs::path& fixture) {
  GgufFile f(fixture.string());
  const std::string tag = fixture.stem().string();
  for (bool with_tensors : {false, true}) {
    const fs::path dest = g_out / (with_tensors ? "gguf" : "gguf_tokenizer") / (tag + ".gguf");
    fs::create_directories(dest.parent_path());
    GgufWriter w(dest.string());
    for (const auto& [k, v] : f.metadata())
      if (k == "tokenizer.ggml.merges") w.set(k, merges_within(f, v));
      else if ((k == "tokenizer.ggml.bos_token_id" || k == "tokenizer.ggml.eos_token_id") && v.is_unsigned() &&
               std::get<uint64_t>(v.v) >= kPieces)
        w.set(k, GgufValue::u32(uint32_t(kPieces - 1)));  // the cut vocabulary's last token
      else if (k != "general.alignment") w.set(k, truncated(v));
    if (with_tensors)
      for (const Tensor& t : f.tensors()) {
        const int64_t bs = ggml_block_size(t.format), cols = bs > 1 ? bs : 4;
        const std::vector<int64_t> shape = t.shape.size() == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{1, cols};
        w.add_tensor(t.name, shape, t.format, t.data, format_row_bytes(t.format, cols));
      }
    w.finish();
  }
}

// One block of each i-quant type (no model metadata: the decoders are the target), once with
// every bit set (NaN scales, the largest grid and sign indices) and once pseudo-random.
void iquant_block_seeds() {
  for (bool ones : {true, false}) {
    const fs::path dest = g_out / "gguf" / (ones ? "iquant-blocks-ones.gguf" : "iquant-blocks-random.gguf");
    fs::create_directories(dest.parent_path());
    GgufWriter w(dest.string());
    std::vector<std::string> blocks;  // add_tensor references the bytes until finish()
    blocks.reserve(all_format_traits().size());
    uint64_t x = 1;
    for (const FormatTraits& t : all_format_traits()) {
      if (!t.name.starts_with("iq")) continue;
      std::string& b = blocks.emplace_back(t.block_bytes, '\xff');
      if (!ones)
        for (char& c : b) c = char((x = x * 6364136223846793005ull + 1442695040888963407ull) >> 56);
      w.add_tensor("blk.0." + std::string(t.name) + ".weight", {t.block_size}, t.format,
                   reinterpret_cast<const uint8_t*>(b.data()), b.size());
    }
    w.finish();
  }
}

// A complete tiny model as lmq's file: the real config.json with its sizes shrunk, the trimmed
// real tokenizer, every tensor the forward pass binds (one of each stored format) filled with
// the real model's first weight bytes.
void lmq_file_seed(const fs::path& model_dir, const std::string& tokenizer, const std::string& tag) {
  json cj = json::parse(read_text_file((model_dir / "config.json").string()));
  cj.update({{"hidden_size", 32}, {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"num_key_value_heads", 1},
             {"head_dim", 16}, {"intermediate_size", 64}, {"vocab_size", int(kPieces)},
             {"max_position_embeddings", 64}, {"tie_word_embeddings", false}});
  const ModelConfig c = ModelConfig::from_hf_json(cj.dump(), tag);
  const int64_t H = c.hidden, Q = c.q_dim(), KV = c.kv_dim(), F = c.ffn, V = c.vocab;
  struct Plan { std::string name, scheme; std::vector<int64_t> shape; Format f; };
  const std::string l = "model.layers.0.";
  std::vector<Plan> plan = {
      {"model.embed_tokens.weight", "f16", {V, H}, Format::F16},
      {"model.norm.weight", "f32", {H}, Format::F32},
      {"lm_head.weight", "bf16", {V, H}, Format::BF16},
      {l + "input_layernorm.weight", "f32", {H}, Format::F32},
      {l + "post_attention_layernorm.weight", "f32", {H}, Format::F32},
      {l + "self_attn.q_proj.weight", "int4:g32:asym:mse", {Q, H}, Format::LMQ_INT},
      {l + "self_attn.k_proj.weight", "int8", {KV, H}, Format::LMQ_INT},
      {l + "self_attn.v_proj.weight", "q8_0", {KV, H}, Format::Q8_0},
      {l + "self_attn.o_proj.weight", "int3:tensor:s=f32", {H, Q}, Format::LMQ_INT},
      {l + "mlp.gate_proj.weight", "int2:g16:sym:s=bf16", {F, H}, Format::LMQ_INT},
      {l + "mlp.up_proj.weight", "q4_0", {F, H}, Format::Q4_0},
      {l + "mlp.down_proj.weight", "q5_1", {H, F}, Format::Q5_1},
  };
  if (c.qkv_bias)
    for (const char* b : {"q_proj.bias", "k_proj.bias", "v_proj.bias"})
      plan.push_back({l + "self_attn." + b, "f32", {std::string(b) == "q_proj.bias" ? Q : KV}, Format::F32});
  std::vector<LmqTensorSpec> specs;
  for (const Plan& p : plan) {
    LmqTensorSpec s{p.name, p.shape, p.f, {}, p.scheme, 0};
    if (p.f == Format::LMQ_INT) s.q = quant::parse_scheme(p.scheme).p;
    s.nbytes = stored_bytes(s.format, s.q, s.shape);
    specs.push_back(s);
  }
  MappedFile weights((model_dir / "model-00001-of-00003.safetensors").string());
  const fs::path dest = g_out / "lmq_file" / (tag + ".lmq");
  fs::create_directories(dest.parent_path());
  LmqFileWriter w(dest.string(), c.to_hf_json(), tokenizer, {{"lmq.source", tag}}, specs);
  for (const auto& s : specs) w.write_tensor(s.name, weights.data() + weights.size() / 2, s.nbytes);
  w.commit();
}

// A byte-level BPE tokenizer.json cut to its first kPieces vocabulary entries (the byte alphabet
// and the first merges' results), the merges among them, and the added tokens renumbered after
// them (the template's ids follow); written also with the legacy "a b" merge spelling.
// The config with the quantization_config blocks the GPU tool-chains write (model/hf_quant.h).
void quant_config_seeds(const std::string& config_text, const std::string& tag) {
  const json weights = {{"num_bits", 4}, {"type", "int"}, {"symmetric", false}, {"strategy", "group"},
                        {"group_size", 128}, {"actorder", "group"}, {"dynamic", false}};
  const json blocks[] = {
      {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}, {"sym", true}, {"desc_act", true},
       {"checkpoint_format", "gptq"}},
      {{"quant_method", "gptq"}, {"bits", 3}, {"group_size", -1}, {"sym", false}, {"checkpoint_format", "gptq_v2"}},
      {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 128}, {"zero_point", true}, {"version", "gemm"}},
      {{"quant_method", "compressed-tensors"}, {"format", "pack-quantized"},
       {"config_groups", {{"group_0", {{"targets", {"Linear"}}, {"weights", weights}}}}}, {"ignore", {"lm_head"}}},
      {{"quant_method", "compressed-tensors"}, {"format", "int-quantized"},
       {"config_groups", {{"group_0", {{"targets", {"Linear"}},
                                       {"weights", {{"num_bits", 8}, {"type", "int"}, {"strategy", "channel"}}},
                                       {"input_activations", {{"num_bits", 8}, {"type", "int"}, {"dynamic", true},
                                                              {"strategy", "token"}}}}}}}}};
  int i = 0;
  for (const json& b : blocks) {
    json c = json::parse(config_text);
    c["quantization_config"] = b;
    put("config", tag + "-quant" + std::to_string(i++) + ".json", c.dump());
  }
}

void bpe_seeds(const fs::path& model_dir, const std::string& tag) {
  json j = json::parse(read_text_file((model_dir / "tokenizer.json").string()));
  json& model = j["model"];
  json vocab = json::object();
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it)
    if (it.value().get<size_t>() < kPieces) vocab[it.key()] = it.value();
  json merges = json::array(), legacy = json::array();
  for (const json& m : model["merges"]) {
    const std::string a = m[0], b = m[1];
    if (vocab.contains(a) && vocab.contains(b) && vocab.contains(a + b)) merges.push_back(m), legacy.push_back(a + " " + b);
  }
  std::map<int, int> renumbered;
  for (json& a : j["added_tokens"]) {
    const int id = int(kPieces + renumbered.size());
    renumbered[a["id"].get<int>()] = id;
    a["id"] = id;
  }
  if (j["post_processor"].contains("special_tokens"))
    for (auto& [name, tok] : j["post_processor"]["special_tokens"].items())
      for (json& id : tok["ids"]) id = renumbered.at(id.get<int>());
  model["vocab"] = vocab;
  model["merges"] = merges;
  const std::string small = j.dump();
  model["merges"] = legacy;
  const std::string small_legacy = j.dump();
  for (const std::string* s : {&small, &small_legacy}) BpeTokenizer::from_json_text(*s, tag);  // seeds must load
  put("tokenizer_json", tag + "-trimmed.json", small);
  put("tokenizer_json", tag + "-trimmed-legacy-merges.json", small_legacy);
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seeds <shared dir> <out dir>\n");
    return 2;
  }
  const fs::path shared = argv[1];
  g_out = argv[2];
  fs::remove_all(g_out);
  const std::string tokenizer = trimmed_spm(read_text_file((shared / "models/lmq-llama-25m/tokenizer.model").string()));
  Tokenizer::from_bytes(tokenizer, "trimmed tokenizer.model");  // the seed must be a loadable model
  put("tokenizer", "lmq-llama-25m-trimmed.model", tokenizer);
  // The same with a small precompiled_charsmap (a second NormalizerSpec merges into the first).
  const std::string charsmap = lmq::test::CharsmapBuilder(std::map<std::string, std::string>{{"a", "A"}, {"ab", "B"}, {"\xef\xbc\xa1", "A"}}).bytes();
  const std::string with_map = tokenizer + spm_field(3, spm_field(2, charsmap));
  Tokenizer::from_bytes(with_map, "tokenizer.model with a charsmap");
  put("tokenizer", "lmq-llama-25m-trimmed-charsmap.model", with_map);
  for (const char* m : {"lmq-llama-25m", "lmq-qwen2-21m"}) {
    const fs::path dir = shared / "models" / m;
    put("config", std::string(m) + ".json", read_text_file((dir / "config.json").string()));
    quant_config_seeds(read_text_file((dir / "config.json").string()), m);
    put("shard_index", std::string(m) + ".json", read_text_file((dir / "model.safetensors.index.json").string()));
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") safetensors_seeds(e.path(), std::string(m) + "-" + e.path().stem().string());
    lmq_file_seed(dir, tokenizer, m);
  }
  for (const char* m : {"lmq-qwen3-8m", "lmq-llama3-9m"}) bpe_seeds(shared / "models" / m, m);
  for (const auto& e : fs::directory_iterator(shared / "gguf")) {
    if (e.path().extension() != ".gguf") continue;
    try {
      gguf_seeds(e.path());
    } catch (const Error& err) {  // a fixture in a tensor type lmq does not read (IQ1_S, ...)
      std::fprintf(stderr, "make_seeds: skipped %s\n", err.what());
    }
  }
  iquant_block_seeds();
  // Scheme strings: the sweep's full set, overrides and activation rules as the docs write them.
  int i = 0;
  for (const auto& s : default_sweep_schemes(true)) put("scheme", "sweep-" + std::to_string(i++), s);
  for (const char* s : {"int4:g128:asym:mse", "int8:channel:sym:pct99.9:s=bf16", "mlp\\.down_proj=int8:g64",
                        "self_attn\\.(q|k)_proj=f16", "attn_v=q6_k", "ffn_down.*=q4_k", "dynamic:mse", "none"})
    put("scheme", "doc-" + std::to_string(i++), s);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "make_seeds: %s\n", e.what());
  return 1;
}
