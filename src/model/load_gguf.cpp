// GGUF files (llama.cpp): config from the `<arch>.*` metadata (llama, qwen2, qwen3; RoPE scaling
// from rope.scaling.* or the rope_freqs tensor), the tokenizer rebuilt from `tokenizer.ggml.*`
// (SentencePiece "llama" or byte-level BPE "gpt2", tokenizer/gguf_vocab.h), and every tensor
// renamed from llama.cpp's names to the Hugging Face names the rest of lmq uses. Tensor data
// stays in the mapped file.
//
// Q/K rows of llama GGUFs. llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute)
// reorders the rows of q_proj / k_proj within each head (heads of K counted with n_head_kv):
// viewing a head's d rows as [2][d/2] and swapping the two axes, the stored row 2i + a is the
// HF row a·d/2 + i (a ∈ {0, 1}). HF RoPE (rotate_half) rotates the pair (i, i + d/2) by angle
// pos·θ^(−2i/d); after the permutation that pair sits at rows (2i, 2i+1): exactly the
// "interleaved" pairs of forward.cpp's rope(), with the same angle index i. So the GGUF rows
// are not un-permuted: config.rope_interleaved is set instead. The permuted q and k of a head
// are then the HF q and k under the same permutation P of coordinates, and since
// (Pq)·(Pk) = q·k the attention scores, and everything after them, are unchanged (V and O are
// not permuted). Qwen2 GGUFs are stored unpermuted (llama.cpp uses NEOX-style RoPE for them).
//
// The K-quants (Q2_K..Q6_K) and the lattice i-quants (IQ2_XXS..IQ3_S, IQ1_S, IQ1_M) stay in the map: the
// integer kernels read their blocks in place
// (kernels/ggml_matmul.h), so the process holds the file's pages and nothing more for them
// (RSS ≈ file size). So do Q8_0, Q4_0, IQ4_NL and IQ4_XS where those kernels have SIMD on this
// CPU (AVX-512 VNNI or AVX2, ggml_matmul_has_simd; LoadOptions::ggml_in_place chooses otherwise for one load),
// except that where the CPU has AVX-512 VNNI (ggml_matmul_takes_x16) and no load option
// chooses, Q4_0, Q8_0, Q4_K and Q6_K linears (whole groups of 16 rows; not the embedding, whose
// rows are looked up) are interleaved into their X16 layouts (codecs/ggml_interleave.h: the same
// bytes, 16 rows per record, which decode streams as one sequence) in a buffer of their own, the
// file's pages released. A load for those kernels checks their scales first: a NaN/Inf d or dmin refuses the tensor, since int8
// activation quantization would hide it (it would not surface at the logits). The exceptions to
// "data stays in the map" are repacked at load into the LMQ_INT layout that holds the same values
// (codecs/ggml_repack.h), which the LMQ_INT kernels run on, the file's pages of
// each released once copied, a NaN/Inf scale refused as well: Q8_0, Q4_0, IQ4_NL and IQ4_XS where
// the in-place kernels would run their scalar specification (Q8_0, Q4_0: the same bytes, so RSS ≈
// file size still; IQ4 as 8-bit codes, twice their bytes). Dequantized, the model is the
// file's bit for bit either way. A run with float activations (--act-quant none) loads without
// repacking or checks: the float path then reads the blocks as it always did.
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_interleave.h"
#include "lmq/codecs/ggml_repack.h"
#include "lmq/codecs/int_format.h"
#include "lmq/error.h"
#include "lmq/mapped_file.h"
#include "lmq/formats/gguf.h"
#include "lmq/formats/gguf_names.h"
#include "lmq/kernels/ggml_matmul.h"
#include "lmq/model/model.h"
#include "lmq/model/spm_proto.h"
#include "lmq/tokenizer/gguf_vocab.h"

