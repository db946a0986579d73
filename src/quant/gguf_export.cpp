// GGUF export (see the header). The per-tensor types are llama-quantize's (quant/gguf_recipe.h),
// mapped onto lmq's formats; the Q/K permutation follows
// convert_hf_to_gguf.py's LlamaModel.permute (see the comment in model/load_gguf.cpp).
#include "lmq/quant/gguf_export.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "lmq/error.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/quant/quantize_model.h"
#include "lmq/formats/gguf_names.h"
#include "lmq/formats/gguf_writer.h"
#include "lmq/half.h"
#include "lmq/model/gguf_rope.h"
#include "lmq/tokenizer/gguf_vocab.h"

namespace lmq {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_quantized(Format f) { return format_traits(f).quantized; }
const char* ggml_name(Format f) { return format_traits(f).ggml_name.data(); }

// Rows of a llama Q or K weight (or bias) reordered as convert_hf_to_gguf.py's permute:
// within each head of d rows, stored row 2i + a is HF row a·d/2 + i. Rows of `row_bytes`
// bytes each (floats, or a quantized row of whole blocks, which moves unchanged).
void permute_rows(uint8_t* w, int64_t rows, size_t row_bytes, int n_head) {
  if (n_head <= 0 || rows % n_head != 0 || (rows / n_head) % 2 != 0)
    fail("cannot permute {} rows for {} heads", rows, n_head);
  const int64_t d = rows / n_head, half = d / 2;
  std::vector<uint8_t> out(size_t(rows) * row_bytes);
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t a = 0; a < 2; ++a)
        std::memcpy(out.data() + size_t(h * d + 2 * i + a) * row_bytes, w + size_t(h * d + a * half + i) * row_bytes,
                    row_bytes);
  std::memcpy(w, out.data(), out.size());
}

// The rows `encode` reads, each fetched inside the parallel loop so the conversion to float
// runs on every thread: a calibrated method's float values, or the tensor's own rows converted
// one at a time; llama Q/K rows permuted (see permute_rows) as a map from stored row to source row.
struct RowSource {
  const Tensor* t = nullptr;      // convert this tensor's rows, unless
  const float* values = nullptr;  // these rows × cols floats are given
  int64_t cols = 0;
  int64_t head_rows = 0;  // > 0: rows per head to permute

  int64_t source_row(int64_t r) const {
    if (head_rows == 0) return r;
    const int64_t h = r / head_rows, j = r % head_rows;
    return h * head_rows + (j % 2) * (head_rows / 2) + j / 2;
  }
  // Row r's floats: a pointer into values, or scratch (cols floats) filled from the tensor.
  const float* row(int64_t r, float* scratch) const {
    const int64_t s = source_row(r);
    if (values) return values + s * cols;
    dequantize_rows(*t, s, 1, scratch);
    return scratch;
  }
};

// The error of one stored row against its floats, added into st. A report, not part of the
// bytes: the sums may be reordered for vectorization (deterministic for a given build).
void add_row_error(const float* x, const float* back, int64_t cols, quant::QuantStats& st) {
  double sq_err = 0, sq_ref = 0, max_abs = 0;
#pragma omp simd reduction(+ : sq_err, sq_ref) reduction(max : max_abs)
  for (int64_t j = 0; j < cols; ++j) {
    const double e = double(x[j]) - double(back[j]);
    sq_err += e * e;
    sq_ref += double(x[j]) * double(x[j]);
    max_abs = std::max(max_abs, std::fabs(e));
  }
  st.sq_err += sq_err;
  st.sq_ref += sq_ref;
  st.max_abs = std::max(st.max_abs, max_abs);
}

