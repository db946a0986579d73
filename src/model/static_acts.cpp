#include "lmq/model/static_acts.h"
#include <cmath>
#include <cstring>

#include "lmq/error.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/codecs/int_format.h"

namespace lmq {

namespace {

std::string scale_name(const Tensor& w, bool is_head) {
  if (is_head) return "lm_head.input_scale";
  const std::string suf = ".weight";
  return (w.name.ends_with(suf) ? w.name.substr(0, w.name.size() - suf.size()) : w.name) + ".input_scale";
}

void add_linear(const Model& m, const Tensor& w, const Tensor* bias, bool is_head, StaticLinears& out) {
  const Tensor* st = m.find(scale_name(w, is_head));
  if (!st) {
    if (bias && bias->format == Format::I32) fail("{}: '{}' is int32 but '{}' has no input scale", m.path(), bias->name, w.name);
    return;
  }
  if (st->format != Format::F32 || st->numel() != 1) fail("{}: '{}' must be one F32 value", m.path(), st->name);
  if (!int_matmul_supported(w))
    fail("{}: '{}' has a static input scale but its format {} cannot run on the integer kernels", m.path(), w.name,
         tensor_format_label(w));
  StaticLinear s;
  std::memcpy(&s.s_x, st->data, 4);
  if (!(s.s_x >= 0) || !std::isfinite(s.s_x)) fail("{}: '{}' is not a finite scale ≥ 0", m.path(), st->name);
  if (bias) {
    s.bias.resize(size_t(bias->numel()));
    if (bias->format == Format::I32) {
      if (w.q.group != -1) fail("{}: int32 bias '{}' needs a per-channel weight", m.path(), bias->name);
      const quant::IntView v = quant::int_view(w.q, w.data, w.rows(), w.cols());
      for (int64_t o = 0; o < bias->numel(); ++o) {
        int32_t b;
        std::memcpy(&b, bias->data + 4 * o, 4);
        s.bias[size_t(o)] = float(b) * (quant::int_scale_at(v, o) * s.s_x);
      }
    } else {
      dequantize_rows(*bias, 0, 1, s.bias.data());
    }
  }
  out.emplace(&w, std::move(s));
}

}  // namespace

StaticLinears load_static_linears(const Model& m) {
  StaticLinears out;
  for (const LayerWeights& l : m.layers()) {
    add_linear(m, *l.wq, l.bq, false, out);
    add_linear(m, *l.wk, l.bk, false, out);
    add_linear(m, *l.wv, l.bv, false, out);
    for (const Tensor* t : {l.wo, l.w_gate, l.w_up, l.w_down}) add_linear(m, *t, nullptr, false, out);
  }
  add_linear(m, m.lm_head(), nullptr, true, out);
  return out;
}

}  // namespace lmq
