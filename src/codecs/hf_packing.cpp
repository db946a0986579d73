// The packed layouts of GPTQ / AWQ / compressed-tensors checkpoints (see codecs/hf_packing.h).
#include "lmq/codecs/hf_packing.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "lmq/error.h"

namespace lmq::hf {

int64_t run_words(int64_t n, int bits) { return (n * bits + 31) / 32; }

void pack_run(const uint32_t* v, int64_t n, int bits, uint32_t* words) {
  LMQ_CHECK(bits >= 1 && bits <= 8, "bits {}", bits);
  const uint32_t mask = (1u << bits) - 1;
  std::fill(words, words + run_words(n, bits), 0u);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t bit = k * bits;
    const uint64_t field = uint64_t(v[k] & mask) << (bit % 32);  // may straddle into the next word
    words[bit / 32] |= uint32_t(field);
    if ((bit % 32) + bits > 32) words[bit / 32 + 1] |= uint32_t(field >> 32);
  }
}

void unpack_run(const uint32_t* words, int64_t n, int bits, uint32_t* v) {
  LMQ_CHECK(bits >= 1 && bits <= 8, "bits {}", bits);
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t bit = k * bits;
    uint64_t pair = words[bit / 32];
    if ((bit % 32) + bits > 32) pair |= uint64_t(words[bit / 32 + 1]) << 32;
    v[k] = uint32_t(pair >> (bit % 32)) & mask;
  }
}

namespace {

// Packs the columns (or rows) of an int matrix as runs. The strided gather keeps one loop for
// "packed along dim 0" and "packed along dim 1".
// Run r (r < n_runs) is the values at base + r·run_stride + k·elem_stride, k < n; its words go
// to out + r·word_run_stride + w·word_stride.
struct Strides {
  int64_t n_runs, n, run_stride, elem_stride, word_run_stride, word_stride;
};

template <typename T>
void pack_runs(const T* in, int bits, const Strides& s, int32_t* out) {
  std::vector<uint32_t> v(size_t(s.n)), w(size_t(run_words(s.n, bits)));
  for (int64_t r = 0; r < s.n_runs; ++r) {
    for (int64_t k = 0; k < s.n; ++k) v[size_t(k)] = uint32_t(in[r * s.run_stride + k * s.elem_stride]);
    pack_run(v.data(), s.n, bits, w.data());
    for (size_t k = 0; k < w.size(); ++k) out[r * s.word_run_stride + int64_t(k) * s.word_stride] = int32_t(w[k]);
  }
}

template <typename T>
void unpack_runs(const int32_t* in, int bits, const Strides& s, T* out) {
  std::vector<uint32_t> v(size_t(s.n)), w(size_t(run_words(s.n, bits)));
  for (int64_t r = 0; r < s.n_runs; ++r) {
    for (size_t k = 0; k < w.size(); ++k) w[k] = uint32_t(in[r * s.word_run_stride + int64_t(k) * s.word_stride]);
    unpack_run(w.data(), s.n, bits, v.data());
    for (int64_t k = 0; k < s.n; ++k) out[r * s.run_stride + k * s.elem_stride] = T(v[size_t(k)]);
  }
}

}  // namespace

// ---- GPTQ ---------------------------------------------------------------------------------------

