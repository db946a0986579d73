// Calibrated quantization of a whole model (`lmq quantize --method`):
//   rtn    the scheme as given (no calibration);
//   mse    the scheme with the MSE clip search (no calibration);
//   awmse  the MSE clip search weighted per input column by E[x_j²] from calibration
//          (activation-weighted clipping, through QuantizeOptions::importance);
//   gptq   GPTQ (calib/gptq.h) for every linear layer of the decoder blocks whose resolved
//          scheme is an integer one, sequentially: the calibration hidden states are kept
//          between blocks (windows × len × hidden floats), block l's input statistics are
//          gathered by running its float weights on them, its linears are quantized, and the
//          hidden states are then propagated through the QUANTIZED block l, so block l+1 sees
//          the inputs the quantized model will give it. Embeddings and lm_head are quantized as
//          the scheme says (RTN). Each pass over the windows runs one window per thread on an
//          F32 copy of the block through BLAS (BlockRunner's BLAS mode; the statistics pass stops at
//          down_proj's input), and the windows' statistics are merged in window order, so they
//          do not depend on the thread count. Memory: the hidden states plus one block's
//          statistics (all blocks' with --save-stats), and per thread one window's.
//   awq    AWQ (calib/awq.h), sequential like gptq: block l's scales are searched on its input
//          statistics and folded (norms, v_proj, up_proj), then each scaled linear gets the
//          activation-weighted clip search (awmse with E[(x/s)²]); the folded norms and scaled
//          biases are stored as F32.
//   awq+gptq  the same AWQ scaling, then GPTQ on the scaled weights with H' = D⁻¹HD⁻¹, D = diag(s).
// With --stats FILE the statistics come from the file and no calibration runs (gptq then uses
// the file's statistics for every block; they are sequential only if the file was saved by a
// sequential run of the same scheme).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lmq/calib/awq.h"
#include "lmq/calib/calib.h"
#include "lmq/calib/gptq.h"
#include "lmq/quant/quantize_model.h"

namespace lmq::calib {

enum class Method { Rtn, Mse, AwMse, Gptq, Awq, AwqGptq };
Method parse_method(const std::string& s);  // rtn | mse | awmse | gptq | awq | awq+gptq (or gptq+awq)
const char* method_name(Method m);

// Replaces GPTQ / AWQ's quantization into lmq's integer schemes for block l (gptq, awq,
// awq+gptq): quantizes the block's linears with their input statistics and puts them, as stored,
// into `stored`, which the pipeline then propagates through. With AWQ, `awq` holds the
// block's scaled weights and column scales: the quantizer takes a linear's scaled weights (and
// scaled_stats) and erases the entries it stored quantized; the pipeline stores what is left as
// F32 (the plan's values). Used to target other formats (calib/gguf_target.h).
using BlockQuantizer = std::function<void(int l, const std::vector<const Tensor*>& linears, const StatsMap& stats,
                                          AwqBlock* awq, Model::Overlay& stored)>;

struct CalibQuantOptions {
  Method method = Method::Rtn;
  std::vector<std::vector<int>> windows;  // calibration windows (empty with stats_in)
  std::string stats_in, stats_out;
  std::map<std::string, std::string> stats_meta;  // written into --save-stats files
  GptqOptions gptq;
  BlockQuantizer block_quantizer;  // gptq, awq, awq+gptq: set → used instead of lmq's integer schemes
  AwqOptions awq;
  RoundTripOf awq_round_trip;  // AWQ's α search: set → each linear's quantizer instead of o's schemes
};

struct CalibQuantReport {
  double calib_seconds = 0, quant_seconds = 0;
  int64_t tokens = 0;
  // per calibrated tensor: tr(ΔHΔᵀ)/2 for the method (gptq_err: GPTQ, AWQ or AWQ+GPTQ) and for
  // RTN of the same scheme (calibration set)
  struct Layer {
    std::string name;
    double gptq_err = 0, rtn_err = 0;
  };
  std::vector<Layer> layers;
  std::vector<AwqGroup> awq_groups;  // awq, awq+gptq: the chosen α per group
};

// Called at each stage: block l of n_layers (l == n_layers: done), what is running.
using BlockProgress = std::function<void(int block, int n_blocks, const std::string& stage)>;

// Fills the plan (importance, prequantized tensors, AWQ's folded norms, biases and float linears)
// and points `o` at it (o.plan; o.scheme's range for mse and awmse) for quantize_model /
// quantize_in_memory. Keep the returned plan alive until then.
std::unique_ptr<QuantPlan> prepare_calibrated(const Model& src, QuantizeOptions& o, const CalibQuantOptions& c,
                                                CalibQuantReport* report = nullptr,
                                                const BlockProgress& progress = {});

}  // namespace lmq::calib
