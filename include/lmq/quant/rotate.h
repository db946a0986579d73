// Rotations fused into the weights (QuaRot, Ashkboos et al. 2024; SpinQuant's R1, Liu et al.
// 2024): the residual stream is turned by one orthogonal d×d matrix Q (d = hidden size), every
// RMSNorm weight is folded into the linears that read it, and the result is an ordinary dense
// model whose float logits are the original's (to float rounding) but whose weights have their
// outlier columns spread over all columns, which quantizes better. Nothing changes at run time:
// lmq and llama.cpp run the rotated model as any other.
//
// The algebra (PyTorch's W[out, in], y = W·x, x a column; x̃ = Qᵀ·x is the rotated residual):
//   embedding   row e of E → Qᵀe, i.e.               E' = E·Q
//   RMSNorm     rms(Qᵀx) = rms(x) (Q keeps norms), so norm(x) = diag(g)·x / rms(x) becomes
//               diag(g)·Q·x̃ / rms(x̃): a linear W that reads the norm sees
//                                                     W' = W·diag(g)·Q   (q/k/v, gate/up)
//               and the norm keeps unit weights. RMSNorm has no mean subtraction, which is
//               why this is exact (LayerNorm would need Q to fix the all-ones vector).
//   residual    o_proj/down_proj add W·a to x; the rotated stream needs Qᵀ·W·a:
//                                                     W' = Qᵀ·W
//   lm_head     logits = W·diag(g_f)·x/rms(x):         W' = W·diag(g_f)·Q
// Biases of q/k/v (Qwen2) are on the output side and stay; Qwen3's per-head q_norm/k_norm act
// on q/k's outputs, in head space, and stay. R2 (RotateOptions::heads) is independent of R1:
// v_h → R2ᵀ·v_h for every KV head, undone in o_proj's input columns per query head.
//
// Tied embeddings: the embedding must become E·Q and lm_head E·diag(g_f)·Q. Both are one matrix
// only when E·(diag(g_f) − I) = 0, i.e. g_f ≡ 1 (or E's columns zero where g_f ≠ 1). When every
// g_f is the same c the final norm can keep weight c·1 (a multiple of I commutes with Q) and the
// pair stays tied; otherwise the rotated model is untied (a separate lm_head, vocab × d more
// parameters) and RotatedModel::note says so: staying tied would change the logits.
//
// Memory: each rotated tensor is made from the source one at a time and kept as F32 (a bf16
// copy would round the rotated weights, ~1e-3 relative); the rotated model is that one float
// copy beside the source's memory map.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lmq/model/model.h"

namespace lmq::quant {

enum class Rotation { None, Hadamard, RandomOrthogonal };

// "hadamard", "random-orthogonal" (or "none"); anything else fails naming --rotate.
Rotation parse_rotation(const std::string& s);
const char* rotation_name(Rotation r);

// The fixed default seed: the same command gives the same file.
inline constexpr uint64_t kRotateSeed = 0x5eed'0001;

struct RotateOptions {
  Rotation kind = Rotation::None;
  uint64_t seed = kRotateSeed;  // the ±1 signs (hadamard) or the Gaussian matrix (random-orthogonal)
  // SpinQuant's R2 (--rotate-heads): also turn the values of every attention head by one
  // head_dim × head_dim matrix of the same kind, v_proj's rows by R2ᵀ per head (and a v bias),
  // o_proj's columns by R2 per head; exact for the same reason (attention mixes values linearly).
  bool heads = false;
};

// A Hadamard matrix of order n (±1 entries, H·Hᵀ = n·I, row-major), for n = 2^k·m where m = 1
// (Sylvester), m − 1 is a prime ≡ 3 mod 4 (Paley I: 12, 20, 24, 32, 44, …) or m/2 − 1 is a prime
// ≡ 1 mod 4 (Paley II: 28, 36, 60, …), built as H_m ⊗ H_{2^k} with the smallest such m. Empty
// when n is none of these.
std::vector<float> hadamard_matrix(int n);

// The d×d orthogonal Q (row-major), deterministic for (kind, d, seed):
//   hadamard: H·diag(s)/√d, s a fixed random ±1 vector (a randomized Hadamard, as QuaRot);
//             fails for a d hadamard_matrix cannot build, pointing at random-orthogonal;
//   random-orthogonal: Q of the QR factorization of a Gaussian matrix (LAPACK dgeqrf/dorgqr,
//             columns' signs fixed by R's diagonal so Q is Haar-distributed).
std::vector<float> rotation_matrix(const RotateOptions& o, int d);

// x ← x·Q for rows of d values, in place. random-orthogonal: OpenBLAS sgemm with the dense Q;
// hadamard: Q's structure, x·(H_m ⊗ H_b)·diag(s)/√d = a fast Walsh–Hadamard transform of each of
// the m slices of b values, then the small m×m Paley matrix across slices, then the signs:
// O(d·(log b + m)) per row instead of O(d²) (a 2048-wide row: ~130× fewer operations).
class RowRotation {
 public:
  RowRotation(const RotateOptions& o, int d);
  void apply(float* x, int64_t rows) const;
  int dim() const { return d_; }
  int hadamard_base() const { return m_; }  // m of H_m ⊗ H_b (0: a dense Q)

 private:
  int d_ = 0, m_ = 0;
  std::vector<float> q_;     // the dense Q (random-orthogonal)
  std::vector<float> base_;  // H_m (hadamard)
  std::vector<float> sign_;  // s_j / √d (hadamard)
};

struct RotatedModel {
  std::unique_ptr<Model> model;
  bool untied = false;  // the source's tied embedding became a separate lm_head
  std::string note;     // one line for the user: what was rotated, and why it was untied
  uint64_t held_bytes = 0;  // the F32 tensors the rotated model holds in memory
};

// The rotated model as an overlay of `m` (Model::with_tensors). Refuses, naming the tensor,
// a model with tensors the rotation does not know (e.g. W8A8 static activation scales, which
// would be wrong in the rotated basis) or integer tensors.
RotatedModel rotate_model(const Model& m, const RotateOptions& o);

// The bytes rotate_model will hold for `m` (for the memory check before any work).
uint64_t rotation_memory_bytes(const Model& m);

}  // namespace lmq::quant
