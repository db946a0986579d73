#include "lmq/calib/quantize_job.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "lmq/calib/w8a8.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/iquant_lattice.h"
#include "lmq/error.h"
#include "lmq/formats/spill_file.h"
#include "lmq/mapped_file.h"
#include "lmq/model/memory_limit.h"
#include "lmq/model/model.h"
#include "lmq/quant/rotate.h"
#include "lmq/quant/scheme.h"

namespace lmq::calib {

namespace {

W8A8Options w8a8_options(const QuantizeJob& q, std::vector<std::vector<int>> windows) {
  W8A8Options w;
  w.static_acts = parse_activations_static(q.activations);
  w.smooth = q.smooth != "off";
  if (w.smooth) {
    try {
      size_t used = 0;
      w.alpha = std::stod(q.smooth, &used);
      if (used != q.smooth.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      fail("--smooth '{}': expected a number in [0, 1] or off", q.smooth);
    }
    if (!(w.alpha >= 0 && w.alpha <= 1)) fail("--smooth {}: α must be in [0, 1]", q.smooth);
  }
  w.range = parse_act_range(q.act_calib);
  w.windows = std::move(windows);
  return w;
}

// --method's calibration options (both output formats): validation and the windows.
CalibQuantOptions calib_options(const QuantizeJob& q, const Model& m) {
  CalibQuantOptions cq;
  cq.method = parse_method(q.method);
  cq.precision = parse_calib_precision(q.calib_precision);
  cq.stats_in = q.stats_in;
  cq.stats_out = q.stats_out;
  cq.gptq.damp = q.damp;
  cq.gptq.act_order = q.act_order;
  if (q.refit < 0 || q.refit > 10) fail("--refit {}: must be 0 to 10 rounds", q.refit);
  cq.gptq.refit = q.refit;
  cq.gptq.threads = q.threads;
  if (!(q.asym_calib >= 0 && q.asym_calib <= 1)) fail("--asym-calib {}: must be in [0, 1] (0: off)", q.asym_calib);
  cq.asym_alpha = q.asym_calib;
  if (q.asym_calib > 0 && (cq.method != Method::Gptq || q.calib.empty() || !q.stats_in.empty()))
    fail("--asym-calib: only with --method gptq and --calib FILE (not {}{})", q.method,
         q.stats_in.empty() ? "" : ", --stats");
  const bool w8a8 = !q.activations.empty();
  const bool needs_calib = cq.method != Method::Rtn && cq.method != Method::Mse;
  if (w8a8 && (needs_calib || !q.stats_in.empty()))
    fail("--activations: works with --method rtn or mse and --calib FILE (not {}, --stats)", q.method);
  if (w8a8 && q.calib.empty()) fail("--activations {}: needs --calib FILE", q.activations);
  if (q.target_bpw && q.calib.empty() && q.sens_in.empty())
    fail("--target-bpw: needs --calib FILE or --sensitivity FILE");
  if (!q.target_bpw && (!q.sens_in.empty() || !q.sens_out.empty()))
    fail("--sensitivity, --save-sensitivity: only with --target-bpw");
  if (!needs_calib && (!q.stats_in.empty() || !q.stats_out.empty() || (!q.calib.empty() && !q.target_bpw && !w8a8)))
    fail("--method {}: takes no calibration (--calib, --stats, --save-stats are for awmse, gptq and awq)", q.method);
  if (needs_calib && q.calib.empty() && q.stats_in.empty())
    fail("--method {}: needs --calib FILE (or --stats FILE)", q.method);
  if (!q.calib.empty() && !q.stats_in.empty()) fail("--calib and --stats: give one of them");
  // statistics belong to the rotated or unrotated model they were gathered on (checked on --stats)
  if (q.rotate != "none")
    cq.stats_meta[kStatsRotationKey] =
        fmt::format("{} seed {:#x}{}", q.rotate, q.rotate_seed, q.rotate_heads ? " heads" : "");
  if (!q.calib.empty()) {
    const std::string text = read_text_file(q.calib);
    if (q.co.len > m.config().max_pos)
      fail("--calib-len {}: exceeds the model's context of {} tokens", q.co.len, m.config().max_pos);
    cq.windows = calib_windows(m.tokenizer(), text, q.co.samples, q.co.len, m.tokenizer().bos_id());
    cq.stats_meta["lmq.stats.calib"] = q.calib;
    cq.stats_meta["lmq.stats.model"] = q.model;
  }
  return cq;
}

// --target-bpw: measure the sensitivities, allocate, and set the plan's targets (those a user
// --override fixed do not take part).
void choose_mixed_precision(const Model& m, QuantPlan& plan, const std::vector<std::vector<int>>& windows,
                            const QuantizeJob& q, const QuantizeHooks& hooks) {
  MixedProblem mp = mixed_problem(m, plan);
  check_target(mp, *q.target_bpw);
  if (!q.sens_in.empty()) {
    load_sensitivity(q.sens_in, mp);
  } else {
    SensitivityOptions so;
    so.threads = q.threads;
    measure_sensitivity(m, mp, windows, so, hooks.kld);
  }
  if (!q.sens_out.empty()) save_sensitivity(q.sens_out, mp);
  const Allocation a = allocate(mp, *q.target_bpw);
  apply_allocation(mp, a, plan);
  if (hooks.allocation) hooks.allocation(allocation_table(mp, a));
}

// The source model, rotated when --rotate asks (quant/rotate.h): every later step (targets,
// mixed precision, calibration on the rotated model's activations, the writers) sees the
// rotated model as an ordinary dense one, so every method and every sink gets rotated weights.
struct Source {
  std::unique_ptr<Model> model;
  uint64_t held_bytes = 0;  // the rotated model's F32 tensors, held until the writer is done
  std::string rotation;     // the rotation's note for the user (empty: not rotated)
};

Source load_source(const QuantizeJob& q) {
  quant::RotateOptions ro;
  ro.kind = quant::parse_rotation(q.rotate);  // a bad value fails before the model is read
  parse_calib_precision(q.calib_precision);    // (the same)
  ro.seed = q.rotate_seed;
  ro.heads = q.rotate_heads;
  if (ro.heads && ro.kind == quant::Rotation::None)
    fail("--rotate-heads: needs --rotate hadamard or --rotate random-orthogonal");
  Source s;
  // A GGUF source's blocks stay in the map (scales checked): quantizing reads its rows, so
  // interleaving or repacking them would only copy the model into anonymous memory.
  s.model = Model::load(q.model, LoadOptions{.ggml_in_place = true});
  if (ro.kind == quant::Rotation::None) return s;
  const uint64_t need = quant::rotation_memory_bytes(*s.model);
  require_available_memory(need, fmt::format("lmq quantize --rotate {} {}", q.rotate, q.model),
                           fmt::format("{:.2f} GiB the rotated model's float weights", double(need) / (1 << 30)));
  quant::RotatedModel r = quant::rotate_model(*s.model, ro);
  s.model = std::move(r.model);  // shares the source's storage (Model::with_tensors)
  s.held_bytes = r.held_bytes;
  s.rotation = std::move(r.note);
  return s;
}

// Calibration's block progress only for the methods that calibrate block by block.
BlockProgress block_progress(Method m, const QuantizeHooks& hooks) {
  return m == Method::Rtn || m == Method::Mse ? BlockProgress{} : hooks.blocks;
}

// GPTQ and AWQ fill the plan with each calibrated linear's bytes long before the writer runs;
// once their block is done they go to a nameless file beside the output (formats/spill_file.h),
// so the blocks done stay on disk, not in memory (GPTQ int4 at 7B: 3.4 GB).
void spill_beside_output(QuantPlan& plan, const QuantizeJob& q) {
  const Method m = parse_method(q.method);
  if (m != Method::Gptq && m != Method::Awq && m != Method::AwqGptq) return;
  const std::filesystem::path dir = std::filesystem::path(q.out).parent_path();
  plan.spill = std::make_shared<SpillFile>(dir.empty() ? std::string(".") : dir.string());
}

// Refuses, before any work, a job whose estimated peak memory exceeds what the machine has
// available: calibration's (estimate_calibration_memory) plus the writer's, which holds one
// tensor at a time (its floats, its codes and the error measurement's copy: 1.5× the largest
// tensor's floats, measured 1.27× on a 1.1B model). --target-bpw's sensitivity probes are not
// counted. With a spill file the calibrated linears need their bytes twice on its disk (the
// spill, then the output the writer makes from it); a disk without them is refused as well.
uint64_t check_memory(const Model& m, const QuantPlan& plan, const QuantizeJob& q, uint64_t held) {
  const Method method = parse_method(q.method);
  uint64_t largest = 0;
  for (const Tensor& t : m.tensors()) largest = std::max(largest, uint64_t(t.numel()) * sizeof(float));
  const uint64_t writer = largest * 3 / 2;
  const bool windows = !q.calib.empty();
  const CalibMemory c =
      estimate_calibration_memory(m, plan, method, windows ? std::max(q.co.samples, 0) : 0, q.co.len, q.threads,
                                  parse_calib_precision(q.calib_precision), q.asym_calib > 0);
  constexpr double GiB = 1 << 30;
  require_available_memory(
      c.total() + writer + held, fmt::format("lmq quantize {}", q.model),
      fmt::format("{:.2f} GiB calibration hidden states, {:.2f} GiB calibrated linears held, {:.2f} GiB one "
                  "block's working set, {:.2f} GiB the writer's largest tensor{}",
                  double(c.hidden) / GiB, double(c.plan) / GiB, double(c.block) / GiB, double(writer) / GiB,
                  held ? fmt::format(", {:.2f} GiB the rotated weights", double(held) / GiB) : ""));
  if (c.spilled) {
    const uint64_t free = free_disk_bytes(plan.spill->dir());
    if (free < 2 * c.spilled)
      fail("lmq quantize {}: needs {:.2f} GiB of disk in {} (the calibrated linears, {:.2f} GiB, held in a temporary "
           "file until the writer copies them into the output); {:.2f} GiB free there",
           q.model, 2 * double(c.spilled) / GiB, plan.spill->dir(), double(c.spilled) / GiB, double(free) / GiB);
  }
  return c.total() + writer + held;
}

// --format gguf: llama.cpp's file, ggml type names (or llama.cpp mixtures) as schemes; the
// --method chooses codes and scales within the block formats (calib/gguf_target.h).
QuantizeOutcome quantize_gguf(const QuantizeJob& q, const QuantizeHooks& hooks) {
  if (!q.activations.empty())
    fail("--activations {}: only for --format lmq (GGUF has no static activation scales)", q.activations);
  Source src = load_source(q);
  const std::unique_ptr<Model>& m = src.model;
  GgufExportOptions o;
  o.scheme = parse_gguf_scheme(q.scheme == "int8:channel:sym" ? "q8_0" : q.scheme);  // lmq's default → q8_0
  for (const auto& ov : q.overrides) o.overrides.push_back(parse_gguf_override(ov));
  // llama-quantize's has_imatrix: fits weighted by calibrated importance
  const Method method = parse_method(q.method);
  o.imatrix = method == Method::AwMse || method == Method::Awq || method == Method::AwqGptq || q.hessian_fit;
  // the straight line: targets (llama.cpp's recipe) → mixed precision → calibration → writer
  QuantPlan plan = plan_gguf_targets(*m, o);
  spill_beside_output(plan, q);
  const uint64_t estimate = check_memory(*m, plan, q, src.held_bytes);  // before the calibration windows are cut
  CalibQuantOptions cq = calib_options(q, *m);
  if (q.hessian_fit && cq.method != Method::Gptq && cq.method != Method::AwqGptq)
    fail("--hessian-fit: only with --method gptq or awq+gptq");
  if (q.refit && cq.method != Method::Gptq && cq.method != Method::AwqGptq)
    fail("--refit: only with --method gptq or awq+gptq");
  cq.hessian_fit = q.hessian_fit;
  if (cq.method == Method::Gptq || cq.method == Method::AwqGptq)
    for (const auto& [name, t] : plan.tensors) {
      if (!t.target) continue;
      const FormatTraits& tr = format_traits(t.target->format);
      // IQ2_S: lmq has no writer for its codebook
      if (tr.ggml && tr.quantized && !tr.set_codes && !ggml::LatticeSuperBlock::supports(t.target->format))
        fail("--method {}: {} would be {}, whose codes GPTQ cannot choose (a codebook lmq does not write); "
             "use --method rtn, mse or awmse, or --override",
             q.method, name, tr.name);
    }
  cq.target_name = "gguf";
  if (q.target_bpw) choose_mixed_precision(*m, plan, cq.windows, q, hooks);
  QuantizeOutcome r;
  r.estimated_peak_bytes = estimate;
  r.rotation = src.rotation;
  r.gguf = true;
  r.method = cq.method;
  prepare_calibrated(*m, plan, cq, &r.calib, block_progress(cq.method, hooks));
  carry_exact_blocks(*m, plan);  // a quantized source's codes, where the block type holds them
  o.plan = &plan;
  r.gguf_report = export_gguf(*m, q.out, o, hooks.tensors);
  // with --target-bpw the allocation sets every weight's target; the scheme only sets the rest
  r.scheme = q.target_bpw ? fmt::format("mixed, --target-bpw {}", *q.target_bpw) : o.scheme.name;
  return r;
}

// --format gptq|awq|compressed-tensors: a Hugging Face directory (quant/hf_export.h). The
// decoder linears get the scheme, everything else keeps the source's float dtype; the format's
// limits are checked before calibration runs.
QuantizeOutcome quantize_hf(const QuantizeJob& q, const QuantizeHooks& hooks) {
  HfExportOptions h;
  h.format = parse_hf_format(q.format);
  const std::string flag = fmt::format("--format {}", q.format);
  if (q.hessian_fit) fail("--hessian-fit: only for --format gguf --method gptq");
  if (q.refit) fail("--refit: only for --format gguf --method gptq");
  if (q.target_bpw)
    fail("--target-bpw: {} holds one bit width and group size for every decoder linear (vLLM fuses q/k/v and "
         "gate/up); mixed precision is for --format lmq or gguf",
         flag);
  h.w8a8 = !q.activations.empty();
  if (h.w8a8 && h.format != HfFormat::CompressedTensors)
    fail("--activations {}: W8A8 is written as --format compressed-tensors (int-quantized) or lmq", q.activations);
  if (h.w8a8 && parse_activations_static(q.activations))
    fail("--activations {}: compressed-tensors int-quantized is written with dynamic per-token int8 activations; "
         "use --activations int8:dynamic",
         q.activations);
  Source src = load_source(q);
  const std::unique_ptr<Model>& m = src.model;
  h.q.scheme = quant::parse_scheme(q.scheme);
  for (const auto& ov : q.overrides) h.q.overrides.push_back(parse_override(ov));
  h.q.threads = q.threads;
  h.damp = q.damp;
  h.method = q.method;
  h.source_dir = q.model;
  h.shard_bytes = q.max_shard_bytes;
  const Method method = parse_method(q.method);
  h.act_order = q.act_order && (method == Method::Gptq || method == Method::AwqGptq);
  // the straight line: targets → (checked) → calibration → W8A8 folding → writer
  QuantPlan plan = plan_hf_targets(*m, h);
  check_hf_targets(*m, plan, h);
  spill_beside_output(plan, q);
  const uint64_t estimate = check_memory(*m, plan, q, src.held_bytes);  // before the calibration windows are cut
  CalibQuantOptions cq = calib_options(q, *m);
  cq.target_name = h.q.scheme.to_string();
  QuantizeOutcome r;
  r.estimated_peak_bytes = estimate;
  r.rotation = src.rotation;
  r.hf = true;
  r.method = cq.method;
  prepare_calibrated(*m, plan, cq, &r.calib, block_progress(cq.method, hooks));
  if ((cq.method == Method::Mse || cq.method == Method::AwMse) && h.q.scheme.kind == quant::Scheme::Int)
    h.q.scheme.range = quant::RangeMethod::Mse;
  std::unique_ptr<W8A8Prepared> w8;
  if (h.w8a8) {
    w8 = prepare_w8a8(*m, plan, w8a8_options(q, cq.windows));
    r.calib.calib_seconds += w8->seconds, r.calib.tokens += w8->tokens;
  }
  h.q.plan = &plan;
  r.hf_report = export_hf(w8 ? *w8->model : *m, q.out, h, hooks.tensors);
  r.scheme = h.q.scheme.to_string();
  return r;
}

}  // namespace

QuantizeOutcome run_quantize_job(const QuantizeJob& q, const QuantizeHooks& hooks) {
  if (q.out.empty()) fail("-o: an output path is required");
  if (q.format == "gguf") return quantize_gguf(q, hooks);
  if (is_hf_format(q.format)) return quantize_hf(q, hooks);
  if (q.format != "lmq") fail("--format '{}': expected lmq, gguf, gptq, awq or compressed-tensors", q.format);
  if (q.hessian_fit) fail("--hessian-fit: only for --format gguf --method gptq");
  if (q.refit) fail("--refit: only for --format gguf --method gptq");
  Source src = load_source(q);
  const std::unique_ptr<Model>& m = src.model;
  QuantizeOptions o;
  o.scheme = quant::parse_scheme(q.scheme);
  for (const auto& ov : q.overrides) o.overrides.push_back(parse_override(ov));
  o.threads = q.threads;
  o.provenance["lmq.source"] = q.model;
  o.provenance["lmq.command"] = q.command_line;
  if (!src.rotation.empty()) o.provenance["lmq.rotation"] = src.rotation;

  // the straight line: targets (--scheme, --override) → mixed precision → calibration → writer
  QuantPlan plan = plan_targets(*m, o);
  spill_beside_output(plan, q);
  const uint64_t estimate = check_memory(*m, plan, q, src.held_bytes);  // before the calibration windows are cut
  CalibQuantOptions cq = calib_options(q, *m);
  cq.target_name = o.scheme.to_string();
  if (!q.calib.empty())
    o.provenance["lmq.calib"] = fmt::format("{} ({} windows of {}{})", q.calib, q.co.samples, q.co.len,
                                            cq.precision == CalibPrecision::Bf16 ? ", bf16 forward passes" : "");
  o.provenance["lmq.method"] = q.method;
  if (cq.method == Method::Gptq || cq.method == Method::AwqGptq)
    o.provenance["lmq.gptq"] = fmt::format("damp={} act_order={}{}", q.damp, q.act_order ? "yes" : "no",
                                           q.asym_calib > 0 ? fmt::format(" asymmetric={}", q.asym_calib) : "");

  if (q.target_bpw) {
    choose_mixed_precision(*m, plan, cq.windows, q, hooks);
    o.provenance["lmq.target_bpw"] = fmt::format("{}", *q.target_bpw);
  }
  QuantizeOutcome r;
  r.estimated_peak_bytes = estimate;
  r.rotation = src.rotation;
  r.method = cq.method;
  prepare_calibrated(*m, plan, cq, &r.calib, block_progress(cq.method, hooks));
  // the recorded scheme names the range search that mse and awmse gave the plan's targets
  if ((cq.method == Method::Mse || cq.method == Method::AwMse) && o.scheme.kind == quant::Scheme::Int)
    o.scheme.range = quant::RangeMethod::Mse;
  std::unique_ptr<W8A8Prepared> w8 = q.activations.empty() ? nullptr : prepare_w8a8(*m, plan, w8a8_options(q, cq.windows));
  if (w8) {
    r.calib.calib_seconds += w8->seconds, r.calib.tokens += w8->tokens;
    for (const auto& [k, v] : w8->metadata) o.provenance[k] = v;
  }
  o.plan = &plan;
  r.lmq = quantize_model(w8 ? *w8->model : *m, q.out, o, hooks.tensors);
  r.scheme = o.scheme.to_string();
  return r;
}

}  // namespace lmq::calib