namespace lmq {
namespace fs = std::filesystem;

namespace {

int positive(const GgufFile& f, const std::string& key) {
  const uint32_t v = f.get_u32(key);
  if (v == 0 || v > (1u << 30)) fail("{}: metadata '{}' = {} is out of range", f.path(), key, v);
  return int(v);
}

const std::vector<GgufValue>& array_of(const GgufFile& f, const std::string& key, size_t n) {
  const GgufValue& v = f.get(key);
  if (v.type != GgufType::ARRAY) fail("{}: metadata '{}' is not an array", f.path(), key);
  const auto& a = std::get<std::vector<GgufValue>>(v.v);
  if (a.size() != n) fail("{}: metadata '{}' has {} entries, expected {}", f.path(), key, a.size(), n);
  return a;
}

}  // namespace

std::string gguf_tokenizer_model(const GgufFile& f) {
  const std::string model = f.has("tokenizer.ggml.model") ? f.get_string("tokenizer.ggml.model") : "";
  if (model != "llama")
    fail("{}: tokenizer.ggml.model is '{}'; lmq supports only SentencePiece vocabularies ('llama')", f.path(),
         model.empty() ? "(missing)" : model);
  SpmModelSpec spec;
  const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (tokens.empty()) fail("{}: tokenizer.ggml.tokens is empty", f.path());
  const size_t n = tokens.size();
  const std::vector<GgufValue>* scores = f.has("tokenizer.ggml.scores") ? &array_of(f, "tokenizer.ggml.scores", n) : nullptr;
  const std::vector<GgufValue>* types =
      f.has("tokenizer.ggml.token_type") ? &array_of(f, "tokenizer.ggml.token_type", n) : nullptr;
  spec.pieces.resize(n);
  int unk = -1;
  for (size_t i = 0; i < n; ++i) {
    SpmPiece& p = spec.pieces[i];
    p.piece = tokens[i];
    if (p.piece.empty()) fail("{}: token {} of tokenizer.ggml.tokens is empty", f.path(), i);
    if (scores) {
      const GgufValue& s = (*scores)[i];
      if (!s.is_float()) fail("{}: tokenizer.ggml.scores must hold floats", f.path());
      p.score = float(std::get<double>(s.v));
    }
    int t = 1;
    if (types) {
      const GgufValue& v = (*types)[i];
      if (!v.is_integer()) fail("{}: tokenizer.ggml.token_type must hold integers", f.path());
      t = v.is_unsigned() ? int(std::get<uint64_t>(v.v)) : int(std::get<int64_t>(v.v));
    }
    if (t == 0) t = 1;  // undefined → normal
    if (t < 1 || t > 6) fail("{}: token {} has unknown token type {}", f.path(), i, t);
    p.type = SpmType(t);
    if (p.type == SpmType::Byte) spec.byte_fallback = true;
    if (p.type == SpmType::Unknown && unk < 0) unk = int(i);
  }
  auto id_or = [&](const char* key, int def) {
    if (!f.has(key)) return def;
    const uint32_t v = f.get_u32(key);
    if (v >= n) fail("{}: {} = {} is outside the vocabulary of {}", f.path(), key, v, n);
    return int(v);
  };
  spec.unk_id = id_or("tokenizer.ggml.unknown_token_id", unk >= 0 ? unk : 0);
  if (spec.pieces[size_t(spec.unk_id)].type != SpmType::Unknown)
    fail("{}: the unknown token {} ('{}') is not of type UNKNOWN", f.path(), spec.unk_id,
         spec.pieces[size_t(spec.unk_id)].piece);
  spec.bos_id = id_or("tokenizer.ggml.bos_token_id", 1);
  spec.eos_id = id_or("tokenizer.ggml.eos_token_id", 2);
  spec.pad_id = id_or("tokenizer.ggml.padding_token_id", -1);
  // llama.cpp's SPM tokenizer merges by score like SentencePiece's BPE, with byte fallback and
  // no whitespace normalization; the dummy prefix follows add_space_prefix (absent → true).
  spec.bpe = true;
  spec.remove_extra_whitespaces = false;
  spec.add_dummy_prefix =
      f.has("tokenizer.ggml.add_space_prefix") ? f.get_bool("tokenizer.ggml.add_space_prefix") : true;
  return serialize_spm_model(spec);
}

namespace {

// RoPE scaling as llama.cpp stores it: keys for linear and YaRN; Llama-3's as the rope_freqs
// tensor of per-pair divisors (applied as llama.cpp's ggml_rope_ext does: θ_i / factor_i).
void read_rope(const GgufFile& f, const std::string& a, ModelConfig& c) {
  const std::string& path = f.path();
  c.rope.theta = f.get_f32_or(a + "rope.freq_base", 10000.f);
  c.rope.origin = path;
  if (f.has(a + "rope.dimension_count")) {
    const int rot = positive(f, a + "rope.dimension_count");
    if (rot > c.head_dim || rot % 2)
      fail("{}: rope.dimension_count {} does not fit head_dim {}", path, rot, c.head_dim);
    c.rope.partial_rotary_factor = double(rot) / double(c.head_dim);
  }
  const std::string type = f.has(a + "rope.scaling.type") ? f.get_string(a + "rope.scaling.type") : "none";
  if (type == "linear" || type == "yarn") {
    c.rope.type = type == "linear" ? RopeType::Linear : RopeType::Yarn;
    c.rope.factor = f.get_f32(a + "rope.scaling.factor");
    if (!(c.rope.factor >= 1.0 && c.rope.factor < 1e6))
      fail("{}: rope.scaling.factor {} is out of range", path, c.rope.factor);
  } else if (type != "none") {
    fail("{}: RoPE scaling '{}' is not supported (lmq reads none, linear, yarn and rope_freqs)", path, type);
  }
  if (c.rope.type == RopeType::Yarn) {
    c.rope.original_max_position_embeddings = positive(f, a + "rope.scaling.original_context_length");
    c.rope.max_position_embeddings = c.max_pos;
    c.rope.beta_fast = f.get_f32_or(a + "rope.scaling.yarn_beta_fast", 32.f);
    c.rope.beta_slow = f.get_f32_or(a + "rope.scaling.yarn_beta_slow", 1.f);
    if (f.has(a + "rope.scaling.yarn_attn_factor")) c.rope.attention_factor = f.get_f32(a + "rope.scaling.yarn_attn_factor");
  }
  if (const Tensor* t = f.find("rope_freqs.weight")) {
    const int64_t want = c.rope.rotary_dim(c.head_dim) / 2;
    if (t->format != Format::F32 || t->shape.size() != 1 || t->shape[0] != want)
      fail("{}: rope_freqs.weight must be {} F32 values (one per rotated pair), found {} of shape [{}]", path, want,
           format_name(t->format), fmt::join(t->shape, ", "));
    if (c.rope.type != RopeType::Default) fail("{}: both rope_freqs.weight and RoPE scaling '{}'", path, type);
    const float* v = reinterpret_cast<const float*>(t->data);
    c.rope_freq_factors.assign(v, v + want);
    for (const float x : c.rope_freq_factors)
      if (!(x > 0 && x < 1e6f)) fail("{}: rope_freqs.weight holds {}, not a frequency divisor", path, x);
  }
}

// t as LMQ_INT when its format repacks (see the top), else t; the new bytes go to storage.
Tensor repacked_for_int_kernels(const Tensor& t, std::vector<std::shared_ptr<void>>& storage,
                                const std::string& path) {
  const std::optional<IntParams> p = ggml_repack_params(t.format);
  if (!p || t.shape.size() != 2 || t.cols() % 32 != 0 || t.rows() == 0) return t;
  const int64_t rows = t.rows(), cols = t.cols();
  const quant::IntLayout l = quant::int_layout(*p, rows, cols);
  std::shared_ptr<uint8_t[]> bytes(new uint8_t[l.total]);
  std::memset(bytes.get() + l.codes_bytes, 0, l.scales_offset - l.codes_bytes);  // padding
  constexpr int64_t kRows = 64;
  int64_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad)
  for (int64_t r0 = 0; r0 < rows; r0 += kRows)
    bad += ggml_repack_rows(t.format, t.data, rows, cols, r0, std::min(kRows, rows - r0), bytes.get());
  if (bad) fail("{}: tensor '{}': a non-finite (NaN/Inf) scale in {} block(s)", path, t.name, bad);
  release_mapped_pages(t.data, t.nbytes);
  Tensor r = t;
  r.format = Format::LMQ_INT;
  r.q = *p;
  r.data = bytes.get();
  r.nbytes = l.total;
  storage.push_back(std::move(bytes));
  return r;
}

// A weight the integer kernels will read in place (Q8_0, Q4_0, K-quants, IQ4, lattice i-quants):
// its scales must be numbers.
void check_in_place_scales(const Tensor& t, const std::string& path) {
  if (!ggml_matmul_supported(t, 32)) return;
  const int64_t blocks = t.numel() / ggml_block_size(t.format);
  const int64_t bad = ggml_nonfinite_blocks(t.format, t.data, blocks);
  if (bad) fail("{}: tensor '{}': a non-finite (NaN/Inf) scale in {} block(s)", path, t.name, bad);
}

// A Q4_0 / Q8_0 / Q4_K / Q6_K linear as its X16 layout (x16, codecs/ggml_interleave.h) in a buffer
// of its own, the file's pages released once copied; a NaN/Inf d or dmin refused.
Tensor interleaved(const Tensor& t, Format x16, std::vector<std::shared_ptr<void>>& storage, const std::string& path) {
  const int64_t rows = t.rows(), cols = t.cols(), groups = rows / 16;
  std::shared_ptr<uint8_t[]> bytes = weight_buffer(t.nbytes);
  constexpr int64_t kGroups = 8;
  int64_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad)
  for (int64_t g = 0; g < groups; g += kGroups)
    bad += x16_interleave(t.format, t.data, rows, cols, g, std::min(kGroups, groups - g), bytes.get());
  if (bad) fail("{}: tensor '{}': a non-finite (NaN/Inf) scale in {} block(s)", path, t.name, bad);
  release_mapped_pages(t.data, t.nbytes);
  Tensor r = t;
  r.format = x16;
  r.data = bytes.get();
  storage.push_back(std::move(bytes));
  return r;
}

