#include "lmq/quant/rotate.h"

#include <cblas.h>
#include <fmt/format.h>
#include <lapacke.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <optional>
#include <random>
#include <set>

#include "lmq/error.h"

namespace lmq::quant {

namespace {

bool is_prime(int q) {
  if (q < 2) return false;
  for (int i = 2; i * i <= q; ++i)
    if (q % i == 0) return false;
  return true;
}

// The Jacobsthal matrix of a prime q: J[i][j] = χ(j − i), χ the quadratic character mod q.
std::vector<int> jacobsthal(int q) {
  std::vector<int> chi(size_t(q), -1);
  chi[0] = 0;
  for (int64_t x = 1; x < q; ++x) chi[size_t(x * x % q)] = 1;
  std::vector<int> J(size_t(q) * size_t(q));
  for (int i = 0; i < q; ++i)
    for (int j = 0; j < q; ++j) J[size_t(i) * size_t(q) + size_t(j)] = chi[size_t(((j - i) % q + q) % q)];
  return J;
}

// Paley's first construction, q ≡ 3 mod 4: H = I + [[0, 1ᵀ], [−1, J]], order q + 1.
std::vector<float> paley1(int q) {
  const int n = q + 1;
  const std::vector<int> J = jacobsthal(q);
  std::vector<float> H(size_t(n) * size_t(n));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const int s = i == 0 ? (j == 0 ? 0 : 1) : j == 0 ? -1 : J[size_t(i - 1) * size_t(q) + size_t(j - 1)];
      H[size_t(i) * size_t(n) + size_t(j)] = float(s + (i == j ? 1 : 0));
    }
  return H;
}

// Paley's second construction, q ≡ 1 mod 4: C = [[0, 1ᵀ], [1, J]] (symmetric),
// H = C ⊗ [[1, −1], [−1, −1]] + I ⊗ [[1, 1], [1, −1]], order 2(q + 1).
std::vector<float> paley2(int q) {
  const int c = q + 1, n = 2 * c;
  const std::vector<int> J = jacobsthal(q);
  constexpr int A[2][2] = {{1, -1}, {-1, -1}}, B[2][2] = {{1, 1}, {1, -1}};
  std::vector<float> H(size_t(n) * size_t(n));
  for (int i = 0; i < c; ++i)
    for (int j = 0; j < c; ++j) {
      const int cij = i == j ? 0 : i == 0 || j == 0 ? 1 : J[size_t(i - 1) * size_t(q) + size_t(j - 1)];
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b)
          H[size_t(2 * i + a) * size_t(n) + size_t(2 * j + b)] = float(cij * A[a][b] + (i == j ? B[a][b] : 0));
    }
  return H;
}

// A Hadamard matrix of order m from the constructions above (m = 1 too); empty if none.
std::vector<float> base_hadamard(int m) {
  if (m == 1) return {1.0f};
  if (is_prime(m - 1) && (m - 1) % 4 == 3) return paley1(m - 1);
  if (m % 2 == 0 && is_prime(m / 2 - 1) && (m / 2 - 1) % 4 == 1) return paley2(m / 2 - 1);
  return {};
}

// The smallest m with n = 2^k·m and a base Hadamard matrix of order m; 0 if none.
int hadamard_base_order(int n) {
  if (n < 1) return 0;
  for (int p2 = n & -n; p2 >= 1; p2 /= 2)
    if (!base_hadamard(n / p2).empty()) return n / p2;
  return 0;
}

// Sylvester's H of order n = 2^k: H[i][j] = (−1)^popcount(i & j).
std::vector<float> sylvester(int n) {
  std::vector<float> H(size_t(n) * size_t(n));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) H[size_t(i) * size_t(n) + size_t(j)] = std::popcount(unsigned(i & j)) % 2 ? -1.0f : 1.0f;
  return H;
}

std::vector<float> kron(const std::vector<float>& A, int a, const std::vector<float>& B, int b) {
  const size_t n = size_t(a) * size_t(b);
  std::vector<float> K(n * n);
  for (int i = 0; i < a; ++i)
    for (int j = 0; j < a; ++j)
      for (int k = 0; k < b; ++k)
        for (int l = 0; l < b; ++l)
          K[(size_t(i) * size_t(b) + size_t(k)) * n + size_t(j) * size_t(b) + size_t(l)] =
              A[size_t(i) * size_t(a) + size_t(j)] * B[size_t(k) * size_t(b) + size_t(l)];
  return K;
}