// Quantizes (or converts) `rows` rows of src into `out` and returns the error of what was
// stored. imp: cols importance values for a weighted fit, or null. With `given`, out already
// holds the bytes (a calibrated method's) and only the error is measured. Every row is
// written whole, so out is only resized, never cleared.
#pragma omp declare reduction(merge : quant::QuantStats : omp_out.merge(omp_in)) initializer(omp_priv = quant::QuantStats{})
quant::QuantStats encode(Format f, const RowSource& src, int64_t rows, const float* imp, bool given,
                         std::vector<uint8_t>& out) {
  const int64_t cols = src.cols;
  const uint64_t rb = ggml_row_bytes(f, cols);
  if (!given) out.resize(size_t(rb * uint64_t(rows)));
  else if (out.size() != rb * uint64_t(rows))
    fail("calibrated bytes: {} for a {} × {} {} tensor of {} bytes", out.size(), rows, cols, ggml_name(f),
         rb * uint64_t(rows));
  quant::QuantStats st;
#pragma omp parallel reduction(merge : st)
  {
    std::vector<float> scratch(static_cast<size_t>(cols)), back(static_cast<size_t>(cols));
#pragma omp for schedule(dynamic, 16)
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = src.row(r, scratch.data());
      uint8_t* dst = out.data() + uint64_t(r) * rb;
      if (given) {
      } else if (f == Format::F32) {
        std::memcpy(dst, x, size_t(cols) * 4);
      } else if (f == Format::F16 || f == Format::BF16) {
        for (int64_t j = 0; j < cols; ++j) {
          const uint16_t h = f == Format::F16 ? f32_to_f16(x[j]) : f32_to_bf16(x[j]);
          std::memcpy(dst + 2 * j, &h, 2);
        }
      } else {
        ggml_quantize_row(f, x, dst, cols, imp);
      }
      const float* stored = x;
      if (f != Format::F32 || given) {
        ggml_dequantize_row(f, dst, back.data(), cols);
        stored = back.data();
      }
      add_row_error(x, stored, cols, st);
    }
  }
  return st;
}

std::string title_case(const std::string& s) {
  std::string r;
  bool start = true;
  for (char ch : s) {
    if (ch == '-' || ch == '_') {
      r += ' ';
      start = true;
      continue;
    }
    r += start ? char(std::toupper(static_cast<unsigned char>(ch))) : ch;
    start = false;
  }
  return r;
}

std::string size_label(uint64_t params) {
  const char* unit = "K";
  double v = double(params) / 1e3;
  if (params >= 1000000000ull) unit = "B", v = double(params) / 1e9;
  else if (params >= 1000000ull) unit = "M", v = double(params) / 1e6;
  return v < 10 ? fmt::format("{:.1f}{}", v, unit) : fmt::format("{:.0f}{}", v, unit);
}

// general.architecture; Mistral is written as llama.cpp's converter writes it: llama.
std::string gguf_arch(const ModelConfig& c) {
  return c.arch == Arch::Qwen2 ? "qwen2" : c.arch == Arch::Qwen3 ? "qwen3" : "llama";
}

// The type name of a ggml id as llama.cpp's tools print it ("q4_K"), also for ids lmq lacks.
std::string type_name(uint32_t id) {
  const std::optional<Format> f = format_by_gguf_type(id);
  return f ? std::string(ggml_name(*f)) : ggml_type_label(id);
}

// The Format lmq writes for ggml type `id`, if it writes one.
std::optional<Format> writable(uint32_t id) {
  const std::optional<Format> f = format_by_gguf_type(id);
  if (f && format_traits(*f).ggml && (!is_quantized(*f) || format_traits(*f).quantize_row)) return f;
  return std::nullopt;
}

// The stored type of a tensor whose rules (after the fallback) gave `type`; `flag` and `g`
// name who asked, for the refusal.
Format stored_format(uint32_t type, const std::string& flag, const std::string& g) {
  if (const std::optional<Format> f = writable(type)) return *f;
  fail("{}: tensor {} needs {}, which lmq cannot write yet", flag, g, ggml_type_label(type));
}

const GgufTypeOverride* matching_override(const GgufExportOptions& o, const Tensor& t, const std::string& g) {
  for (const auto& ov : o.overrides)
    if (std::regex_search(g, ov.re) || std::regex_search(t.name, ov.re)) return &ov;
  return nullptr;
}

}  // namespace

