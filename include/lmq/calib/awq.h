// AWQ (Lin et al., 2023, "Activation-aware Weight Quantization"): before quantizing, scale the
// input channels of each linear by s_j > 0 that grow with the channel's activation magnitude,
// W' = W·diag(s), and divide the op that produces the input by the same s, so the float model
// computes exactly the same function while the salient input channels get relatively finer
// quantization steps.
//
// Groups of one decoder block (each searched independently, on that block's input statistics):
//   attn: q/k/v_proj   input = rmsnorm(x)·attn_norm   → attn_norm /= s
//   o:    o_proj        input = attention output       → v_proj rows (and bias) /= s, per KV head:
//         o_proj's input channel (h, d) carries v channel (h / (H/KV), d), so s is shared by the
//         query heads of a group (computed from their mean |x| averaged over the group)
//   mlp:  gate/up_proj  input = rmsnorm(x)·ffn_norm    → ffn_norm /= s
//   down: down_proj     input = silu(gate) ⊙ up        → up_proj rows /= s (exact: ⊙ is per channel)
// Every fold is exact in real arithmetic, so no extra operation runs at inference.
//
// Scales (as in the paper): m_j = mean |x_j| from calibration, s_j = m_j^α normalised by
// sqrt(max s · min s), α on the grid {0, 1/(grid−1), …, 1} (α = 0 is plain RTN). Each α is
// scored by the group's output error on the calibration inputs,
//   Σ_linears tr(Δ H Δᵀ)/2,  Δ = Q(W·diag(s))·diag(s)⁻¹ − W,  H = 2XXᵀ/n,
// with Q the tensor's storage format: lmq's integer schemes with min/max ranges (the clip search
// or GPTQ comes afterwards, on the scaled weights, in the pipeline), or for ggml block types the
// quantizer that will store the tensor (calib/gguf_target.h). The α with the smallest error wins
// (the first on ties).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lmq/calib/calib.h"
#include "lmq/model/model.h"
#include "lmq/quant/scheme.h"

namespace lmq::calib {

struct AwqOptions {
  int grid = 20;  // α ∈ {0, 1/(grid−1), …, 1}
  int threads = 0;
  // Fixed α for every group instead of the search (tests of the folding); < 0: search.
  double fixed_alpha = -1;
};

struct AwqGroup {
  std::string name;  // "model.layers.3.attn" …
  double alpha = 0, err = 0, rtn_err = 0;  // chosen α, its output error, the error at α = 0
};

struct AwqBlock {
  // The block's changed tensors as floats: column-scaled linears, folded norms, scaled biases.
  std::map<std::string, std::vector<float>> weights;
  // Per linear weight: its column scales s (W' = W·diag(s), so its input is x / s).
  std::map<std::string, std::vector<float>> col_scale;
  std::vector<AwqGroup> groups;
};

// w → dequant(quant(w)) of one linear's rows × K weights in its storage format (back: rows × K).
// importance: E[x'²] per column of the scaled input x' = x / s, for quantizers that weight their fit.
using RoundTrip =
    std::function<void(const float* w, int64_t rows, int64_t K, const float* importance, float* back)>;
// A linear's round trip; an empty function: the linear is not quantized (stays float).
using RoundTripOf = std::function<RoundTrip(const Tensor&)>;

// lmq's integer schemes with min/max ranges (non-integer schemes: empty).
RoundTripOf int_round_trips(const std::function<quant::Scheme(const Tensor&)>& scheme_of, int threads);

// s_j = m_j^α / sqrt(max · min) over the channels (m clamped below at 1e-8·max m so s > 0).
std::vector<float> awq_scales(const std::vector<float>& mean_abs, double alpha);

// Searches and folds block `layer` of `m`. `round_trip_of` gives each linear's quantizer; a group
// whose linears are all unquantized keeps s = 1. stats: the block's input statistics (by stat_key).
AwqBlock awq_block(const Model& m, int layer, const StatsMap& stats, const RoundTripOf& round_trip_of,
                   const AwqOptions& o);
// The same with lmq's integer scheme of each linear (int_round_trips).
AwqBlock awq_block(const Model& m, int layer, const StatsMap& stats,
                   const std::function<quant::Scheme(const Tensor&)>& scheme_of, const AwqOptions& o);

// H' = D⁻¹HD⁻¹ and E[x'²] = E[x²]/s²: the statistics of the scaled input x' = x / s.
InputStats scaled_stats(const InputStats& st, const std::vector<float>& s);

// Puts m's tensor `name` into the overlay as the F32 values w (which must outlive the model
// made from it).
void put_floats(Model::Overlay& overlay, const Model& m, const std::string& name, const std::vector<float>& w);

// The model with some tensors replaced by F32 values (name → values, the tensor's shape); the
// rest point into `m`, which must outlive the result.
std::unique_ptr<Model> with_float_tensors(const Model& m, const std::map<std::string, std::vector<float>>& w);

}  // namespace lmq::calib