// t as the integer kernels will take it (see the top): a format both paths take (Q8_0, Q4_0,
// IQ4_NL, IQ4_XS) stays in place when in_place, else repacks; the K-quants and lattice i-quants
// stay. interleave: Q4_0 / Q8_0 / Q4_K / Q6_K linears (not the embedding, whose rows the forward
// pass looks up) become their X16 layouts.
Tensor for_int_kernels(const Tensor& t, bool in_place, bool interleave, std::vector<std::shared_ptr<void>>& storage,
                       const std::string& path) {
  if (interleave && t.name != "token_embd.weight")
    if (const std::optional<Format> x16 = x16_layout_of(t)) return interleaved(t, *x16, storage, path);
  if (format_traits(t.format).ggml_matmul && (in_place || !ggml_repack_params(t.format))) {
    check_in_place_scales(t, path);
    return t;
  }
  return repacked_for_int_kernels(t, storage, path);
}

}  // namespace

Model::Parts load_gguf_parts(const std::string& path, const LoadOptions& opts) {
  auto file = std::make_shared<GgufFile>(path);
  const GgufFile& f = *file;
  if (!f.has("general.architecture")) fail("{}: GGUF file has no general.architecture", path);
  const std::string arch = f.get_string("general.architecture");
  Model::Parts parts;
  ModelConfig& c = parts.config;
  if (arch == "llama") c.arch = Arch::Llama;
  else if (arch == "qwen2") c.arch = Arch::Qwen2;
  else if (arch == "qwen3") c.arch = Arch::Qwen3;
  else fail("{}: GGUF architecture '{}' is not supported (lmq supports llama, qwen2 and qwen3)", path, arch);
  const std::string a = arch + ".";

  c.hidden = positive(f, a + "embedding_length");
  c.n_layers = positive(f, a + "block_count");
  c.n_heads = positive(f, a + "attention.head_count");
  c.n_kv_heads = f.has(a + "attention.head_count_kv") ? positive(f, a + "attention.head_count_kv") : c.n_heads;
  c.ffn = positive(f, a + "feed_forward_length");
  c.max_pos = positive(f, a + "context_length");
  c.norm_eps = f.get_f32(a + "attention.layer_norm_rms_epsilon");
  c.head_dim = f.has(a + "attention.key_length") ? positive(f, a + "attention.key_length") : c.hidden / c.n_heads;
  if (f.has(a + "attention.value_length") && positive(f, a + "attention.value_length") != c.head_dim)
    fail("{}: attention.value_length differs from the key length {}; not supported", path, c.head_dim);
  read_rope(f, a, c);
  c.qk_norm = c.arch == Arch::Qwen3;
  c.qkv_bias = c.arch == Arch::Qwen2 || f.find("blk.0.attn_q.bias") != nullptr;
  c.rope_interleaved = c.arch == Arch::Llama;  // see the comment at the top

  const Tensor* emb = f.find("token_embd.weight");
  if (!emb) fail("{}: missing tensor 'token_embd.weight'", path);
  if (emb->shape.size() != 2) fail("{}: token_embd.weight is not 2-D", path);
  c.vocab = int(emb->shape[0]);
  if (f.has("tokenizer.ggml.tokens") && f.get("tokenizer.ggml.tokens").type == GgufType::ARRAY) {
    const size_t nt = std::get<std::vector<GgufValue>>(f.get("tokenizer.ggml.tokens").v).size();
    if (nt > size_t(c.vocab))
      fail("{}: {} tokens in tokenizer.ggml.tokens but token_embd has {} rows", path, nt, c.vocab);
  }
  c.bos_id = f.has("tokenizer.ggml.bos_token_id") ? int(f.get_u32("tokenizer.ggml.bos_token_id")) : 1;
  c.eos_id = f.has("tokenizer.ggml.eos_token_id") ? int(f.get_u32("tokenizer.ggml.eos_token_id")) : 2;
  c.add_bos = f.has("tokenizer.ggml.add_bos_token") ? f.get_bool("tokenizer.ggml.add_bos_token") : true;

  const bool in_place = opts.ggml_in_place.value_or(ggml_matmul_has_simd());
  const bool interleave = !opts.ggml_in_place && ggml_matmul_takes_x16();
  bool has_output = false;
  for (const Tensor& t : f.tensors()) {
    const std::optional<std::string> hf = hf_name_of_gguf(t.name);
    if (t.name == "rope_freqs.weight") continue;  // read into the config above
    if (!hf) fail("{}: unknown tensor '{}' (not a llama/qwen2/qwen3 tensor lmq knows)", path, t.name);
    Tensor r = opts.repack_ggml ? for_int_kernels(t, in_place, interleave, parts.storage, path) : t;
    parts.stored_tensor_bytes += t.nbytes;  // the file's bytes, whatever the repacked layout takes
    r.name = *hf;
    has_output |= t.name == "output.weight";
    parts.tensors.push_back(std::move(r));
  }
  c.tied_embeddings = !has_output;
  c.validate(path);

  parts.path = path;
  parts.kind = "gguf";
  parts.file_bytes = fs::file_size(path);
  // SentencePiece ("llama") as its ModelProto bytes; byte-level BPE ("gpt2") as the equivalent
  // tokenizer.json (BpeTokenizer::json_of), both checked here so a bad vocabulary fails the load.
  if (f.has("tokenizer.ggml.model") && f.get_string("tokenizer.ggml.model") == "gpt2") {
    parts.tokenizer_kind = TokenizerKind::Bpe;
    parts.tokenizer_bytes = BpeTokenizer::json_of(bpe_parts_from_gguf(f));
  } else {
    parts.tokenizer_bytes = gguf_tokenizer_model(f);
  }
  parts.storage.push_back(file);
  return parts;
}

}  // namespace lmq