std::map<std::string, GgufRecipeEntry> gguf_recipe(const Model& src, const GgufExportOptions& o) {
  const ModelConfig& c = src.config();
  RecipeHparams hp;
  hp.arch = gguf_arch(c);
  hp.n_layer = c.n_layers, hp.n_head = c.n_heads, hp.n_head_kv = c.n_kv_heads;
  std::vector<RecipeTensor> ts;
  for (const Tensor& t : src.tensors())
    ts.push_back({gguf_tensor_name(t.name), int(t.shape.size()), t.shape.empty() ? 1 : t.shape.back()});
  const std::vector<RecipeType> types = llama_recipe(o.scheme.ftype, o.scheme.pure, o.imatrix, hp, ts);
  std::map<std::string, GgufRecipeEntry> r;
  for (size_t i = 0; i < ts.size(); ++i) r[src.tensors()[i].name] = {ts[i].name, types[i]};
  return r;
}

QuantPlan plan_gguf_targets(const Model& src, const GgufExportOptions& o) {
  QuantPlan p;
  p.gguf = true;
  const std::map<std::string, GgufRecipeEntry> recipe = gguf_recipe(src, o);
  for (const Tensor& t : src.tensors()) {
    const GgufRecipeEntry& e = recipe.at(t.name);
    const GgufTypeOverride* ov = matching_override(o, t, e.gguf_name);
    std::string flag = fmt::format("--scheme {}", o.scheme.name);
    uint32_t chosen = e.type.chosen, type = e.type.type;
    if (ov && t.shape.size() >= 2) {
      flag = fmt::format("--override {}={}", ov->pattern, format_traits(ov->type).name);
      chosen = uint32_t(format_traits(ov->type).gguf_type);
      type = llama_fallback_type(chosen, t.cols());
    }
    TensorTarget target;
    target.format = stored_format(type, flag, e.gguf_name);
    if (type != chosen) target.note = fmt::format("fallback from {} (row of {})", type_name(chosen), t.cols());
    target.fixed = ov != nullptr;
    p.tensors[t.name].target = std::move(target);
  }
  return p;
}

namespace {
// A GGUF type lmq can write: floats, or a block format with a quantizer (not every i-quant).
bool writable(const FormatTraits& t) { return t.gguf_type >= 0 && (!t.quantized || t.quantize_row); }
}  // namespace

Format parse_ggml_type(const std::string& s) {
  const std::optional<Format> f = format_by_name(lower(s));
  if (f && writable(format_traits(*f))) return *f;
  std::string names;
  for (const FormatTraits& t : all_format_traits()) {
    if (!writable(t)) continue;
    if (!names.empty()) names += ' ';
    names += t.name;
  }
  fail("'{}' is not a ggml type lmq writes ({})", s, names);
}

GgufScheme parse_gguf_scheme(const std::string& s0) {
  const std::string s = lower(s0);
  GgufScheme r;
  r.name = s;
  r.pure = s.rfind("pure-", 0) == 0;
  const LlamaFtype* f = find_llama_ftype(r.pure ? s.substr(5) : s);
  const auto ternary = [](const LlamaFtype& x) { return x.default_type == ggml_type::TQ1_0 || x.default_type == ggml_type::TQ2_0; };
  if (f && ternary(*f)) fail("--scheme '{}': the ternary types of llama.cpp (tq1_0, tq2_0) are not supported", s0);
  if (!f) {
    std::string names;
    for (const LlamaFtype& x : llama_ftypes())
      if (!ternary(x)) names += fmt::format("{}{}", names.empty() ? "" : " ", x.name);
    fail("--scheme '{}' for GGUF: expected a llama-quantize file type ({}), or pure-NAME for llama-quantize "
         "--pure (its one block type for every 2-D weight)",
         s0, names);
  }
  r.ftype = *f;
  return r;
}

GgufTypeOverride parse_gguf_override(const std::string& s) {
  const size_t eq = s.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size()) fail("--override '{}': expected REGEX=TYPE", s);
  GgufTypeOverride o;
  o.pattern = s.substr(0, eq);
  o.re = override_regex(o.pattern, s);
  try {
    o.type = parse_ggml_type(s.substr(eq + 1));
  } catch (const Error& e) {
    fail("--override '{}': {}", s, e.what());
  }
  return o;
}

std::string gguf_tensor_name(const std::string& hf) {
  if (std::optional<std::string> g = gguf_name_of_hf(hf)) return *g;
  fail("tensor '{}' has no GGUF name lmq knows", hf);
}

