// What calibration decided for the tensors of one quantization, by (Hugging Face) tensor name.
// The writers — quant::quantize_model into lmq's file, quant::export_gguf into GGUF — take each
// tensor's entry as given and quantize the rest themselves; calibration (calib/pipeline.h,
// calib/gguf_target.h) fills it. A field left empty means "not decided": the writer's default.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lmq/quant/int_quantize.h"

namespace lmq {

struct TensorPlan {
  std::vector<uint8_t> bytes;      // stored bytes a method chose (GPTQ, AWQ), in the planned format
  quant::QuantStats stats;         // the error of `bytes` (lmq's file reports it)
  std::vector<float> values;       // float values replacing the source's (AWQ's folded norms, biases)
  std::vector<float> importance;   // per input column, weighting the writer's own fit (awmse)
};

struct QuantPlan {
  std::map<std::string, TensorPlan> tensors;
  bool weighted = false;  // GGUF: every quantized tensor gets the weighted fit (importance 1 where none)
  const TensorPlan* find(const std::string& name) const {
    const auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  }
};

}  // namespace lmq
