// GPTQ against an independent, straightforward OBQ implementation (explicit inverse Hessian,
// rank-one downdates, no Cholesky trick, no lazy batching) on small exact problems, and
// against RTN on a real layer with real inputs; calibration windows, stats I/O, overlap check.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "lmq/calib/calib.h"
#include "lmq/calib/gptq.h"
#include "lmq/error.h"
#include "lmq/mapped_file.h"
#include "lmq/calib/block_runner.h"
#include "lmq/quant/int_quantize.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::calib;
using lmq::test::shared_path;

namespace {

// Gauss-Jordan inverse with partial pivoting (double).
std::vector<double> invert(std::vector<double> A, int64_t K) {
  std::vector<double> I(static_cast<size_t>(K * K), 0.0);
  for (int64_t i = 0; i < K; ++i) I[size_t(i * K + i)] = 1;
  for (int64_t c = 0; c < K; ++c) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < K; ++r)
      if (std::fabs(A[size_t(r * K + c)]) > std::fabs(A[size_t(piv * K + c)])) piv = r;
    for (int64_t k = 0; k < K; ++k) {
      std::swap(A[size_t(c * K + k)], A[size_t(piv * K + k)]);
      std::swap(I[size_t(c * K + k)], I[size_t(piv * K + k)]);
    }
    const double d = A[size_t(c * K + c)];
    for (int64_t k = 0; k < K; ++k) A[size_t(c * K + k)] /= d, I[size_t(c * K + k)] /= d;
    for (int64_t r = 0; r < K; ++r) {
      if (r == c) continue;
      const double f = A[size_t(r * K + c)];
      if (f == 0) continue;
      for (int64_t k = 0; k < K; ++k) A[size_t(r * K + k)] -= f * A[size_t(c * K + k)], I[size_t(r * K + k)] -= f * I[size_t(c * K + k)];
    }
  }
  return I;
}

// OBQ, greedy in the given order: returns the stored bytes.
std::vector<uint8_t> obq_reference(const std::vector<float>& w, int64_t rows, int64_t K, const std::vector<float>& Hf,
                                   const quant::Scheme& s, double damp, bool act_order) {
  const IntParams& p = s.p;
  std::vector<double> W(w.begin(), w.end()), H(Hf.begin(), Hf.end());
  for (int64_t j = 0; j < K; ++j)
    if (H[size_t(j * K + j)] == 0) {
      H[size_t(j * K + j)] = 1;
      for (int64_t r = 0; r < rows; ++r) W[size_t(r * K + j)] = 0;
    }
  std::vector<double> diag(static_cast<size_t>(K));
  for (int64_t j = 0; j < K; ++j) diag[size_t(j)] = H[size_t(j * K + j)];
  double mean = 0;
  for (double d : diag) mean += d;
  mean /= double(K);
  for (int64_t j = 0; j < K; ++j) H[size_t(j * K + j)] += damp * mean;
  std::vector<double> Hinv = invert(H, K);
  std::vector<int64_t> order(static_cast<size_t>(K));
  std::iota(order.begin(), order.end(), 0);
  if (act_order) std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return diag[a] > diag[b]; });

  const int64_t gpr = quant::int_groups_per_row(p, K), G = p.group;
  const bool dynamic = G > 0 && !act_order;
  std::vector<quant::GroupQ> qs(static_cast<size_t>(quant::int_scale_count(p, rows, K)));
  auto params_of = [&](int64_t r, int64_t c0, int64_t len) {
    std::vector<float> seg(static_cast<size_t>(len));
    for (int64_t k = 0; k < len; ++k) seg[size_t(k)] = float(W[size_t(r * K + c0 + k)]);
    return quant::choose_group_params(seg.data(), len, p, s.range, nullptr, s.percentile);
  };
  if (!dynamic) {
    if (G == 0) {
      std::vector<float> all(W.begin(), W.end());
      qs[0] = quant::choose_group_params(all.data(), rows * K, p, s.range, nullptr, s.percentile);
    } else {
      const int64_t span = G > 0 ? G : K;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c0 = 0; c0 < K; c0 += span) qs[size_t(quant::int_scale_index(p, gpr, r, c0))] = params_of(r, c0, std::min(span, K - c0));
    }
  }
  std::vector<uint8_t> codes(static_cast<size_t>(rows * K));
  for (int64_t j : order) {
    for (int64_t r = 0; r < rows; ++r) {
      if (dynamic && j % G == 0) qs[size_t(r * gpr + j / G)] = params_of(r, j, std::min(G, K - j));
      const quant::GroupQ g = qs[size_t(quant::int_scale_index(p, gpr, r, j))];
      const float x = float(W[size_t(r * K + j)]);
      uint8_t u;
      quant::quantize_group(&x, 1, g, p.bits, &u);
      codes[size_t(r * K + j)] = u;
      const double d = (W[size_t(r * K + j)] - double(quant::dequant_code(g.scale, u, g.zero))) / Hinv[size_t(j * K + j)];
      for (int64_t k = 0; k < K; ++k) W[size_t(r * K + k)] -= d * Hinv[size_t(j * K + k)];
    }
    const double hjj = Hinv[size_t(j * K + j)];
    std::vector<double> col(static_cast<size_t>(K)), row(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) col[size_t(k)] = Hinv[size_t(k * K + j)], row[size_t(k)] = Hinv[size_t(j * K + k)];
    for (int64_t a = 0; a < K; ++a)
      for (int64_t b = 0; b < K; ++b) Hinv[size_t(a * K + b)] -= col[size_t(a)] * row[size_t(b)] / hjj;
  }
  std::vector<uint8_t> out(quant::int_tensor_bytes(p, rows, K));
  quant::store_int_tensor(p, rows, K, codes.data(), qs.data(), out.data());
  return out;
}