namespace {

// SentencePiece → llama.cpp's "llama" vocabulary.
void write_spm_vocab(GgufWriter& w, const Tokenizer& tok, const ModelConfig& c, const std::string& path) {
  const int n_sp = tok.vocab_size();
  if (n_sp > c.vocab) fail("{}: the tokenizer has {} pieces, the embedding only {} rows", path, n_sp, c.vocab);
  std::vector<GgufValue> tokens, scores, types;
  int unk = -1;
  for (int i = 0; i < c.vocab; ++i) {
    if (i < n_sp) {
      tokens.push_back(GgufValue::str(tok.piece(i)));
      scores.push_back(GgufValue::f32(tok.score(i)));
      const int t = tok.token_type(i);
      if (t == 2 && unk < 0) unk = i;
      types.push_back(GgufValue::i32(t));
    } else {  // as convert_hf_to_gguf.py pads a vocabulary smaller than the embedding
      tokens.push_back(GgufValue::str(fmt::format("[PAD{}]", i)));
      scores.push_back(GgufValue::f32(-1000.f));
      types.push_back(GgufValue::i32(4));
    }
  }
  w.set("tokenizer.ggml.model", GgufValue::str("llama"));
  w.set("tokenizer.ggml.pre", GgufValue::str("default"));
  w.set("tokenizer.ggml.tokens", GgufValue::array(GgufType::STRING, std::move(tokens)));
  w.set("tokenizer.ggml.scores", GgufValue::array(GgufType::FLOAT32, std::move(scores)));
  w.set("tokenizer.ggml.token_type", GgufValue::array(GgufType::INT32, std::move(types)));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(uint32_t(c.bos_id)));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(uint32_t(c.eos_id)));
  if (unk >= 0) w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(uint32_t(unk)));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(c.add_bos));
  w.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(false));
}

// RoPE scaling the way llama.cpp's converter stores it: linear and YaRN as keys, Llama-3's as the
// rope_freqs tensor (returned, to be written first as the converter does; empty otherwise).
std::vector<float> write_rope_scaling(GgufWriter& w, const std::string& a, const ModelConfig& c, const std::string& path) {
  const RopeParams& r = c.rope;
  if (!c.rope_freq_factors.empty()) return c.rope_freq_factors;  // read from a GGUF: kept as they are
  switch (r.type) {
    case RopeType::Default: return {};
    case RopeType::Llama3: return llamacpp_rope_freqs(r, c.head_dim);
    case RopeType::Linear:
      w.set(a + "rope.scaling.type", GgufValue::str("linear"));
      w.set(a + "rope.scaling.factor", GgufValue::f32(float(r.factor)));
      return {};
    case RopeType::Yarn:
      w.set(a + "rope.scaling.type", GgufValue::str("yarn"));
      w.set(a + "rope.scaling.factor", GgufValue::f32(float(r.factor)));
      w.set(a + "rope.scaling.original_context_length", GgufValue::u32(uint32_t(r.original_max_position_embeddings)));
      if (r.attention_factor) w.set(a + "rope.scaling.yarn_attn_factor", GgufValue::f32(float(*r.attention_factor)));
      w.set(a + "rope.scaling.yarn_beta_fast", GgufValue::f32(float(r.beta_fast)));
      w.set(a + "rope.scaling.yarn_beta_slow", GgufValue::f32(float(r.beta_slow)));
      // llama.cpp has no yarn mscale/mscale_all_dim keys for these architectures, nor truncate.
      if (r.mscale || r.mscale_all_dim || !r.truncate)
        fail("{}: YaRN with mscale, mscale_all_dim or truncate=false cannot be written for llama.cpp", path);
      return {};
    case RopeType::Dynamic: break;
  }
  fail("{}: RoPE type {} has no GGUF form llama.cpp reads", path, rope_type_name(r.type));
}

}  // namespace

