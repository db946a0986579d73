// Perplexity and distance-to-base evaluation under two protocols.
//   lmq (the shared references' protocol): ids = encode(whole text), no BOS; window k =
//     [BOS] + ids[k·(ctx−1) : (k+1)·(ctx−1)] for every whole window; all ctx−1 next-token
//     predictions of a window are scored.
//   llamacpp (llama-perplexity): ids = [BOS] + encode(text); chunk k = ids[k·ctx : (k+1)·ctx]
//     with its first token set to BOS; only the second half (positions ctx/2 .. ctx−2
//     predicting ctx/2+1 .. ctx−1) is scored.
// With a base model, both models run on the same windows in the same pass, and at every scored
// position the KL divergence KL(base ‖ model) and argmax agreement are taken (no logit files).
// The models run with `run` (activation quantization, KV type); the base with the same options
// but always the f32 KV cache.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lmq/model/model.h"
#include "lmq/model/run_options.h"

namespace lmq {

enum class Protocol { Lmq, LlamaCpp };
Protocol parse_protocol(const std::string& s);

struct Windows {
  std::vector<std::vector<int>> ids;  // each window's input tokens
  int score_from = 0;                 // first position whose next-token prediction is scored
};

// The first `need` tokens (at least) of encode(text), encoding only a prefix of the text when
// that is enough; need ≤ 0 encodes everything.
std::vector<int> encode_prefix(const Tokenizer& tok, const std::string& text, int64_t need);
// Cuts the token stream of a text into windows; max_windows ≤ 0 means all whole windows.
// text_name (the file it came from) starts the error when the text is shorter than one window.
Windows make_windows(const Tokenizer& tok, const std::string& text, Protocol p, int ctx, int bos, int max_windows,
                     const std::string& text_name = "text");

struct EvalResult {
  int windows = 0;
  int64_t tokens_scored = 0;
  double mean_nll = 0, ppl = 0;
  std::vector<double> window_nll;  // mean NLL per window
  // with a base model:
  bool has_base = false;
  double base_mean_nll = 0, base_ppl = 0;
  double kld_mean = 0, kld_p99 = 0, kld_max = 0, top1_agreement = 0;
  std::vector<double> base_window_nll;
};

using Progress = std::function<void(int done, int total)>;
EvalResult evaluate(const Model& model, const Model* base, const Windows& w, const Progress& progress = {},
                    const RunOptions& run = {});
// Several models on the same windows against one base, which runs once per window.
std::vector<EvalResult> evaluate_models(const std::vector<const Model*>& models, const Model* base, const Windows& w,
                                        const Progress& progress = {}, const RunOptions& run = {});

// The mean KLD of each model from the base on the windows, every position scored (what
// calib::measure_sensitivity's probes need: calib::KldOfModels).
std::vector<double> kld_means(const std::vector<const Model*>& models, const Model& base,
                              const std::vector<std::vector<int>>& windows);

}  // namespace lmq
