// Static activation scales of a W8A8 file (calib/w8a8.h): for every linear layer that has an
// "<linear>.input_scale" tensor, its input is quantized with that one fixed scale
// (q = clamp(round(x/s_x), ±127), no range computed at run time) and runs on the integer
// kernels. An I32 bias b_int (scale s_w[o]·s_x) is turned into floats once at load,
// b[o] = float(b_int[o])·(s_w[o]·s_x), and added to the kernel's output.
#pragma once
#include <unordered_map>
#include <vector>

#include "lmq/model/model.h"

namespace lmq {

struct StaticLinear {
  float s_x = 0;
  std::vector<float> bias;  // empty: no bias
};
using StaticLinears = std::unordered_map<const Tensor*, StaticLinear>;

// Keyed by the model's weight tensors (lm_head included). Throws for an I32 bias whose linear
// has no input scale, or a scaled linear the integer kernels cannot run.
StaticLinears load_static_linears(const Model& m);

}  // namespace lmq
