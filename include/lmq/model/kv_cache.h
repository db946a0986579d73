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

class KvCache {
 public:
  KvCache(int layers, int max_seq, int kv_heads, int head_dim, KvType type);
  // k, v: kv_dim values each for (layer, pos).
  void store(int layer, int pos, const float* k, const float* v);
  // Positions padded to a multiple of kPad in the f32 layout and in read_head's keys, so a
  // vector of any x86 target may read a row of keys up to padded(len) (what lies past len is
  // computed on and ignored, never part of a result).
  static constexpr int kPad = 16;
  static int64_t padded(int64_t len) { return (len + kPad - 1) / kPad * kPad; }
  // Head kvh for positions [0, len) as floats: the keys transposed into kt [d × ldk] (ldk ≥
  // padded(len); columns from len on are 0) and the values into v [len × d].
  void read_head(int layer, int kvh, int len, float* kt, int64_t ldk, float* v) const;
  // f32 only, read in place — the operand orders of the attention's two products
  // (kernels/gemm.h): head kvh's keys transposed, one row per head dimension over the
  // positions (rows keys_t_stride() apart), and its values, one row of head_dim per position.
  const float* keys_t(int layer, int kvh) const { return kf_.data() + head(layer, kvh) * size_t(d_) * cap_; }
  int64_t keys_t_stride() const { return cap_; }
  const float* values(int layer, int kvh) const { return vf_.data() + head(layer, kvh) * size_t(cap_) * d_; }
  KvType type() const { return type_; }
  uint64_t bytes() const;  // memory the cache holds

 private:
  size_t slot(int layer, int pos) const { return size_t(layer) * size_t(max_seq_) + size_t(pos); }
  size_t head(int layer, int kvh) const { return size_t(layer) * size_t(heads_) + size_t(kvh); }
  int max_seq_, cap_, heads_, d_;  // cap_ = padded(max_seq_)
  KvType type_;
  std::vector<float> kf_, vf_;            // f32: K [layer][kv_head][d][cap], V [layer][kv_head][cap][d]
  std::vector<int8_t> kq_, vq_;           // int8: [layer][pos][kv_dim]
  std::vector<float> ks_, vs_;            // int8: [layer][pos][kv_heads] scales
};

}  // namespace lmq