struct Problem {
  int64_t rows, K;
  std::vector<float> w, H;
};

// Random W; H = 2XᵀX/n from n random inputs with a few dead columns and a spread of scales.
Problem random_problem(int64_t rows, int64_t K, int64_t n, uint32_t seed, std::vector<int64_t> dead = {}) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  Problem pr{rows, K, std::vector<float>(static_cast<size_t>(rows * K)), std::vector<float>(static_cast<size_t>(K * K), 0.f)};
  for (auto& v : pr.w) v = 0.1f * nd(rng);
  std::vector<double> X(static_cast<size_t>(n * K));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < K; ++j) X[size_t(t * K + j)] = nd(rng) * (1.0 + 3.0 * double(j % 5)) + 0.5 * (j % 3 == 0 ? X[size_t(t * K)] : 0.0);
  for (int64_t j : dead)
    for (int64_t t = 0; t < n; ++t) X[size_t(t * K + j)] = 0;
  for (int64_t a = 0; a < K; ++a)
    for (int64_t b = 0; b < K; ++b) {
      double s = 0;
      for (int64_t t = 0; t < n; ++t) s += X[size_t(t * K + a)] * X[size_t(t * K + b)];
      pr.H[size_t(a * K + b)] = float(2.0 * s / double(n));
    }
  return pr;
}

void expect_same_as_obq(const Problem& pr, const std::string& scheme, double damp, bool act_order, int block = 128) {
  const quant::Scheme s = quant::parse_scheme(scheme);
  GptqOptions o;
  o.damp = damp;
  o.act_order = act_order;
  o.block = block;
  std::vector<uint8_t> got(quant::int_tensor_bytes(s.p, pr.rows, pr.K));
  gptq_quantize(pr.w.data(), pr.rows, pr.K, pr.H.data(), s, o, got.data());
  const std::vector<uint8_t> want = obq_reference(pr.w, pr.rows, pr.K, pr.H, s, damp, act_order);
  const quant::IntView a = quant::int_view(s.p, got.data(), pr.rows, pr.K), b = quant::int_view(s.p, want.data(), pr.rows, pr.K);
  int64_t diff = 0;
  for (int64_t r = 0; r < pr.rows; ++r)
    for (int64_t c = 0; c < pr.K; ++c)
      diff += quant::packed_at(a.codes + r * a.layout.row_code_bytes, c, s.p.bits) !=
              quant::packed_at(b.codes + r * b.layout.row_code_bytes, c, s.p.bits);
  EXPECT_EQ(diff, 0) << scheme << " act_order " << act_order << " block " << block;
  EXPECT_TRUE(got == want) << scheme << ": stored bytes (codes, scales, zeros) differ";
}

}  // namespace

