// GPTQ; see include/lmq/calib/gptq.h.
#include "lmq/calib/gptq.h"

#include <cblas.h>
#include <lapacke.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>

#include "lmq/error.h"
#include "serial_blas.h"

namespace lmq::calib {

using quant::GroupQ;

GptqInverse gptq_inverse(const float* H, int64_t K, const GptqOptions& o) {
  if (!(o.damp >= 0) || !std::isfinite(o.damp)) fail("--damp {}: must be a finite number ≥ 0", o.damp);
  for (int64_t i = 0; i < K * K; ++i)
    if (!std::isfinite(H[i])) fail("Hessian entry ({}, {}) is not finite", i / K, i % K);
  GptqInverse inv;
  inv.K = K;
  // 1. dead inputs: H_jj = 1 (their weights are zeroed by gptq_prepare)
  std::vector<double>& diag = inv.diag;
  diag.resize(static_cast<size_t>(K));
  for (int64_t j = 0; j < K; ++j) diag[j] = H[j * K + j] == 0 ? 1 : H[j * K + j];

  // 2. processing order
  std::vector<int64_t>& perm = inv.perm;
  perm.resize(static_cast<size_t>(K));
  std::iota(perm.begin(), perm.end(), 0);
  if (o.act_order) {
    const int64_t run = std::max(o.order_run, 1);
    if (K % run != 0) fail("GPTQ act-order in runs of {}: {} columns are not whole runs", run, K);
    std::vector<int64_t> runs(static_cast<size_t>(K / run));
    std::vector<double> energy(runs.size());
    std::iota(runs.begin(), runs.end(), 0);
    for (int64_t j = 0; j < K; ++j) energy[size_t(j / run)] += diag[size_t(j)];
    std::stable_sort(runs.begin(), runs.end(), [&](int64_t a, int64_t b) { return energy[size_t(a)] > energy[size_t(b)]; });
    for (int64_t i = 0; i < K; ++i) perm[size_t(i)] = runs[size_t(i / run)] * run + i % run;
  }
  std::vector<double>& U = inv.U;
  U.resize(size_t(K * K));
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j)
      U[size_t(i * K + j)] = i == j ? diag[perm[i]] : double(H[perm[i] * K + perm[j]]);
  // dead rows/columns of H are zero already except the diagonal we set to 1

  // 3. damping
  const double lambda = o.damp * std::accumulate(diag.begin(), diag.end(), 0.0) / double(std::max<int64_t>(K, 1));
  for (int64_t j = 0; j < K; ++j) U[size_t(j * K + j)] += lambda;
  inv.lambda = lambda;

  // 4. U = chol(H⁻¹)ᵀ (upper), by one factorization and one triangular inverse (⅔K³ flops, half
  // of dpotrf + dpotri + dpotrf): with P the reversal, PHP = LLᵀ gives H = AAᵀ for the upper
  // A = PLP, so H⁻¹ = (A⁻¹)ᵀA⁻¹ and U = A⁻¹ = PL⁻¹P (Cholesky factors are unique). LAPACK runs
  // column-major on the row-major array: its lower triangle is the row-major upper one.
  if (K > 0) {
    std::reverse(U.begin(), U.end());  // PHP (symmetric, so either storage order)
    lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', lapack_int(K), U.data(), lapack_int(K));
    if (info != 0)
      fail("GPTQ: the Hessian is not positive definite (its trailing {} × {} block); raise --damp (now {})", info,
           info, o.damp);
    info = LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'L', 'N', lapack_int(K), U.data(), lapack_int(K));
    if (info != 0) fail("GPTQ: the Hessian is singular (dtrtri {}); raise --damp (now {})", info, o.damp);
    // column-major L⁻¹ at (i, j) = row-major [j·K + i]; U(a, b) = L⁻¹(K−1−a, K−1−b) = row-major
    // [K² − 1 − (b·K + a)]: reversed, then transposed
    std::reverse(U.begin(), U.end());
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = i + 1; j < K; ++j) {
        U[size_t(i * K + j)] = U[size_t(j * K + i)];
        U[size_t(j * K + i)] = 0;
      }
  }
  return inv;
}

