// The main job: quantize one float model into a set of schemes, evaluate every result against
// the float model on the same windows, and report what each bit costs — as a table, JSON and
// an SVG chart of bits per weight against KLD and speed.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lmq/eval/evaluate.h"
#include "lmq/eval/reference_points.h"
#include "lmq/model/model.h"

namespace lmq {

struct SweepRow {
  std::string scheme, file;
  uint64_t file_bytes = 0, tensor_bytes = 0;
  double bpw = 0, ppl = 0, dppl_pct = 0, kld_mean = 0, kld_p99 = 0, kld_max = 0, top1 = 0;
  double quantize_seconds = 0, prefill_tok_s = 0, decode_tok_s = 0;
  // With dynamic int8 activations (--act-quant dynamic), for files whose linears can run on the
  // integer kernels (LMQ_INT weights with groups of multiples of 32); 0 for the others.
  double prefill_a8_tok_s = 0, decode_a8_tok_s = 0;
};

struct SweepOptions {
  std::vector<std::string> schemes;  // scheme strings, as for `lmq quantize --scheme`
  std::string out_dir;               // where the quantized files go
  bool bench = true;                 // measure decode/prefill speed of each file
};

struct SweepResult {
  std::string base_path, text;
  std::string protocol = "lmq";  // how the windows were cut and scored (lmq eval --protocol)
  int ctx = 0, windows = 0;
  int64_t tokens_scored = 0;
  double base_ppl = 0, base_bpw = 0;
  std::vector<SweepRow> rows;
  std::optional<ReferenceSet> reference;  // other tools' figures (--reference): in the JSON and the chart
};

// The default set: float storage, int8 per channel, and int6..int2 over granularities,
// sym/asym and min/max vs MSE clipping; `full` adds more group sizes and percentile clipping.
std::vector<std::string> default_sweep_schemes(bool full);

using SweepProgress = std::function<void(const std::string& stage)>;
SweepResult run_sweep(const Model& base, const Windows& windows, const std::string& text_name, const SweepOptions& o,
                      const SweepProgress& progress = {});

// For each row: on the Pareto frontier of bits per weight and mean KLD (no other row is no larger
// on both and smaller on one). The table marks these rows with *, the JSON with "pareto": true.
std::vector<bool> sweep_frontier(const SweepResult& r);
std::string sweep_table(const SweepResult& r);
std::string sweep_json(const SweepResult& r);
// The chart (sweep.svg) is in lmq/eval/sweep_chart.h.

}  // namespace lmq