TEST(Gptq, MatchesObqReference) {
  const Problem pr = random_problem(16, 64, 48, 1, {5, 40});  // n < K: singular without damping
  for (const char* s : {"int4:channel:sym", "int3:g16:asym", "int2:g32:asym:mse", "int8:tensor:sym", "int4:g24:asym",
                        "int5:g16:sym:s=bf16"}) {
    expect_same_as_obq(pr, s, 0.01, false);
    expect_same_as_obq(pr, s, 0.01, false, 7);  // blocks not multiples of the group: rounded up to whole groups
    expect_same_as_obq(pr, s, 0.1, true, 10);   // act-order, static groups, blocks cut anywhere
  }
}

TEST(Gptq, MatchesObqReferenceWiderLayer) {
  const Problem pr = random_problem(24, 200, 400, 7, {0, 199});
  expect_same_as_obq(pr, "int3:g64:asym", 0.01, false);
  expect_same_as_obq(pr, "int4:channel:asym", 0.01, true, 32);
}

TEST(Gptq, DeadColumnsAndErrors) {
  Problem pr = random_problem(4, 16, 32, 3, {2});
  const quant::Scheme s = quant::parse_scheme("int4:channel:asym");
  std::vector<uint8_t> out(quant::int_tensor_bytes(s.p, 4, 16));
  gptq_quantize(pr.w.data(), 4, 16, pr.H.data(), s, {}, out.data());
  std::vector<float> back(4 * 16);
  quant::int_dequantize_rows(s.p, out.data(), 4, 16, 0, 4, back.data());
  for (int r = 0; r < 4; ++r) EXPECT_EQ(back[size_t(r * 16 + 2)], 0.f);  // dead input → weight 0
  // a rank-deficient Hessian without damping is refused
  Problem sing = random_problem(4, 16, 4, 4);
  GptqOptions nod;
  nod.damp = 0;
  EXPECT_THROW(gptq_quantize(sing.w.data(), 4, 16, sing.H.data(), s, nod, out.data()), Error);
  pr.w[3] = NAN;
  EXPECT_THROW(gptq_quantize(pr.w.data(), 4, 16, pr.H.data(), s, {}, out.data()), Error);
}

// U is the upper Cholesky factor of the damped, permuted H's inverse: upper triangular with a
// positive diagonal and UᵀU·H_d = I, checked in double against H_d rebuilt from the formula
// (dead diagonal 1, λ = damp · mean diag, rows and columns in processing order).
TEST(Gptq, InverseFactorIsCholeskyOfInverse) {
  for (const auto& [K, act_order] : {std::pair<int64_t, bool>{1, false}, {3, true}, {64, false}, {200, true}}) {
    const Problem pr = random_problem(2, K, 3 * K, uint32_t(K), K > 3 ? std::vector<int64_t>{1} : std::vector<int64_t>{});
    GptqOptions o;
    o.damp = 0.05;
    o.act_order = act_order;
    const GptqInverse inv = gptq_inverse(pr.H.data(), K, o);
    std::vector<double> Hd(size_t(K * K));
    double mean = 0;
    for (int64_t j = 0; j < K; ++j) mean += pr.H[size_t(j * K + j)] == 0 ? 1.0 : pr.H[size_t(j * K + j)];
    const double lambda = o.damp * mean / double(K);
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j) {
        const int64_t a = inv.perm[size_t(i)], b = inv.perm[size_t(j)];
        double h = pr.H[size_t(a * K + b)];
        if (i == j) h = (h == 0 ? 1.0 : h) + lambda;
        Hd[size_t(i * K + j)] = h;
      }
    double worst = 0;
    for (int64_t i = 0; i < K; ++i) {
      EXPECT_GT(inv.U[size_t(i * K + i)], 0) << "K " << K;
      for (int64_t j = 0; j < i; ++j) EXPECT_EQ(inv.U[size_t(i * K + j)], 0) << "K " << K;
    }
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j) {
        double s = 0;  // (UᵀU·H_d)(i, j) = Σ_k (UᵀU)(i, k)·H_d(k, j)
        for (int64_t k = 0; k < K; ++k) {
          double uu = 0;
          for (int64_t m = 0; m <= std::min(i, k); ++m) uu += inv.U[size_t(m * K + i)] * inv.U[size_t(m * K + k)];
          s += uu * Hd[size_t(k * K + j)];
        }
        worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
      }
    EXPECT_LT(worst, 1e-9) << "K " << K;
  }
}