// A standard normal from the generator by Box–Muller, written out so the matrix is the same
// with every standard library (std::normal_distribution's algorithm is unspecified).
double gaussian(std::mt19937_64& rng) {
  const double u1 = (double(rng() >> 11) + 0.5) * 0x1p-53, u2 = double(rng() >> 11) * 0x1p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

std::vector<float> random_orthogonal(int d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const size_t n = size_t(d);
  std::vector<double> A(n * n), tau(n);  // column-major for LAPACK
  for (double& x : A) x = gaussian(rng);
  lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, d, d, A.data(), d, tau.data());
  LMQ_CHECK(info == 0, "dgeqrf: {}", info);
  std::vector<double> sign(n);
  for (size_t j = 0; j < n; ++j) sign[j] = A[j * n + j] < 0 ? -1.0 : 1.0;  // R's diagonal
  info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, d, d, d, A.data(), d, tau.data());
  LMQ_CHECK(info == 0, "dorgqr: {}", info);
  std::vector<float> Q(n * n);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) Q[i * n + j] = float(A[j * n + i] * sign[j]);
  return Q;
}

[[noreturn]] void fail_no_hadamard(int d) {
  fail("--rotate hadamard: size {} (hidden size, or head_dim with --rotate-heads) is not 2^k·m for an m with a Hadamard matrix lmq builds (1, or Paley's: "
       "m − 1 a prime ≡ 3 mod 4, or m/2 − 1 a prime ≡ 1 mod 4); use --rotate random-orthogonal",
       d);
}

// The randomized Hadamard's diag(s)/√d: s_j = ±1 from the seed.
std::vector<float> hadamard_signs(uint64_t seed, int d) {
  std::mt19937_64 rng(seed);
  const float scale = float(1.0 / std::sqrt(double(d)));
  std::vector<float> s(static_cast<size_t>(d));
  for (float& x : s) x = (rng() >> 63) ? -scale : scale;
  return s;
}

std::vector<float> floats_of(const Tensor& t) {
  std::vector<float> w(size_t(t.numel()));
  dequantize_rows(t, 0, t.rows(), w.data());
  return w;
}

using Floats = std::shared_ptr<std::vector<float>>;

// W·diag(g)·Q for W [rows, d] (g null: no norm folded), slice by slice of rows.
Floats rotate_inputs(const Tensor& t, const std::vector<float>* g, const RowRotation& q) {
  const int64_t rows = t.rows(), d = q.dim(), slice = 4096;
  auto out = std::make_shared<std::vector<float>>(size_t(t.numel()));
  for (int64_t r0 = 0; r0 < rows; r0 += slice) {
    const int64_t n = std::min(slice, rows - r0);
    float* w = out->data() + size_t(r0 * d);
    dequantize_rows(t, r0, n, w);
    if (g)
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < d; ++j) w[r * d + j] *= (*g)[size_t(j)];
    q.apply(w, n);
  }
  return out;
}

// w ← Qᵀ·w for w [q.dim(), cols], in place, as (wᵀ·Q)ᵀ.
void rotate_left(float* w, int64_t cols, const RowRotation& q) {
  const int64_t d = q.dim();
  std::vector<float> wt(size_t(d * cols));
  for (int64_t r = 0; r < d; ++r)
    for (int64_t c = 0; c < cols; ++c) wt[size_t(c * d + r)] = w[r * cols + c];
  q.apply(wt.data(), cols);
  for (int64_t r = 0; r < d; ++r)
    for (int64_t c = 0; c < cols; ++c) w[r * cols + c] = wt[size_t(c * d + r)];
}

// Qᵀ·W for W [d, cols] (what o_proj and down_proj add to the residual).
Floats rotate_outputs(const Tensor& t, const RowRotation& q) {
  auto out = std::make_shared<std::vector<float>>(floats_of(t));
  rotate_left(out->data(), t.cols(), q);
  return out;
}

// R2 (--rotate-heads): v_proj's rows, head by head, become R2ᵀ·W_v,h (and its bias R2ᵀ·b_h),
// so every head's values — and the attention output, a mix of values — are R2ᵀ·v; o_proj's
// columns of head h become W_o,h·R2 to undo it. One R2 for all heads (GQA shares a KV head
// among query heads, so each query head must see the same rotation as its KV head).
void rotate_v_heads(std::vector<float>& w, int64_t heads, int64_t cols, const RowRotation& r2) {
  const int64_t hd = r2.dim();
  for (int64_t h = 0; h < heads; ++h) rotate_left(w.data() + h * hd * cols, cols, r2);
}

// In-place unnormalized Walsh–Hadamard transform of n = 2^k values: x ← x·H_n (Sylvester's).
void fwht(float* x, int n) {
  for (int h = 1; h < n; h *= 2)
    for (int i = 0; i < n; i += 2 * h)
      for (int j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b, x[j + h] = a - b;
      }
}

