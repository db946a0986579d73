// Quantizing a whole model into lmq's file: a scheme per tensor (the plan's target, which
// plan_targets builds from the default, the first matching --override, and the defaults that
// keep norms and biases in F32 and embeddings / lm_head at 8 bits; I32 tensors such as W8A8
// biases are copied as they are), quantized tensor by tensor (one tensor in memory at a time)
// and streamed into the output file, reporting bits per weight and error per tensor.
#pragma once
#include <functional>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "lmq/formats/lmq_file.h"
#include "lmq/model/model.h"
#include "lmq/quant/int_quantize.h"
#include "lmq/quant/quant_plan.h"
#include "lmq/quant/scheme.h"

namespace lmq {

struct SchemeOverride {
  std::string pattern;  // ECMAScript regex, searched in the tensor name
  std::regex re;
  quant::Scheme scheme;
};
// The REGEX of an --override (`arg` is the whole flag value, for errors). Repetition counts and
// back-references over 1000 are refused first: libstdc++ expands a{n} into n copies, and its
// number parsing overflows (undefined behaviour) on huge ones.
std::regex override_regex(const std::string& pattern, const std::string& arg);
// "REGEX=SCHEME", e.g. "mlp\.down_proj=int6:g64"; throws naming the flag on a bad regex or scheme.
SchemeOverride parse_override(const std::string& s);

struct QuantizeOptions {
  quant::Scheme scheme;
  std::vector<SchemeOverride> overrides;
  int threads = 0;
  std::map<std::string, std::string> provenance;  // extra lmq.* metadata (command, source)
  // The plan (quant/quant_plan.h): each tensor's target (unset: resolve_scheme of these
  // options), the LMQ_INT bytes a method chose (their size must be the planned one), float
  // values replacing the source's, SmoothQuant's folding factors, and input-column importance
  // weighting the MSE clip search. Null: every tensor from these options.
  const QuantPlan* plan = nullptr;
};

struct TensorQuantReport {
  std::string name, scheme;
  std::vector<int64_t> shape;
  uint64_t params = 0, bytes = 0;
  double bpw = 0, rel_rms = 0, max_abs = 0;
};

struct QuantizeReport {
  std::vector<TensorQuantReport> tensors;
  uint64_t params = 0, tensor_bytes = 0, file_bytes = 0;
  double bpw = 0;  // 8 · tensor bytes / params
  double rel_rms = 0;  // over all quantized values
  double seconds = 0;
};

// The scheme a tensor gets under these options.
quant::Scheme resolve_scheme(const Tensor& t, const QuantizeOptions& o);
// The format a scheme is stored in (LMQ_INT, F16, BF16, F32).
Format storage_format(const quant::Scheme& s);
// A scheme as a plan target (its storage_format).
TensorTarget lmq_target(const quant::Scheme& s);
// The plan's first step: every tensor's target from these options (resolve_scheme).
QuantPlan plan_targets(const Model& src, const QuantizeOptions& o);
// SmoothQuant's folding (calib/w8a8.h) of the plan applied to t's float values v, columns first.
void fold_values(const TensorPlan& tp, const Tensor& t, std::vector<float>& v);
// Makes the MSE search the range method of every integer target (--method mse, awmse).
void use_mse(QuantPlan& plan);

using TensorProgress = std::function<void(size_t done, size_t total, const std::string& name)>;
// Quantizes into lmq's file at `out` (streamed, atomic). report.file_bytes is the file's size.
QuantizeReport quantize_model(const Model& src, const std::string& out, const QuantizeOptions& o,
                              const TensorProgress& progress = {});
// Every tensor's stored form (name, shape, format, scheme, exact size) under these options and
// their plan, known before anything is quantized.
std::vector<LmqTensorSpec> plan_specs(const Model& src, const QuantizeOptions& o);
// The one per-tensor loop behind every sink of lmq schemes (lmq's file, memory, the Hugging
// Face checkpoints of quant/hf_export.h): each tensor of `src`, in order, quantized (or taken
// from the plan) into its spec's format and handed to `sink` at once, one tensor in memory.
using TensorSink = std::function<void(const LmqTensorSpec& spec, std::vector<uint8_t>& bytes)>;
QuantizeReport quantize_stream(const Model& src, const QuantizeOptions& o, const TensorProgress& progress,
                               const TensorSink& sink);
// The same quantization held in memory as a runnable Model (tests, sweeps); its bytes are
// exactly what quantize_model writes.
std::unique_ptr<Model> quantize_in_memory(const Model& src, const QuantizeOptions& o, QuantizeReport* report = nullptr,
                                          const TensorProgress& progress = {});

}  // namespace lmq