// GPTQ's asymmetric target W* = W (C + λI)ᵀ H_d⁻¹ against its definition, from raw inputs: X̂
// (the quantized model's) and X = X̂ + noise (the float model's), the statistics gathered by
// StatsBatch/StatsAccumulator with references. F(V) = ‖XWᵀ − X̂Vᵀ‖²/n + λ‖W − V‖²/2 has zero
// gradient at W*, and F(V) − F(W*) = tr((V − W*) H_d (V − W*)ᵀ)/2 for any V (what GPTQ then
// minimises); with X = X̂, W* = W.
TEST(Gptq, AsymmetricTargetMinimisesTheAsymmetricObjective) {
  for (const auto& [cols, act_order, noise] :
       {std::tuple<int64_t, bool, double>{5, false, 0.3}, {24, true, 0.3}, {24, false, 0.0}, {40, true, 1.0}}) {
    const int64_t K = cols, rows = 7, n = 3 * K;  // (a plain variable: the lambdas below capture it)
    std::mt19937 rng(uint32_t(K * 10 + act_order));
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> Xq(size_t(n * K)), Xf(size_t(n * K)), w(size_t(rows * K));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < K; ++j) {
        Xq[size_t(t * K + j)] = nd(rng) * float(1 + j % 4);
        Xf[size_t(t * K + j)] = Xq[size_t(t * K + j)] + float(noise) * nd(rng);
      }
    for (float& v : w) v = 0.1f * nd(rng);
    StatsAccumulator acc(K);
    for (int64_t t0 = 0; t0 < n; t0 += 10) {  // in batches, as the pipeline merges windows
      StatsBatch b;
      const int m = int(std::min<int64_t>(10, n - t0));
      b.compute(Xq.data() + t0 * K, m, K, Xf.data() + t0 * K);
      acc.merge(b);
    }
    const InputStats st = acc.finish();
    ASSERT_EQ(st.cross.size(), size_t(K * K));
    GptqOptions o;
    o.damp = 0.05;
    o.act_order = act_order;
    const GptqInverse inv = gptq_inverse(st.hessian.data(), K, o);
    const std::vector<float> ws = gptq_asymmetric_target(w.data(), rows, K, st.cross.data(), inv);
    const double lambda = inv.lambda;
    auto F = [&](const std::vector<double>& V) {
      double f = 0;
      for (int64_t t = 0; t < n; ++t)
        for (int64_t r = 0; r < rows; ++r) {
          double y = 0;
          for (int64_t j = 0; j < K; ++j)
            y += double(Xf[size_t(t * K + j)]) * w[size_t(r * K + j)] - double(Xq[size_t(t * K + j)]) * V[size_t(r * K + j)];
          f += y * y / double(n);
        }
      for (int64_t i = 0; i < rows * K; ++i) f += lambda / 2 * (w[size_t(i)] - V[size_t(i)]) * (w[size_t(i)] - V[size_t(i)]);
      return f;
    };
    const std::vector<double> Ws(ws.begin(), ws.end());
    // the gradient of F at W*: −(2/n)(XWᵀ − X̂W*ᵀ)ᵀX̂ − λ(W − W*)
    double grad = 0, scale = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < K; ++j) {
        double g = -lambda * (w[size_t(r * K + j)] - Ws[size_t(r * K + j)]);
        for (int64_t t = 0; t < n; ++t) {
          double y = 0;
          for (int64_t k = 0; k < K; ++k)
            y += double(Xf[size_t(t * K + k)]) * w[size_t(r * K + k)] - double(Xq[size_t(t * K + k)]) * Ws[size_t(r * K + k)];
          g -= 2.0 / double(n) * y * Xq[size_t(t * K + j)];
        }
        grad = std::max(grad, std::fabs(g));
        scale = std::max(scale, lambda * std::fabs(double(w[size_t(r * K + j)])));
      }
    EXPECT_LT(grad, 1e-4 * std::max(scale, 1e-3)) << "K " << K;
    // F(V) − F(W*) = tr((V − W*) H_d (V − W*)ᵀ)/2
    std::vector<double> V = Ws;
    for (double& v : V) v += 0.05 * nd(rng);
    double quad = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t a = 0; a < K; ++a)
        for (int64_t b = 0; b < K; ++b)
          quad += 0.5 * (V[size_t(r * K + a)] - Ws[size_t(r * K + a)]) *
                  (double(st.hessian[size_t(a * K + b)]) + (a == b ? lambda : 0.0)) * (V[size_t(r * K + b)] - Ws[size_t(r * K + b)]);
    EXPECT_NEAR(F(V) - F(Ws), quad, 1e-4 * quad) << "K " << K;
    if (noise == 0) {
      for (int64_t i = 0; i < rows * K; ++i) EXPECT_NEAR(ws[size_t(i)], w[size_t(i)], 1e-5) << "K " << K << " at " << i;
    }
  }
}

