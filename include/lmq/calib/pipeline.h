// Calibrated quantization of a whole model (`lmq quantize --method`):
//   rtn    the scheme as given (no calibration);
//   mse    the scheme with the MSE clip search (no calibration);
//   awmse  the MSE clip search weighted per input column by E[x_j²] from calibration
//          (activation-weighted clipping, through the plan's importance);
//   gptq   GPTQ (calib/gptq.h) for every linear layer of the decoder blocks whose resolved
//          scheme is an integer one, sequentially: the calibration hidden states are kept
//          between blocks (windows × len × hidden floats), block l's input statistics are
//          gathered by running its float weights on them, its linears are quantized, and the
//          hidden states are then propagated through the QUANTIZED block l, so block l+1 sees
//          the inputs the quantized model will give it. Embeddings and lm_head are quantized as
//          the scheme says (RTN). Each pass over the windows runs one window per thread on an
//          F32 copy of the block through BLAS (BlockRunner's BLAS mode; the statistics pass stops at
//          down_proj's input), and the windows' statistics are merged in window order, so they
//          do not depend on the thread count. With --calib-precision bf16 the block's linears
//          are packed to bf16 instead (half the memory) and run through kernels/gemm_bf16.h
//          (AVX-512 BF16: about twice sgemm's speed; the inputs rounded to bf16, the sums in
//          float); the statistics are still those of the float inputs. Memory: the hidden states plus one block's
//          statistics (all blocks' with --save-stats), and per thread one window's.
//   awq    AWQ (calib/awq.h), sequential like gptq: block l's scales are searched on its input
//          statistics and folded (norms, v_proj, up_proj), then each scaled linear gets the
//          activation-weighted clip search (awmse with E[(x/s)²]); the folded norms and scaled
//          biases are stored as F32.
//   awq+gptq  the same AWQ scaling, then GPTQ on the scaled weights with H' = D⁻¹HD⁻¹, D = diag(s).
// With --stats FILE the statistics come from the file and no calibration runs (gptq then uses
// the file's statistics for every block; they are sequential only if the file was saved by a
// sequential run of the same scheme).
// --asym-calib α (gptq only): GPTQ's asymmetric target (CalibQuantOptions::asym_alpha); an untied
// lm_head whose target is quantized is then calibrated too, last, on the final norm of both streams.
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

inline constexpr const char* kStatsRotationKey = "lmq.stats.rotation";

enum class Method { Rtn, Mse, AwMse, Gptq, Awq, AwqGptq };
Method parse_method(const std::string& s);  // rtn | mse | awmse | gptq | awq | awq+gptq (or gptq+awq)
const char* method_name(Method m);

// The arithmetic of the calibration forward passes' linears (--calib-precision): F32 (sgemm on
// float weights) or Bf16 (inputs and weights rounded to bf16, float sums; kernels/gemm_bf16.h).
// "auto" (the default) is Bf16 where the CPU has AVX-512 BF16 (twice sgemm's speed there, the
// quality within calibration noise: docs/results.md), else F32 (the portable bf16 kernel is
// slower than sgemm). Like sgemm's, whose kernel OpenBLAS picks per CPU, the bits then depend on
// the CPU; `f32` or `bf16` fixes the arithmetic (bf16's bits are the same on every CPU).
enum class CalibPrecision { F32, Bf16 };
CalibPrecision parse_calib_precision(const std::string& s);  // auto | f32 | bf16
const char* calib_precision_name(CalibPrecision p);

struct CalibQuantOptions {
  Method method = Method::Rtn;
  std::vector<std::vector<int>> windows;  // calibration windows (empty with stats_in)
  std::string stats_in, stats_out;
  std::map<std::string, std::string> stats_meta;  // written into --save-stats files
  // stats_meta's key naming the rotation (quant/rotate.h) the statistics were gathered under;
  // absent: none. --stats refuses a file whose rotation is not this run's.
  std::string target_name;  // recorded as lmq.stats.sequential = METHOD:TARGET ("int4:g128:...", "gguf")
  GptqOptions gptq;
  bool hessian_fit = false;  // ggml targets, gptq and awq+gptq: block scales fitted weighted by diag(H)
  AwqOptions awq;
  CalibPrecision precision = CalibPrecision::F32;
  // gptq (lmq schemes and ggml types): GPTQ's asymmetric target (gptq_asymmetric_target in
  // calib/gptq.h). A second stream of hidden states runs through the float blocks beside the
  // quantized one, each linear's cross statistic pairs their inputs, and the quantized stream
  // starts from the embedding rows as the plan stores them (so block 0 sees the embedding's
  // rounding too). Twice the hidden states and forward passes, one more K × K statistic per input.
  // GPTQ then quantizes W + asym_alpha·(W* − W): 0 is off, 1 the whole target (GPTAQ's own code
  // scales its correction by 0.25).
  double asym_alpha = 0;
  bool asymmetric() const { return asym_alpha > 0; }
};

