// lmq: the command line. This file only parses flags and prints; the work lives in the library.
#include <fmt/format.h>
#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/closed_output.h"
#include "lmq/calib/calib.h"
#include "lmq/calib/mixed.h"
#include "lmq/calib/pipeline.h"
#include "lmq/calib/quantize_job.h"
#include "lmq/error.h"
#include "lmq/eval/bench.h"
#include "lmq/eval/evaluate.h"
#include "lmq/eval/inspect.h"
#include "lmq/eval/sweep.h"
#include "lmq/eval/synth.h"
#include "lmq/eval/sweep_chart.h"
#include "lmq/formats/atomic_file.h"
#include "lmq/quant/gguf_export.h"
#include "lmq/kernels/act_quant.h"
#include "lmq/kernels/gemm_bf16.h"
#include "lmq/mapped_file.h"
#include "lmq/model/forward.h"
#include "lmq/model/generate.h"
#include "lmq/model/model.h"
#include "lmq/quant/quantize_model.h"
#include "lmq/quant/scheme.h"

using json = nlohmann::json;
using namespace lmq;

namespace {

// How long an idle OpenMP thread spins before it sleeps. libgomp's default (300000 spins,
// ~0.1 ms) suits a machine with nothing else on it; when another process takes a core, a
// spinning thread burns its share while the team waits for the preempted one at each of a
// token's ~150 barriers (decode of a 1.1B Q4_0 model, 2 threads, load ~5: 2–7 tok/s by default,
// 12–19 with 1000 spins; llama.cpp 2–8; docs/results.md). libgomp reads GOMP_SPINCOUNT once,
// when it is loaded, before main, and libc resets the environment after any earlier hook of the
// executable: so lmq sets it and executes itself again (same pid, arguments and descriptors).
// The user's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins, and then nothing is re-executed.
constexpr const char* kOmpSpinCount = "1000";
void adopt_omp_spin_default(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  char self[4096];
  // the executable's path (valgrind answers this readlink with its client's path; exec'ing
  // "/proc/self/exe" itself would start valgrind's tool)
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0 || size_t(n) >= sizeof self - 1) return;
  self[n] = '\0';
  if (setenv("GOMP_SPINCOUNT", kOmpSpinCount, 1) != 0) return;
  execv(self, argv);
  unsetenv("GOMP_SPINCOUNT");  // not re-executed: this process keeps libgomp's default, and says so
}

// What the OpenMP threads do when idle, as set for this run (bench reports it).
std::string omp_wait() {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* spins = std::getenv("GOMP_SPINCOUNT");
  if (policy) return fmt::format("OMP_WAIT_POLICY={}", policy);
  return fmt::format("GOMP_SPINCOUNT={}", spins ? spins : "libgomp's default");
}

// Every failure ends as exactly one line on stderr, whatever a library put in its message.
void print_error(std::string what) {
  std::replace(what.begin(), what.end(), '\n', ' ');
  while (!what.empty() && what.back() == ' ') what.pop_back();
  fmt::print(stderr, "lmq: error: {}\n", what);
}

bool stderr_is_tty() { return isatty(STDERR_FILENO) == 1; }

// This process's peak resident set size so far. VmHWM belongs to the address space, which
// exec replaces; getrusage's ru_maxrss is kept across exec, so a child of a large process would
// report its parent's peak. getrusage is the fallback where /proc is absent.
uint64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "VmHWM:  1234 kB"
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return uint64_t(ru.ru_maxrss) * 1024;
}

// Called between units of long work: stops it once stdout's reader has gone (closed_output.h)
// and shows "windows 3/16" on a TTY.
Progress tty_progress(const char* what) {
  return [what, tty = stderr_is_tty()](int done, int total) {
    cli::throw_if_stdout_gone();
    if (!tty) return;
    fmt::print(stderr, "\r{} {}/{}{}", what, done, total, done == total ? "\n" : "");
    std::fflush(stderr);
  };
}

// "quantizing 12/74 model.layers.1.mlp.up_proj.weight" on one refreshed line, on a TTY only.
std::function<void(size_t, size_t, const std::string&)> tty_tensor_progress() {
  if (!stderr_is_tty()) return {};
  return [](size_t done, size_t total, const std::string& name) {
    fmt::print(stderr, "\r\033[Kquantizing {}/{} {}", done, total, name);
    if (done == total) fmt::print(stderr, "\n");
    std::fflush(stderr);
  };
}

// given: whether --threads appeared at all; without it OpenMP's default (all cores) stands.
void set_threads(int threads, bool given) {
  if (!given) return;
  if (threads < 1 || threads > 1024) fail("--threads {}: must be in 1..1024", threads);
  omp_set_num_threads(threads);
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "×" : "") + std::to_string(s[i]);
  return r;
}

// ---------------------------------------------------------------- inspect
// "llama3 θ 500000, factor 32, low/high freq factor 1/4, original context 8192"
std::string rope_summary(const ModelConfig& c) {
  const RopeParams& r = c.rope;
  std::string s = fmt::format("{} θ {:g}", rope_type_name(r.type), r.theta);
  if (r.type != RopeType::Default) s += fmt::format(", factor {:g}", r.factor);
  if (r.type == RopeType::Llama3) s += fmt::format(", low/high freq factor {:g}/{:g}", r.low_freq_factor, r.high_freq_factor);
  if (r.type == RopeType::Yarn) s += fmt::format(", beta fast/slow {:g}/{:g}", r.beta_fast, r.beta_slow);
  if (r.original_max_position_embeddings > 0) s += fmt::format(", original context {}", r.original_max_position_embeddings);
  if (r.partial_rotary_factor != 1.0) s += fmt::format(", partial rotary factor {:g}", r.partial_rotary_factor);
  if (!c.rope_freq_factors.empty()) s += fmt::format(", {} frequency factors (rope_freqs)", c.rope_freq_factors.size());
  if (c.sliding_window > 0) s += fmt::format("; sliding_window {}", c.sliding_window);
  return s;
}

// "bpe, 16003 tokens, no BOS" / "sentencepiece, 32000 tokens, BOS 1"
std::string tokenizer_summary(const Model& m) {
  const Tokenizer& t = m.tokenizer();
  return fmt::format("{}, {} tokens, {}", tokenizer_kind_name(t.kind()), t.vocab_size(),
                     t.adds_bos() ? fmt::format("BOS {} ('{}')", t.bos_id(), t.piece(t.bos_id())) : std::string("no BOS"));
}