// Act-order in runs (GptqOptions::order_run, for the lattice i-quants): runs of 8 columns stay
// together and in order, sorted by their summed H_jj, largest first; with runs of 1 the order is
// by H_jj itself; a width that is not whole runs is refused.
TEST(Gptq, ActOrderInRuns) {
  const Problem pr = random_problem(2, 64, 256, 5);
  GptqOptions o;
  o.act_order = true;
  const GptqInverse single = gptq_inverse(pr.H.data(), 64, o);
  for (size_t i = 1; i < 64; ++i)
    EXPECT_GE(pr.H[size_t(single.perm[i - 1] * 65)], pr.H[size_t(single.perm[i] * 65)]);
  o.order_run = 8;
  const GptqInverse runs = gptq_inverse(pr.H.data(), 64, o);
  double last = INFINITY;
  for (size_t i = 0; i < 64; i += 8) {
    double e = 0;
    for (size_t k = 0; k < 8; ++k) {
      EXPECT_EQ(runs.perm[i + k], runs.perm[i] + int64_t(k));
      e += pr.H[size_t(runs.perm[i + k] * 65)];
    }
    EXPECT_EQ(runs.perm[i] % 8, 0);
    EXPECT_LE(e, last);
    last = e;
  }
  std::vector<int64_t> sorted = runs.perm;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(sorted[i], int64_t(i));
  o.order_run = 12;
  EXPECT_THROW(gptq_inverse(pr.H.data(), 64, o), Error);
}

namespace {
// Hidden inputs of one real linear layer from windows of the second half of docs-valid.
struct RealLayer {
  std::unique_ptr<Model> m;
  std::vector<float> w, Xtrain, Xtest;
  int64_t rows = 0, K = 0, ntrain = 0, ntest = 0;
};

const RealLayer& real_layer() {
  static RealLayer L = [] {
    RealLayer r;
    r.m = Model::load(shared_path("models/lmq-llama-25m"));
    const std::string name = "model.layers.2.mlp.down_proj.weight";
    const Tensor& t = *r.m->find(name);
    r.rows = t.rows();
    r.K = t.cols();
    r.w.resize(static_cast<size_t>(t.numel()));
    dequantize_rows(t, 0, t.rows(), r.w.data());
    const std::string text = read_text_file(shared_path("text/docs-valid.txt"));
    size_t mid = text.find('\n', text.size() / 2) + 1;  // the second half, by lines
    const std::string part = text.substr(mid, 150000);
    const auto wins = calib_windows(r.m->tokenizer(), part, 10, 512, r.m->config().bos_id);
    calib::BlockRunner run(*r.m, 512);
    std::vector<float>* dst = nullptr;
    run.set_observer([&](const Tensor& wt, const float* x, int n) {
      if (wt.name == name) dst->insert(dst->end(), x, x + int64_t(n) * r.K);
    });
    std::vector<float> h(static_cast<size_t>(512 * r.m->config().hidden));
    for (size_t i = 0; i < wins.size(); ++i) {
      dst = i < 8 ? &r.Xtrain : &r.Xtest;
      run.reset();
      run.embed_tokens(wins[i].data(), int(wins[i].size()), h.data());
      run.forward_layers(h.data(), int(wins[i].size()), 0, 3);
    }
    r.ntrain = int64_t(r.Xtrain.size()) / r.K;
    r.ntest = int64_t(r.Xtest.size()) / r.K;
    return r;
  }();
  return L;
}

std::vector<float> hessian_of(const std::vector<float>& X, int64_t K) {
  StatsAccumulator acc(K);
  const int64_t n = int64_t(X.size()) / K;
  for (int64_t t0 = 0; t0 < n; t0 += 128) acc.add(X.data() + t0 * K, int(std::min<int64_t>(128, n - t0)));
  return acc.finish().hessian;
}

// ‖W X − W' X‖² / n over the first n inputs of X (n × K), computed directly.
double layer_output_error(const std::vector<float>& w, const std::vector<float>& wq, int64_t rows, int64_t K,
                          const std::vector<float>& X, int64_t n) {
  double s = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double d = 0;
      for (int64_t k = 0; k < K; ++k) d += (double(w[size_t(r * K + k)]) - wq[size_t(r * K + k)]) * X[size_t(t * K + k)];
      s += d * d;
    }
  return s / double(n);
}
}  // namespace

