// Which kernel runs each linear layer of a Runner, and with which input. A weight runs on the
// integer kernels (kernels/int_matmul.h) when it has a static input scale (a W8A8 file,
// model/static_acts.h) or when the run quantizes activations dynamically (RunOptions) and the
// kernels take its layout; a Q4_K / Q6_K weight with dynamic activations in blocks of 32 runs on
// the kernels that read its GGUF blocks in place (kernels/ggml_matmul.h); every other weight
// runs through lmq::matmul in float.
// Linears that read the same input (q/k/v, gate/up) quantize it once when their units and
// rules agree, and then run as one fused integer product (one parallel region: decode pays
// ~60 fork/joins per token otherwise).
// An act-order weight (Tensor::in_perm, model/hf_quant.h) stores its codes over permuted
// inputs: the router gathers x into that order and runs the weight as stored (in_perm cleared),
// so below the router every kernel sees stored order; such a linear is never fused.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "lmq/kernels/act_quant.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/model/model.h"
#include "lmq/model/run_options.h"
#include "lmq/model/static_acts.h"

namespace lmq {

class LinearRouter {
 public:
  LinearRouter(const Model& model, const RunOptions& opts);

  struct LinearOut {
    const Tensor* w;
    const Tensor* bias;  // nullable
    float* y;
  };
  // y[n × rows] = x[n × cols] · wᵀ (+ bias), one linear, or several that read the same x.
  void linear(const Tensor& w, const Tensor* bias, const float* x, int n, float* y);
  void linears(std::span<const LinearOut> outs, const float* x, int n);

  ActQuant act_quant() const { return act_quant_; }
  int64_t act_block() const { return act_block_; }
  // A norm or bias as float32, widened on first use and kept (weights never change under a Runner).
  const float* small_f32(const Tensor& t);

  // Calibration's hooks (calib/block_runner.h), unset for inference: the observer sees every
  // linear's input before it runs (shared inputs once per linear); the float linear replaces
  // lmq::matmul for the weights that take the float path.
  using Observer = std::function<void(const Tensor& weight, const float* x, int n)>;
  using FloatLinear = std::function<void(const Tensor& w, const float* bias, const float* x, int n, float* y)>;
  void set_observer(Observer obs) { observer_ = std::move(obs); }
  void observe(const Tensor& w, const float* x, int n) {
    if (observer_) observer_(w, x, n);
  }
  void set_float_linear(FloatLinear f) { float_linear_ = std::move(f); }

 private:
  // What xq_ holds of the input x: unit 0 for nothing (or, from route, the float path).
  struct HeldActs {
    int64_t unit = 0;
    int rule = 0;  // ActQuant, or -1 for a static scale
    float s_x = 0;
    bool operator==(const HeldActs&) const = default;
  };
  LinearRouter(const Model& model, ActQuantSpec act);  // act: the rule the run settled on
  HeldActs route(const Tensor& w);  // how w's input is quantized for the integer kernels
  bool in_place(const Tensor& w) const;  // w runs on kernels/ggml_matmul.h
  void linear(const Tensor& w, const Tensor* bias, const float* x, int n, float* y, HeldActs& held);
  void run_linear(const Tensor& w, const Tensor* bias, const float* x, int n, float* y, HeldActs& held);
  // w as stored, in_perm cleared, made on first use; xp_ receives x gathered into its order.
  const Tensor& stored_order(const Tensor& w);
  const float* permute_input(const Tensor& w, const float* x, int n);
  void quantize_input(const HeldActs& want, const float* x, int n, int64_t K, HeldActs& held);
  // The float bias of an integer linear: the static one of a W8A8 file, else small_f32(*bias).
  const float* int_bias(const Tensor& w, const Tensor* bias);
  const IntMatmulPlan& int_plan(const Tensor& w);  // made on first use, kept for the router's life
  static constexpr size_t kMaxFused = 4;

  ActQuant act_quant_;
  int64_t act_block_;  // 0: per token, else 32 or 64 values per scale
  StaticLinears static_;
  std::unordered_map<const Tensor*, IntMatmulPlan> plans_;
  std::unordered_map<const Tensor*, std::vector<float>> small_;
  std::unordered_map<const Tensor*, Tensor> stored_;
  std::vector<float> xp_;  // the permuted input of an act-order linear
  QuantizedActs xq_;  // the int8 activations of the linear being run
  Observer observer_;
  FloatLinear float_linear_;  // empty: lmq::matmul
};

}  // namespace lmq
