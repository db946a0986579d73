// One row's quadratic output error while a descent changes its quantized values: ŵ, Δ = w − ŵ
// and g = HΔ kept in step, so the change of ΔᵀHΔ for a few values costs only their block of H.
// Shared by the scale refits of the K-quants (kquant_refine.cpp) and the lattice i-quants
// (iquant_lattice_refit.cpp).
#pragma once
#include <cstdint>
#include <vector>

namespace lmq::ggml {

struct RowFit {
  const float* H;  // K × K, symmetric
  int64_t K;
  std::vector<double> what, delta, g;

  // ŵ = what (K values) for the row w: sets Δ and g.
  RowFit(const float* H_, int64_t K_, const float* w, std::vector<double> what_)
      : H(H_), K(K_), what(std::move(what_)), delta(size_t(K_)), g(size_t(K_), 0.0) {
    for (int64_t k = 0; k < K; ++k) delta[size_t(k)] = double(w[k]) - what[size_t(k)];
    for (int64_t i = 0; i < K; ++i)
      for (int64_t k = 0; k < K; ++k) g[size_t(i)] += double(H[i * K + k]) * delta[size_t(k)];
  }
  // Change of ΔᵀHΔ if ŵ[c0 + i] += eps[i], i < n.
  double cost(int64_t c0, const double* eps, int n) const {
    double c = 0;
    for (int i = 0; i < n; ++i) {
      const float* h = H + (c0 + i) * K + c0;
      double he = 0;
      for (int k = 0; k < n; ++k) he += double(h[k]) * eps[k];
      c += eps[i] * (he - 2 * g[size_t(c0 + i)]);
    }
    return c;
  }
  void apply(int64_t c0, const double* eps, int n) {
    for (int i = 0; i < n; ++i) {
      if (eps[i] == 0) continue;
      what[size_t(c0 + i)] += eps[i], delta[size_t(c0 + i)] -= eps[i];
      const float* h = H + (c0 + i) * K;  // H symmetric: column c0 + i is row c0 + i
      for (int64_t k = 0; k < K; ++k) g[size_t(k)] -= double(h[k]) * eps[i];
    }
  }
};

}  // namespace lmq::ggml
