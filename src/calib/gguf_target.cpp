// Calibrated methods into ggml block formats; see include/lmq/calib/gguf_target.h.
#include "lmq/calib/gguf_target.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "lmq/error.h"
#include "lmq/codecs/format_traits.h"

namespace lmq::calib {

quant::QuantStats gptq_quantize_ggml(const float* w, int64_t rows, int64_t K, const float* H, Format f,
                                     const GptqOptions& o, bool hessian_fit, uint8_t* out, float* assumed) {
  const int64_t bs = ggml_block_size(f), sub = ggml_sub_block_size(f);  // throws for float formats
  if (K % bs != 0) fail("GPTQ into {}: rows of {} values are not whole {}-value blocks", format_name(f), K, bs);
  if (o.block < 1) fail("GPTQ block {}: must be ≥ 1", o.block);
  const uint64_t rb = ggml_row_bytes(f, K);
  const size_t bb = ggml_block_bytes(f);
  const int64_t nsub = K / sub;
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  GptqState st = gptq_prepare(w, rows, K, H, o);
  std::vector<float> imp;
  if (hessian_fit) imp.assign(st.diag.begin(), st.diag.end());

  // Fits block b of row r to x (bs values): the format's quantizer sets its scales; its grids
  // are kept (the codes it wrote are replaced at the end).
  std::vector<GgmlGrid> grids(size_t(rows * nsub));
  auto fit = [&](int64_t r, int64_t b, const float* x) {
    uint8_t* blk = out + uint64_t(r) * rb + uint64_t(b) * bb;
    ggml_quantize_row(f, x, blk, bs, hessian_fit ? imp.data() + b * bs : nullptr);
    ggml_block_grids(f, blk, grids.data() + r * nsub + b * bs / sub);
  };
  const bool dynamic = !o.act_order;
  if (!dynamic) {  // act-order: blocks fitted up front, contiguous in the original column order
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> x(static_cast<size_t>(bs));
      for (int64_t b = 0; b < K / bs; ++b) {
        for (int64_t k = 0; k < bs; ++k) x[size_t(k)] = float(st.W[size_t(r * K + b * bs + k)]);
        fit(r, b, x.data());
      }
    }
  }

  std::vector<uint8_t> codes(static_cast<size_t>(rows * K));
  std::vector<float> deq(static_cast<size_t>(rows * K));
  const int64_t B = dynamic ? bs * std::max<int64_t>(1, o.block / bs) : o.block;
  gptq_run(st, B, threads, [&](int64_t r, int64_t j, const double* wr) {
    if (dynamic && j % bs == 0) {  // the whole block is up to date here (B is whole blocks)
      float x[ggml::QK_K];
      for (int64_t k = 0; k < bs; ++k) x[k] = float(wr[j + k]);
      fit(r, j / bs, x);
    }
    const int64_t c = st.perm[size_t(j)];
    const GgmlGrid& g = grids[size_t(r * nsub + c / sub)];
    const int q = ggml_grid_nearest(g, float(wr[j]));
    codes[size_t(r * K + c)] = uint8_t(q);
    deq[size_t(r * K + c)] = ggml_grid_value(g, q);
    return double(deq[size_t(r * K + c)]);
  });
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < K / bs; ++b)
      ggml_block_set_codes(f, out + uint64_t(r) * rb + uint64_t(b) * bb, codes.data() + r * K + b * bs);

  quant::QuantStats qs;
  for (int64_t i = 0; i < rows * K; ++i) qs.add(double(w[i]), deq[size_t(i)]);
  qs.finish();
  if (assumed) std::copy(deq.begin(), deq.end(), assumed);
  return qs;
}

void ggml_round_trip(Format f, const float* w, int64_t rows, int64_t K, const float* importance, uint8_t* bytes,
                     float* back) {
  const uint64_t rb = ggml_row_bytes(f, K);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    ggml_quantize_row(f, w + r * K, bytes + uint64_t(r) * rb, K, importance);
    ggml_dequantize_row(f, bytes + uint64_t(r) * rb, back + r * K, K);
  }
}