// inspect and tokenize show a file as it is stored: a GGUF's Q8_0/Q4_0/IQ4 blocks are not
// repacked for the integer kernels (that would show LMQ_INT formats and bytes the file lacks).
LoadOptions as_stored() {
  LoadOptions o;
  o.repack_ggml = false;
  return o;
}

void cmd_inspect(const std::string& path, bool as_json) {
  auto m = Model::load(path, as_stored());
  const auto& c = m->config();
  if (!as_json) {  // the model's identity first, before the seconds the value statistics take
    fmt::print("model        {} ({})\n", path, m->source_kind());
    fmt::print("architecture {}: hidden {}, layers {}, heads {} (kv {}), head_dim {}, ffn {}, vocab {}, context {}\n",
               arch_name(c.arch), c.hidden, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn, c.vocab, c.max_pos);
    fmt::print("             rms_norm_eps {:g}, rope_theta {:g}, tied embeddings {}, qkv bias {}, q/k norm {}\n",
               c.norm_eps, c.rope.theta, c.tied_embeddings ? "yes" : "no", c.qkv_bias ? "yes" : "no",
               c.qk_norm ? "yes" : "no");
    fmt::print("rope         {}\n", rope_summary(c));
    fmt::print("tokenizer    {}\n", tokenizer_summary(*m));
    cli::flush_stdout();
  }
  InspectReport r = inspect_model(*m);
  json mem;
  for (const auto& [name, bits] : memory_precisions()) mem[name] = quant::bytes_at_bits(r.params, bits);
  if (as_json) {
    json j;
    j["path"] = path;
    j["source"] = m->source_kind();
    j["architecture"] = arch_name(c.arch);
    j["params"] = r.params;
    j["tensor_count"] = r.tensors.size();
    j["file_bytes"] = m->file_bytes();
    j["config"] = json::parse(c.to_hf_json());
    j["rope"] = rope_summary(c);
    j["tokenizer"] = {{"kind", tokenizer_kind_name(m->tokenizer().kind())},
                      {"vocab_size", m->tokenizer().vocab_size()},
                      {"bos_id", m->tokenizer().adds_bos() ? json(m->tokenizer().bos_id()) : json(nullptr)}};
    j["formats"] = r.format_counts;
    j["memory_bytes"] = mem;
    for (const auto& [g, n] : r.group_params) {
      json gm;
      for (const auto& [name, bits] : memory_precisions()) gm[name] = quant::bytes_at_bits(n, bits);
      j["groups"][g] = {{"params", n}, {"memory_bytes", gm}};
    }
    for (const auto& t : r.tensors)
      j["tensors"].push_back({{"name", t.name}, {"group", t.group}, {"format", t.format}, {"shape", t.shape},
                              {"params", t.params}, {"bytes", t.bytes}, {"min", t.min}, {"max", t.max},
                              {"absmax", t.absmax}, {"mean", t.mean}, {"std", t.std},
                              {"outlier_share", t.outlier_share}});
    fmt::print("{}\n", j.dump(1));
    return;
  }
  fmt::print("parameters   {}  in {} tensors, {} bytes on disk\n", r.params, r.tensors.size(), m->file_bytes());
  std::string fm;
  for (const auto& [f, n] : r.format_counts) fm += fmt::format("{} {}  ", n, f);
  fmt::print("formats      {}\n\n", fm);
  fmt::print("{:<12} {:>12}", "memory", "params");
  for (const auto& [name, bits] : memory_precisions()) fmt::print(" {:>12}", name);
  fmt::print("\n");
  auto row = [&](const std::string& g, uint64_t n) {
    fmt::print("{:<12} {:>12}", g, n);
    for (const auto& [name, bits] : memory_precisions()) fmt::print(" {:>12}", quant::bytes_at_bits(n, bits));
    fmt::print("\n");
  };
  for (const auto& [g, n] : r.group_params) row(g, n);
  row("total", r.params);
  fmt::print("(bytes = bits/8 × params)\n\n");
  fmt::print("{:<48} {:<8} {:>11} {:>10} {:>10} {:>9} {:>9} {:>9}\n", "tensor", "format", "shape", "min", "max",
             "absmax", "std", ">6σ");
  for (const auto& t : r.tensors)
    fmt::print("{:<48} {:<8} {:>11} {:>10.4f} {:>10.4f} {:>9.4f} {:>9.5f} {:>8.4f}%\n", t.name, t.format,
               shape_str(t.shape), t.min, t.max, t.absmax, t.std, 100 * t.outlier_share);
}

// ---------------------------------------------------------------- tokenize
// Like llama.cpp's llama-tokenize: the ids the tokenizer gives (its own special tokens added),
// one "id -> 'text'" line each (the token's text, invalid UTF-8 as U+FFFD); --json prints the
// ids, the vocabulary pieces (always valid UTF-8: "Ġthe", "▁the", "<0x0A>") and the decoded text.
void cmd_tokenize(const std::string& path, const std::string& text, bool as_json) {
  auto m = Model::load(path, as_stored());
  const Tokenizer& tok = m->tokenizer();
  const std::vector<int> ids = tok.encode_with_specials(text);
  if (as_json) {
    std::vector<std::string> pieces;
    for (int id : ids) pieces.push_back(tok.piece(id));
    fmt::print("{}\n", json{{"ids", ids}, {"pieces", pieces}, {"text", utf8_lossy(tok.decode(ids))}}.dump());
    return;
  }
  for (int id : ids) fmt::print("{:>6} -> '{}'\n", id, utf8_lossy(tok.decode({id})));
}

// ---------------------------------------------------------------- run
// GGUF Q8_0/Q4_0/IQ4_NL/IQ4_XS weights without AVX-512 VNNI or AVX2 are repacked, and the scales
// of those read in place checked, for the integer kernels unless the run chose float activations
// (--act-quant none), which reads the file's blocks through the float path as before. An lmq
// file's 4- and 8-bit linears are interleaved for the integer kernels when the run quantizes
// activations (LoadOptions::interleave_int).
LoadOptions load_options(const RunOptions& ro) {
  LoadOptions o;
  o.repack_ggml = ro.act_quant_from_model || ro.act_quant != ActQuant::None;
  o.interleave_int = ro.act_quant != ActQuant::None;  // lmq files run float activations unless asked
  return o;
}

struct RunOpts {
  std::string prompt;
  int n = 64;
  SampleOptions sample;
  bool json = false;
};

