// Automatic mixed precision (`lmq quantize --target-bpw X`): one integer scheme per tensor,
// chosen from a candidate set so that the summed sensitivity is smallest while the whole file's
// bits per weight (8 · tensor bytes / params, over all tensors: embeddings and lm_head take
// part; norms and biases stay F32 and count as fixed bytes) stays ≤ X.
//
// Candidates (asymmetric, f16 scales; the method's range search — mse, gptq, awq — is applied
// afterwards as for any scheme): int2:g32 int2:g64 int3:g32 int3:g64 int3:g128 int4:g32 int4:g64
// int4:g128 int5:g64 int5:g128 int6:g128 int8:g128.
//
// Sensitivity of tensor t at candidate c, from calibration data:
//   e_t(c) = Σ_ij E[x_j²]·(w_ij − w'_ij)²   (the output error per token with the cross terms of
//            XXᵀ dropped; w' = RTN of c). Embedding: rows weighted by the calibration token
//            frequencies instead (a row's error reaches the residual stream once per use); a tied
//            embedding adds its lm_head error (inputs: the final norm's outputs).
//   Errors of different tensors live in different spaces, so each tensor is put on the scale of
//   the model's output by one probe: KLD_t = the mean KLD(float ‖ model) on the probe windows with
//   t alone quantized at int3:g128, and sens_t(c) = KLD_t · e_t(c) / e_t(int3:g128).
// Allocation: an exact multiple-choice knapsack by dynamic programming over sizes in units of
// (largest total)/20000, each tensor's size rounded UP and the budget DOWN, so the real total is
// never above the target; ties go to the first candidate, so the result is deterministic, and a
// higher target never gives a higher summed sensitivity (its feasible set contains the lower's).
//
// GGUF output (`--format gguf --target-bpw X`): the candidates are ggml block types instead:
// every quantized GGUF type of the format table that lmq writes, by the bits in its name (today
// iq1_s iq1_m q2_k iq2_xxs iq2_xs iq2_s q3_k iq3_xxs iq3_s q4_0 q4_1 q4_k iq4_nl iq4_xs q5_0 q5_1 q5_k q6_k
// q8_0), their exact block bytes, RTN = the format table's quantizer (llama.cpp's reference
// quantizer for the K-quants and legacy types, lmq's search for the i-quants), probe q3_k. A
// type whose block does not divide a tensor's row length (K-quants and the 256-value i-quants
// need multiples of 256) is not a candidate for that tensor (bytes kNotCandidate, sensitivity ∞,
// null in sensitivity files): it chooses among the 32-value types, as llama.cpp's fallback
// would store it; that tensor's probe is q4_0. Tensors whose rows are not whole 32-value
// blocks stay at the export's fallback type (fixed bytes).
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "lmq/quant/gguf_export.h"
#include "lmq/model/model.h"
#include "lmq/quant/quantize_model.h"

namespace lmq::calib {

// One way to store a tensor: an lmq integer scheme or a ggml block type.
struct MixedCandidate {
  std::string label;                // "int4:g128:asym:s=f16", "q4_K": sensitivity files, the table
  std::string family;               // the table's summary rows: "int4", "q4_K"
  Format format = Format::LMQ_INT;  // LMQ_INT: `scheme`; else the ggml type
  quant::Scheme scheme;
};
std::vector<MixedCandidate> mixed_candidates();       // lmq's integer schemes
std::vector<MixedCandidate> gguf_mixed_candidates();  // ggml block types

constexpr uint64_t kNotCandidate = std::numeric_limits<uint64_t>::max();  // bytes of a type that does not fit

struct MixedTensor {
  const Tensor* t = nullptr;
  std::vector<uint64_t> bytes;  // per candidate (kNotCandidate: not possible for this tensor)
  std::vector<double> sens;     // per candidate (after measure_sensitivity)
  double probe_kld = 0;
  int probe = -1;  // the candidate of the KLD probe
};

struct MixedProblem {
  std::vector<MixedCandidate> candidates;
  std::vector<MixedTensor> tensors;  // those that take part
  uint64_t fixed_bytes = 0, params = 0;  // fixed: norms, biases, tensors under a user --override
  // candidates a loaded sensitivity file has no measurement of (saved by an lmq with fewer
  // candidates): no tensor may take them (bytes kNotCandidate)
  std::vector<std::string> unmeasured;
  bool measured(size_t c) const;
  double min_bpw() const;
  double max_bpw() const;
};

// The tensors of m whose plan target is not fixed (2-D, not chosen by a user --override) and
// their candidate sizes: lmq's integer schemes, or ggml block types for a GGUF plan.
MixedProblem mixed_problem(const Model& m, const QuantPlan& plan);

// Throws "--target-bpw X: …" unless min_bpw ≤ X ≤ max_bpw (NaN and infinities included).
void check_target(const MixedProblem& p, double target_bpw);

struct SensitivityOptions {
  int stat_windows = 8;    // windows for E[x²] and token frequencies
  int probe_windows = 2;   // windows (of probe_len tokens) for the KLD probes
  int probe_len = 128;
  int threads = 0;
};
// The mean KL divergence of each model from the base over the windows (every position scored):
// the evaluation the probes need, given by the caller (eval::kld_means) because calibration
// sits below evaluation.
using KldOfModels = std::function<std::vector<double>(const std::vector<const Model*>& models, const Model& base,
                                                      const std::vector<std::vector<int>>& windows)>;
// Fills every tensor's sens from the calibration windows (see above).
void measure_sensitivity(const Model& m, MixedProblem& p, const std::vector<std::vector<int>>& windows,
                         const SensitivityOptions& o, const KldOfModels& kld);

// --save-sensitivity / --sensitivity: the measured sens and probe KLDs as JSON (candidate names,
// then per tensor), so several targets can share one measurement. Loading matches candidates by
// name: one the file lacks (saved before the lattice i-quants were GGUF candidates) is left out
// of the allocation (MixedProblem::unmeasured, noted in allocation_table); one this run does not
// have (the other output format, another lmq) refuses the file. Every tensor of the problem
// must be there.
void save_sensitivity(const std::string& path, const MixedProblem& p);
void load_sensitivity(const std::string& path, MixedProblem& p);

struct Allocation {
  std::vector<int> pick;  // candidate index per tensor
  uint64_t bytes = 0;     // all tensors, fixed included
  double bpw = 0, sens = 0;
};
Allocation allocate(const MixedProblem& p, double target_bpw);

// Sets the plan's target of every allocated tensor (an lmq scheme or a ggml type).
void apply_allocation(const MixedProblem& p, const Allocation& a, QuantPlan& plan);

// The allocation as text: one line per tensor, then tensors / params / bits per bit width.
std::string allocation_table(const MixedProblem& p, const Allocation& a);

}  // namespace lmq::calib