Tensor f32_tensor(std::string name, std::vector<int64_t> shape, const std::vector<float>& v) {
  Tensor t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.format = Format::F32;
  t.data = reinterpret_cast<const uint8_t*>(v.data());
  t.nbytes = v.size() * sizeof(float);
  return t;
}

// The rotation is exact for the decoder this file's algebra describes: RMSNorm, no bias on the
// linears that write the residual, embeddings and lm_head as plain matrices. A new architecture
// must be checked against it (the switch has no default, so adding one to Arch warns here).
// Tensors outside that layout (W8A8's static input scales, integer biases) would be left in
// the wrong basis: refused by name.
void check_rotatable(const Model& m) {
  switch (m.config().arch) {
    case Arch::Llama:
    case Arch::Mistral:
    case Arch::Qwen2:
    case Arch::Qwen3: break;
  }
  std::set<const Tensor*> known = {&m.embed(), &m.final_norm(), &m.lm_head()};
  for (const LayerWeights& l : m.layers())
    for (const Tensor* t : {l.attn_norm, l.wq, l.wk, l.wv, l.wo, l.bq, l.bk, l.bv, l.q_norm, l.k_norm, l.ffn_norm,
                            l.w_gate, l.w_up, l.w_down})
      if (t) known.insert(t);
  for (const Tensor& t : m.tensors()) {
    if (!known.count(&t))
      fail("--rotate: {}: tensor '{}' is not part of the {} decoder the rotation transforms (W8A8 static scales "
           "and other extras would be wrong in the rotated basis); rotate the float model instead",
           m.path(), t.name, arch_name(m.config().arch));
    if (t.format == Format::I32)
      fail("--rotate: {}: tensor '{}' holds integers (a W8A8 model); rotate the float model instead", m.path(),
           t.name);
  }
}

}  // namespace

Rotation parse_rotation(const std::string& s) {
  if (s == "none") return Rotation::None;
  if (s == "hadamard") return Rotation::Hadamard;
  if (s == "random-orthogonal") return Rotation::RandomOrthogonal;
  fail("--rotate '{}': expected hadamard or random-orthogonal", s);
}

const char* rotation_name(Rotation r) {
  switch (r) {
    case Rotation::None: return "none";
    case Rotation::Hadamard: return "hadamard";
    case Rotation::RandomOrthogonal: return "random-orthogonal";
  }
  LMQ_UNREACHABLE("rotation {}", int(r));
}

std::vector<float> hadamard_matrix(int n) {
  const int m = hadamard_base_order(n);
  if (m == 0) return {};
  return kron(base_hadamard(m), m, sylvester(n / m), n / m);
}

std::vector<float> rotation_matrix(const RotateOptions& o, int d) {
  LMQ_CHECK(o.kind != Rotation::None && d > 0, "rotation_matrix({})", d);
  if (o.kind == Rotation::RandomOrthogonal) return random_orthogonal(d, o.seed);
  std::vector<float> Q = hadamard_matrix(d);
  if (Q.empty()) fail_no_hadamard(d);
  const std::vector<float> s = hadamard_signs(o.seed, d);
  for (size_t i = 0; i < size_t(d); ++i)
    for (size_t j = 0; j < size_t(d); ++j) Q[i * size_t(d) + j] *= s[j];
  return Q;
}

RowRotation::RowRotation(const RotateOptions& o, int d) : d_(d) {
  if (o.kind == Rotation::RandomOrthogonal) {
    q_ = rotation_matrix(o, d);
    return;
  }
  m_ = hadamard_base_order(d);
  if (m_ == 0) fail_no_hadamard(d);
  base_ = base_hadamard(m_);
  sign_ = hadamard_signs(o.seed, d);
}

void RowRotation::apply(float* x, int64_t rows) const {
  const int64_t d = d_;
  if (!q_.empty()) {
    std::vector<float> y(size_t(rows * d));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), d_, d_, 1.0f, x, d_, q_.data(), d_, 0.0f,
                y.data(), d_);
    std::copy(y.begin(), y.end(), x);
    return;
  }
  const int m = m_, b = d_ / m_;
#pragma omp parallel
  {
    std::vector<float> z(static_cast<size_t>(d));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      float* row = x + r * d;
      for (int i = 0; i < m; ++i) fwht(row + size_t(i) * size_t(b), b);  // X·H_b per slice
      if (m > 1) {  // Y[j] = Σ_i H_m[i][j] · X[i], slice by slice
        std::fill(z.begin(), z.end(), 0.0f);
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < m; ++j) {
            const float a = base_[size_t(i) * size_t(m) + size_t(j)];
            for (int l = 0; l < b; ++l) z[size_t(j) * size_t(b) + size_t(l)] += a * row[size_t(i) * size_t(b) + size_t(l)];
          }
        std::copy(z.begin(), z.end(), row);
      }
      for (int64_t j = 0; j < d; ++j) row[j] *= sign_[size_t(j)];
    }
  }
}