void cmd_run(const std::string& path, const RunOpts& o, const RunOptions& ro) {
  auto m = Model::load(path, load_options(ro));
  const auto& c = m->config();
  const Tokenizer& tok = m->tokenizer();
  std::vector<int> prompt = tok.encode_with_specials(o.prompt);
  if (o.n < 0) fail("-n {}: must be ≥ 0", o.n);
  check_sample_options(o.sample);  // before the prompt is echoed: an error leaves stdout empty
  if (prompt.empty()) fail("--prompt: empty, and {} adds no BOS token to start from", path);
  if (int64_t(prompt.size()) >= c.max_pos)
    fail("--prompt: {} tokens leave no room in the context of {} tokens of {}", prompt.size(), c.max_pos, path);
  if (int64_t(prompt.size()) + o.n > c.max_pos)
    fail("-n {}: the prompt's {} tokens + {} new tokens exceed the context of {} tokens of {}", o.n, prompt.size(),
         o.n, c.max_pos, path);
  Runner run(*m, int(prompt.size()) + std::max(o.n, 1), ro);
  Tokenizer::Stream text = tok.stream(prompt.back());
  if (!o.json) {
    fmt::print("{}", o.prompt);
    cli::flush_stdout();
  }
  std::vector<int> ids = o.n == 0 ? prompt : generate(run, prompt, o.n, o.sample, [&](int id) {
    if (o.json) return;
    fmt::print("{}", text.push(id));
    cli::flush_stdout();
  });
  if (o.json) {
    std::vector<int> gen(ids.begin() + long(prompt.size()), ids.end());
    fmt::print("{}\n", json{{"ids", ids}, {"prompt_tokens", prompt.size()}, {"text", tok.decode(gen)},
                            {"peak_rss_bytes", peak_rss_bytes()}}
                           .dump());
  } else {
    fmt::print("{}\n", text.flush());
  }
}

// ---------------------------------------------------------------- eval
struct EvalOpts {
  std::string text, base, protocol = "lmq";
  int windows = 0, ctx = 512;
  bool json = false;
};

void cmd_eval(const std::string& path, const EvalOpts& o, const RunOptions& ro) {
  auto m = Model::load(path, load_options(ro));
  std::unique_ptr<Model> base = o.base.empty() ? nullptr : Model::load(o.base);
  const auto& c = m->config();
  if (o.ctx > c.max_pos) fail("--ctx {}: exceeds the model's context of {} tokens", o.ctx, c.max_pos);
  const std::string text = read_text_file(o.text);
  if (text.empty()) fail("{}: the text is empty", o.text);
  Windows w = make_windows(m->tokenizer(), text, parse_protocol(o.protocol), o.ctx, m->tokenizer().bos_id(), o.windows, o.text);
  EvalResult r = evaluate(*m, base.get(), w, tty_progress("windows"), ro);
  const double bpw = 8.0 * double(m->tensor_bytes()) / double(m->param_count());
  if (o.json) {
    json j{{"model", path},           {"text", o.text},          {"protocol", o.protocol},
           {"ctx", o.ctx},            {"windows", r.windows},    {"tokens_scored", r.tokens_scored},
           {"mean_nll", r.mean_nll},  {"ppl", r.ppl},            {"window_nll", r.window_nll},
           {"file_bytes", m->file_bytes()}, {"params", m->param_count()}, {"bpw", bpw}};
    if (r.has_base) {
      j["base"] = o.base;
      j["ppl_base"] = r.base_ppl;
      j["ppl_ratio"] = r.ppl / r.base_ppl;
      j["kld_mean"] = r.kld_mean;
      j["kld_p99"] = r.kld_p99;
      j["kld_max"] = r.kld_max;
      j["top1_agreement"] = r.top1_agreement;
    }
    fmt::print("{}\n", j.dump(1));
    return;
  }
  fmt::print("model    {}\ntext     {} ({} protocol, {} windows of {}, {} tokens scored)\n", path, o.text, o.protocol,
             r.windows, o.ctx, r.tokens_scored);
  fmt::print("size     {} bytes, {:.3f} bits per weight\n", m->file_bytes(), bpw);
  fmt::print("ppl      {:.4f}  (mean NLL {:.6f})\n", r.ppl, r.mean_nll);
  if (r.has_base) {
    fmt::print("base     {}: ppl {:.4f}  (ratio {:.5f}, Δ {:+.3f}%)\n", o.base, r.base_ppl, r.ppl / r.base_ppl,
               100 * (r.ppl / r.base_ppl - 1));
    fmt::print("KLD      mean {:.6f}  p99 {:.6f}  max {:.6f}\ntop-1    {:.4f} agreement\n", r.kld_mean, r.kld_p99,
               r.kld_max, r.top1_agreement);
  }
}

// ---------------------------------------------------------------- quantize
struct QuantOpts {
  calib::QuantizeJob job;
  bool json = false;
};

std::string command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
  return s;
}

// The calibration's progress on a TTY, one refreshed line at each phase of each block:
// "block 3/22 gptq: inverse Hessians, sweeps (1:52 elapsed, ETA 14:10)". The ETA is the mean
// time of the finished blocks times the blocks left, less the time spent in this one.
calib::BlockProgress block_progress() {
  if (!stderr_is_tty()) return {};
  using Clock = std::chrono::steady_clock;
  struct State {
    Clock::time_point t0, block_start;
    int block = -1;
  };
  return [st = std::make_shared<State>()](int b, int n, const std::string& stage) {
    const auto now = Clock::now();
    if (st->block < 0) st->t0 = now;  // calibration starts
    if (b != st->block) st->block = b, st->block_start = now;
    auto secs = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
    auto mmss = [](double s) { return fmt::format("{}:{:02d}", int(s) / 60, int(s) % 60); };
    const double el = secs(now - st->t0);
    std::string eta;
    if (b > 0 && b < n) eta = ", ETA " + mmss(std::max(0.0, el / b * (n - b) - secs(now - st->block_start)));
    fmt::print(stderr, "\r\033[Kblock {}/{} {} ({} elapsed{})", std::min(b + 1, n), n, stage, mmss(el), eta);
    if (b == n) fmt::print(stderr, "\n");
    std::fflush(stderr);
  };
}