TEST(Gptq, BeatsRtnOnRealLayer) {
  const RealLayer& L = real_layer();
  ASSERT_GE(L.ntrain, 8 * 512);
  const std::vector<float> H = hessian_of(L.Xtrain, L.K);
  // the accumulated H matches 2XᵀX/n computed directly, and output_error matches ‖ΔX‖²/n
  {
    double s = 0;
    for (int64_t t = 0; t < L.ntrain; ++t) s += double(L.Xtrain[size_t(t * L.K + 7)]) * L.Xtrain[size_t(t * L.K + 11)];
    EXPECT_NEAR(H[size_t(7 * L.K + 11)], 2 * s / double(L.ntrain), 1e-4 * std::fabs(2 * s / double(L.ntrain)) + 1e-6);
  }
  const std::vector<float> Htest = hessian_of(L.Xtest, L.K);
  for (const char* sch : {"int4:g128:asym", "int3:g128:asym", "int2:g128:asym", "int4:channel:sym"}) {
    const quant::Scheme s = quant::parse_scheme(sch);
    const uint64_t nb = quant::int_tensor_bytes(s.p, L.rows, L.K);
    std::vector<uint8_t> rtn(nb), gq(nb);
    quant::quantize_tensor(L.w.data(), L.rows, L.K, s.p, s.range, s.percentile, nullptr, rtn.data(), 0);
    gptq_quantize(L.w.data(), L.rows, L.K, H.data(), s, {}, gq.data());
    std::vector<float> wr(L.w.size()), wg(L.w.size());
    quant::int_dequantize_rows(s.p, rtn.data(), L.rows, L.K, 0, L.rows, wr.data());
    quant::int_dequantize_rows(s.p, gq.data(), L.rows, L.K, 0, L.rows, wg.data());
    // ‖ΔX‖²/n = tr(ΔHΔᵀ)/2: the direct product on the first 256 inputs agrees with output_error
    if (s.p.bits == 3) {
      const std::vector<float> X256(L.Xtrain.begin(), L.Xtrain.begin() + 256 * L.K);
      const std::vector<float> H256 = hessian_of(X256, L.K);
      const double direct = layer_output_error(L.w, wg, L.rows, L.K, L.Xtrain, 256);
      EXPECT_NEAR(output_error(L.w.data(), wg.data(), L.rows, L.K, H256.data()), direct, 1e-3 * direct);
    }
    const double e_rtn = output_error(L.w.data(), wr.data(), L.rows, L.K, H.data());
    const double e_gq = output_error(L.w.data(), wg.data(), L.rows, L.K, H.data());
    // every 4th row (the report's estimate above kReportRows): their exact error times 4 when
    // rows divide, and near the whole on a real layer (measured within 5%)
    if (s.p.bits == 4 && L.rows % 4 == 0) {
      std::vector<float> w4, g4;
      for (int64_t r = 0; r < L.rows; r += 4) {
        w4.insert(w4.end(), L.w.begin() + r * L.K, L.w.begin() + (r + 1) * L.K);
        g4.insert(g4.end(), wg.begin() + r * L.K, wg.begin() + (r + 1) * L.K);
      }
      const double est = output_error(L.w.data(), wg.data(), L.rows, L.K, H.data(), 1, 4);
      EXPECT_NEAR(est, 4 * output_error(w4.data(), g4.data(), L.rows / 4, L.K, H.data(), 1), 1e-9 * est);
      EXPECT_NEAR(est, e_gq, 0.1 * e_gq) << sch << ": estimate from every 4th row";
      std::printf("%-18s output error from every 4th row %.4g vs all %.4g\n", sch, est, e_gq);
    }
    const double t_rtn = output_error(L.w.data(), wr.data(), L.rows, L.K, Htest.data());
    const double t_gq = output_error(L.w.data(), wg.data(), L.rows, L.K, Htest.data());
    std::printf("%-18s ||dW X||^2/n  calibration: rtn %.4g gptq %.4g (%.2fx)   held-out: rtn %.4g gptq %.4g (%.2fx)\n",
                sch, e_rtn, e_gq, e_gq / e_rtn, t_rtn, t_gq, t_gq / t_rtn);
    EXPECT_LT(e_gq, 0.8 * e_rtn) << sch;
    // 4096 calibration tokens for 1024 inputs overfit: on held-out windows GPTQ is only about
    // even with RTN here (measured 0.95–1.08×); the whole-model runs use 128×512 tokens.
    EXPECT_LT(t_gq, 1.25 * t_rtn) << sch << " (held-out windows)";
  }
}