GgufExportReport export_gguf(const Model& src, const std::string& out, const GgufExportOptions& o,
                             const GgufProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& c = src.config();
  const std::string arch = gguf_arch(c);
  const Tokenizer& tok = src.tokenizer();

  GgufWriter w(out);
  // ---- metadata
  std::string dir_name = fs::path(src.path()).filename().string();
  if (dir_name.empty()) dir_name = fs::path(src.path()).parent_path().filename().string();
  if (fs::path(dir_name).has_extension() && !fs::is_directory(src.path())) dir_name = fs::path(dir_name).stem().string();
  const std::string label = size_label(src.param_count());
  std::string basename = dir_name;
  if (const size_t dash = basename.rfind('-'); dash != std::string::npos && lower(basename.substr(dash + 1)) == lower(label))
    basename = basename.substr(0, dash);
  w.set("general.architecture", GgufValue::str(arch));
  w.set("general.type", GgufValue::str("model"));
  w.set("general.name", GgufValue::str(o.name.empty() ? title_case(dir_name) : o.name));
  w.set("general.basename", GgufValue::str(basename));
  w.set("general.size_label", GgufValue::str(label));
  const std::string a = arch + ".";
  w.set(a + "block_count", GgufValue::u32(uint32_t(c.n_layers)));
  w.set(a + "context_length", GgufValue::u32(uint32_t(c.max_pos)));
  w.set(a + "embedding_length", GgufValue::u32(uint32_t(c.hidden)));
  w.set(a + "feed_forward_length", GgufValue::u32(uint32_t(c.ffn)));
  w.set(a + "attention.head_count", GgufValue::u32(uint32_t(c.n_heads)));
  w.set(a + "attention.head_count_kv", GgufValue::u32(uint32_t(c.n_kv_heads)));
  w.set(a + "rope.freq_base", GgufValue::f32(float(c.rope.theta)));
  w.set(a + "attention.layer_norm_rms_epsilon", GgufValue::f32(c.norm_eps));
  w.set(a + "attention.key_length", GgufValue::u32(uint32_t(c.head_dim)));
  w.set(a + "attention.value_length", GgufValue::u32(uint32_t(c.head_dim)));
  w.set(a + "vocab_size", GgufValue::u32(uint32_t(c.vocab)));
  w.set(a + "rope.dimension_count", GgufValue::u32(uint32_t(c.rope.rotary_dim(c.head_dim))));
  const std::vector<float> rope_freqs = write_rope_scaling(w, a, c, src.path());
  GgufExportReport rep;

  if (const BpeTokenizer* bpe = tok.bpe()) {
    GgufBpeVocab v = gguf_bpe_vocab(*bpe, c.vocab, c.bos_id, c.eos_id);
    if (!v.warning.empty()) rep.warnings.push_back(src.path() + ": " + v.warning);
    for (auto& [k, val] : v.metadata) w.set(k, std::move(val));
  } else {
    write_spm_vocab(w, tok, c, src.path());
  }
  w.set("general.quantization_version", GgufValue::u32(2));
  w.set("general.file_type", GgufValue::u32(o.scheme.ftype.ftype));

  // ---- plan: every tensor's GGUF name, type and size before any data is written
  struct Item {
    const Tensor* t;
    std::string name, note;
    Format type;
    int permute_heads = 0;  // > 0: llama Q/K rows to permute with this many heads
  };
  std::vector<Item> plan;
  std::optional<QuantPlan> own;
  if (!rope_freqs.empty()) w.plan_tensor("rope_freqs.weight", {int64_t(rope_freqs.size())}, Format::F32);
  const bool permute = (c.arch == Arch::Llama || c.arch == Arch::Mistral) && !c.rope_interleaved;
  for (const Tensor& t : src.tensors()) {
    Item it{&t, gguf_tensor_name(t.name), "", Format::F32};
    const TensorTarget* target = o.plan ? o.plan->target(t.name) : nullptr;
    if (!target) {  // no plan (or none for this tensor): the options' own, computed once
      if (!own) own = plan_gguf_targets(src, o);
      target = own->target(t.name);
    }
    it.type = target->format, it.note = target->note;
    if (!it.note.empty()) ++rep.n_fallback;
    if (permute) {
      if (t.name.find("self_attn.q_proj.") != std::string::npos) it.permute_heads = c.n_heads;
      if (t.name.find("self_attn.k_proj.") != std::string::npos) it.permute_heads = c.n_kv_heads;
    }
    w.plan_tensor(it.name, t.shape, it.type);
    plan.push_back(std::move(it));
  }

  // ---- stream: one tensor's bytes quantized while the previous one's are written (a second
  // thread), so the cores never wait for the file; the tensor's rows are converted to float
  // inside the parallel loop (only 1-D tensors and calibrated values are held as floats)
  if (!rope_freqs.empty())
    w.write_tensor("rope_freqs.weight", reinterpret_cast<const uint8_t*>(rope_freqs.data()), rope_freqs.size() * 4);
  std::vector<float> f;
  std::vector<uint8_t> bytes, writing;
  std::future<void> write_done;
  quant::QuantStats total;
  for (size_t i = 0; i < plan.size(); ++i) {
    const Item& it = plan[i];
    const Tensor& t = *it.t;
    if (progress) progress(i, plan.size(), it.name);
    const bool is_2d = t.shape.size() >= 2;
    const int64_t rows = is_2d ? t.rows() : 1, cols = is_2d ? t.cols() : t.numel();
    const TensorPlan* tp = o.plan ? o.plan->find(t.name) : nullptr;
    RowSource rs{&t, nullptr, cols, is_2d ? (it.permute_heads ? rows / it.permute_heads : 0) : 0};
    if (it.permute_heads && is_2d && (rows % it.permute_heads != 0 || (rows / it.permute_heads) % 2 != 0))
      fail("cannot permute {} rows for {} heads", rows, it.permute_heads);
    if (tp && !tp->values.empty()) {
      if (int64_t(tp->values.size()) != t.numel())
        fail("float values of '{}': {} for {} parameters", t.name, tp->values.size(), t.numel());
      rs.values = tp->values.data();
    }
    if (!is_2d) {  // a norm or bias: small, converted (and a Q/K bias permuted) whole
      f = rs.values ? tp->values : std::vector<float>(size_t(t.numel()));
      if (!rs.values) dequantize_rows(t, 0, 1, f.data());
      if (it.permute_heads) permute_rows(reinterpret_cast<uint8_t*>(f.data()), cols, 4, it.permute_heads);
      rs.values = f.data();
    }
    const bool given = tp && !tp->bytes.empty() && is_2d;
    if (given) bytes = tp->bytes.read();
    if (given && it.permute_heads) permute_rows(bytes.data(), rows, size_t(ggml_row_bytes(it.type, cols)), it.permute_heads);
    const float* imp = nullptr;
    std::vector<float> ones;
    if (o.plan && o.plan->weighted && is_quantized(it.type) && is_2d) {
      if (tp && !tp->importance.empty()) {
        if (int64_t(tp->importance.size()) != cols)
          fail("importance of '{}': {} values for {} columns", t.name, tp->importance.size(), cols);
        imp = tp->importance.data();
      } else {
        ones.assign(size_t(cols), 1.f);
        imp = ones.data();
      }
    }
    quant::QuantStats st;
    try {
      st = encode(it.type, rs, rows, imp, given, bytes);
    } catch (const Error& e) {
      fail("{}: tensor '{}': {}", src.path(), t.name, e.what());
    }
    if (write_done.valid()) write_done.get();  // rethrows a failed write
    std::swap(bytes, writing);
    write_done = std::async(std::launch::async, [&w, &writing, name = it.name] {
      w.write_tensor(name, writing.data(), writing.size());
    });
    GgufTensorReport tr;
    tr.name = it.name;
    tr.hf_name = t.name;
    tr.type = ggml_name(it.type);
    tr.note = it.note;
    if (t.format == Format::LMQ_INT && is_quantized(it.type)) {
      const bool carried = given && tp->carried;
      tr.path = carried ? "carried" : "requantized";
      ++(carried ? rep.n_carried : rep.n_requantized);
    }
    tr.shape = t.shape;
    tr.params = uint64_t(t.numel());
    tr.bytes = writing.size();
    tr.rel_rms = st.finish().rel_rms;
    rep.params += tr.params;
    rep.tensor_bytes += tr.bytes;
    total.merge(st);
    rep.tensors.push_back(std::move(tr));
  }
  if (write_done.valid()) write_done.get();
  if (progress) progress(plan.size(), plan.size(), "");
  w.finish();
  rep.file_bytes = fs::file_size(out);
  rep.bpw = rep.params ? 8.0 * double(rep.tensor_bytes) / double(rep.params) : 0;
  rep.rel_rms = total.finish().rel_rms;
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace lmq
