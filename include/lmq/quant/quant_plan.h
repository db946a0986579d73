// One quantization's plan, by (Hugging Face) tensor name: how each tensor is stored (its
// target: an lmq scheme or a ggml type) and what calibration decided for it. The pipeline is a
// straight line over it (calib/quantize_job.h): the writer's options build the targets
// (plan_targets in quant/quantize_model.h, plan_gguf_targets in quant/gguf_export.h), mixed
// precision edits them (calib/mixed.h), calibration fills bytes, values and importance
// (calib/pipeline.h, calib/w8a8.h), and one writer — quant::quantize_model into lmq's file,
// quant::export_gguf into GGUF, quant::export_hf into a GPTQ/AWQ/compressed-tensors directory —
// streams the plan into its sink. A field left empty means "not
// decided": the writer's default.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmq/formats/spill_file.h"
#include "lmq/quant/int_quantize.h"
#include "lmq/quant/scheme.h"

namespace lmq {

// How one tensor is stored.
struct TensorTarget {
  Format format = Format::F32;  // LMQ_INT / F32 / F16 / BF16 (lmq's file), or a ggml type (GGUF)
  quant::Scheme scheme;         // lmq's file: the scheme `format` comes from
  std::string note;             // GGUF: why the type is not the recipe's (llama.cpp's fallback)
  bool fixed = false;           // chosen by a user --override: mixed precision leaves it
};

// The stored bytes a method chose for one tensor (GPTQ, AWQ), in its target format. They are
// held in memory while their block is calibrated and propagated; with a spill file
// (QuantPlan::spill) they then move there, so the quantized linears of the blocks already done
// (3.4 GB at 7B, int4) are page cache rather than anonymous memory while the rest of the model is
// calibrated. The writers read them back one tensor at a time.
class PlanBytes {
 public:
  bool empty() const { return held_.empty() && !file_; }
  size_t size() const { return file_ ? size_t(extent_.size) : held_.size(); }
  bool spilled() const { return file_ != nullptr; }
  std::vector<uint8_t>& held();  // the bytes in memory, to fill; an aborting check once spilled
  const std::vector<uint8_t>& held() const;
  std::vector<uint8_t> read() const;  // a copy, from memory or the file
  void spill(const std::shared_ptr<SpillFile>& file);  // moves the bytes into the file; none: a no-op
  PlanBytes& operator=(std::vector<uint8_t> v);

 private:
  std::vector<uint8_t> held_;
  std::shared_ptr<const SpillFile> file_;
  SpillFile::Extent extent_;
};

struct TensorPlan {
  std::optional<TensorTarget> target;  // unset: the writer resolves it from its options
  PlanBytes bytes;                 // stored bytes a method chose (GPTQ, AWQ), in the target format
  bool carried = false;            // GGUF: `bytes` are the source's own LMQ_INT codes and scales, carried
                                   // over exactly (quant::carry_exact_blocks), not a second rounding
  quant::QuantStats stats;         // the error of `bytes` (lmq's file reports it)
  std::vector<float> values;       // float values replacing the source's (AWQ's folded norms, biases)
  std::vector<float> importance;   // per input column, weighting the writer's own fit (awmse)
  // SmoothQuant's folding (calib/w8a8.h), applied to the float values before they are quantized,
  // one tensor at a time: w[r][j] ·= col_scale[j] · row_scale[r] (each optional).
  std::vector<float> col_scale, row_scale;
};

struct QuantPlan {
  std::map<std::string, TensorPlan> tensors;
  bool gguf = false;      // targets are ggml types (export_gguf) rather than lmq schemes
  bool weighted = false;  // GGUF: every quantized tensor gets the weighted fit (importance 1 where none)
  std::shared_ptr<SpillFile> spill;  // set: calibrated bytes move there once their block is done
  const TensorPlan* find(const std::string& name) const {
    const auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  }
  const TensorTarget* target(const std::string& name) const {
    const TensorPlan* tp = find(name);
    return tp && tp->target ? &*tp->target : nullptr;
  }
};

}  // namespace lmq
