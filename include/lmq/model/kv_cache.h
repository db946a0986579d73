// The attention KV cache: for every layer and position, the kv_dim values of K (after RoPE)
// and of V. Stored as f32 (default) or int8: each head's head_dim values at one position are
// quantized with their own scale, q = clamp(round(x/s), ±127), s = absmax/127
// (kernels/act_quant.h's absmax rule), so every value is within s/2 of what was stored and a
// large key in one head or position cannot coarsen any other. int8 takes
// kv_dim + 4·kv_heads bytes per position per layer and tensor instead of 4·kv_dim. The
// attention reads one head at a time back as floats; what stays float is the arithmetic.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmq {

enum class KvType { F32, Int8 };
KvType parse_kv_type(std::string_view s);  // "f32" | "int8"; throws naming --kv
std::string kv_type_name(KvType t);
// The process-wide default new Runners start with (the CLI's --kv sets it).
void set_default_kv_type(KvType t);
KvType default_kv_type();

class KvCache {
 public:
  KvCache(int layers, int max_seq, int kv_heads, int head_dim, KvType type);
  // k, v: kv_dim values each for (layer, pos).
  void store(int layer, int pos, const float* k, const float* v);
  // Head kvh for positions [0, len): K rows into k[len × d], V transposed into vt[d × len].
  void read_head(int layer, int kvh, int len, float* k, float* vt) const;
  // f32 only, read in place: head kvh's keys, one row of head_dim values per position (rows
  // head_dim apart), and its values transposed, one row per dimension over the positions (rows
  // max_seq apart) — the operand orders of the attention's two products.
  const float* keys(int layer, int kvh) const { return kf_.data() + head(layer, kvh) * size_t(max_seq_) * d_; }
  const float* values_t(int layer, int kvh) const { return vf_.data() + head(layer, kvh) * size_t(d_) * max_seq_; }
  int64_t values_t_stride() const { return max_seq_; }
  KvType type() const { return type_; }
  uint64_t bytes() const;  // memory the cache holds

 private:
  size_t slot(int layer, int pos) const { return size_t(layer) * size_t(max_seq_) + size_t(pos); }
  size_t head(int layer, int kvh) const { return size_t(layer) * size_t(heads_) + size_t(kvh); }
  int max_seq_, heads_, d_;
  KvType type_;
  std::vector<float> kf_, vf_;            // f32: K [layer][kv_head][pos][d], V [layer][kv_head][d][max_seq]
  std::vector<int8_t> kq_, vq_;           // int8: [layer][pos][kv_dim]
  std::vector<float> ks_, vs_;            // int8: [layer][pos][kv_heads] scales
};

}  // namespace lmq
