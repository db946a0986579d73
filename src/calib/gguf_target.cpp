// Calibrated methods into ggml block formats; see include/lmq/calib/gguf_target.h.
#include "lmq/calib/gguf_target.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "lmq/error.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/ggml_blocks.h"

namespace lmq::calib {

namespace {

// One GPTQ sweep of st into format f: the codes (rows × K) and the values they stand for. With
// `fit`, each block's grids are set by fit(r, b, x) from the row's current weights at the block's
// first column; without, `grids` (rows × K/sub) are fixed already.
using BlockFit = std::function<void(int64_t r, int64_t b, const float* x)>;
void sweep(GptqState& st, Format f, int64_t B, int threads, std::vector<GgmlGrid>& grids, const BlockFit& fit,
           uint8_t* codes, float* deq) {
  const int64_t bs = ggml_block_size(f), sub = ggml_sub_block_size(f), K = st.K, nsub = K / sub;
  gptq_run(st, B, threads, [&](int64_t r, int64_t j, const double* wr) {
    if (fit && j % bs == 0) {  // the whole block is up to date here (B is whole blocks)
      float x[ggml::QK_K];
      for (int64_t k = 0; k < bs; ++k) x[k] = float(wr[j + k]);
      fit(r, j / bs, x);
    }
    const int64_t c = st.perm()[size_t(j)];
    const GgmlGrid& g = grids[size_t(r * nsub + c / sub)];
    const int q = ggml_grid_nearest(g, float(wr[j]));
    codes[size_t(r * K + c)] = uint8_t(q);
    deq[size_t(r * K + c)] = ggml_grid_value(g, q);
    return double(deq[size_t(r * K + c)]);
  });
}

// dᵀHd/2 for d = w − w' of one row.
double row_error(const float* w, const float* wq, int64_t K, const float* H) {
  std::vector<double> d(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) d[size_t(k)] = double(w[k]) - double(wq[k]);
  double e = 0;
  for (int64_t i = 0; i < K; ++i) {
    double hd = 0;
    for (int64_t k = 0; k < K; ++k) hd += double(H[i * K + k]) * d[size_t(k)];
    e += d[size_t(i)] * hd;
  }
  return e / 2;
}

}  // namespace

quant::QuantStats gptq_quantize_ggml(const float* w, int64_t rows, int64_t K, const float* H, Format f,
                                     const GptqOptions& o, bool hessian_fit, uint8_t* out, float* assumed) {
  if (!format_traits(f).set_codes) fail("GPTQ into {}: not a format with a grid per sub-block", format_name(f));
  const int64_t bs = ggml_block_size(f), sub = ggml_sub_block_size(f);  // throws for float formats
  if (K % bs != 0) fail("GPTQ into {}: rows of {} values are not whole {}-value blocks", format_name(f), K, bs);
  if (o.block < 1) fail("GPTQ block {}: must be ≥ 1", o.block);
  if (o.refit < 0) fail("GPTQ refit rounds {}: must be ≥ 0", o.refit);
  const uint64_t rb = ggml_row_bytes(f, K);
  const size_t bb = ggml_block_bytes(f);
  const int64_t nsub = K / sub;
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  GptqState st = gptq_prepare(w, rows, K, H, o);
  std::vector<float> imp;
  if (hessian_fit) imp.assign(st.diag().begin(), st.diag().end());

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
  const std::vector<float> W0(st.W.begin(), st.W.end());  // dead columns zeroed: what GPTQ aims at
  sweep(st, f, B, threads, grids, dynamic ? BlockFit(fit) : BlockFit(), codes.data(), deq.data());
  auto set_codes = [&](uint8_t* bytes, const uint8_t* c, int64_t r) {
    for (int64_t b = 0; b < K / bs; ++b) ggml_block_set_codes(f, bytes + uint64_t(r) * rb + uint64_t(b) * bb, c + r * K + b * bs);
  };
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r = 0; r < rows; ++r) set_codes(out, codes.data(), r);

  // Joint rounds (Q2_K, Q3_K): the scales refitted to GPTQ's codes in the row's full output error,
  // then a sweep with those grids fixed picks new codes; each row keeps its best round.
  const bool refit = o.refit > 0 && (f == Format::Q2_K || f == Format::Q3_K);
  if (refit) {
    std::vector<double> best(static_cast<size_t>(rows));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; ++r) best[size_t(r)] = row_error(W0.data() + r * K, deq.data() + r * K, K, H);
    std::vector<uint8_t> cand(size_t(rb * uint64_t(rows))), codes2(codes.size());
    std::vector<float> deq2(deq.size());
    GptqOptions o2 = o;
    o2.inverse = st.inv;
    for (int round = 0; round < o.refit; ++round) {
      std::copy(out, out + rb * uint64_t(rows), cand.begin());
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4)
      for (int64_t r = 0; r < rows; ++r) {
        ggml_refit_row_scales(f, W0.data() + r * K, K, H, codes.data() + r * K, cand.data() + r * rb);
        for (int64_t b = 0; b < K / bs; ++b)
          ggml_block_grids(f, cand.data() + r * rb + b * bb, grids.data() + r * nsub + b * bs / sub);
      }
      GptqState st2 = gptq_prepare(w, rows, K, H, o2);
      sweep(st2, f, B, threads, grids, BlockFit(), codes2.data(), deq2.data());
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const double e = row_error(W0.data() + r * K, deq2.data() + r * K, K, H);
        if (!(e < best[size_t(r)])) continue;
        best[size_t(r)] = e;
        set_codes(cand.data(), codes2.data(), r);
        std::copy(cand.begin() + r * rb, cand.begin() + (r + 1) * rb, out + r * rb);
        std::copy(codes2.begin() + r * K, codes2.begin() + (r + 1) * K, codes.begin() + r * K);
        std::copy(deq2.begin() + r * K, deq2.begin() + (r + 1) * K, deq.begin() + r * K);
      }
    }
  }

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

}  // namespace lmq::calib