uint64_t rotation_memory_bytes(const Model& m) {
  const ModelConfig& c = m.config();
  uint64_t n = m.param_count() + uint64_t(c.hidden) * uint64_t(c.hidden);
  if (c.tied_embeddings) n += uint64_t(c.vocab) * uint64_t(c.hidden);  // if it must be untied
  return n * sizeof(float);
}

RotatedModel rotate_model(const Model& m, const RotateOptions& o) {
  check_rotatable(m);
  const ModelConfig& c = m.config();
  const int d = c.hidden;
  const RowRotation Q(o, d);
  Model::Overlay ov;
  uint64_t held = 0;
  auto put = [&](const Tensor& like, Floats v, const std::string& name = {}) {
    ov.put(f32_tensor(name.empty() ? like.name : name, like.shape, *v));
    held += v->size() * sizeof(float);
    ov.storage.push_back(std::move(v));
  };
  auto ones = std::make_shared<std::vector<float>>(size_t(d), 1.0f);
  ov.storage.push_back(ones);
  std::optional<RowRotation> R2;
  if (o.heads) R2.emplace(o, c.head_dim);
  for (const LayerWeights& l : m.layers()) {
    const std::vector<float> ga = floats_of(*l.attn_norm), gf = floats_of(*l.ffn_norm);
    for (const Tensor* w : {l.wq, l.wk}) put(*w, rotate_inputs(*w, &ga, Q));
    for (const Tensor* w : {l.w_gate, l.w_up}) put(*w, rotate_inputs(*w, &gf, Q));
    put(*l.w_down, rotate_outputs(*l.w_down, Q));
    Floats wv = rotate_inputs(*l.wv, &ga, Q), wo = rotate_outputs(*l.wo, Q);
    if (R2) {
      rotate_v_heads(*wv, c.n_kv_heads, d, *R2);
      R2->apply(wo->data(), int64_t(d) * c.n_heads);  // each row of o_proj: n_heads slices of head_dim
      if (l.bv) {
        auto bv = std::make_shared<std::vector<float>>(floats_of(*l.bv));
        R2->apply(bv->data(), c.n_kv_heads);
        put(*l.bv, bv);
      }
    }
    put(*l.wv, wv);
    put(*l.wo, wo);
    ov.put(f32_tensor(l.attn_norm->name, l.attn_norm->shape, *ones));
    ov.put(f32_tensor(l.ffn_norm->name, l.ffn_norm->shape, *ones));
  }
  const std::vector<float> g = floats_of(m.final_norm());
  const bool constant = std::all_of(g.begin(), g.end(), [&](float x) { return x == g[0]; });
  RotatedModel r;
  put(m.embed(), rotate_inputs(m.embed(), nullptr, Q));
  if (c.tied_embeddings && constant) {
    // diag(c·1) commutes with Q: the final norm keeps its weight and E·Q serves both ends
    auto gc = std::make_shared<std::vector<float>>(size_t(d), g[0]);
    put(m.final_norm(), gc);
  } else {
    put(m.lm_head(), rotate_inputs(m.lm_head(), &g, Q), "lm_head.weight");
    ov.put(f32_tensor(m.final_norm().name, m.final_norm().shape, *ones));
    if (c.tied_embeddings) {
      ModelConfig untied = c;
      untied.tied_embeddings = false;
      ov.config = untied;
      r.untied = true;
    }
  }
  held += uint64_t(d) * sizeof(float);
  const int hm = Q.hadamard_base();
  const std::string what = o.kind == Rotation::Hadamard
                               ? hm == 1 ? fmt::format("a randomized Hadamard matrix (Sylvester's H{})", d)
                                         : fmt::format("a randomized Hadamard matrix (Paley's H{} ⊗ Sylvester's H{})",
                                                       hm, d / hm)
                               : std::string("a random orthogonal matrix (QR of a Gaussian matrix)");
  r.note = fmt::format("rotated the residual stream (d = {}) by {}, seed {:#x}; RMSNorm weights folded into the linears",
                       d, what, o.seed);
  if (R2) r.note += fmt::format("; v_proj/o_proj rotated per head (head_dim {}) by the same kind of matrix", c.head_dim);
  if (r.untied)
    r.note += fmt::format(
        "; embeddings untied: the final norm's weights are not all equal, so lm_head = E·diag(g)·Q differs from the "
        "embedding E·Q (a separate lm_head.weight, {} more parameters)",
        uint64_t(c.vocab) * uint64_t(d));
  r.model = Model::with_tensors(m, std::move(ov), m.path());
  r.held_bytes = held;
  return r;
}

}  // namespace lmq::quant
