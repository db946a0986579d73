#include "lmq/quant/quantize_model.h"

#include <cctype>

#include <algorithm>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "lmq/error.h"
#include "lmq/formats/lmq_file.h"
#include "lmq/half.h"
#include "lmq/quant/int_quantize.h"

namespace lmq {

std::regex override_regex(const std::string& pattern, const std::string& arg) {
  // Numbers the regex compiler reads: counts of {n}, {n,m} and back-references \n. Escapes are
  // not tracked (\c eats the next character, so backslash parity is not enough): any number
  // after '{', ',' or '\' counts. std::regex copies a repeated expression once per count, so
  // nested or stacked counts (x{7}{7}{7}…) multiply its size and compile time: the product of
  // all counts is bounded too (fuzzing found 175 bytes that took minutes). That refuses nothing
  // a tensor name pattern needs.
  if (pattern.size() > 1024) fail("--override '{}': the regex is longer than 1024 characters", arg);
  uint64_t product = 1;
  for (size_t i = 1; i < pattern.size(); ++i) {
    const char prev = pattern[i - 1];
    if (!std::isdigit(uint8_t(pattern[i])) || (prev != '{' && prev != ',' && prev != '\\')) continue;
    uint64_t n = 0;
    for (; i < pattern.size() && std::isdigit(uint8_t(pattern[i])); ++i) {
      n = n * 10 + uint64_t(pattern[i] - '0');  // at most 1000 · 10 + 9: no overflow
      if (n > 1000) fail("--override '{}': repetition count or back-reference over 1000 in the regex", arg);
    }
    if (prev != '\\') product *= std::max<uint64_t>(n, 1);  // <= 4096 · 1000 before the check
    if (product > 4096) fail("--override '{}': the regex's repetition counts multiply to over 4096", arg);
  }
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail("--override '{}': bad regular expression: {}", arg, e.what());
  }
}

SchemeOverride parse_override(const std::string& s) {
  const size_t eq = s.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
    fail("--override '{}': expected REGEX=SCHEME", s);
  SchemeOverride o;
  o.pattern = s.substr(0, eq);
  o.re = override_regex(o.pattern, s);
  try {
    o.scheme = quant::parse_scheme(s.substr(eq + 1));
  } catch (const Error& e) {
    fail("--override '{}': {}", s, e.what());  // name the flag, as for every bad option
  }
  return o;
}

quant::Scheme resolve_scheme(const Tensor& t, const QuantizeOptions& o) {
  for (const auto& ov : o.overrides)
    if (std::regex_search(t.name, ov.re)) return ov.scheme;
  quant::Scheme f32;
  f32.kind = quant::Scheme::F32;
  // Norms and biases are tiny and sensitive: they stay wide.
  if (t.shape.size() < 2) return f32;
  // Embeddings and lm_head feed every token; below 8 bits they get int8 per channel.
  const bool edge = t.name == "model.embed_tokens.weight" || t.name == "lm_head.weight";
  if (edge && o.scheme.kind == quant::Scheme::Int && o.scheme.p.bits < 8) {
    quant::Scheme s8;
    s8.kind = quant::Scheme::Int;
    s8.p.bits = 8;
    s8.p.group = -1;
    return s8;
  }
  return o.scheme;
}

Format storage_format(const quant::Scheme& s) {
  switch (s.kind) {
    case quant::Scheme::Int: return Format::LMQ_INT;
    case quant::Scheme::F16: return Format::F16;
    case quant::Scheme::BF16: return Format::BF16;
    case quant::Scheme::F32: break;
  }
  return Format::F32;
}

TensorTarget lmq_target(const quant::Scheme& s) {
  TensorTarget t;
  t.format = storage_format(s);
  t.scheme = s;
  return t;
}

QuantPlan plan_targets(const Model& src, const QuantizeOptions& o) {
  QuantPlan p;
  for (const Tensor& t : src.tensors()) {
    TensorTarget& target = *(p.tensors[t.name].target = lmq_target(resolve_scheme(t, o)));
    target.fixed = std::any_of(o.overrides.begin(), o.overrides.end(),
                               [&](const SchemeOverride& ov) { return std::regex_search(t.name, ov.re); });
  }
  return p;
}

