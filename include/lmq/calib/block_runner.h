// The calibration side of the forward pass: a Runner (model/forward.h) run in pieces, layer
// range by layer range, on hidden states that calibration keeps between blocks, with the
// hooks that only calibration needs:
//   - an observer that sees the input of every linear layer before it runs;
//   - BLAS mode for long batches: F32 linears and the attention products through OpenBLAS
//     sgemm, the attention computing only the causally visible part of each 128-query chunk.
//     Several times faster than the tile kernels at hundreds of tokens, but the summation order
//     differs (results differ in the last bits and may depend on BLAS's threading), which is why
//     inference never uses it. Given packed bf16 weights (--calib-precision bf16), those
//     linears run through gemm_bf16 instead (kernels/gemm_bf16.h: inputs rounded to bf16);
//   - inputs-only passes, which gather the linears' inputs of the layers they run: the last
//     layer's down_proj is observed but not computed, so x is then left unfinished.
#pragma once
#include <string>
#include <unordered_map>

#include "lmq/kernels/gemm_bf16.h"
#include "lmq/model/forward.h"

namespace lmq::calib {

class BlockRunner : public Runner {
 public:
  BlockRunner(const Model& model, int max_seq, const RunOptions& opts = {}) : Runner(model, max_seq, opts) {}

  // Sees the input activations of every linear layer: `weight` is its tensor
  // ("model.layers.3.mlp.down_proj.weight"), x is n × cols floats. Linears that share an input
  // (q/k/v, gate/up) are each reported, with the same x.
  using LinearObserver = LinearRouter::Observer;
  void set_observer(LinearObserver obs) { router_.set_observer(std::move(obs)); }

  // Weights packed to bf16, by the tensor the router is given; the others take the F32 path.
  using PackedLinears = std::unordered_map<const Tensor*, PackedBf16>;
  // BLAS mode; with bf16 (kept by the caller, alive while this runs), its linears through gemm_bf16.
  void set_blas(bool on, const PackedLinears* bf16 = nullptr);
  void set_inputs_only(bool on) { inputs_only_ = on; }

  // Layers [first, last) applied to x[n × hidden] in place at positions [pos(), pos()+n) (their
  // KV cache filled); pos() advances by n. Runner::forward is embed_tokens + all layers + the
  // final norm and lm_head.
  void forward_layers(float* x, int n, int first, int last);

 protected:
  void attend(int l, int n) override;

 private:
  void attend_blas(int l, int n);
  bool blas_ = false, inputs_only_ = false;
};

// Linears that read one input (k/v after q, up after gate) are observed with the same x: this
// passes the first of each run of equal (x, key), so statistics count every input once.
class SharedInputFilter {
 public:
  bool first(const float* x, const std::string& key) {
    if (x == last_x_ && key == last_key_) return false;
    last_x_ = x;
    last_key_ = key;
    return true;
  }
  void reset() { last_x_ = nullptr; }

 private:
  const float* last_x_ = nullptr;
  std::string last_key_;
};

}  // namespace lmq::calib