struct CalibQuantReport {
  double calib_seconds = 0, quant_seconds = 0;  // wall: the passes over the windows; the methods
  // Where the CPU went, in seconds summed over the threads (the phases overlap): the blocks'
  // forward passes, accumulating the Hessians (XᵀX and its merges), GPTQ's inverse Hessians
  // (Cholesky/inverse, one thread each), the methods' column sweeps and fits, and the error
  // report (tr(ΔHΔᵀ) of the method and of its RTN reference).
  struct Phases {
    double forward = 0, hessian = 0, solve = 0, sweep = 0, report = 0;
  };
  Phases cpu;
  int64_t tokens = 0;
  bool asymmetric = false;  // --asym-calib ran: the errors below are against the original weights
  // per calibrated tensor: tr(ΔHΔᵀ)/2 for the method (gptq_err: GPTQ, AWQ or AWQ+GPTQ) and for
  // RTN of the same scheme (calibration set), both from the same rows: every one when there are
  // at most kReportRows, else evenly spaced ones (err_rows of rows; an estimate)
  static constexpr int64_t kReportRows = 512;
  struct Layer {
    std::string name;
    double gptq_err = 0, rtn_err = 0;
    int64_t rows = 0, err_rows = 0;
  };
  std::vector<Layer> layers;
  std::vector<AwqGroup> awq_groups;  // awq, awq+gptq: the chosen α per group
};

// Called at each stage: block l of n_layers (l == n_layers: done), what is running.
using BlockProgress = std::function<void(int block, int n_blocks, const std::string& stage)>;

// The peak memory prepare_calibrated needs, estimated from the shapes before any work: the
// windows' hidden states (kept between blocks), the calibrated linears' bytes the plan holds
// (until the writer runs; with a spill file, QuantPlan::spill, only the block's being worked
// on — the rest are `spilled`, on disk), and the largest of one block's phases: statistics (the block's F32
// copy, or bf16 with CalibPrecision::Bf16, each key's double accumulator, each thread's float batch and activations, the finished
// Hessians), the method (GPTQ's state of the `threads` largest linears side by side), and the
// propagation pass. Zero for rtn and mse.
struct CalibMemory {
  uint64_t hidden = 0, plan = 0, block = 0;
  uint64_t spilled = 0;  // the plan's bytes moved to its spill file (disk, not memory)
  uint64_t total() const { return hidden + plan + block; }
};
CalibMemory estimate_calibration_memory(const Model& m, const QuantPlan& plan, Method method, int64_t windows,
                                        int64_t window_len, int threads,
                                        CalibPrecision precision = CalibPrecision::F32, bool asymmetric = false);

// The embedding rows of `tokens` (tokens.size() × hidden floats) as the plan's writer stores
// them: the writers quantize an embedding row by row (a ggml type with the weighted fit of a
// calibrated plan, every column's importance 1; an lmq scheme per channel or in groups), so each
// row is its own. The asymmetric target's quantized stream starts from them. Throws lmq::Error
// for a token outside the vocabulary or an lmq scheme per tensor.
std::vector<float> embedding_as_stored(const Model& m, const QuantPlan& plan, const std::vector<int>& tokens);

// Fills the plan's bytes, float values and importance (AWQ's folded norms, biases and float
// linears) for its targets, block by block. One per-linear loop serves both sinks: a linear
// whose target is an lmq integer scheme is quantized by gptq_quantize / quantize_tensor, one
// whose target is a ggml block type by gptq_quantize_ggml / ggml_round_trip (calib/gguf_target.h);
// other targets (floats) are left to the writer. mse, awmse: lmq targets get the MSE range search
// (use_mse), a GGUF plan the weighted fit (plan.weighted).
void prepare_calibrated(const Model& src, QuantPlan& plan, const CalibQuantOptions& c,
                        CalibQuantReport* report = nullptr, const BlockProgress& progress = {});

}  // namespace lmq::calib