bool gptq_bits_allowed(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

GptqShapes gptq_shapes(int64_t out, int64_t in, int bits, int64_t groups, const std::string& what) {
  if (!gptq_bits_allowed(bits)) fail("{}: GPTQ bits {} not allowed (2, 3, 4 or 8)", what, bits);
  if (out < 1 || in < 1 || groups < 1) fail("{}: GPTQ shape out {} in {} groups {} is empty", what, out, in, groups);
  if (in * bits % 32 != 0)
    fail("{}: GPTQ needs in·bits a multiple of 32 (in {}, bits {})", what, in, bits);
  if (out * bits % 32 != 0)
    fail("{}: GPTQ needs out·bits a multiple of 32 (out {}, bits {})", what, out, bits);
  return {{in * bits / 32, out}, {groups, out * bits / 32}, {groups, out}, in};
}

std::vector<int32_t> gptq_pack_qweight(const uint8_t* codes, int64_t out, int64_t in, int bits) {
  LMQ_CHECK(in * bits % 32 == 0, "in {} bits {}", in, bits);
  std::vector<int32_t> q(size_t(in * bits / 32 * out));
  // Column o of qweight is output o's codes (row o of `codes`) as one run.
  pack_runs(codes, bits, {out, in, in, 1, 1, out}, q.data());
  return q;
}

void gptq_unpack_qweight(const int32_t* qweight, int64_t out, int64_t in, int bits, uint8_t* codes) {
  LMQ_CHECK(in * bits % 32 == 0, "in {} bits {}", in, bits);
  unpack_runs(qweight, bits, {out, in, in, 1, 1, out}, codes);
}

std::vector<int32_t> gptq_pack_qzeros(const int32_t* zeros, int64_t out, int64_t groups, int bits, GptqVersion v,
                                      const std::string& what) {
  LMQ_CHECK(out * bits % 32 == 0, "out {} bits {}", out, bits);
  std::vector<int32_t> stored(zeros, zeros + out * groups);
  if (v == GptqVersion::V1) {
    for (int32_t& z : stored) {
      if (z < 1) fail("{}: GPTQ v1 (checkpoint_format gptq) cannot store zero point {} (needs >= 1); use gptq_v2", what, z);
      --z;
    }
  }
  std::vector<int32_t> q(size_t(groups * (out * bits / 32)));
  // Row g of qzeros is group g's zero points over the outputs (column g of [out, groups]).
  pack_runs(stored.data(), bits, {groups, out, 1, groups, out * bits / 32, 1}, q.data());
  return q;
}

void gptq_unpack_qzeros(const int32_t* qzeros, int64_t out, int64_t groups, int bits, GptqVersion v,
                        int32_t* zeros) {
  LMQ_CHECK(out * bits % 32 == 0, "out {} bits {}", out, bits);
  unpack_runs(qzeros, bits, {groups, out, 1, groups, out * bits / 32, 1}, zeros);
  if (v == GptqVersion::V1)
    for (int64_t i = 0; i < out * groups; ++i) ++zeros[i];
}

// ---- AWQ --------------------------------------------------------------------------------------

void awq_check(int64_t out, int bits, const std::string& what) {
  if (bits != 4) fail("{}: AWQ gemm holds 4-bit weights only (bits {})", what, bits);
  if (out < 8 || out % 8 != 0) fail("{}: AWQ gemm needs out_features a multiple of 8 (out {})", what, out);
}

namespace {

// One AWQ word from 8 consecutive outputs' values (v[k] for output 8w + k).
uint32_t awq_word(const uint32_t* v) {
  uint32_t w = 0;
  for (int j = 0; j < 8; ++j) w |= (v[kAwqOrder[j]] & 15u) << (4 * j);
  return w;
}
void awq_split(uint32_t w, uint32_t* v) {
  for (int j = 0; j < 8; ++j) v[kAwqOrder[j]] = (w >> (4 * j)) & 15u;
}

// Packs m [rows, out] (row stride `rs`, column stride `cs`) as [rows, out/8] AWQ words.
template <typename T>
std::vector<int32_t> awq_pack(const T* m, int64_t rows, int64_t out, int64_t rs, int64_t cs) {
  LMQ_CHECK(out % 8 == 0, "out {}", out);
  std::vector<int32_t> q(size_t(rows * (out / 8)));
  uint32_t v[8];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t w = 0; w < out / 8; ++w) {
      for (int k = 0; k < 8; ++k) v[k] = uint32_t(m[r * rs + (8 * w + k) * cs]);
      q[size_t(r * (out / 8) + w)] = int32_t(awq_word(v));
    }
  return q;
}
template <typename T>
void awq_unpack(const int32_t* q, int64_t rows, int64_t out, int64_t rs, int64_t cs, T* m) {
  LMQ_CHECK(out % 8 == 0, "out {}", out);
  uint32_t v[8];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t w = 0; w < out / 8; ++w) {
      awq_split(uint32_t(q[r * (out / 8) + w]), v);
      for (int k = 0; k < 8; ++k) m[r * rs + (8 * w + k) * cs] = T(v[k]);
    }
}

}  // namespace

