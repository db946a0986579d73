#include "lmq/eval/sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lmq/error.h"
#include "lmq/eval/bench.h"
#include "lmq/eval/chart.h"
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

std::vector<bool> sweep_frontier(const SweepResult& r) {
  std::vector<std::pair<double, double>> xy;
  for (const auto& x : r.rows) xy.push_back({x.bpw, x.kld_mean});
  return chart::pareto_front(xy);
}

std::string sweep_table(const SweepResult& r) {
  std::string s = fmt::format(
      "base {}: {:.2f} bits per weight, ppl {:.4f} on {} ({} protocol, {} windows of {}, {} tokens scored)\n\n",
      r.base_path, r.base_bpw, r.base_ppl, r.text, r.protocol, r.windows, r.ctx, r.tokens_scored);
  const std::vector<bool> front = sweep_frontier(r);
  s += fmt::format("* {:<32} {:>6} {:>11} {:>9} {:>8} {:>10} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9}\n", "scheme", "bpw",
                   "file bytes", "ppl", "Δppl %", "KLD mean", "KLD p99", "top-1", "pp tok/s", "tg tok/s", "pp A8",
                   "tg A8");
  auto speed = [](double v) { return v > 0 ? fmt::format("{:.1f}", v) : std::string("-"); };
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const SweepRow& x = r.rows[i];
    s += fmt::format("{12} {0:<32} {1:>6.3f} {2:>11} {3:>9.4f} {4:>+8.3f} {5:>10.6f} {6:>10.6f} {7:>7.4f} {8:>9} "
                     "{9:>9} {10:>9} {11:>9}\n",
                     x.scheme, x.bpw, x.file_bytes, x.ppl, x.dppl_pct, x.kld_mean, x.kld_p99, x.top1,
                     speed(x.prefill_tok_s), speed(x.decode_tok_s), speed(x.prefill_a8_tok_s),
                     speed(x.decode_a8_tok_s), front[i] ? "*" : " ");
  }
  s += "*: on the Pareto frontier: no other scheme here has both fewer bits per weight and a lower KLD mean\n";
  s += "pp/tg: prefill 128 / decode 64 tokens/s, float activations; A8: the same with dynamic int8 activations on\n"
       "the integer kernels (LMQ_INT schemes with groups of multiples of 32; the others and ppl/KLD use float activations)\n";
  return s;
}

std::string sweep_json(const SweepResult& r) {
  nlohmann::ordered_json j;
  j["base"] = r.base_path;
  j["text"] = r.text;
  j["protocol"] = r.protocol;
  j["ctx"] = r.ctx;
  j["windows"] = r.windows;
  j["tokens_scored"] = r.tokens_scored;
  j["ppl_base"] = r.base_ppl;
  j["bpw_base"] = r.base_bpw;
  j["rows"] = nlohmann::ordered_json::array();
  const std::vector<bool> front = sweep_frontier(r);
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const SweepRow& x = r.rows[i];
    j["rows"].push_back({{"scheme", x.scheme}, {"pareto", bool(front[i])}, {"file", x.file}, {"bpw", x.bpw},
                         {"file_bytes", x.file_bytes}, {"tensor_bytes", x.tensor_bytes}, {"ppl", x.ppl},
                         {"dppl_pct", x.dppl_pct}, {"kld_mean", x.kld_mean}, {"kld_p99", x.kld_p99},
                         {"kld_max", x.kld_max}, {"top1_agreement", x.top1}, {"quantize_seconds", x.quantize_seconds},
                         {"prefill_tok_s", x.prefill_tok_s}, {"decode_tok_s", x.decode_tok_s},
                         {"prefill_a8_tok_s", x.prefill_a8_tok_s}, {"decode_a8_tok_s", x.decode_a8_tok_s}});
  }
  if (r.reference) {
    auto& ref = j["reference"] = {{"tool", r.reference->tool}, {"file", r.reference->path}};
    for (const ReferencePoint& p : r.reference->points)
      ref["points"].push_back({{"label", p.label}, {"bpw", p.bpw}, {"kld_mean", p.kld_mean}});
  }
  return j.dump(1);
}

}  // namespace lmq
