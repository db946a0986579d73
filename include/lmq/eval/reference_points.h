// Other tools' (bits per weight, mean KLD) figures to draw beside a sweep's own (`lmq sweep
// --reference FILE`), and the check that they were measured as the sweep measures: the same model,
// text, protocol, window length and number of windows. Two shapes are read (docs/chart.md):
// llama.cpp figures as in shared/gguf/llamacpp.json, and lmq's "lmq-reference/1" that a user
// writes by hand from their own `llama-perplexity --kl-divergence` runs.
#pragma once
#include <string>
#include <vector>

namespace lmq {

struct ReferencePoint {
  std::string label;  // e.g. llama.cpp's type name
  double bpw = 0, kld_mean = 0;
};

struct ReferenceSet {
  std::string tool;  // who measured, for the legend
  std::string path;  // the file it came from
  std::vector<ReferencePoint> points;
};

// How the sweep measures.
struct Measurement {
  std::string model;     // the base model's name (model_name of its path)
  std::string text;      // the text's file name, without folders
  std::string protocol;  // "lmq" or "llamacpp" (lmq eval --protocol)
  int ctx = 0, windows = 0;
};

// A model's name from its path: the directory's name, or the file's name without its extension.
std::string model_name(const std::string& path);

// Reads `path` and keeps the points of m.model; fails with one line naming the file when it is
// malformed, has no points for the model, or was measured on another text or protocol.
ReferenceSet load_reference(const std::string& path, const Measurement& m);

}  // namespace lmq