// The forward passes' arithmetic this run used (--calib-precision auto resolved; "none" for the
// methods that run no calibration passes), for --json.
const char* calib_precision_of(const calib::QuantizeJob& q) {
  const calib::Method m = calib::parse_method(q.method);
  if (m == calib::Method::Rtn || m == calib::Method::Mse) return "none";
  return calib::calib_precision_name(calib::parse_calib_precision(q.calib_precision));
}

// AWQ's searched α per group of linears that share an input, for --json (both formats).
void add_awq_groups(json& j, const calib::CalibQuantReport& crep) {
  for (const auto& g : crep.awq_groups)
    j["awq_groups"].push_back({{"name", g.name}, {"alpha", g.alpha}, {"err", g.err}, {"rtn_err", g.rtn_err}});
}

void print_calib_summary(const calib::QuantizeOutcome& out, const std::string& method,
                         std::chrono::steady_clock::time_point t_start, const char* baseline) {
  const calib::CalibQuantReport& crep = out.calib;
  if (!crep.layers.empty()) {
    double g = 0, rt = 0;
    int64_t rows = 0, measured = 0;
    for (const auto& l : crep.layers) g += l.gptq_err, rt += l.rtn_err, rows += l.rows, measured += l.err_rows;
    const std::string sampled =
        measured < rows ? fmt::format(", estimated from {} of {} rows", measured, rows) : std::string();
    fmt::print("{}: {} layers, calibration output error tr(ΔHΔᵀ)/2 summed{}: {} {:.4g} vs {} {:.4g} ({:.3f}×)\n",
               method, crep.layers.size(), sampled, method, g, baseline, rt, rt > 0 ? g / rt : 0.0);
    if (crep.asymmetric)  // the method aimed at the float model's outputs, not at these weights
      fmt::print("(--asym-calib: both errors are against the original weights on the quantized model's inputs; "
                 "the asymmetric target trades them for the float model's outputs)\n");
  }
  fmt::print("method {}: calibration {:.1f} s ({} tokens), gptq {:.1f} s; total {:.1f} s, peak memory {:.0f} MiB "
             "(estimated up front {:.0f} MiB + the input's page cache)\n",
             method, crep.calib_seconds, crep.tokens, crep.quant_seconds,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(),
             double(peak_rss_bytes()) / (1 << 20), double(out.estimated_peak_bytes) / (1 << 20));
  const calib::CalibQuantReport::Phases& p = crep.cpu;
  if (p.forward + p.hessian + p.solve + p.sweep + p.report > 0)
    fmt::print("cpu time (s, all threads): forward passes {:.1f}, Hessians {:.1f}, solves (inverse Hessian) {:.1f}, "
               "column sweeps {:.1f}, error report {:.1f}\n",
               p.forward, p.hessian, p.solve, p.sweep, p.report);
}

// The phases' CPU seconds for --json.
json phases_json(const calib::CalibQuantReport& crep) {
  const calib::CalibQuantReport::Phases& p = crep.cpu;
  return {{"forward", p.forward}, {"hessian", p.hessian}, {"solve", p.solve}, {"sweep", p.sweep}, {"report", p.report}};
}

// GgufTensorReport::path in words.
std::string gguf_path_label(const std::string& path) {
  if (path == "carried") return "carried exactly";
  if (path == "requantized") return "requantized from the dequantized weights";
  return path;
}

void print_gguf_outcome(const QuantOpts& qo, const calib::QuantizeOutcome& out,
                        std::chrono::steady_clock::time_point t_start) {
  const calib::QuantizeJob& q = qo.job;
  const std::string& path = q.model;
  const GgufExportReport& r = out.gguf_report;
  const calib::CalibQuantReport& crep = out.calib;
  const std::string& recipe = out.scheme;
  for (const std::string& w : r.warnings) fmt::print(stderr, "lmq: warning: {}\n", w);
  if (qo.json) {
    json j{{"model", path},         {"output", q.out},         {"format", "gguf"},    {"scheme", recipe},
           {"params", r.params},    {"tensor_bytes", r.tensor_bytes}, {"file_bytes", r.file_bytes},
           {"bpw", r.bpw},          {"rel_rms", r.rel_rms},    {"fallbacks", r.n_fallback},
           {"carried", r.n_carried}, {"requantized", r.n_requantized},
           {"seconds", r.seconds},  {"peak_rss_bytes", peak_rss_bytes()}, {"method", q.method},
           {"estimated_peak_bytes", out.estimated_peak_bytes},
           {"calib_seconds", crep.calib_seconds}, {"gptq_seconds", crep.quant_seconds},
           {"cpu_seconds", phases_json(crep)}, {"calib_precision", calib_precision_of(q)}, {"asym_calib", q.asym_calib}};
    for (const auto& t : r.tensors)
      j["tensors"].push_back({{"name", t.name}, {"hf_name", t.hf_name}, {"type", t.type}, {"shape", t.shape},
                              {"params", t.params}, {"bytes", t.bytes}, {"rel_rms", t.rel_rms}, {"note", t.note},
                              {"path", t.path}});
    for (const auto& l : crep.layers)
      j["gptq_layers"].push_back({{"name", l.name}, {"gptq_output_err", l.gptq_err}, {"ref_output_err", l.rtn_err},
                                  {"rows", l.rows}, {"err_rows", l.err_rows}});
    add_awq_groups(j, crep);
    fmt::print("{}\n", j.dump(1));
    return;
  }
  fmt::print("{:<32} {:<6} {:>8} {:>10}  {}\n", "tensor", "type", "bpw", "rel RMS", "");
  for (const auto& t : r.tensors)
    fmt::print("{:<32} {:<6} {:>8.3f} {:>10.5f}  {}{}{}\n", t.name, t.type, 8.0 * double(t.bytes) / double(t.params),
               t.rel_rms, t.note, t.note.empty() || t.path.empty() ? "" : "; ", gguf_path_label(t.path));
  fmt::print("\ntotal: {} params, {} tensor bytes = {:.3f} bits per weight, rel RMS {:.5f}, {} fallbacks\n", r.params,
             r.tensor_bytes, r.bpw, r.rel_rms, r.n_fallback);
  if (r.n_carried + r.n_requantized > 0)
    fmt::print("quantized source: {} tensors carried exactly (codes and scales as they are), {} requantized from "
               "their dequantized weights\n", r.n_carried, r.n_requantized);
  fmt::print("wrote {} ({} bytes, GGUF {}) in {:.1f} s, peak memory {:.1f} MiB\n", q.out, r.file_bytes, recipe,
             r.seconds, double(peak_rss_bytes()) / (1 << 20));
  // the plain quantizer: llama.cpp's, or lmq's own search for the lattice i-quants
  if (out.method != calib::Method::Rtn) print_calib_summary(out, q.method, t_start, "the plain quantizer");
}