TEST(Calib, WindowsStatsFileAndOverlap) {
  const RealLayer& L = real_layer();
  const Tokenizer& tok = L.m->tokenizer();
  const std::string text = read_text_file(shared_path("text/docs-valid.txt")).substr(0, 20000);
  const auto a = calib_windows(tok, text, 5, 64, 1), b = calib_windows(tok, text, 5, 64, 1);
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a, b);
  const std::vector<int> ids = tok.encode(text);
  EXPECT_EQ(a[0][0], 1);
  EXPECT_EQ(a[0].size(), 64u);
  EXPECT_TRUE(std::equal(a[0].begin() + 1, a[0].end(), ids.begin()));
  EXPECT_TRUE(std::equal(a[4].begin() + 1, a[4].end(), ids.end() - 63));  // the last ends at the text's end
  EXPECT_THROW(calib_windows(tok, "hello", 2, 64, 1), Error);

  EXPECT_EQ(stat_key("model.layers.3.self_attn.v_proj.weight"), "model.layers.3.self_attn.q_proj");
  EXPECT_EQ(stat_key("model.layers.3.mlp.up_proj.weight"), "model.layers.3.mlp.gate_proj");
  EXPECT_EQ(stat_key("model.layers.3.mlp.down_proj.weight"), "model.layers.3.mlp.down_proj");

  StatsMap st;
  StatsAccumulator acc(L.K);
  acc.add(L.Xtest.data(), 100);
  acc.add(L.Xtest.data() + 100 * L.K, 28);
  st["model.layers.2.mlp.down_proj"] = acc.finish();
  const std::string dir = lmq::test::temp_dir();
  save_stats(dir + "/s.safetensors", st, {{"lmq.stats.source", "test"}});
  std::map<std::string, std::string> meta;
  const StatsMap back = load_stats(dir + "/s.safetensors", &meta);
  EXPECT_EQ(meta.at("lmq.stats.source"), "test");
  const InputStats* s = find_stats(back, "model.layers.2.mlp.down_proj.weight");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->tokens, 128);
  EXPECT_EQ(s->hessian, st.begin()->second.hessian);
  EXPECT_EQ(s->sq_mean, st.begin()->second.sq_mean);
  EXPECT_EQ(s->max, st.begin()->second.max);
  for (int64_t j = 0; j < L.K; j += 97) EXPECT_NEAR(s->sq_mean[size_t(j)], s->hessian[size_t(j * L.K + j)] / 2, 1e-4 * s->sq_mean[size_t(j)] + 1e-9);

  lmq::test::write_file(dir + "/a.txt", "some text\n");
  lmq::test::write_file(dir + "/b.txt", "some text\n");
  lmq::test::write_file(dir + "/c.txt", "other text\n");
  EXPECT_THROW(check_no_overlap(dir + "/a.txt", dir + "/a.txt"), Error);
  EXPECT_THROW(check_no_overlap(dir + "/a.txt", dir + "/../" + std::filesystem::path(dir).filename().string() + "/a.txt"), Error);
  EXPECT_THROW(check_no_overlap(dir + "/a.txt", dir + "/b.txt"), Error);  // same content
  EXPECT_NO_THROW(check_no_overlap(dir + "/a.txt", dir + "/c.txt"));
}

