// Calibration: token windows drawn from a text, and per-linear input statistics gathered by
// running the model over them (Runner's observer).
//
// Windows. ids = encode(text) (no BOS); the stream offers S = len(ids) − (L−1) + 1 possible
// starts. N windows = [BOS] + ids[start_k : start_k + L − 1] with start_k evenly spaced over
// the possible starts: start_k = floor(k · (S − 1) / max(N − 1, 1)) (so the first window starts
// at the beginning of the text and the last one ends at its end). Deterministic, no RNG; when
// the text holds fewer than N·(L−1) tokens the windows overlap. A text shorter than one window
// is an error.
//
// Statistics of one linear layer's input x (K values per token, n tokens in all):
//   hessian  H = 2·Σ x xᵀ / n   (K × K; Σ accumulated per forward call (one window) in float by
//                                 BLAS ssyrk, then added into a double accumulator)
//   mean_abs = Σ|x| / n,  sq_mean = Σ x² / n (= diag(H)/2),  min, max   (per input column)
//   cross    C = 2·Σ x r ᵀ / n  (K × K, only when each batch comes with a reference input r: the
//                                 float model's input of the same linear at the same token, for
//                                 GPTQ's asymmetric target, calib/gptq.h; not saved in stats files)
// Layers that read the same input share one statistic, keyed by the first of them:
// q/k/v_proj → "…self_attn.q_proj", gate/up_proj → "…mlp.gate_proj" (stat_key()).
//
// Stats file (--save-stats / --stats): a safetensors file of F32 tensors "<key>.hessian" [K,K],
// "<key>.mean_abs", "<key>.sq_mean", "<key>.min", "<key>.max" [K]; metadata "<key>.tokens"
// (n) and "lmq.stats.*" (model, calibration text, windows, and whether the statistics were
// gathered sequentially through an already-quantized model, in which case they belong to that
// scheme). Written through AtomicFile.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lmq/model/model.h"

namespace lmq::calib {

struct CalibOptions {
  int samples = 128;  // N windows
  int len = 512;      // L tokens per window, BOS included
};

std::vector<std::vector<int>> calib_windows(const Tokenizer& tok, const std::string& text, int samples, int len,
                                            int bos);

// Throws lmq::Error when the calibration text is the evaluation text: the same file (canonical
// path) or the same content (hash and size). Commands that take both call it unless the user
// passed --allow-calib-overlap.
void check_no_overlap(const std::string& calib_path, const std::string& eval_path);

// The statistic key of a linear weight's input (see above); other names map to themselves.
std::string stat_key(const std::string& weight_name);

struct InputStats {
  int64_t K = 0, tokens = 0;
  std::vector<float> hessian;  // K × K, row-major, symmetric
  std::vector<float> cross;    // K × K, row-major, C[i][j] = 2·Σ x_i r_j / n; empty without references
  std::vector<float> mean_abs, sq_mean, min, max;
};

// One batch of rows' share of the statistics (XᵀX's upper triangle in float by ssyrk, column
// sums in double). Computed in any thread and merged into an accumulator in a fixed order, the
// totals do not depend on which thread computed which batch.
struct StatsBatch {
  int64_t K = 0, n = 0;
  std::vector<float> xtx;  // K × K, upper triangle set
  std::vector<float> xtr;  // K × K, Xᵀ R (empty without a reference)
  std::vector<double> sum_abs, sum_sq;
  std::vector<float> min, max;
  // x: rows × cols; ref: the reference inputs (rows × cols) or null
  void compute(const float* x, int rows, int64_t cols, const float* ref = nullptr);
};

// Accumulates one input's statistics.
class StatsAccumulator {
 public:
  explicit StatsAccumulator(int64_t K);
  void add(const float* x, int n);  // x: n × K; = merge of one batch
  void merge(const StatsBatch& b);
  InputStats finish() const;
  int64_t K() const { return K_; }

 private:
  int64_t K_, n_ = 0;
  std::vector<double> xtx_;  // upper triangle used
  std::vector<double> xtr_;  // allocated by the first batch with a reference
  StatsBatch tmp_;
  std::vector<double> sum_abs_, sum_sq_;
  std::vector<float> min_, max_;
};

using StatsMap = std::map<std::string, InputStats>;  // key → stats

// Collects the statistics of the inputs of the linear layers whose weight name `want` accepts
// (nullptr: all) over the windows by running the model; returns them by stat_key.
StatsMap collect_stats(const Model& m, const std::vector<std::vector<int>>& windows,
                       const std::function<bool(const std::string&)>& want = {});

// Stats file I/O. save_stats streams the tensors in key order; load_stats reads them all.
void save_stats(const std::string& path, const StatsMap& stats, const std::map<std::string, std::string>& meta);
StatsMap load_stats(const std::string& path, std::map<std::string, std::string>* meta = nullptr);

// The statistic for a weight (by stat_key), or nullptr.
const InputStats* find_stats(const StatsMap& s, const std::string& weight_name);

}  // namespace lmq::calib