void use_mse(QuantPlan& plan) {
  for (auto& [name, tp] : plan.tensors)
    if (tp.target && tp.target->scheme.kind == quant::Scheme::Int) tp.target->scheme.range = quant::RangeMethod::Mse;
}

void fold_values(const TensorPlan& tp, const Tensor& t, std::vector<float>& v) {
  const int64_t R = t.rows(), K = t.cols();
  if (!tp.col_scale.empty())
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < K; ++j) v[size_t(r * K + j)] *= tp.col_scale[size_t(j)];
  if (!tp.row_scale.empty())
    for (int64_t r = 0; r < R; ++r)
      for (int64_t j = 0; j < K; ++j) v[size_t(r * K + j)] *= tp.row_scale[size_t(r)];
}

namespace {

// Stores float values as F32/F16/BF16 (round to nearest even) and measures the error.
quant::QuantStats store_float(const std::vector<float>& w, Format f, std::vector<uint8_t>& out) {
  quant::QuantStats st;
  out.resize(w.size() * (f == Format::F32 ? 4 : 2));
  for (size_t i = 0; i < w.size(); ++i) {
    float back = w[i];
    if (f == Format::F32) {
      std::memcpy(out.data() + 4 * i, &w[i], 4);
    } else {
      const uint16_t h = f == Format::F16 ? f32_to_f16(w[i]) : f32_to_bf16(w[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
      back = f == Format::F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
    st.add(double(w[i]), back);
  }
  return st.finish();
}

}  // namespace

namespace {

struct Plan {
  std::vector<LmqTensorSpec> specs;
  std::vector<quant::Scheme> schemes;
};

// Every tensor's scheme, format and exact size, known before any quantization runs: the
// plan's target, or for a tensor the plan does not know (W8A8's input scales and biases) the
// options' scheme.
Plan plan_model(const Model& src, const QuantizeOptions& o) {
  Plan p;
  for (const Tensor& t : src.tensors()) {
    const TensorTarget* target = o.plan ? o.plan->target(t.name) : nullptr;
    const quant::Scheme s = target ? target->scheme : resolve_scheme(t, o);
    LmqTensorSpec spec;
    spec.name = t.name;
    spec.shape = t.shape;
    spec.format = t.format == Format::I32 ? Format::I32 : storage_format(s);
    spec.q = s.p;
    spec.scheme = t.format == Format::I32 ? "i32" : s.to_string();
    spec.nbytes = stored_bytes(spec.format, spec.q, spec.shape);
    p.specs.push_back(spec);
    p.schemes.push_back(s);
  }
  return p;
}

// Quantizes one tensor into `bytes` (spec.nbytes long); `w` is scratch for its float values.
quant::QuantStats quantize_one(const Model& src, const Tensor& t, const LmqTensorSpec& spec, const quant::Scheme& s,
                               const QuantizeOptions& o, std::vector<float>& w, std::vector<uint8_t>& bytes) {
  const TensorPlan* tp = o.plan ? o.plan->find(t.name) : nullptr;
  if (tp && !tp->bytes.empty()) {
    LMQ_CHECK(spec.format == Format::LMQ_INT && tp->bytes.size() == spec.nbytes,
              "prequantized tensor '{}' has {} bytes, the plan {} ({})", t.name, tp->bytes.size(), spec.nbytes,
              spec.scheme);
    bytes = tp->bytes.read();
    return tp->stats;
  }
  if (t.format == Format::I32) {  // integer values (W8A8 biases): stored exactly as given
    bytes.assign(t.data, t.data + t.nbytes);
    return {};
  }
  w.resize(size_t(t.numel()));
  const std::vector<float>* fv = tp && !tp->values.empty() ? &tp->values : nullptr;
  if (fv && fv->size() == w.size())
    w = *fv;
  else if (fv)
    LMQ_UNREACHABLE("replacement for '{}' has {} values, the tensor {}", t.name, fv->size(), w.size());
  else
    dequantize_rows(t, 0, t.rows(), w.data());
  if (tp) fold_values(*tp, t, w);
  if (spec.format != Format::LMQ_INT) return store_float(w, spec.format, bytes);
  bytes.assign(spec.nbytes, 0);
  const std::vector<float>* imp = tp && !tp->importance.empty() ? &tp->importance : nullptr;
  try {
    return quant::quantize_tensor(w.data(), t.rows(), t.cols(), spec.q, s.range, s.percentile,
                                  imp ? imp->data() : nullptr, bytes.data(), o.threads);
  } catch (const Error& e) {
    fail("{}: tensor '{}': {}", src.path(), t.name, e.what());
  }
}

// Runs the plan, handing each tensor's bytes to `sink` as soon as it is made.
QuantizeReport run_plan(const Model& src, const Plan& plan, const QuantizeOptions& o, const TensorProgress& progress,
                        const std::function<void(size_t, std::vector<uint8_t>&)>& sink) {
  const auto t0 = std::chrono::steady_clock::now();
  QuantizeReport r;
  quant::QuantStats total;
  std::vector<float> w;
  for (size_t i = 0; i < plan.specs.size(); ++i) {
    const Tensor& t = src.tensors()[i];
    const LmqTensorSpec& spec = plan.specs[i];
    if (progress) progress(i, plan.specs.size(), t.name);
    std::vector<uint8_t> bytes;
    const quant::QuantStats st = quantize_one(src, t, spec, plan.schemes[i], o, w, bytes);
    sink(i, bytes);
    TensorQuantReport tr;
    tr.name = t.name;
    tr.scheme = spec.scheme;
    tr.shape = t.shape;
    tr.params = uint64_t(t.numel());
    tr.bytes = spec.nbytes;
    tr.bpw = 8.0 * double(tr.bytes) / double(tr.params);
    tr.rel_rms = st.rel_rms;
    tr.max_abs = st.max_abs;
    r.params += tr.params;
    r.tensor_bytes += tr.bytes;
    total.merge(st);
    r.tensors.push_back(std::move(tr));
  }
  if (progress) progress(plan.specs.size(), plan.specs.size(), "");
  r.bpw = 8.0 * double(r.tensor_bytes) / double(r.params);
  r.rel_rms = total.finish().rel_rms;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace

std::vector<LmqTensorSpec> plan_specs(const Model& src, const QuantizeOptions& o) { return plan_model(src, o).specs; }

QuantizeReport quantize_stream(const Model& src, const QuantizeOptions& o, const TensorProgress& progress,
                               const TensorSink& sink) {
  const Plan plan = plan_model(src, o);
  return run_plan(src, plan, o, progress,
                  [&](size_t i, std::vector<uint8_t>& bytes) { sink(plan.specs[i], bytes); });
}

QuantizeReport quantize_model(const Model& src, const std::string& out, const QuantizeOptions& o,
                              const TensorProgress& progress) {
  const Plan plan = plan_model(src, o);
  std::map<std::string, std::string> meta = o.provenance;
  meta["lmq.scheme"] = o.scheme.to_string();
  if (src.tokenizer().kind() != TokenizerKind::SentencePiece)  // absent: SentencePiece (older files)
    meta["lmq.tokenizer_kind"] = tokenizer_kind_name(src.tokenizer().kind());
  LmqFileWriter writer(out, src.config().to_hf_json(), src.tokenizer().serialized(), meta, plan.specs);
  QuantizeReport r = run_plan(src, plan, o, progress, [&](size_t i, std::vector<uint8_t>& bytes) {
    writer.write_tensor(plan.specs[i].name, bytes.data(), bytes.size());
  });
  writer.commit();
  r.file_bytes = std::filesystem::file_size(out);
  return r;
}

std::unique_ptr<Model> quantize_in_memory(const Model& src, const QuantizeOptions& o, QuantizeReport* report,
                                          const TensorProgress& progress) {
  const Plan plan = plan_model(src, o);
  Model::Overlay quantized;
  QuantizeReport r = run_plan(src, plan, o, progress, [&](size_t i, std::vector<uint8_t>& bytes) {
    auto held = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
    Tensor t;
    t.name = plan.specs[i].name;
    t.shape = plan.specs[i].shape;
    t.format = plan.specs[i].format;
    t.q = plan.specs[i].q;
    t.data = held->data();
    t.nbytes = held->size();
    quantized.tensors.push_back(std::move(t));
    quantized.storage.push_back(held);
  });
  if (report) *report = r;
  return Model::with_tensors(src, std::move(quantized), src.path() + " [" + o.scheme.to_string() + "]");
}

}  // namespace lmq
