#include "lmq/quant/hf_export.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "lmq/codecs/hf_packing.h"
#include "lmq/codecs/int_format.h"
#include "lmq/error.h"
#include "lmq/formats/atomic_dir.h"
#include "lmq/formats/atomic_file.h"
#include "lmq/half.h"

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace lmq {

bool is_hf_format(const std::string& s) { return s == "gptq" || s == "awq" || s == "compressed-tensors"; }

HfFormat parse_hf_format(const std::string& s) {
  if (s == "gptq") return HfFormat::Gptq;
  if (s == "awq") return HfFormat::Awq;
  if (s == "compressed-tensors") return HfFormat::CompressedTensors;
  fail("--format '{}': expected lmq, gguf, gptq, awq or compressed-tensors", s);
}

const char* hf_format_name(HfFormat f) {
  switch (f) {
    case HfFormat::Gptq: return "gptq";
    case HfFormat::Awq: return "awq";
    case HfFormat::CompressedTensors: break;
  }
  return "compressed-tensors";
}

bool is_block_linear(const std::string& name) {
  static const std::regex re(R"(^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$)");
  return std::regex_search(name, re);
}

namespace {

// The source's float dtype: that of its first 2-D float tensor (bf16 or fp16 checkpoints).
quant::Scheme float_scheme(const Model& src) {
  quant::Scheme s;
  s.kind = quant::Scheme::F32;
  for (const Tensor& t : src.tensors()) {
    if (t.shape.size() != 2) continue;
    if (t.format == Format::BF16) s.kind = quant::Scheme::BF16;
    if (t.format == Format::F16) s.kind = quant::Scheme::F16;
    if (t.format == Format::BF16 || t.format == Format::F16 || t.format == Format::F32) break;
  }
  return s;
}

bool marlin_group(int32_t g) { return g == -1 || g == 32 || g == 64 || g == 128; }

std::string scheme_of(const TensorTarget& t) { return t.scheme.to_string(); }
std::string scheme_str(const IntParams& p) {
  quant::Scheme s;
  s.p = p;
  return s.to_string();
}

// What each format holds, as the error's second half.
const char* holds(HfFormat f, bool w8a8) {
  switch (f) {
    case HfFormat::Gptq:
      return "gptq holds 2, 3, 4 or 8 bits, per channel or in groups gN (N dividing the inputs), f16 scales";
    case HfFormat::Awq:
      return "awq holds 4 bits in groups gN (N dividing the inputs), f16 scales, outputs a multiple of 8";
    case HfFormat::CompressedTensors: break;
  }
  return w8a8 ? "compressed-tensors int-quantized holds int8:channel:sym weights with --activations int8:dynamic"
              : "compressed-tensors pack-quantized holds 4 or 8 bits, per channel or in groups gN (N dividing the "
                "inputs)";
}

// One quantized linear's scheme and shape against the format.
void check_linear(const Tensor& t, const IntParams& p, const HfExportOptions& o) {
  const int64_t out = t.rows(), in = t.cols();
  const std::string what = fmt::format("--format {}: tensor '{}'", hf_format_name(o.format), t.name);
  const auto refuse = [&](const std::string& why) { fail("{}: {}; {}", what, why, holds(o.format, o.w8a8)); };
  if (p.group == 0) refuse("one scale per tensor");
  if (p.group > 0 && in % p.group != 0) refuse(fmt::format("group size {} does not divide its {} inputs", p.group, in));
  switch (o.format) {
    case HfFormat::Gptq:
      if (!hf::gptq_bits_allowed(p.bits)) refuse(fmt::format("{} bits", p.bits));
      if (p.scale_type != ScaleType::F16) refuse("scales not f16");
      hf::gptq_shapes(out, in, p.bits, p.group > 0 ? in / p.group : 1, what);
      break;
    case HfFormat::Awq:
      if (p.bits != 4) refuse(fmt::format("{} bits", p.bits));
      if (p.group < 0) refuse("per-channel scales");
      if (p.scale_type != ScaleType::F16) refuse("scales not f16");
      hf::awq_check(out, p.bits, what);
      break;
    case HfFormat::CompressedTensors:
      if (o.w8a8 && (p.bits != 8 || p.group != -1 || p.asym)) refuse(scheme_str(p) + " weights");
      if (!o.w8a8 && p.bits != 4 && p.bits != 8) refuse(fmt::format("{} bits", p.bits));
      break;
  }
}

// The vLLM fast path a legal checkpoint misses, or "".
std::string marlin_warning(const IntParams& p, const HfExportOptions& o) {
  if (o.w8a8) return "";
  const std::string where = fmt::format("--format {}", hf_format_name(o.format));
  if (!marlin_group(p.group))
    return fmt::format("{}: group size {} misses vLLM's Marlin kernels (groups -1, 32, 64, 128); vLLM falls back to "
                       "slower kernels or refuses it",
                       where, p.group);
  if (o.format == HfFormat::Gptq && p.asym)
    return where +
           ": asymmetric weights are written as checkpoint_format gptq_v2, which vLLM's Marlin kernels "
           "(symmetric 4/8-bit GPTQ) do not take; GPTQModel loads it";
  if (o.format == HfFormat::Gptq && p.bits != 4 && p.bits != 8)
    return fmt::format("{}: {}-bit misses vLLM's Marlin kernels (symmetric 4/8-bit)", where, p.bits);
  return "";
}

}  // namespace

QuantPlan plan_hf_targets(const Model& src, const HfExportOptions& o) {
  QuantPlan p;
  const TensorTarget keep = lmq_target(float_scheme(src));
  for (const Tensor& t : src.tensors()) {
    TensorTarget& target = *(p.tensors[t.name].target = keep);
    const bool linear = is_block_linear(t.name);
    if (linear) target = lmq_target(o.q.scheme);
    for (const auto& ov : o.q.overrides) {
      if (!std::regex_search(t.name, ov.re)) continue;
      // the formats quantize the decoder linears only; the rest may change float dtype, and
      // the biases and norms of a linear an integer override names stay as they are
      if (!linear && ov.scheme.kind == quant::Scheme::Int && t.shape.size() < 2) break;
      if (!linear && ov.scheme.kind == quant::Scheme::Int)
        fail("--override '{}={}': --format {} quantizes only the decoder blocks' linears; '{}' can be f32, f16 or bf16",
             ov.pattern, ov.scheme.to_string(), hf_format_name(o.format), t.name);
      target = lmq_target(ov.scheme);
      target.fixed = true;
      break;
    }
  }
  return p;
}

std::vector<std::string> check_hf_targets(const Model& src, const QuantPlan& plan, const HfExportOptions& o) {
  const std::string fmt_flag = fmt::format("--format {}", hf_format_name(o.format));
  const Tensor* first = nullptr;
  const TensorTarget* first_target = nullptr;
  for (const Tensor& t : src.tensors()) {
    if (!is_block_linear(t.name)) continue;
    const TensorTarget* target = plan.target(t.name);
    LMQ_CHECK(target, "no target for '{}'", t.name);
    if (target->scheme.kind != quant::Scheme::Int)
      fail("{}: tensor '{}' is planned as {}; the format holds every decoder linear quantized", fmt_flag, t.name,
           scheme_of(*target));
    if (!first) {
      first = &t, first_target = target;
      check_linear(t, target->scheme.p, o);
    } else if (!(target->scheme.p == first_target->scheme.p)) {
      // the config holds one scheme; vLLM fuses q/k/v and gate/up, which must agree in any case
      fail("{}: tensor '{}' is planned as {} but '{}' as {}; the checkpoint holds one bit width and group size for "
           "every decoder linear (vLLM fuses q/k/v and gate/up)",
           fmt_flag, t.name, scheme_of(*target), first->name, scheme_of(*first_target));
    }
    if (first != &t) check_linear(t, target->scheme.p, o);
  }
  if (!first) fail("{}: {}: the model has no decoder linear layers to quantize", fmt_flag, src.path());
  std::vector<std::string> warnings;
  if (std::string w = marlin_warning(first_target->scheme.p, o); !w.empty()) warnings.push_back(w);
  return warnings;
}

namespace {

// One quantized linear in lmq's unpacked view (codecs/hf_packing.h): codes [out, in], scales
// and zero points [out, groups].
struct Linear {
  IntParams p;
  int64_t out = 0, in = 0, groups = 1;
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  std::vector<int32_t> zeros;
};

Linear unpack_lmq(const LmqTensorSpec& spec, const std::vector<uint8_t>& bytes) {
  Linear l;
  l.p = spec.q;
  l.out = spec.shape[0], l.in = spec.shape[1];
  const quant::IntView v = quant::int_view(l.p, bytes.data(), l.out, l.in);
  l.groups = v.layout.groups_per_row;
  l.codes.resize(size_t(l.out * l.in));
  l.scales.resize(size_t(l.out * l.groups));
  l.zeros.resize(l.scales.size());
  for (int64_t r = 0; r < l.out; ++r) {
    quant::unpack_bits(v.codes + r * v.layout.row_code_bytes, l.in, l.p.bits, l.codes.data() + r * l.in);
    quant::int_row_params(v, r, l.scales.data() + r * l.groups, l.zeros.data() + r * l.groups);
  }
  return l;
}

StDType scale_dtype(ScaleType s) {
  return s == ScaleType::F16 ? StDType::F16 : s == ScaleType::BF16 ? StDType::BF16 : StDType::F32;
}

// Scales in their stored type (exact: they were rounded to it when chosen).
std::vector<uint8_t> scale_bytes(const std::vector<float>& s, StDType d) {
  std::vector<uint8_t> b(s.size() * st_dtype_size(d));
  for (size_t i = 0; i < s.size(); ++i) {
    if (d == StDType::F32) {
      std::memcpy(b.data() + 4 * i, &s[i], 4);
    } else {
      const uint16_t h = d == StDType::F16 ? f32_to_f16(s[i]) : f32_to_bf16(s[i]);
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
  }
  return b;
}

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

struct Part {
  StTensorSpec spec;
  std::vector<uint8_t> bytes;  // empty while planning
};

// The parts one quantized linear becomes, in the order they are written. With `l` null only
// the specs (shapes known from the plan); else the bytes too.
std::vector<Part> linear_parts(const LmqTensorSpec& spec, const Linear* l, const HfExportOptions& o) {
  const std::string base = spec.name.substr(0, spec.name.size() - std::string(".weight").size());
  const IntParams& p = spec.q;
  const int64_t out = spec.shape[0], in = spec.shape[1], groups = p.group > 0 ? in / p.group : 1;
  const int b = p.bits;
  std::vector<Part> parts;
  const auto add = [&](const std::string& suffix, StDType d, std::vector<int64_t> shape, auto&& make) {
    Part part{{base + "." + suffix, d, std::move(shape)}, {}};
    if (l) part.bytes = make();
    parts.push_back(std::move(part));
  };
  const auto scales_t = [&](StDType d) { return [&, d] { return scale_bytes(hf::transpose(l->scales.data(), out, groups), d); }; };
  const auto g_idx = [&] { return as_bytes(hf::sequential_g_idx(in, p.group)); };
  switch (o.format) {
    case HfFormat::Gptq: {
      const hf::GptqShapes s = hf::gptq_shapes(out, in, b, groups, spec.name);
      const hf::GptqVersion v = p.asym ? hf::GptqVersion::V2 : hf::GptqVersion::V1;
      add("qweight", StDType::I32, {s.qweight[0], s.qweight[1]},
          [&] { return as_bytes(hf::gptq_pack_qweight(l->codes.data(), out, in, b)); });
      add("qzeros", StDType::I32, {s.qzeros[0], s.qzeros[1]},
          [&] { return as_bytes(hf::gptq_pack_qzeros(l->zeros.data(), out, groups, b, v, spec.name)); });
      add("scales", StDType::F16, {groups, out}, scales_t(StDType::F16));
      add("g_idx", StDType::I32, {in}, g_idx);
      break;
    }
    case HfFormat::Awq:
      add("qweight", StDType::I32, {in, out / 8}, [&] { return as_bytes(hf::awq_pack_qweight(l->codes.data(), out, in)); });
      add("qzeros", StDType::I32, {groups, out / 8},
          [&] { return as_bytes(hf::awq_pack_qzeros(l->zeros.data(), out, groups)); });
      add("scales", StDType::F16, {groups, out}, scales_t(StDType::F16));
      break;
    case HfFormat::CompressedTensors:
      if (o.w8a8) {
        add("weight", StDType::I8, {out, in}, [&] {
          std::vector<int8_t> q(l->codes.size());
          hf::ct_codes_to_int8(l->codes.data(), int64_t(q.size()), q.data());
          return as_bytes(q);
        });
        add("weight_scale", scale_dtype(p.scale_type), {out, 1},
            [&] { return scale_bytes(l->scales, scale_dtype(p.scale_type)); });
        break;
      }
      add("weight_packed", StDType::I32, {out, hf::ct_weight_words(in, b)},
          [&] { return as_bytes(hf::ct_pack_weight(l->codes.data(), out, in, b)); });
      add("weight_scale", scale_dtype(p.scale_type), {out, groups},
          [&] { return scale_bytes(l->scales, scale_dtype(p.scale_type)); });
      if (p.asym)
        add("weight_zero_point", StDType::I32, {hf::run_words(out, b), groups},
            [&] { return as_bytes(hf::ct_pack_zero_point(l->zeros.data(), out, groups, b)); });
      add("weight_shape", StDType::I64, {2}, [&] { return as_bytes(std::vector<int64_t>{out, in}); });
      if (o.act_order) add("weight_g_idx", StDType::I32, {in}, g_idx);
      break;
  }
  return parts;
}

StDType float_dtype(Format f) {
  switch (f) {
    case Format::F16: return StDType::F16;
    case Format::BF16: return StDType::BF16;
    case Format::I32: return StDType::I32;
    default: return StDType::F32;
  }
}

// The parts one tensor of the plan becomes (its bytes when given).
std::vector<Part> tensor_parts(const LmqTensorSpec& spec, std::vector<uint8_t>* bytes, const HfExportOptions& o) {
  if (spec.format != Format::LMQ_INT) {
    Part part{{spec.name, float_dtype(spec.format), spec.shape}, {}};
    if (bytes) part.bytes = std::move(*bytes);
    return {std::move(part)};
  }
  if (!bytes) return linear_parts(spec, nullptr, o);
  const Linear l = unpack_lmq(spec, *bytes);
  return linear_parts(spec, &l, o);
}

}  // namespace

namespace {

ojson gptq_config(const IntParams& p, const HfExportOptions& o) {
  ojson q;
  q["bits"] = p.bits;
  q["group_size"] = p.group;  // -1: per channel
  q["desc_act"] = o.act_order;
  q["sym"] = !p.asym;
  q["lm_head"] = false;
  q["quant_method"] = "gptq";
  q["checkpoint_format"] = p.asym ? "gptq_v2" : "gptq";
  // lmq's act-order keeps each group's columns contiguous in the original order (g_idx = i / G)
  q["static_groups"] = o.act_order;
  q["true_sequential"] = false;  // a block's linears see its float inputs; blocks are sequential
  q["damp_percent"] = o.damp;
  q["meta"] = {{"quantizer", {"lmq"}}, {"lmq_method", o.method}};
  return q;
}

ojson awq_config(const IntParams& p) {
  return {{"quant_method", "awq"}, {"bits", p.bits}, {"group_size", p.group},
          {"zero_point", true},    {"version", "gemm"}, {"modules_to_not_convert", nullptr}};
}

ojson ct_args(int bits, bool sym, const char* strategy, int32_t group, bool dynamic, ojson actorder) {
  return {{"num_bits", bits},
          {"type", "int"},
          {"symmetric", sym},
          {"group_size", group > 0 ? ojson(group) : ojson(nullptr)},
          {"strategy", strategy},
          {"block_structure", nullptr},
          {"dynamic", dynamic},
          {"actorder", std::move(actorder)},
          {"observer", dynamic ? ojson(nullptr) : ojson("minmax")},
          {"observer_kwargs", ojson::object()}};
}

ojson ct_config(const IntParams& p, const HfExportOptions& o) {
  ojson group;
  group["targets"] = {"Linear"};
  // act-order: "group" with weight_g_idx written (here i / G, lmq's static groups)
  group["weights"] = ct_args(p.bits, !p.asym, p.group > 0 ? "group" : "channel", p.group, false,
                             o.act_order ? ojson("group") : ojson(nullptr));
  group["input_activations"] = o.w8a8 ? ct_args(8, true, "token", -1, true, nullptr) : ojson(nullptr);
  group["output_activations"] = nullptr;
  ojson q;
  q["config_groups"] = {{"group_0", group}};
  q["format"] = o.w8a8 ? "int-quantized" : "pack-quantized";
  q["global_compression_ratio"] = nullptr;
  q["ignore"] = {"lm_head"};
  q["kv_cache_scheme"] = nullptr;
  q["quant_method"] = "compressed-tensors";
  q["quantization_status"] = "compressed";
  q["sparsity_config"] = ojson::object();
  return q;
}

ojson quantization_config(const IntParams& p, const HfExportOptions& o) {
  switch (o.format) {
    case HfFormat::Gptq: return gptq_config(p, o);
    case HfFormat::Awq: return awq_config(p);
    case HfFormat::CompressedTensors: break;
  }
  return ct_config(p, o);
}

std::string detail(const IntParams& p, const HfExportOptions& o) {
  switch (o.format) {
    case HfFormat::Gptq: return fmt::format("gptq (checkpoint_format {})", p.asym ? "gptq_v2" : "gptq");
    case HfFormat::Awq: return "awq (version gemm)";
    case HfFormat::CompressedTensors: break;
  }
  return o.w8a8 ? "compressed-tensors int-quantized" : "compressed-tensors pack-quantized";
}

void write_text(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

// A copy with the mode of every file lmq writes (the source's may be read-only).
void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) fail("{}: cannot read", from);
  write_text(to, std::string(std::istreambuf_iterator<char>(in), {}));
}

ojson read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot read", path);
  try {
    return ojson::parse(in);
  } catch (const std::exception& e) {
    fail("{}: bad JSON: {}", path, e.what());
  }
}

// config.json (the source's with quantization_config), generation_config.json and the
// tokenizer files, into dir.
void write_side_files(const Model& src, const std::string& from, const std::string& dir, const ojson& qc) {
  ojson config = read_json(from + "/config.json");
  config["quantization_config"] = qc;
  // the model written may differ from the source's config here: a rotation unties (quant/rotate.h)
  config["tie_word_embeddings"] = src.config().tied_embeddings;
  write_text(dir + "/config.json", config.dump(2) + "\n");
  if (fs::exists(from + "/generation_config.json"))
    copy_file(from + "/generation_config.json", dir + "/generation_config.json");
  else
    write_text(dir + "/generation_config.json",
               ojson{{"bos_token_id", src.config().bos_id}, {"eos_token_id", src.config().eos_id}}.dump(2) + "\n");
  for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json"})
    if (fs::exists(from + "/" + f)) copy_file(from + "/" + f, dir + "/" + f);
}

}  // namespace