std::vector<float> gptq_asymmetric_target(const float* w, int64_t rows, int64_t K, const float* cross,
                                          const GptqInverse& inv, double alpha) {
  LMQ_CHECK(inv.K == K && inv.U.size() == size_t(K * K), "inverse of {} columns for a weight of {}", inv.K, K);
  std::vector<float> out(size_t(rows * K));
  if (rows == 0 || K == 0) return out;
  // M = W (C + λI)ᵀ in double (Mo), then its columns in processing order (M, in W's place)
  std::vector<double> W(size_t(rows * K)), C(size_t(K * K)), Mo(size_t(rows * K));
  for (int64_t i = 0; i < rows * K; ++i) W[size_t(i)] = w[i];
  for (int64_t i = 0; i < K * K; ++i) C[size_t(i)] = cross[i];
  for (int64_t j = 0; j < K; ++j) C[size_t(j * K + j)] += inv.lambda;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(K), int(K), 1.0, W.data(), int(K), C.data(),
              int(K), 0.0, Mo.data(), int(K));
  std::vector<double>& M = W;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t a = 0; a < K; ++a) M[size_t(r * K + a)] = Mo[size_t(r * K + inv.perm[size_t(a)])];
  // · H_d⁻¹ = · UᵀU (processing order)
  cblas_dtrmm(CblasRowMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, int(rows), int(K), 1.0, inv.U.data(),
              int(K), M.data(), int(K));
  cblas_dtrmm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, int(rows), int(K), 1.0, inv.U.data(),
              int(K), M.data(), int(K));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t a = 0; a < K; ++a) {
      const double v = M[size_t(r * K + a)];
      if (!std::isfinite(v)) fail("GPTQ's asymmetric target: entry ({}, {}) is not finite; raise --damp", r, a);
      out[size_t(r * K + inv.perm[size_t(a)])] = float(v);
    }
  if (alpha != 1)
    for (int64_t i = 0; i < rows * K; ++i) out[size_t(i)] = w[i] + float(alpha) * (out[size_t(i)] - w[i]);
  return out;
}

GptqState gptq_prepare(const float* w, int64_t rows, int64_t K, const float* H, const GptqOptions& o) {
  if (!(o.damp >= 0) || !std::isfinite(o.damp)) fail("--damp {}: must be a finite number ≥ 0", o.damp);
  for (int64_t i = 0; i < rows * K; ++i)
    if (!std::isfinite(w[i])) fail("weight {} at row {}, column {} is not finite", w[i], i / K, i % K);
  LMQ_CHECK(!o.inverse || o.inverse->K == K, "GPTQ inverse of {} columns for a weight of {}", o.inverse->K, K);
  GptqState st;
  st.rows = rows;
  st.K = K;
  st.inv = o.inverse ? o.inverse : std::make_shared<const GptqInverse>(gptq_inverse(H, K, o));
  // 1. dead inputs: their weights are zeroed
  st.W.assign(w, w + rows * K);
  for (int64_t j = 0; j < K; ++j)
    if (H[j * K + j] == 0)
      for (int64_t r = 0; r < rows; ++r) st.W[size_t(r * K + j)] = 0;
  const std::vector<int64_t>& perm = st.perm();
  st.Wp.resize(static_cast<size_t>(rows * K));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < K; ++j) st.Wp[size_t(r * K + j)] = st.W[size_t(r * K + perm[j])];
  return st;
}

namespace {

// Step 5 for rows [r0, r1): each block's columns one by one, then the lazy update of the
// columns after the block for these rows as one matrix product.
void gptq_rows(GptqState& st, int64_t B, int64_t r0, int64_t r1, const GptqColumnQuant& quant) {
  const int64_t K = st.K, nr = r1 - r0;
  const std::vector<double>& U = st.inv->U;
  std::vector<double> E(size_t(nr * std::min(B, std::max<int64_t>(K, 1))));
  for (int64_t i1 = 0; i1 < K; i1 += B) {
    const int64_t i2 = std::min(i1 + B, K), nb = i2 - i1;
    for (int64_t r = r0; r < r1; ++r) {
      double* wr = st.Wp.data() + r * K;
      for (int64_t j = i1; j < i2; ++j) {
        const double e = (wr[j] - quant(r, j, wr)) / U[size_t(j * K + j)];
        E[size_t((r - r0) * nb + (j - i1))] = e;
        const double* uj = U.data() + j * K;
        for (int64_t k = j + 1; k < i2; ++k) wr[k] -= e * uj[k];
      }
    }
    if (i2 < K && nr > 0)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(nr), int(K - i2), int(nb), -1.0, E.data(), int(nb),
                  U.data() + i1 * K + i2, int(K), 1.0, st.Wp.data() + r0 * K + i2, int(K));
  }
}

}  // namespace

void gptq_run(GptqState& st, int64_t B, int threads, const GptqColumnQuant& quant) {
  // Rows are independent (a row's errors feed only its own later columns), so each thread takes
  // a contiguous slice of rows through all blocks, its lazy updates included, with BLAS serial
  // in that thread: no barrier per block, and no BLAS thread pool competing with OpenMP's.
  const SerialBlas serial;
  const int T = int(std::clamp<int64_t>(threads, 1, std::max<int64_t>(st.rows, 1)));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(T));
#pragma omp parallel num_threads(T)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    try {
      gptq_rows(st, B, st.rows * t / n, st.rows * (t + 1) / n, quant);
    } catch (...) {
      errors[size_t(t)] = std::current_exception();
    }
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