// qweight row i holds input i over the outputs: element (o, i) of codes is at i + o·in.
std::vector<int32_t> awq_pack_qweight(const uint8_t* codes, int64_t out, int64_t in) {
  return awq_pack(codes, in, out, 1, in);
}
void awq_unpack_qweight(const int32_t* qweight, int64_t out, int64_t in, uint8_t* codes) {
  awq_unpack(qweight, in, out, 1, in, codes);
}
std::vector<int32_t> awq_pack_qzeros(const int32_t* zeros, int64_t out, int64_t groups) {
  return awq_pack(zeros, groups, out, 1, groups);
}
void awq_unpack_qzeros(const int32_t* qzeros, int64_t out, int64_t groups, int32_t* zeros) {
  awq_unpack(qzeros, groups, out, 1, groups, zeros);
}

// ---- compressed-tensors -------------------------------------------------------------------------

bool ct_pack_bits_allowed(int bits) { return bits == 2 || bits == 4 || bits == 8; }
int64_t ct_weight_words(int64_t in, int bits) { return run_words(in, bits); }

std::vector<int32_t> ct_pack_weight(const uint8_t* codes, int64_t out, int64_t in, int bits) {
  const int64_t words = ct_weight_words(in, bits);
  std::vector<int32_t> q(size_t(out * words));
  pack_runs(codes, bits, {out, in, in, 1, words, 1}, q.data());
  return q;
}
void ct_unpack_weight(const int32_t* packed, int64_t out, int64_t in, int bits, uint8_t* codes) {
  unpack_runs(packed, bits, {out, in, in, 1, ct_weight_words(in, bits), 1}, codes);
}

std::vector<int32_t> ct_pack_zero_point(const int32_t* zeros, int64_t out, int64_t groups, int bits) {
  std::vector<int32_t> q(size_t(run_words(out, bits) * groups));
  // Column g of the packed array is group g's zero points over the outputs.
  pack_runs(zeros, bits, {groups, out, 1, groups, 1, groups}, q.data());
  return q;
}
void ct_unpack_zero_point(const int32_t* packed, int64_t out, int64_t groups, int bits, int32_t* zeros) {
  unpack_runs(packed, bits, {groups, out, 1, groups, 1, groups}, zeros);
}

void ct_codes_to_int8(const uint8_t* codes, int64_t n, int8_t* q) {
  for (int64_t i = 0; i < n; ++i) q[i] = int8_t(int(codes[i]) - 128);
}
void ct_int8_to_codes(const int8_t* q, int64_t n, uint8_t* codes) {
  for (int64_t i = 0; i < n; ++i) codes[i] = uint8_t(int(q[i]) + 128);
}

// ---- scales and g_idx ---------------------------------------------------------------------------

std::vector<float> transpose(const float* m, int64_t a, int64_t b) {
  std::vector<float> t(size_t(a * b));
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j) t[size_t(j * a + i)] = m[i * b + j];
  return t;
}

std::vector<int32_t> sequential_g_idx(int64_t in, int64_t group_size) {
  std::vector<int32_t> g(size_t(in), 0);
  if (group_size > 0)
    for (int64_t i = 0; i < in; ++i) g[size_t(i)] = int32_t(i / group_size);
  return g;
}

void check_g_idx(const int32_t* g_idx, int64_t in, int64_t groups, const std::string& what) {
  for (int64_t i = 0; i < in; ++i)
    if (g_idx[i] < 0 || g_idx[i] >= groups)
      fail("{}: g_idx[{}] = {} is outside [0, {})", what, i, g_idx[i], groups);
}

std::vector<int32_t> act_order_perm(const int32_t* g_idx, int64_t in, int64_t group_size, const std::string& what) {
  const int64_t gs = group_size > 0 ? group_size : in;
  bool sequential = true;
  for (int64_t i = 0; i < in && sequential; ++i) sequential = g_idx[i] == i / gs;
  if (sequential) return {};
  std::vector<int32_t> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return g_idx[a] < g_idx[b]; });
  // Sorted, permuted input j must belong to group j / gs: every group holds gs inputs.
  for (int64_t j = 0; j < in; ++j)
    if (g_idx[perm[size_t(j)]] != j / gs)
      fail("{}: g_idx groups do not hold {} inputs each (group {} at sorted input {})", what, gs,
           g_idx[perm[size_t(j)]], j);
  return perm;
}

void permute_columns(const uint8_t* m, int64_t rows, int64_t cols, const int32_t* perm, uint8_t* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) out[r * cols + j] = m[r * cols + perm[j]];
}

}  // namespace lmq::hf