void print_hf_outcome(const QuantOpts& qo, const calib::QuantizeOutcome& out,
                      std::chrono::steady_clock::time_point t_start) {
  const calib::QuantizeJob& q = qo.job;
  const HfExportReport& h = out.hf_report;
  const QuantizeReport& r = h.q;
  for (const std::string& w : h.warnings) fmt::print(stderr, "lmq: warning: {}\n", w);
  if (qo.json) {
    json j{{"model", q.model},        {"output", q.out},          {"format", q.format},   {"layout", h.detail},
           {"scheme", out.scheme},    {"params", r.params},       {"dir_bytes", h.dir_bytes}, {"files", h.files},
           {"rel_rms", r.rel_rms},    {"seconds", r.seconds},     {"method", q.method},   {"warnings", h.warnings},
           {"peak_rss_bytes", peak_rss_bytes()}, {"estimated_peak_bytes", out.estimated_peak_bytes},
           {"calib_seconds", out.calib.calib_seconds}, {"gptq_seconds", out.calib.quant_seconds},
           {"cpu_seconds", phases_json(out.calib)}, {"calib_precision", calib_precision_of(q)}, {"asym_calib", q.asym_calib}};
    for (const auto& t : r.tensors)
      j["tensors"].push_back({{"name", t.name}, {"scheme", t.scheme}, {"shape", t.shape}, {"params", t.params},
                              {"rel_rms", t.rel_rms}, {"max_abs", t.max_abs}});
    add_awq_groups(j, out.calib);
    fmt::print("{}\n", j.dump(1));
    return;
  }
  fmt::print("{:<48} {:<28} {:>10} {:>10}\n", "tensor", "scheme", "rel RMS", "max |err|");
  for (const auto& t : r.tensors)
    fmt::print("{:<48} {:<28} {:>10.5f} {:>10.6f}\n", t.name, t.scheme, t.rel_rms, t.max_abs);
  fmt::print("\ntotal: {} params, rel RMS {:.5f}\n", r.params, r.rel_rms);
  fmt::print("wrote {} ({}, {} safetensors file{}, {} bytes)\n", q.out, h.detail, h.files.size(),
             h.files.size() == 1 ? "" : "s", h.dir_bytes);
  print_calib_summary(out, q.method, t_start, "rtn");
}

