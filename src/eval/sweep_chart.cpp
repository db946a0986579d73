#include "lmq/eval/sweep_chart.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>

namespace lmq {
namespace {

// A KLD this small is float rounding, not quantization (f16 storage of a bf16 model measures ~1e-8):
// such rows go in the band under the log axis with their value in the label, so that the axis spans
// the quantized schemes instead of eight decades.
constexpr double kLosslessBelow = 1e-6;
bool lossless(double kld) { return kld < kLosslessBelow; }

// 1.1e-8, not 1.1e-08.
std::string small(double v) {
  std::string s = fmt::format("{:.1e}", v);
  const size_t e = s.find("e-0");
  return e == std::string::npos ? s : s.erase(e + 2, 1);
}

// The quality panel's series: how a scheme stores its weights.
enum Family { kSym, kAsym, kMse, kPct, kFloat, kReference };

Family family(const std::string& scheme) {
  auto has = [&](const char* s) { return scheme.find(s) != std::string::npos; };
  if (scheme.rfind("int", 0) != 0) return kFloat;
  if (has(":mse")) return kMse;
  if (has(":pct")) return kPct;
  return has(":asym") ? kAsym : kSym;
}

// The scheme as a user writes it: without the default clipping and storage suffixes.
std::string short_label(const std::string& scheme) {
  std::string s = scheme.substr(0, scheme.find(":s="));
  const std::string minmax = ":minmax";
  if (s.size() > minmax.size() && s.compare(s.size() - minmax.size(), minmax.size(), minmax) == 0)
    s.resize(s.size() - minmax.size());
  return s;
}

chart::Axis bpw_axis(const SweepResult& r, const ReferenceSet* ref) {
  std::vector<double> lossy, all;
  for (const SweepRow& x : r.rows) {
    all.push_back(x.bpw);
    if (!lossless(x.kld_mean)) lossy.push_back(x.bpw);
  }
  if (ref)
    for (const ReferencePoint& p : ref->points) lossy.push_back(p.bpw);
  // Lossless float rows (16 bits) would squeeze the quantized ones into a fifth of the width:
  // they sit on the axis's edge, labelled with their bits per weight.
  return chart::fit_axis("bits per weight (all parameters)", lossy.empty() ? all : lossy, false, 0.06);
}

bool off_axis(const chart::Axis& a, double x) { return x < a.lo || x > a.hi; }

std::string point_label(const SweepRow& x, const chart::Axis& a) {
  std::string s = short_label(x.scheme);
  std::vector<std::string> more;
  if (off_axis(a, x.bpw)) more.push_back(fmt::format("{:.2f} bpw", x.bpw));
  if (lossless(x.kld_mean)) more.push_back(x.kld_mean == 0 ? "KLD 0" : "KLD " + small(x.kld_mean));
  return more.empty() ? s : fmt::format("{} ({})", s, fmt::join(more, ", "));
}

chart::Panel quality_panel(const SweepResult& r, const ReferenceSet* ref, const std::vector<bool>& front) {
  chart::Panel p;
  p.id = "quality";
  p.title = "Quality: mean KL divergence to the float model, by size";
  p.x = bpw_axis(r, ref);
  std::vector<double> klds;
  bool all_zero = true;
  for (const SweepRow& x : r.rows) {
    if (!lossless(x.kld_mean))
      klds.push_back(x.kld_mean);
    else
      all_zero = all_zero && x.kld_mean == 0;
  }
  if (ref) {
    for (const ReferencePoint& q : ref->points) {
      if (!lossless(q.kld_mean))
        klds.push_back(q.kld_mean);
      else
        all_zero = all_zero && q.kld_mean == 0;
    }
  }
  p.y = chart::fit_axis("mean KLD to the float model (log scale)", klds, true, 0.06);
  p.zero_below = kLosslessBelow;
  p.zero_label = all_zero ? "0 (lossless)" : "≈ 0 (< 1e-6)";
  p.series = {{"symmetric, min/max", "#2ca02c"},   {"asymmetric, min/max", "#1f77b4"},
              {"MSE-optimal clipping", "#d62728"}, {"percentile clipping", "#9467bd"},
              {"float storage", "#666666"},        {ref ? ref->tool : "", "#e07b00", chart::Marker::Diamond}};
  std::vector<std::pair<double, double>> line;
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const SweepRow& x = r.rows[i];
    p.points.push_back(
        {x.bpw, x.kld_mean, family(x.scheme), point_label(x, p.x), std::to_string(i + 1),
         fmt::format("{}: {:.3f} bpw, KLD mean {:.6f}, top-1 {:.4f}", x.scheme, x.bpw, x.kld_mean, x.top1),
         bool(front[i])});
    if (front[i]) line.push_back({x.bpw, x.kld_mean});
  }
  if (ref)
    for (size_t k = 0; k < ref->points.size(); ++k) {
      const ReferencePoint& q = ref->points[k];
      p.points.push_back({q.bpw, q.kld_mean, kReference, q.label, fmt::format("r{}", k + 1),
                          fmt::format("{} {}: {:.3f} bpw, KLD mean {:.6f}", ref->tool, q.label, q.bpw, q.kld_mean)});
    }
  std::sort(line.begin(), line.end(),
            [](auto a, auto b) { return a.first != b.first ? a.first < b.first : a.second > b.second; });
  p.lines.push_back({"Pareto frontier (lmq schemes)", "#333333", line, false});
  return p;
}

bool has_speed(const SweepResult& r) {
  return std::any_of(r.rows.begin(), r.rows.end(), [](const SweepRow& x) { return x.decode_tok_s > 0; });
}

chart::Panel speed_panel(const SweepResult& r, const chart::Axis& bpw) {
  chart::Panel p;
  p.id = "speed";
  p.title = "Speed: decode tokens per second, by size";
  p.x = bpw;
  p.height = 240;
  p.series = {{"float activations", "#555555"}, {"int8 activations (A8)", "#c07000", chart::Marker::Square}};
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const SweepRow& x = r.rows[i];
    const std::string label = short_label(x.scheme), number = std::to_string(i + 1);
    for (int a8 = 0; a8 < 2; ++a8) {
      const double v = a8 ? x.decode_a8_tok_s : x.decode_tok_s;
      if (v <= 0) continue;
      const std::string what = a8 ? "int8 activations" : "float activations";
      if (off_axis(bpw, x.bpw))
        p.hlines.push_back({v, fmt::format("{} ({:.2f} bpw{}): {:.1f} tok/s", label, x.bpw, a8 ? ", A8" : "", v),
                            p.series[size_t(a8)].color});
      else
        p.points.push_back({x.bpw, v, a8, label, number,
                            fmt::format("{}, {}: {:.1f} tok/s decode, {:.1f} tok/s prefill", x.scheme, what, v,
                                        a8 ? x.prefill_a8_tok_s : x.prefill_tok_s)});
    }
  }
  std::vector<double> speeds;
  for (const chart::Point& q : p.points) speeds.push_back(q.y);
  for (const chart::HLine& h : p.hlines) speeds.push_back(h.y);
  p.y = chart::fit_axis("decode tok/s (log scale)", speeds, true, 0.08);
  return p;
}