HfExportReport export_hf(const Model& src, const std::string& out, const HfExportOptions& o,
                         const TensorProgress& progress) {
  if (!fs::is_directory(o.source_dir) || !fs::exists(o.source_dir + "/config.json"))
    fail("{}: --format {} needs a Hugging Face model directory as the source (its config.json and tokenizer files "
         "are carried over)",
         o.source_dir, hf_format_name(o.format));
  LMQ_CHECK(o.q.plan, "export_hf needs the plan");
  HfExportReport r;
  r.warnings = check_hf_targets(src, *o.q.plan, o);
  const std::vector<LmqTensorSpec> specs = plan_specs(src, o.q);
  IntParams p{};
  std::vector<StTensorSpec> st;
  for (const LmqTensorSpec& spec : specs) {
    if (spec.format == Format::LMQ_INT) p = spec.q;
    for (Part& part : tensor_parts(spec, nullptr, o)) st.push_back(std::move(part.spec));
  }
  AtomicDir dir(out);
  SafetensorsWriter writer(dir.path(), st, o.shard_bytes);
  r.q = quantize_stream(src, o.q, progress, [&](const LmqTensorSpec& spec, std::vector<uint8_t>& bytes) {
    for (const Part& part : tensor_parts(spec, &bytes, o)) writer.write(part.spec.name, part.bytes.data(), part.bytes.size());
  });
  writer.commit();
  write_side_files(src, o.source_dir, dir.path(), quantization_config(p, o));
  r.files = writer.files();
  for (const auto& e : fs::directory_iterator(dir.path()))
    if (e.is_regular_file()) r.dir_bytes += e.file_size();
  dir.commit();
  r.detail = detail(p, o);
  return r;
}

}  // namespace lmq
