#include "lmq/eval/sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lmq/error.h"
#include "lmq/eval/bench.h"
#include "lmq/kernels/act_quant.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/quant/quantize_model.h"

namespace lmq {

std::vector<std::string> default_sweep_schemes(bool full) {
  std::vector<std::string> s = {
      "f16",
      "int8:channel:sym",
      "int6:channel:sym",
      "int5:g64:asym",
      "int4:channel:sym",
      "int4:g128:sym",
      "int4:g128:asym",
      "int4:g128:asym:mse",
      "int4:g32:asym:mse",
      "int3:g128:asym",
      "int3:g128:asym:mse",
      "int3:g64:asym:mse",
      "int2:g64:asym",
      "int2:g64:asym:mse",
      "int2:g32:asym:mse",
  };
  if (full) {
    for (const char* x : {"bf16", "int8:tensor:sym", "int8:g128:asym", "int6:g64:asym", "int5:channel:sym",
                          "int4:g64:asym", "int4:g256:asym:mse", "int4:g128:sym:mse", "int4:g128:asym:pct99.9",
                          "int3:g32:asym:mse", "int3:channel:sym:mse", "int2:g128:asym:mse", "int2:g16:asym:mse"})
      s.push_back(x);
  }
  return s;
}

namespace {
std::string file_name_for(const std::string& scheme) {
  std::string f;
  for (char c : scheme) f += (std::isalnum(static_cast<unsigned char>(c)) || c == '.') ? c : '-';
  return f + ".lmq";
}
}  // namespace

SweepResult run_sweep(const Model& base, const Windows& windows, const std::string& text_name, const SweepOptions& o,
                      const SweepProgress& progress) {
  if (o.schemes.empty()) fail("sweep: no schemes");
  std::vector<quant::Scheme> schemes;
  for (const auto& s : o.schemes) schemes.push_back(quant::parse_scheme(s));  // all errors before any work
  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  if (ec) fail("{}: cannot create the output directory: {}", o.out_dir, ec.message());

  SweepResult r;
  r.base_path = base.path();
  r.text = text_name;
  r.base_bpw = 8.0 * double(base.tensor_bytes()) / double(base.param_count());
  std::vector<std::unique_ptr<Model>> models;
  for (size_t i = 0; i < schemes.size(); ++i) {
    if (progress) progress(fmt::format("quantizing {}/{}: {}", i + 1, schemes.size(), o.schemes[i]));
    QuantizeOptions q;
    q.scheme = schemes[i];
    q.provenance["lmq.source"] = base.path();
    SweepRow row;
    row.scheme = schemes[i].to_string();
    row.file = (std::filesystem::path(o.out_dir) / file_name_for(o.schemes[i])).string();
    QuantizeReport qr = quantize_model(base, row.file, q);
    row.file_bytes = qr.file_bytes;
    row.tensor_bytes = qr.tensor_bytes;
    row.bpw = qr.bpw;
    row.quantize_seconds = qr.seconds;
    models.push_back(Model::load(row.file));  // evaluate what is on disk
    r.rows.push_back(row);
  }
  std::vector<const Model*> ptrs;
  for (const auto& m : models) ptrs.push_back(m.get());
  const std::vector<EvalResult> ev = evaluate_models(ptrs, &base, windows, [&](int done, int total) {
    if (progress) progress(fmt::format("evaluating window {}/{}", done, total));
  });
  r.windows = ev.front().windows;
  r.tokens_scored = ev.front().tokens_scored;
  r.base_ppl = ev.front().base_ppl;
  for (size_t i = 0; i < ev.size(); ++i) {
    SweepRow& row = r.rows[i];
    row.ppl = ev[i].ppl;
    row.dppl_pct = 100.0 * (ev[i].ppl / ev[i].base_ppl - 1.0);
    row.kld_mean = ev[i].kld_mean;
    row.kld_p99 = ev[i].kld_p99;
    row.kld_max = ev[i].kld_max;
    row.top1 = ev[i].top1_agreement;
    if (o.bench) {
      if (progress) progress(fmt::format("timing {}/{}: {}", i + 1, ev.size(), row.scheme));
      const BenchResult b = bench_model(*models[i], 128, 64, 1);
      row.prefill_tok_s = b.prefill_tok_s;
      row.decode_tok_s = b.decode_tok_s;
      if (int_matmul_supported(*models[i]->layers().front().wq)) {
        const BenchResult a = bench_model(*models[i], 128, 64, 1, RunOptions{.act_quant = ActQuant::DynamicAbsmax});
        row.prefill_a8_tok_s = a.prefill_tok_s;
        row.decode_a8_tok_s = a.decode_tok_s;
      }
    }
  }
  return r;
}

std::string sweep_table(const SweepResult& r) {
  std::string s = fmt::format("base {}: {:.2f} bits per weight, ppl {:.4f} on {} ({} windows, {} tokens scored)\n\n",
                              r.base_path, r.base_bpw, r.base_ppl, r.text, r.windows, r.tokens_scored);
  s += fmt::format("{:<32} {:>6} {:>11} {:>9} {:>8} {:>10} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9}\n", "scheme", "bpw",
                   "file bytes", "ppl", "Δppl %", "KLD mean", "KLD p99", "top-1", "pp tok/s", "tg tok/s", "pp A8",
                   "tg A8");
  auto speed = [](double v) { return v > 0 ? fmt::format("{:.1f}", v) : std::string("-"); };
  for (const auto& x : r.rows)
    s += fmt::format("{:<32} {:>6.3f} {:>11} {:>9.4f} {:>+8.3f} {:>10.6f} {:>10.6f} {:>7.4f} {:>9} {:>9} {:>9} {:>9}\n",
                     x.scheme, x.bpw, x.file_bytes, x.ppl, x.dppl_pct, x.kld_mean, x.kld_p99, x.top1,
                     speed(x.prefill_tok_s), speed(x.decode_tok_s), speed(x.prefill_a8_tok_s),
                     speed(x.decode_a8_tok_s));
  s += "pp/tg: prefill 128 / decode 64 tokens/s, float activations; A8: the same with dynamic int8 activations on\n"
       "the integer kernels (8- and 4-bit weights only; the other schemes and ppl/KLD use float activations)\n";
  return s;
}

std::string sweep_json(const SweepResult& r) {
  nlohmann::ordered_json j;
  j["base"] = r.base_path;
  j["text"] = r.text;
  j["windows"] = r.windows;
  j["tokens_scored"] = r.tokens_scored;
  j["ppl_base"] = r.base_ppl;
  j["bpw_base"] = r.base_bpw;
  j["rows"] = nlohmann::ordered_json::array();
  for (const auto& x : r.rows)
    j["rows"].push_back({{"scheme", x.scheme}, {"file", x.file}, {"bpw", x.bpw}, {"file_bytes", x.file_bytes},
                         {"tensor_bytes", x.tensor_bytes}, {"ppl", x.ppl}, {"dppl_pct", x.dppl_pct},
                         {"kld_mean", x.kld_mean}, {"kld_p99", x.kld_p99}, {"kld_max", x.kld_max},
                         {"top1_agreement", x.top1}, {"quantize_seconds", x.quantize_seconds},
                         {"prefill_tok_s", x.prefill_tok_s}, {"decode_tok_s", x.decode_tok_s},
                         {"prefill_a8_tok_s", x.prefill_a8_tok_s}, {"decode_a8_tok_s", x.decode_a8_tok_s}});
  return j.dump(1);
}

std::string sweep_svg(const SweepResult& r) {
  const double W = 900, H = 560, L = 80, R = 240, T = 50, B = 60;
  double xmin = 0, xmax = 8;
  double ymin = 1e9, ymax = 0;
  for (const auto& x : r.rows) {
    xmax = std::max(xmax, std::ceil(x.bpw));
    const double k = std::max(x.kld_mean, 1e-7);
    ymin = std::min(ymin, k), ymax = std::max(ymax, k);
  }
  if (r.rows.empty()) ymin = 1e-6, ymax = 1;
  const double lo = std::floor(std::log10(ymin)), hi = std::max(lo + 1, std::ceil(std::log10(ymax)));
  auto px = [&](double bpw) { return L + (bpw - xmin) / (xmax - xmin) * (W - L - R); };
  auto py = [&](double kld) { return T + (hi - std::log10(std::max(kld, 1e-7))) / (hi - lo) * (H - T - B); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
      "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      W, H);
  s += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"15\">What each bit costs: {} on {} ({} windows)</text>\n", L,
                   std::filesystem::path(r.base_path).filename().string(), r.text, r.windows);
  for (double e = lo; e <= hi; e += 1) {
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n", L, py(std::pow(10, e)),
                     W - R, py(std::pow(10, e)));
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">1e{}</text>\n", L - 6, py(std::pow(10, e)) + 4, int(e));
  }
  for (double b = xmin; b <= xmax; b += 1) {
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\" stroke=\"#eee\"/>\n", px(b), T, px(b), H - B);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", px(b), H - B + 18, int(b));
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">bits per weight (all parameters)</text>\n",
                   (L + W - R) / 2, H - 18);
  s += fmt::format("<text transform=\"translate(20,{}) rotate(-90)\" text-anchor=\"middle\">mean KL divergence to the "
                   "float model (log scale)</text>\n",
                   (T + H - B) / 2);
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", L, T,
                   W - L - R, H - T - B);
  for (const auto& x : r.rows) {
    const bool mse = x.scheme.find(":mse") != std::string::npos, asym = x.scheme.find(":asym") != std::string::npos;
    const char* color = x.scheme.rfind("int", 0) != 0 ? "#777" : mse ? "#d62728" : asym ? "#1f77b4" : "#2ca02c";
    s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"><title>{}: {:.3f} bpw, KLD {:.6f}, top-1 "
                     "{:.4f}</title></circle>\n",
                     px(x.bpw), py(x.kld_mean), color, x.scheme, x.bpw, x.kld_mean, x.top1);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" fill=\"{}\">{}</text>\n", px(x.bpw) + 6,
                     py(x.kld_mean) - 4, color, x.scheme.substr(0, x.scheme.find(":s=")));
  }
  const double lx = W - R + 20;
  int i = 0;
  for (auto [label, color] : {std::pair{"symmetric, min/max", "#2ca02c"}, {"asymmetric, min/max", "#1f77b4"},
                              {"MSE-optimal clipping", "#d62728"}, {"float storage", "#777"}}) {
    s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>\n", lx,
                     T + 10 + 20 * i, color, lx + 10, T + 14 + 20 * i, label);
    ++i;
  }
  return s + "</svg>\n";
}

}  // namespace lmq