std::vector<std::string> notes(const SweepResult& r, const ReferenceSet* ref, const chart::Axis& bpw) {
  std::vector<std::string> n = {
      "Pareto frontier: the schemes no other scheme here beats on both bits per weight and KLD (marked * in "
      "sweep.txt, \"pareto\": true in sweep.json)."};
  std::vector<std::string> zero, tiny, beyond;
  for (const SweepRow& x : r.rows) {
    if (x.kld_mean == 0)
      zero.push_back(short_label(x.scheme));
    else if (lossless(x.kld_mean))
      tiny.push_back(fmt::format("{} {}", short_label(x.scheme), small(x.kld_mean)));
    if (off_axis(bpw, x.bpw)) beyond.push_back(short_label(x.scheme));
  }
  if (!zero.empty())
    n.push_back(
        fmt::format("KLD exactly 0: {} reproduce{} the float model's predictions exactly; a log axis has no 0, "
                    "so {} in the band under it.",
                    fmt::join(zero, ", "), zero.size() == 1 ? "s" : "", zero.size() == 1 ? "it sits" : "they sit"));
  if (!tiny.empty())
    n.push_back(
        fmt::format("KLD below 1e-6 ({}): float rounding, not quantization; drawn in the band under the log "
                    "axis, not on an axis stretched down to it.",
                    fmt::join(tiny, ", ")));
  if (!beyond.empty())
    n.push_back(
        fmt::format("{} lie{} beyond the bits-per-weight axis: a chevron on its edge points to where, the "
                    "label gives the value.",
                    fmt::join(beyond, ", "), beyond.size() == 1 ? "s" : ""));
  if (ref)
    n.push_back(fmt::format("Diamonds: {} ({} points from {}), measured on the same text with the same protocol.",
                            ref->tool, ref->points.size(), std::filesystem::path(ref->path).filename().string()));
  n.push_back(has_speed(r) ? "Speed: lmq bench on this machine, 64 decode steps after a 128-token prompt; A8 = dynamic "
                             "int8 activations on the integer kernels (the LMQ_INT schemes)."
                           : "Speed: not measured (--no-bench).");
  return n;
}

}  // namespace

chart::Rendered sweep_chart(const SweepResult& r) {
  const ReferenceSet* ref = r.reference ? &*r.reference : nullptr;
  chart::Chart c;
  c.title = fmt::format("What each bit costs: {} on {} ({} protocol, {} windows of {}, {} tokens scored)",
                        model_name(r.base_path), std::filesystem::path(r.text).filename().string(), r.protocol,
                        r.windows, r.ctx, r.tokens_scored);
  const std::vector<bool> front = sweep_frontier(r);
  c.panels.push_back(quality_panel(r, ref, front));
  if (has_speed(r)) c.panels.push_back(speed_panel(r, c.panels.front().x));
  c.notes = notes(r, ref, c.panels.front().x);
  return chart::render(c);
}

}  // namespace lmq
