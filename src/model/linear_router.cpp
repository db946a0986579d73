#include "lmq/model/linear_router.h"

#include "lmq/error.h"
#include "lmq/kernels/ggml_matmul.h"
#include "lmq/kernels/matmul.h"

namespace lmq {

namespace {
// Small 1-D weights (norms, biases) as float32, whatever their storage.
std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> v(size_t(t.numel()));
  dequantize_rows(t, 0, t.rows(), v.data());
  return v;
}

// A file made with --activations int8:dynamic runs its linears on dynamic int8 activations
// unless the run chose a rule itself; a GGUF file does when the run left the choice to the
// model (RunOptions::act_quant_from_model).
ActQuantSpec effective_act_quant(const Model& m, const RunOptions& o) {
  if (o.act_quant_from_model && m.source_kind() == "gguf") return {ActQuant::DynamicAbsmax, 32};
  const auto act = m.metadata().find("lmq.activations");
  if (act != m.metadata().end() && act->second == "int8:dynamic" && o.act_quant == ActQuant::None)
    return {ActQuant::DynamicAbsmax, o.act_block};
  return {o.act_quant, o.act_block};
}
}  // namespace

LinearRouter::LinearRouter(const Model& model, const RunOptions& opts)
    : LinearRouter(model, effective_act_quant(model, opts)) {}

LinearRouter::LinearRouter(const Model& model, ActQuantSpec act)
    : act_quant_(act.rule), act_block_(act.block), static_(load_static_linears(model)) {
  if (act_block_ != 0 && act_block_ != 32 && act_block_ != 64)
    fail("activation block {} (0, 32 or 64)", act_block_);
}

LinearRouter::HeldActs LinearRouter::route(const Tensor& w) {
  if (const auto it = static_.find(&w); it != static_.end()) return {int_plan(w).unit(), -1, it->second.s_x};
  if (act_quant_ != ActQuant::None && int_matmul_supported(w, act_block_))
    return {int_plan(w).unit(), int(act_quant_), 0.f};
  if (in_place(w)) return {act_block_, int(act_quant_), 0.f};
  return {};
}

bool LinearRouter::in_place(const Tensor& w) const {
  return act_quant_ != ActQuant::None && ggml_matmul_supported(w, act_block_) && !static_.contains(&w);
}

void LinearRouter::quantize_input(const HeldActs& want, const float* x, int n, int64_t K, HeldActs& held) {
  if (held == want) return;
  if (want.rule == -1) quantize_activations_static(x, n, K, want.s_x, want.unit, xq_);
  else quantize_activations(x, n, K, ActQuant(want.rule), act_block_, want.unit, xq_);
  held = want;
}

const float* LinearRouter::int_bias(const Tensor& w, const Tensor* bias) {
  if (const auto it = static_.find(&w); it != static_.end()) return it->second.bias.empty() ? nullptr : it->second.bias.data();
  if (!bias) return nullptr;
  return small_f32(*bias);
}

const float* LinearRouter::small_f32(const Tensor& t) {
  auto it = small_.find(&t);
  if (it == small_.end()) it = small_.emplace(&t, to_f32(t)).first;
  return it->second.data();
}

const IntMatmulPlan& LinearRouter::int_plan(const Tensor& w) {
  auto it = plans_.find(&w);
  // a static input scale is one per tensor: those plans never use activation blocks
  if (it == plans_.end()) it = plans_.emplace(&w, IntMatmulPlan(w, static_.contains(&w) ? 0 : act_block_)).first;
  return it->second;
}

const Tensor& LinearRouter::stored_order(const Tensor& w) {
  auto it = stored_.find(&w);
  if (it == stored_.end()) {
    Tensor s = w;
    s.in_perm = nullptr;
    it = stored_.emplace(&w, std::move(s)).first;
  }
  return it->second;
}

const float* LinearRouter::permute_input(const Tensor& w, const float* x, int n) {
  const int64_t K = w.cols();
  xp_.resize(size_t(n * K));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < K; ++j) xp_[size_t(t * K + j)] = x[t * K + w.in_perm[j]];
  return xp_.data();
}

void LinearRouter::linear(const Tensor& w, const Tensor* bias, const float* x, int n, float* y, HeldActs& held) {
  observe(w, x, n);
  if (!w.in_perm) return run_linear(w, bias, x, n, y, held);
  HeldActs own;  // the permuted input is not the x that `held` describes
  run_linear(stored_order(w), bias, permute_input(w, x, n), n, y, own);
}

void LinearRouter::run_linear(const Tensor& w, const Tensor* bias, const float* x, int n, float* y, HeldActs& held) {
  if (const HeldActs want = route(w); want.unit != 0) {
    quantize_input(want, x, n, w.cols(), held);
    if (in_place(w)) return ggml_matmul_q(w, xq_, y, int_bias(w, bias));
    return int_matmul_q(int_plan(w), xq_, y, int_bias(w, bias));
  }
  const float* bp = bias ? small_f32(*bias) : nullptr;
  if (float_linear_) return float_linear_(w, bp, x, n, y);
  matmul(w, x, n, y, bp);
}

void LinearRouter::linear(const Tensor& w, const Tensor* bias, const float* x, int n, float* y) {
  HeldActs none;
  linear(w, bias, x, n, y, none);
}

void LinearRouter::linears(std::span<const LinearOut> outs, const float* x, int n) {
  bool fused = true;
  for (const LinearOut& o : outs) fused = fused && !o.w->in_perm;
  const HeldActs want = fused ? route(*outs[0].w) : HeldActs{};
  fused = fused && want.unit != 0;
  for (const LinearOut& o : outs) fused = fused && route(*o.w) == want && o.w->cols() == outs[0].w->cols();
  HeldActs held;
  if (!fused) {
    for (const LinearOut& o : outs) linear(*o.w, o.bias, x, n, o.y, held);
    return;
  }
  LMQ_CHECK(outs.size() <= kMaxFused, "{} fused linears, at most {}", outs.size(), kMaxFused);
  // LMQ_INT weights and blocks read in place (Q4_K_M mixes Q4_K and Q6_K, IQ2_XS files Q4_K) share the input.
  IntMatmulJob jobs[kMaxFused];
  GgmlMatmulJob ggml_jobs[kMaxFused];
  size_t ni = 0, ng = 0;
  for (const LinearOut& o : outs) {
    observe(*o.w, x, n);
    if (in_place(*o.w)) ggml_jobs[ng++] = {o.w, o.y, int_bias(*o.w, o.bias)};
    else jobs[ni++] = {&int_plan(*o.w), o.y, int_bias(*o.w, o.bias)};
  }
  quantize_input(want, x, n, outs[0].w->cols(), held);
  if (ni) int_matmul_q(std::span<const IntMatmulJob>(jobs, ni), xq_);
  if (ng) ggml_matmul_q(std::span<const GgmlMatmulJob>(ggml_jobs, ng), xq_);
}

}  // namespace lmq