quant::QuantStats gptq_quantize(const float* w, int64_t rows, int64_t K, const float* H, const quant::Scheme& s,
                                const GptqOptions& o, uint8_t* out) {
  if (s.kind != quant::Scheme::Int) fail("GPTQ needs an integer scheme, got {}", s.to_string());
  if (o.block < 1) fail("GPTQ block {}: must be ≥ 1", o.block);
  const IntParams& p = s.p;
  const quant::IntLayout l = quant::int_layout(p, rows, K);
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  GptqState st = gptq_prepare(w, rows, K, H, o);

  // Group parameters fixed up front (per tensor, per channel, act-order's static groups).
  const int64_t G = p.group, gpr = l.groups_per_row;
  const bool dynamic = G > 0 && !o.act_order;
  std::vector<GroupQ> qs(static_cast<size_t>(l.n_scales));
  if (!dynamic) {
    std::vector<float> wf(st.W.begin(), st.W.end());
    if (G == 0) {
      qs[0] = quant::choose_group_params(wf.data(), rows * K, p, s.range, nullptr, s.percentile);
    } else {
      const int64_t span = G > 0 ? G : std::max<int64_t>(K, 1);
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c0 = 0; c0 < K; c0 += span)
          qs[size_t(quant::int_scale_index(p, gpr, r, c0))] = quant::choose_group_params(
              wf.data() + r * K + c0, std::min(span, K - c0), p, s.range, nullptr, s.percentile);
    }
  }

  // 5. column by column with lazy batched updates
  const int64_t B = dynamic ? G * std::max<int64_t>(1, o.block / G) : o.block;
  std::vector<uint8_t> codes(static_cast<size_t>(rows * K));
  gptq_run(st, B, threads, [&](int64_t r, int64_t j, const double* wr) {
    const int64_t c = st.perm()[size_t(j)];
    if (dynamic && j % G == 0) {
      const int64_t len = std::min(G, K - j);
      float seg[1024];
      std::vector<float> big;
      float* sp = seg;
      if (len > 1024) big.resize(size_t(len)), sp = big.data();
      for (int64_t k = 0; k < len; ++k) sp[k] = float(wr[j + k]);
      qs[size_t(r * gpr + j / G)] = quant::choose_group_params(sp, len, p, s.range, nullptr, s.percentile);
    }
    const GroupQ g = qs[size_t(quant::int_scale_index(p, gpr, r, c))];
    uint8_t u;
    const float x = float(wr[j]);
    quant::quantize_group(&x, 1, g, p.bits, &u);
    codes[size_t(r * K + c)] = u;
    return double(quant::dequant_code(g.scale, u, g.zero));
  });

  quant::store_int_tensor(p, rows, K, codes.data(), qs.data(), out);

  quant::QuantStats qst;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < K; ++c) {
      const GroupQ g = qs[size_t(quant::int_scale_index(p, gpr, r, c))];
      const double x = w[r * K + c];
      qst.add(x, double(quant::dequant_code(g.scale, codes[size_t(r * K + c)], g.zero)));
    }
  qst.finish();
  return qst;
}

double output_error(const float* w, const float* wq, int64_t rows, int64_t K, const float* H, int threads,
                    int64_t row_stride) {
  LMQ_CHECK(row_stride >= 1, "output error over every {}th row", row_stride);
  const int64_t all = rows;
  rows = (rows + row_stride - 1) / row_stride;  // rows 0, stride, 2·stride, …
  // Rows split over the threads, each slice's D·H one float product with BLAS serial in its
  // thread (a report: float's ~1e-6 relative error is far below what it compares, and sgemm
  // is twice dgemm's speed, with no double copy of H); the products' sums are accumulated in
  // double and the partial sums added in thread order (deterministic for a given thread count).
  const SerialBlas serial;
  const int T = int(std::clamp<int64_t>(threads > 0 ? threads : omp_get_max_threads(), 1, std::max<int64_t>(rows, 1)));
  std::vector<double> part(static_cast<size_t>(T), 0.0);
#pragma omp parallel num_threads(T)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t r0 = rows * t / n, nr = rows * (t + 1) / n - r0;
    std::vector<float> D(static_cast<size_t>(nr * K)), M(static_cast<size_t>(nr * K));
    for (int64_t r = 0; r < nr; ++r) {
      const int64_t at = (r0 + r) * row_stride * K;
      for (int64_t k = 0; k < K; ++k) D[size_t(r * K + k)] = w[at + k] - wq[at + k];
    }
    if (nr > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(nr), int(K), int(K), 1.0f, D.data(), int(K), H,
                  int(K), 0.0f, M.data(), int(K));
    double s = 0;
    for (int64_t i = 0; i < nr * K; ++i) s += double(M[size_t(i)]) * double(D[size_t(i)]);
    part[size_t(t)] = s;
  }
  const double sum = std::accumulate(part.begin(), part.end(), 0.0) / 2;
  return rows == all ? sum : sum * double(all) / double(rows);
}

}  // namespace lmq::calib
