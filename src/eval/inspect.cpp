#include "lmq/eval/inspect.h"

#include <algorithm>
#include <cmath>


namespace lmq {

std::string tensor_group(const std::string& name) {
  if (name.find("embed_tokens") != std::string::npos) return "embeddings";
  if (name.find("lm_head") != std::string::npos) return "lm_head";
  if (name.find("norm") != std::string::npos) return "norms";
  if (name.find("self_attn") != std::string::npos) return "attention";
  if (name.find("mlp") != std::string::npos) return "mlp";
  return "other";
}

namespace {

// Two passes over the values (a row chunk at a time, never the whole tensor as float):
// moments first, then the count beyond 6 standard deviations.
void fill_stats(const Tensor& t, TensorStats& s) {
  const int64_t R = t.rows(), K = t.cols(), chunk = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(K, 1));
  std::vector<float> buf(size_t(chunk * K));
  double sum = 0, sq = 0, mn = INFINITY, mx = -INFINITY;
  for (int64_t r = 0; r < R; r += chunk) {
    const int64_t n = std::min(chunk, R - r);
    dequantize_rows(t, r, n, buf.data());
    for (int64_t i = 0; i < n * K; ++i) {
      const double v = buf[size_t(i)];
      sum += v, sq += v * v;
      mn = std::min(mn, v), mx = std::max(mx, v);
    }
  }
  const double N = double(t.numel());
  s.min = mn, s.max = mx, s.absmax = std::max(std::fabs(mn), std::fabs(mx));
  s.mean = sum / N;
  s.std = std::sqrt(std::max(0.0, sq / N - s.mean * s.mean));
  int64_t out = 0;
  for (int64_t r = 0; r < R; r += chunk) {
    const int64_t n = std::min(chunk, R - r);
    dequantize_rows(t, r, n, buf.data());
    for (int64_t i = 0; i < n * K; ++i) out += std::fabs(buf[size_t(i)] - s.mean) > 6 * s.std;
  }
  s.outlier_share = double(out) / N;
}

}  // namespace

InspectReport inspect_model(const Model& m, bool with_stats) {
  InspectReport r;
  for (const Tensor& t : m.tensors()) {
    TensorStats s;
    s.name = t.name;
    s.group = tensor_group(t.name);
    s.format = tensor_format_label(t);
    s.shape = t.shape;
    s.params = uint64_t(t.numel());
    s.bytes = t.nbytes;
    if (with_stats) fill_stats(t, s);
    r.params += s.params;
    r.group_params[s.group] += s.params;
    r.format_counts[s.format]++;
    r.tensors.push_back(std::move(s));
  }
  return r;
}

}  // namespace lmq