// The CLI end to end on a small calibration set: GPTQ (only layer 0's attention, the rest kept
// in bf16 to stay fast) writes a loadable file; the saved statistics reproduce the same tensors.
TEST(GptqCli, QuantizeSaveAndReuseStats) {
  const std::string dir = lmq::test::temp_dir();
  const std::string text = read_text_file(shared_path("text/docs-valid.txt"));
  lmq::test::write_file(dir + "/calib.txt", text.substr(text.find('\n', text.size() / 2) + 1, 20000));
  const std::string model = shared_path("models/lmq-llama-25m");
  const std::vector<std::string> common{"quantize", model, "--scheme", "int4:g32:asym", "--method", "gptq",
                                        "--override", "layers\\.[1-7]\\.=bf16", "--override", "mlp=bf16",
                                        "--threads", "2"};
  auto args = common;
  for (const char* a : {"-o", "", "--calib", "", "--calib-samples", "3", "--calib-len", "64", "--save-stats", ""}) args.push_back(a);
  args[args.size() - 9] = dir + "/a.lmq";
  args[args.size() - 7] = dir + "/calib.txt";
  args[args.size() - 1] = dir + "/stats.safetensors";
  const auto r1 = lmq::test::run_lmq(args);
  ASSERT_EQ(r1.exit_code, 0) << r1.err << r1.out;
  EXPECT_NE(r1.out.find("gptq: 4 layers"), std::string::npos) << r1.out;
  EXPECT_NE(r1.out.find("peak memory"), std::string::npos);
  auto args2 = common;
  for (const char* a : {"-o", "", "--stats", ""}) args2.push_back(a);
  args2[args2.size() - 3] = dir + "/b.lmq";
  args2[args2.size() - 1] = dir + "/stats.safetensors";
  const auto r2 = lmq::test::run_lmq(args2);
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  auto a = Model::load(dir + "/a.lmq"), b = Model::load(dir + "/b.lmq");
  const Tensor* qa = a->find("model.layers.0.self_attn.k_proj.weight");
  const Tensor* qb = b->find("model.layers.0.self_attn.k_proj.weight");
  ASSERT_TRUE(qa && qb);
  EXPECT_EQ(qa->format, Format::LMQ_INT);
  ASSERT_EQ(qa->nbytes, qb->nbytes);
  EXPECT_EQ(std::memcmp(qa->data, qb->data, qa->nbytes), 0);
  const auto st = load_stats(dir + "/stats.safetensors");
  EXPECT_EQ(st.size(), 32u);  // 8 blocks × (qkv, o, gate/up, down)
  EXPECT_EQ(st.at("model.layers.0.self_attn.q_proj").tokens, 3 * 64);
  // the result runs
  const auto ev = lmq::test::run_lmq({"eval", dir + "/a.lmq", "--text", dir + "/calib.txt", "--windows", "1", "--ctx", "64"});
  EXPECT_EQ(ev.exit_code, 0) << ev.err;
  // errors: a method without calibration, gptq without data
  EXPECT_NE(lmq::test::run_lmq({"quantize", model, "-o", dir + "/c.lmq", "--method", "gptq"}).exit_code, 0);
  EXPECT_NE(lmq::test::run_lmq({"quantize", model, "-o", dir + "/c.lmq", "--method", "nope"}).exit_code, 0);
}
