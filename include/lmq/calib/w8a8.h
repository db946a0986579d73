// W8A8 preparation (`lmq quantize --activations int8[:static|:dynamic] [--smooth α]
// [--act-calib RULE]`): SmoothQuant folding and static activation scales.
//
// Pass 1 runs the float model over the calibration windows and takes max|x_j| per input column
// of every linear layer. Smoothing factors (quant/smooth.h) are then folded so that the float
// model is unchanged, per decoder block:
//   q/k/v    input = RMSNorm(x)·γ_attn:  γ_attn /= s,  W_q, W_k, W_v columns ·= s
//   gate/up  input = RMSNorm(x)·γ_ffn:   γ_ffn /= s,   W_gate, W_up columns ·= s
//   o_proj   input = softmax(·)·V, linear in V:  W_v rows (and b_v) /= s,  W_o columns ·= s;
//            with GQA one V channel feeds a column of every query head of its group, so s is
//            per V channel (max over the group's columns on both sides)
//   down     input = silu(gate) ⊙ up, linear in up:  W_up rows /= s,  W_down columns ·= s
// lm_head is not smoothed (it is the embedding when tied, which must not change).
// Pass 2 (static) runs the float model again and histograms |x_j / s_j| of every linear's
// input; the range rule (calib/act_calib.h) gives one scale s_x = T/127 per input, stored as
// the F32 tensor "<linear>.input_scale" [1] ("lm_head.input_scale" for the output layer) for
// each linear reading it. Biases (Qwen2's q/k/v) are stored as I32 at scale s_w[o]·s_x:
// b_int[o] = round(b[o] / (s_w[o]·s_x)) with s_w[o] the scale the weight row will be stored
// with, so the bias adds to the int32 accumulator's scale exactly.
//
// The result is a model to hand to quantize_model with the plan: the source's tensors
// (borrowed, unchanged), the folded norms, the biases and the input scales (held here); the
// weight folding goes into the plan (TensorPlan::col_scale, row_scale) and the writer applies it
// one tensor at a time as it quantizes. Memory: the calibration windows' activations are never kept, only per-
// column maxima and one 2048-bin histogram per linear input.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lmq/calib/act_calib.h"
#include "lmq/model/model.h"
#include "lmq/quant/quantize_model.h"

namespace lmq::calib {

struct W8A8Options {
  bool static_acts = true;  // int8:static; false = int8:dynamic (smoothing only, scales at run time)
  bool smooth = true;
  double alpha = 0.6;  // measured best on lmq-llama-25m (docs/results.md, W8A8)
  ActRangeRule range{ActRange::MinMax};
  std::vector<std::vector<int>> windows;
};
// "int8" | "int8:static" → static, "int8:dynamic" → dynamic; throws naming --activations.
bool parse_activations_static(const std::string& s);

struct W8A8Input {  // one linear input, for reports
  std::string key;
  double max = 0, threshold = 0;  // max |x/s| on calibration, and the rule's clip T
  float scale = 0;                // T / 127
};

struct W8A8Prepared {
  std::unique_ptr<Model> model;  // what to quantize (borrows the source's tensor bytes)
  std::map<std::string, std::vector<float>> col_scale, row_scale;  // weight name → factors
  std::vector<W8A8Input> inputs;
  std::map<std::string, std::string> metadata;  // lmq.activations, lmq.smooth, lmq.act_calib
  int64_t tokens = 0;
  double seconds = 0;
};

// Puts the folding factors into the plan. The plan's targets (lmq schemes) must already be
// final: their weight scales fix the int32 biases. The metadata go into the file's provenance.
std::unique_ptr<W8A8Prepared> prepare_w8a8(const Model& src, QuantPlan& plan, const W8A8Options& w);

}  // namespace lmq::calib