namespace {

bool is_block_format(Format f) { return format_traits(f).ggml && format_traits(f).quantized; }

// The output error tr(ΔHΔᵀ)/2 of llama.cpp's reference quantizer for the same type.
double reference_output_error(const std::vector<float>& w, int64_t rows, int64_t K, Format f, const float* H) {
  std::vector<uint8_t> bytes(size_t(ggml_row_bytes(f, K) * uint64_t(rows)));
  std::vector<float> back(w.size());
  ggml_round_trip(f, w.data(), rows, K, nullptr, bytes.data(), back.data());
  return output_error(w.data(), back.data(), rows, K, H);
}

// AWQ's α search scores each linear in its planned type with the fit that will store it: awq's
// activation-weighted fit (so the α = 0 end is awmse, and the chosen α never scores worse), or
// for awq+gptq llama.cpp's reference quantizer (GPTQ's error feedback comes afterwards).
RoundTripOf ggml_round_trips(const std::map<std::string, Format>& types, bool weighted) {
  return [&types, weighted](const Tensor& t) -> RoundTrip {
    auto ty = types.find(t.name);
    if (ty == types.end() || !is_block_format(ty->second)) return {};
    return [f = ty->second, weighted](const float* w, int64_t rows, int64_t K, const float* imp, float* back) {
      std::vector<uint8_t> bytes(size_t(ggml_row_bytes(f, K) * uint64_t(rows)));
      ggml_round_trip(f, w, rows, K, weighted ? imp : nullptr, bytes.data(), back);
    };
  };
}

}  // namespace

QuantPlan calibrate_for_gguf(const Model& src, const std::map<std::string, Format>& types,
                                   const CalibQuantOptions& c, bool hessian_fit, CalibQuantReport* report,
                                   const BlockProgress& progress) {
  QuantPlan g;
  QuantizeOptions unused;  // lmq's integer scheme options: not used for GGUF targets
  switch (c.method) {
    case Method::Rtn: return g;
    case Method::Mse: g.weighted = true; return g;
    case Method::AwMse: {
      auto holder = prepare_calibrated(src, unused, c, report, progress);
      g.tensors = std::move(holder->tensors);  // importance only
      g.weighted = true;
      return g;
    }
    case Method::Gptq:
    case Method::Awq:
    case Method::AwqGptq: break;
  }
  CalibQuantOptions cg = c;
  std::vector<CalibQuantReport::Layer> layers;
  std::vector<float> w, back;
  // Each linear of the block: GPTQ (gptq, awq+gptq) or the activation-weighted fit (awq, as
  // awmse) of its weights — with AWQ the column-scaled ones and the scaled input's statistics.
  cg.block_quantizer = [&](int, const std::vector<const Tensor*>& linears, const StatsMap& stats, AwqBlock* awq,
                           Model::Overlay& stored) {
    for (const Tensor* t : linears) {
      auto ty = types.find(t->name);
      if (ty == types.end() || !is_block_format(ty->second)) continue;  // stays as it is (AWQ: scaled F32)
      const Format f = ty->second;
      const InputStats* st = find_stats(stats, t->name);
      if (!st) fail("stats: no statistics for '{}'", t->name);
      if (st->K != t->cols()) fail("stats for '{}' have {} inputs, the weight {}", t->name, st->K, t->cols());
      w.resize(size_t(t->numel()));
      back.resize(w.size());
      dequantize_rows(*t, 0, t->rows(), w.data());
      InputStats scaled;
      const std::vector<float>* wq = &w;
      const InputStats* sq = st;
      if (awq) {
        scaled = scaled_stats(*st, awq->col_scale.at(t->name));
        sq = &scaled;
        wq = &awq->weights.at(t->name);
      }
      std::vector<uint8_t>& bytes = g.tensors[t->name].bytes;
      bytes.resize(size_t(ggml_row_bytes(f, t->cols()) * uint64_t(t->rows())));
      try {
        if (c.method == Method::Awq)
          ggml_round_trip(f, wq->data(), t->rows(), t->cols(), sq->sq_mean.data(), bytes.data(), back.data());
        else
          gptq_quantize_ggml(wq->data(), t->rows(), t->cols(), sq->hessian.data(), f, c.gptq, hessian_fit,
                             bytes.data(), back.data());
      } catch (const Error& e) {
        fail("{}: tensor '{}': {}", src.path(), t->name, e.what());
      }
      // the method's error in its (scaled) space vs llama.cpp's quantizer of the checkpoint's weights
      layers.push_back({t->name, output_error(wq->data(), back.data(), t->rows(), t->cols(), sq->hessian.data()),
                        reference_output_error(w, t->rows(), t->cols(), f, st->hessian.data())});
      if (awq) awq->weights.erase(t->name);
      Tensor pt = *t;
      pt.format = f;
      pt.data = bytes.data();
      pt.nbytes = bytes.size();
      stored.put(std::move(pt));
    }
  };
  if (c.method != Method::Gptq) cg.awq_round_trip = ggml_round_trips(types, c.method == Method::Awq);
  cg.stats_meta["lmq.stats.sequential"] =
      c.stats_in.empty() ? std::string(method_name(c.method)) + ":gguf" : std::string("no");
  auto holder = prepare_calibrated(src, unused, cg, report, progress);
  for (auto& [name, tp] : holder->tensors)
    if (!tp.values.empty()) g.tensors[name].values = std::move(tp.values);
  if (report) report->layers = std::move(layers);
  return g;
}

}  // namespace lmq::calib
