#include "lmq/quant/quantize_model.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "lmq/error.h"
#include "lmq/formats/lmq_file.h"
#include "lmq/half.h"
#include "lmq/quant/int_format.h"

namespace lmq {

SchemeOverride parse_override(const std::string& s) {
  const size_t eq = s.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
    fail("--override '{}': expected REGEX=SCHEME", s);
  SchemeOverride o;
  o.pattern = s.substr(0, eq);
  try {
    o.re = std::regex(o.pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail("--override '{}': bad regular expression: {}", s, e.what());
  }
  o.scheme = quant::parse_scheme(s.substr(eq + 1));
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

namespace {

Format storage_format(const quant::Scheme& s) {
  switch (s.kind) {
    case quant::Scheme::Int: return Format::LMQ_INT;
    case quant::Scheme::F16: return Format::F16;
    case quant::Scheme::BF16: return Format::BF16;
    case quant::Scheme::F32: break;
  }
  return Format::F32;
}

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
    const double e = double(w[i]) - back;
    st.sq_err += e * e;
    st.sq_ref += double(w[i]) * w[i];
    st.max_abs = std::max(st.max_abs, std::fabs(e));
  }
  st.rel_rms = st.sq_ref > 0 ? std::sqrt(st.sq_err / st.sq_ref) : 0;
  return st;
}

}  // namespace

QuantizeReport quantize_model(const Model& src, const std::string& out, const QuantizeOptions& o,
                              const TensorProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  // Plan: every tensor's scheme, format and exact size, so the header can be written first.
  std::vector<LmqTensorSpec> specs;
  std::vector<quant::Scheme> schemes;
  for (const Tensor& t : src.tensors()) {
    const quant::Scheme s = resolve_scheme(t, o);
    LmqTensorSpec spec;
    spec.name = t.name;
    spec.shape = t.shape;
    spec.format = storage_format(s);
    spec.q = s.p;
    spec.scheme = s.to_string();
    spec.nbytes = stored_bytes(spec.format, spec.q, spec.shape);
    specs.push_back(spec);
    schemes.push_back(s);
  }
  std::map<std::string, std::string> meta = o.provenance;
  meta["lmq.scheme"] = o.scheme.to_string();
  LmqFileWriter writer(out, src.config().to_hf_json(), src.tokenizer().serialized(), meta, specs);

  QuantizeReport r;
  double sq_err = 0, sq_ref = 0;
  std::vector<float> w;
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < specs.size(); ++i) {
    const Tensor& t = src.tensors()[i];
    const LmqTensorSpec& spec = specs[i];
    if (progress) progress(i, specs.size(), t.name);
    w.resize(size_t(t.numel()));
    dequantize_rows(t, 0, t.rows(), w.data());
    quant::QuantStats st;
    if (spec.format == Format::LMQ_INT) {
      bytes.assign(spec.nbytes, 0);
      const std::vector<float>* imp = nullptr;
      if (o.importance)
        if (auto it = o.importance->find(t.name); it != o.importance->end()) imp = &it->second;
      try {
        st = quant::quantize_tensor(w.data(), t.rows(), t.cols(), spec.q, schemes[i].range, schemes[i].percentile,
                                    imp ? imp->data() : nullptr, bytes.data(), o.threads);
      } catch (const Error& e) {
        fail("{}: tensor '{}': {}", src.path(), t.name, e.what());
      }
    } else {
      st = store_float(w, spec.format, bytes);
    }
    writer.write_tensor(t.name, bytes.data(), bytes.size());
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
    sq_err += st.sq_err;
    sq_ref += st.sq_ref;
    r.tensors.push_back(std::move(tr));
  }
  if (progress) progress(specs.size(), specs.size(), "");
  writer.commit();
  r.file_bytes = std::filesystem::file_size(out);
  r.bpw = 8.0 * double(r.tensor_bytes) / double(r.params);
  r.rel_rms = sq_ref > 0 ? std::sqrt(sq_err / sq_ref) : 0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace lmq
