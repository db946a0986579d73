// `lmq quantize` as one library function, a straight line for every output format over one
// QuantPlan (quant/quant_plan.h):
//   load the model → the calibration windows → the plan's targets (--scheme/--override, or
//   llama.cpp's GGUF recipe) → mixed precision (--target-bpw) edits the targets → calibration
//   (GPTQ/AWQ, W8A8) fills the plan's bytes, values, folding and importance → one writer
//   streams the plan into the file (lmq's, GGUF, or a Hugging Face directory for vLLM).
// The CLI only fills a QuantizeJob from its flags and prints the QuantizeOutcome.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmq/calib/calib.h"
#include "lmq/calib/mixed.h"
#include "lmq/calib/pipeline.h"
#include "lmq/quant/gguf_export.h"
#include "lmq/quant/hf_export.h"
#include "lmq/quant/quantize_model.h"
#include "lmq/quant/rotate.h"

namespace lmq::calib {

// Before any work, a job whose estimated peak memory (estimate_calibration_memory plus the
// writer's largest tensor) exceeds the available memory (model/memory_limit.h) is refused with
// one line naming both figures.

// What `lmq quantize` was asked (its flags, as given).
struct QuantizeJob {
  std::string model, out, scheme = "int8:channel:sym", format = "lmq";
  std::vector<std::string> overrides;
  int threads = 0;
  std::string command_line;  // recorded in lmq files (lmq.command)
  // calibration
  std::string method = "rtn", calib, stats_in, stats_out;
  CalibOptions co;
  double damp = 0.01;
  std::string calib_precision = "auto";  // the forward passes' linears: auto, f32 or bf16 (CalibPrecision)
  bool act_order = false, hessian_fit = false;
  double asym_calib = 0;  // --asym-calib α: GPTQ's asymmetric target (CalibQuantOptions::asym_alpha), 0 off
  int refit = 0;  // --refit: gguf + gptq, Q2_K/Q3_K/lattice rounds of scale refit and re-sweep
  // W8A8 (calib/w8a8.h)
  std::string activations, smooth = "0.6", act_calib = "minmax";
  // mixed precision (calib/mixed.h)
  std::optional<double> target_bpw;
  std::string sens_in, sens_out;
  // --format gptq|awq|compressed-tensors (quant/hf_export.h)
  uint64_t max_shard_bytes = kDefaultShardBytes;
  // --rotate hadamard|random-orthogonal (quant/rotate.h): the model is rotated first, every
  // method and sink then works on the rotated model
  std::string rotate = "none";
  bool rotate_heads = false;  // --rotate-heads: R2 on v/o per head as well
  uint64_t rotate_seed = quant::kRotateSeed;
};

// What the job reports while it runs (each may be empty).
struct QuantizeHooks {
  KldOfModels kld;  // mixed precision's KLD probes (eval::kld_means); needed with --target-bpw
  std::function<void(const std::string& table)> allocation;  // --target-bpw's chosen schemes
  BlockProgress blocks;                                       // calibration, block by block
  TensorProgress tensors;                                     // the writer, tensor by tensor
};

struct QuantizeOutcome {
  bool gguf = false;
  bool hf = false;  // a Hugging Face directory (gptq, awq, compressed-tensors): hf_report
  std::string scheme;  // lmq: the canonical scheme; gguf: the recipe ("q4_k_m", "mixed, --target-bpw 5")
  Method method = Method::Rtn;
  QuantizeReport lmq;        // lmq's file
  GgufExportReport gguf_report;  // GGUF
  HfExportReport hf_report;      // gptq, awq, compressed-tensors
  CalibQuantReport calib;
  uint64_t estimated_peak_bytes = 0;  // the estimate checked against the available memory up front
  std::string rotation;  // --rotate: what was done (and why the embeddings were untied); empty without
};

QuantizeOutcome run_quantize_job(const QuantizeJob& job, const QuantizeHooks& hooks);

}  // namespace lmq::calib