void cmd_quantize(const QuantOpts& qo) {
  const auto t_start = std::chrono::steady_clock::now();
  calib::QuantizeHooks hooks;
  hooks.kld = kld_means;
  hooks.allocation = [&](const std::string& table) { fmt::print(qo.json ? stderr : stdout, "{}\n", table); };
  hooks.blocks = block_progress();
  hooks.tensors = tty_tensor_progress();
  if (qo.job.calib_precision == "bf16" && !have_avx512_bf16())  // (still correct, the same bits)
    fmt::print(stderr, "lmq: warning: --calib-precision bf16: this CPU has no AVX-512 BF16, and the portable bf16 "
                       "kernel is several times slower than f32's sgemm\n");
  const calib::QuantizeOutcome out = calib::run_quantize_job(qo.job, hooks);
  if (!out.rotation.empty()) fmt::print(qo.json ? stderr : stdout, "{}\n", out.rotation);
  if (out.gguf) return print_gguf_outcome(qo, out, t_start);
  if (out.hf) return print_hf_outcome(qo, out, t_start);
  const calib::QuantizeJob& q = qo.job;
  const std::string& path = q.model;
  const QuantizeReport& r = out.lmq;
  const calib::CalibQuantReport& crep = out.calib;
  if (qo.json) {
    json j{{"model", path}, {"output", q.out}, {"scheme", out.scheme}, {"params", r.params},
           {"tensor_bytes", r.tensor_bytes}, {"file_bytes", r.file_bytes}, {"bpw", r.bpw}, {"rel_rms", r.rel_rms},
           {"seconds", r.seconds}, {"method", q.method}, {"calib_seconds", crep.calib_seconds},
           {"gptq_seconds", crep.quant_seconds}, {"calib_tokens", crep.tokens}, {"cpu_seconds", phases_json(crep)},
           {"calib_precision", calib_precision_of(q)}, {"asym_calib", q.asym_calib},
           {"total_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count()},
           {"peak_rss_bytes", peak_rss_bytes()}, {"estimated_peak_bytes", out.estimated_peak_bytes}};
    for (const auto& l : crep.layers)
      j["gptq_layers"].push_back({{"name", l.name}, {"gptq_output_err", l.gptq_err}, {"rtn_output_err", l.rtn_err},
                                  {"rows", l.rows}, {"err_rows", l.err_rows}});
    add_awq_groups(j, crep);
    for (const auto& t : r.tensors)
      j["tensors"].push_back({{"name", t.name}, {"scheme", t.scheme}, {"shape", t.shape}, {"params", t.params},
                              {"bytes", t.bytes}, {"bpw", t.bpw}, {"rel_rms", t.rel_rms}, {"max_abs", t.max_abs}});
    fmt::print("{}\n", j.dump(1));
    return;
  }
  fmt::print("{:<48} {:<28} {:>8} {:>10} {:>10}\n", "tensor", "scheme", "bpw", "rel RMS", "max |err|");
  for (const auto& t : r.tensors)
    fmt::print("{:<48} {:<28} {:>8.3f} {:>10.5f} {:>10.6f}\n", t.name, t.scheme, t.bpw, t.rel_rms, t.max_abs);
  fmt::print("\ntotal: {} params, {} tensor bytes = {:.3f} bits per weight, rel RMS {:.5f}\n", r.params,
             r.tensor_bytes, r.bpw, r.rel_rms);
  fmt::print("wrote {} ({} bytes)\n", q.out, r.file_bytes);
  print_calib_summary(out, q.method, t_start, "rtn");
}

// ---------------------------------------------------------------- sweep
struct SweepOpts {
  std::string text, out_dir = "lmq-sweep", protocol = "lmq", reference;
  std::vector<std::string> schemes;
  int windows = 16, ctx = 512;
  bool full = false, no_bench = false, json = false;
};

void write_atomically(const std::string& path, const std::string& bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

void cmd_sweep(const std::string& path, const SweepOpts& o) {
  auto base = Model::load(path);
  const std::string text = read_text_file(o.text);
  if (text.empty()) fail("{}: the text is empty", o.text);
  if (o.ctx > base->config().max_pos) fail("--ctx {}: exceeds the model's context of {} tokens", o.ctx, base->config().max_pos);
  Windows w = make_windows(base->tokenizer(), text, parse_protocol(o.protocol), o.ctx, base->tokenizer().bos_id(), o.windows,
                           o.text);
  std::optional<ReferenceSet> ref;  // checked before minutes of quantizing
  if (!o.reference.empty())
    ref = load_reference(o.reference, {model_name(path), std::filesystem::path(o.text).filename().string(),
                                       o.protocol, o.ctx, int(w.ids.size())});
  SweepOptions so;
  so.schemes = o.schemes.empty() ? default_sweep_schemes(o.full) : o.schemes;
  so.out_dir = o.out_dir;
  so.bench = !o.no_bench;
  if (!o.json) {  // what is being measured, before the minutes of work (and a reader like `head -3` can stop it)
    fmt::print("model    {} ({} parameters, {:.2f} bits per weight)\n", path, base->param_count(),
               8.0 * double(base->tensor_bytes()) / double(base->param_count()));
    fmt::print("text     {} ({} protocol, {} windows of {} tokens)\n", o.text, o.protocol, w.ids.size(), o.ctx);
    fmt::print("schemes  {}, written to {}/\n\n", so.schemes.size(), o.out_dir);
    cli::flush_stdout();
  }
  const bool tty = stderr_is_tty();
  const SweepProgress progress = [tty](const std::string& stage) {
    cli::throw_if_stdout_gone();
    if (!tty) return;
    fmt::print(stderr, "\r\033[K{}", stage);
    std::fflush(stderr);
  };
  SweepResult r = run_sweep(*base, w, o.text, so, progress);
  r.protocol = o.protocol;
  r.ctx = o.ctx;
  r.reference = std::move(ref);
  if (tty) fmt::print(stderr, "\r\033[K");
  const std::string dir = o.out_dir + "/";
  write_atomically(dir + "sweep.json", sweep_json(r));
  const chart::Rendered svg = sweep_chart(r);
  write_atomically(dir + "sweep.svg", svg.svg);
  for (const std::string& msg : svg.overlaps) fmt::print(stderr, "lmq: warning: {}sweep.svg: {}\n", dir, msg);
  write_atomically(dir + "sweep.txt", sweep_table(r));
  if (o.json) {
    fmt::print("{}\n", sweep_json(r));
    return;
  }
  fmt::print("{}\nwritten: {}sweep.txt, {}sweep.json, {}sweep.svg and one .lmq file per scheme\n", sweep_table(r), dir,
             dir, dir);
}

// ---------------------------------------------------------------- bench
void cmd_bench(const std::string& path, int prefill, int decode, int reps, bool as_json, const RunOptions& ro) {
  auto m = Model::load(path, load_options(ro));
  BenchResult b = bench_model(*m, prefill, decode, reps, ro);
  if (as_json) {
    fmt::print("{}\n", json{{"model", path}, {"threads", b.threads}, {"prefill_tokens", b.prefill_tokens},
                            {"decode_tokens", b.decode_tokens}, {"prefill_tok_s", b.prefill_tok_s},
                            {"decode_tok_s", b.decode_tok_s}, {"weight_bytes_per_token", b.weight_bytes_per_token},
                            {"weight_gb_s", b.decode_tok_s * double(b.weight_bytes_per_token) / 1e9},
                            {"activations", b.activations}, {"omp_wait", omp_wait()}}
                           .dump(1));
    return;
  }
  fmt::print("model    {} ({} threads, activations {}, idle threads: {})\n", path, b.threads, b.activations,
             omp_wait());
  fmt::print("prefill  {:.1f} tok/s  ({} tokens)\n", b.prefill_tok_s, b.prefill_tokens);
  fmt::print("decode   {:.1f} tok/s  ({} tokens; {:.1f} MB of weights per token = {:.2f} GB/s)\n", b.decode_tok_s,
             b.decode_tokens, b.weight_bytes_per_token / 1e6, b.decode_tok_s * double(b.weight_bytes_per_token) / 1e9);
}

// ---------------------------------------------------------------- synth
void cmd_synth(const std::string& preset, const SynthOptions& o, bool as_json) {
  const SynthShape s = synth_preset(preset);
  const auto t0 = std::chrono::steady_clock::now();
  const SynthReport r = write_synthetic_model(s, o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (as_json) {
    fmt::print("{}\n", json{{"preset", preset}, {"dir", o.out_dir}, {"params", r.params}, {"bytes", r.bytes},
                            {"shards", r.shards}, {"seed", o.seed}, {"seconds", secs}}
                           .dump(1));
    return;
  }
  fmt::print("wrote {}: synthetic {} ({} parameters, {} bytes of bf16 in {} shards, {:.1f} s)\n", o.out_dir, preset,
             r.params, r.bytes, r.shards, secs);
  fmt::print("its weights are pseudo-random: the text it makes is noise (for speed and memory figures only)\n");
}

}  // namespace

int main(int argc, char** argv) {
  adopt_omp_spin_default(argv);
  cli::ignore_sigpipe();
  CLI::App app{"lmq: quantize causal language models, run them, and measure what every bit costs"};
  app.require_subcommand(1);
  int threads = 0;
  std::vector<CLI::Option*> thread_opts;  // --threads on the app and on each subcommand
  thread_opts.push_back(app.add_option("--threads,-t", threads, "worker threads (default: all cores)"));

  std::string model;
  bool as_json = false;
  auto* inspect = app.add_subcommand("inspect", "architecture, parameters, memory table, value statistics");
  inspect->add_option("model", model, "model directory or file")->required();
  inspect->add_flag("--json", as_json, "print JSON");
  thread_opts.push_back(inspect->add_option("--threads,-t", threads, "worker threads"));

  std::string tokenize_text;
  auto* tokenize = app.add_subcommand("tokenize", "the token ids and pieces of a text");
  tokenize->add_option("model", model, "model directory or file")->required();
  tokenize->add_option("-p,--prompt", tokenize_text, "text to tokenize")->required();
  tokenize->add_flag("--json", as_json, "print {\"ids\": [...], \"pieces\": [...], \"text\": \"...\"}");

  RunOpts ro;
  auto* run = app.add_subcommand("run", "generate text");
  run->add_option("model", model, "model directory or file")->required();
  run->add_option("-p,--prompt", ro.prompt, "prompt text")->required();
  run->add_option("-n", ro.n, "number of new tokens")->capture_default_str();
  run->add_option("--temp", ro.sample.temp, "temperature; 0 = greedy")->capture_default_str();
  run->add_option("--top-p", ro.sample.top_p, "nucleus sampling mass")->capture_default_str();
  run->add_option("--seed", ro.sample.seed, "random seed")->capture_default_str();
  run->add_flag("--json", ro.json, "print {\"ids\": [...], \"text\": \"...\"}");
  thread_opts.push_back(run->add_option("--threads,-t", threads, "worker threads"));
  std::string act_quant = "none";
  const char* act_quant_help =
      "activation quantization: none | dynamic[:absmax|:mse][:b32|:b64] (int8 per token, or per block of 32/64); "
      "default: none, but dynamic:b32 for a GGUF file (as llama.cpp's CPU backend; --act-quant none runs its "
      "linears in float)";
  std::vector<CLI::Option*> act_quant_opts;
  act_quant_opts.push_back(run->add_option("--act-quant", act_quant, act_quant_help));
  std::string kv = "f32";
  const char* kv_help = "KV cache: f32 or int8 (per head and position scales)";
  run->add_option("--kv", kv, kv_help)->capture_default_str();

  EvalOpts eo;
  auto* ev = app.add_subcommand("eval", "perplexity, and distance to a base model");
  ev->add_option("model", model, "model directory or file")->required();
  ev->add_option("--text", eo.text, "text file")->required();
  ev->add_option("--base", eo.base, "float model to compare against (KLD, top-1)");
  ev->add_option("--windows", eo.windows, "number of windows (default: all)");
  ev->add_option("--ctx", eo.ctx, "window length in tokens")->capture_default_str();
  ev->add_option("--protocol", eo.protocol, "lmq or llamacpp")->capture_default_str();
  ev->add_flag("--json", eo.json, "print JSON");
  thread_opts.push_back(ev->add_option("--threads,-t", threads, "worker threads"));
  act_quant_opts.push_back(ev->add_option("--act-quant", act_quant, act_quant_help));
  ev->add_option("--kv", kv, kv_help)->capture_default_str();

  QuantOpts qo;
  auto* quantize = app.add_subcommand("quantize", "quantize a model into lmq's file, GGUF, or a GPTQ/AWQ/"
                                                  "compressed-tensors directory for vLLM and transformers");
  quantize->add_option("model", model, "model directory or file")->required();
  quantize->add_option("-o,--output", qo.job.out, "output file (gptq, awq, compressed-tensors: a directory)")->required();
  quantize->add_option("--scheme", qo.job.scheme,
                       "e.g. int4:g128:asym:mse, int8:channel:sym, bf16; with --format gguf a llama-quantize "
                       "file type with its per-tensor recipe (f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q2_k_s "
                       "q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k, q3_k/q4_k/q5_k = the _m ones, "
                       "iq2_xxs iq2_xs iq2_s iq2_m iq3_xxs iq3_xs iq3_s iq3_m iq4_nl iq4_xs iq1_s iq1_m), or pure-NAME (llama-quantize --pure: the one block type "
                       "for every 2-D weight, e.g. pure-q2_k)")->capture_default_str();
  quantize->add_option("--format", qo.job.format,
                       "lmq (lmq's file), gguf (llama.cpp), or a Hugging Face directory: gptq, awq, "
                       "compressed-tensors (docs/serving-formats.md)")->capture_default_str();
  quantize->add_option("--max-shard-bytes", qo.job.max_shard_bytes,
                       "gptq/awq/compressed-tensors: bytes of tensor data per safetensors shard")->capture_default_str();
  quantize->add_option("--override", qo.job.overrides,
                       "REGEX=SCHEME (gguf: REGEX=TYPE) for matching tensors (repeatable, first match wins)");
  quantize->add_option("--method", qo.job.method,
                       "rtn, mse (clip search), awmse (activation-weighted clip search), gptq, awq, awq+gptq")
      ->capture_default_str();
  quantize->add_option("--calib", qo.job.calib, "calibration text (awmse, gptq, awq)");
  quantize->add_option("--calib-samples", qo.job.co.samples, "calibration windows")->capture_default_str();
  quantize->add_option("--calib-len", qo.job.co.len, "tokens per calibration window (BOS included)")->capture_default_str();
  quantize->add_option("--calib-precision", qo.job.calib_precision,
                       "gptq, awq: the calibration forward passes' linears in f32, or bf16 (inputs and weights "
                       "rounded to bf16, float sums: about twice as fast with AVX-512 BF16); auto: bf16 where "
                       "the CPU has AVX-512 BF16, else f32")
      ->capture_default_str();
  quantize->add_option("--damp", qo.job.damp, "GPTQ damping, a fraction of mean(diag H)")->capture_default_str();
  quantize->add_flag("--act-order", qo.job.act_order, "GPTQ: columns by descending activation energy (static groups)");
  quantize->add_option("--asym-calib", qo.job.asym_calib,
                       "gptq: α in [0, 1]: move each linear towards the weights whose output on the quantized "
                       "model's inputs best matches the float model's output on its own inputs, by α of the way "
                       "(GPTAQ's asymmetric calibration; a float stream beside the quantized one, which starts "
                       "from the embedding as stored: twice the forward passes); 0: off")
      ->capture_default_str();
  quantize->add_flag("--hessian-fit", qo.job.hessian_fit,
                    "gguf + gptq or awq+gptq: fit each block's scales weighted by diag(H) (like an imatrix)");
  quantize->add_option("--refit", qo.job.refit,
                       "gguf + gptq or awq+gptq: rounds of refitting the scales of Q2_K/Q3_K and the lattice i-quants "
                       "(iq2_*, iq3_*) to GPTQ's codes in the output error, each followed by a GPTQ sweep on those "
                       "scales (each row keeps its best round)")
      ->capture_default_str();
  quantize->add_option("--target-bpw", qo.job.target_bpw,
                       "mixed precision: a scheme per tensor (int2..int8, groups 32..128; gguf: every block type lmq "
                       "writes, iq1_s..q8_0) "
                       "chosen by measured sensitivity so the whole file stays within this many bits per weight "
                       "(needs --calib)");
  quantize->add_option("--save-sensitivity", qo.job.sens_out, "--target-bpw: write the measured sensitivities (JSON)");
  quantize->add_option("--sensitivity", qo.job.sens_in, "--target-bpw: use sensitivities saved by --save-sensitivity");
  quantize->add_option("--save-stats", qo.job.stats_out, "write the calibration statistics (safetensors)");
  quantize->add_option("--stats", qo.job.stats_in, "use statistics saved by --save-stats instead of --calib");
  quantize->add_option("--activations", qo.job.activations,
                       "W8A8: int8 (= int8:static, calibrated scales) or int8:dynamic; needs --calib");
  quantize->add_option("--smooth", qo.job.smooth, "W8A8: SmoothQuant α in [0, 1], or off")->capture_default_str();
  quantize->add_option("--act-calib", qo.job.act_calib, "W8A8 static range rule: minmax, pctP (pct99.9), mse, kl")
      ->capture_default_str();
  quantize->add_option("--rotate", qo.job.rotate,
                       "fuse an orthogonal rotation of the residual stream into the weights first (QuaRot/SpinQuant "
                       "R1): hadamard or random-orthogonal")
      ->capture_default_str();
  quantize->add_flag("--rotate-heads", qo.job.rotate_heads,
                     "with --rotate: also rotate each attention head's values (v_proj/o_proj, SpinQuant R2)");
  quantize->add_flag("--json", qo.json, "print JSON");
  thread_opts.push_back(quantize->add_option("--threads,-t", threads, "worker threads"));

  SweepOpts so;
  auto* sweep = app.add_subcommand("sweep", "quantize into many schemes and evaluate each against the float model");
  sweep->add_option("model", model, "float model directory or file")->required();
  sweep->add_option("--text", so.text, "evaluation text")->required();
  sweep->add_option("--windows", so.windows, "evaluation windows")->capture_default_str();
  sweep->add_option("--ctx", so.ctx, "window length")->capture_default_str();
  sweep->add_option("--protocol", so.protocol, "lmq or llamacpp (as for eval)")->capture_default_str();
  sweep->add_option("--reference", so.reference,
                    "JSON of other tools' bpw/KLD figures on the same text and protocol, drawn in the chart "
                    "(docs/chart.md)");
  sweep->add_option("--out-dir", so.out_dir, "where the files, table, JSON and chart go")->capture_default_str();
  sweep->add_option("--schemes", so.schemes, "schemes to try (default: the standard set)")->delimiter(',');
  sweep->add_flag("--full", so.full, "the larger set of schemes");
  sweep->add_flag("--no-bench", so.no_bench, "skip the speed columns");
  sweep->add_flag("--json", so.json, "print JSON");
  thread_opts.push_back(sweep->add_option("--threads,-t", threads, "worker threads"));

  int prefill = 512, decode = 128, reps = 3;
  auto* bench = app.add_subcommand("bench", "prefill and decode tokens/s");
  bench->add_option("model", model, "model directory or file")->required();
  bench->add_option("--prefill", prefill, "prefill batch")->capture_default_str();
  bench->add_option("--decode", decode, "decode steps")->capture_default_str();
  bench->add_option("--reps", reps, "repetitions (median reported)")->capture_default_str();
  bench->add_flag("--json", as_json, "print JSON");
  thread_opts.push_back(bench->add_option("--threads,-t", threads, "worker threads"));
  act_quant_opts.push_back(bench->add_option("--act-quant", act_quant, act_quant_help));
  bench->add_option("--kv", kv, kv_help)->capture_default_str();

  std::string synth_preset_name;
  SynthOptions syn;
  auto* synth = app.add_subcommand(
      "synth",
      "write a synthetic Hugging Face model of a real shape (pseudo-random bf16 weights: its text is noise; "
      "for speed and memory benchmarks only)");
  synth->add_option("preset", synth_preset_name, "tinyllama-1.1b, llama2-7b or llama3-8b")->required();
  synth->add_option("-o,--output", syn.out_dir, "output directory (must not exist)")->required();
  synth->add_option("--tokenizer", syn.tokenizer,
                    "tokenizer file copied into the model: a SentencePiece tokenizer.model (32000-token presets) "
                    "or a byte-level BPE tokenizer.json")->required();
  synth->add_option("--layers", syn.layers, "keep only the first N decoder blocks (default: the preset's)");
  synth->add_option("--seed", syn.seed, "seed of the weights")->capture_default_str();
  synth->add_flag("--json", as_json, "print JSON");
  thread_opts.push_back(synth->add_option("--threads,-t", threads, "worker threads"));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help and the like: usage on stdout, status 0
    // A bad command line is bad input like any other: one line, status 1.
    print_error(std::string(e.what()) + " (see lmq --help)");
    return 1;
  }
  try {
    set_threads(threads, std::any_of(thread_opts.begin(), thread_opts.end(), [](auto* o) { return o->count() > 0; }));
    const ActQuantSpec aq = parse_act_quant_spec(act_quant);
    const bool act_chosen = std::any_of(act_quant_opts.begin(), act_quant_opts.end(), [](auto* o) { return o->count() > 0; });
    const RunOptions run_opts{.act_quant = aq.rule, .act_block = aq.block, .kv = parse_kv_type(kv),
                              .act_quant_from_model = !act_chosen};
    if (*inspect) cmd_inspect(model, as_json);
    else if (*tokenize) cmd_tokenize(model, tokenize_text, as_json);
    else if (*run) cmd_run(model, ro, run_opts);
    else if (*ev) cmd_eval(model, eo, run_opts);
    else if (*quantize) {
      qo.job.model = model;
      qo.job.threads = threads;
      qo.job.command_line = command_line(argc, argv);
      cmd_quantize(qo);
    }
    else if (*sweep) cmd_sweep(model, so);
    else if (*synth) cmd_synth(synth_preset_name, syn, as_json);
    else if (*bench) cmd_bench(model, prefill, decode, reps, as_json, run_opts);
    cli::flush_stdout();
    return 0;
  } catch (const cli::ClosedOutput&) {
    cli::exit_as_closed_pipe();
  } catch (const std::system_error& e) {
    if (cli::is_closed_pipe(e)) cli::exit_as_closed_pipe();
    print_error(e.what());
  } catch (const Error& e) {
    print_error(e.what());
  } catch (const std::bad_alloc&) {
    print_error("out of memory");
  } catch (const std::exception& e) {
    print_error(e.what());
  }
  return 1;
}
