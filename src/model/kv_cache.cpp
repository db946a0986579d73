#include "lmq/model/kv_cache.h"

#include <algorithm>

#include "lmq/error.h"
#include "lmq/kernels/act_quant.h"

namespace lmq {

KvType parse_kv_type(std::string_view s) {
  if (s == "f32") return KvType::F32;
  if (s == "int8") return KvType::Int8;
  fail("--kv '{}': expected f32 or int8", s);
}

KvCache::KvCache(int layers, int max_seq, int kv_heads, int head_dim, KvType type)
    : max_seq_(max_seq), cap_(int(padded(max_seq))), heads_(kv_heads), d_(head_dim), type_(type) {
  const size_t n = size_t(layers) * size_t(max_seq) * size_t(kv_heads) * size_t(head_dim);
  if (type == KvType::F32) {
    const size_t np = size_t(layers) * size_t(cap_) * size_t(kv_heads) * size_t(head_dim);
    kf_.assign(np, 0.f);
    vf_.assign(np, 0.f);
  } else {
    kq_.assign(n, 0);
    vq_.assign(n, 0);
    ks_.assign(size_t(layers) * size_t(max_seq) * size_t(kv_heads), 0.f);
    vs_.assign(ks_.size(), 0.f);
  }
}

void KvCache::store(int layer, int pos, const float* k, const float* v) {
  const size_t kvd = size_t(heads_) * d_, off = slot(layer, pos) * kvd;
  if (type_ == KvType::F32) {
    for (int h = 0; h < heads_; ++h) {
      float* kt = kf_.data() + head(layer, h) * size_t(d_) * cap_ + size_t(pos);
      for (int e = 0; e < d_; ++e) kt[size_t(e) * cap_] = k[size_t(h) * d_ + e];
      std::copy_n(v + size_t(h) * d_, d_, vf_.data() + (head(layer, h) * cap_ + size_t(pos)) * d_);
    }
    return;
  }
  for (int h = 0; h < heads_; ++h) {
    const size_t o = off + size_t(h) * d_, so = slot(layer, pos) * heads_ + h;
    ks_[so] = act_scale(k + size_t(h) * d_, d_, ActQuant::DynamicAbsmax);
    vs_[so] = act_scale(v + size_t(h) * d_, d_, ActQuant::DynamicAbsmax);
    act_quantize_block(k + size_t(h) * d_, d_, ks_[so], kq_.data() + o);
    act_quantize_block(v + size_t(h) * d_, d_, vs_[so], vq_.data() + o);
  }
}

void KvCache::read_head(int layer, int kvh, int len, float* kt, int64_t ldk, float* v) const {
  LMQ_CHECK(ldk >= padded(len), "KvCache::read_head ldk {} < padded length {}", ldk, padded(len));
  for (int e = 0; e < d_; ++e) std::fill(kt + size_t(e) * ldk + len, kt + size_t(e + 1) * ldk, 0.f);
  if (type_ == KvType::F32) {
    for (int e = 0; e < d_; ++e) std::copy_n(keys_t(layer, kvh) + size_t(e) * cap_, len, kt + size_t(e) * ldk);
    std::copy_n(values(layer, kvh), size_t(len) * d_, v);
    return;
  }
  const size_t kvd = size_t(heads_) * d_;
  for (int j = 0; j < len; ++j) {
    const size_t o = slot(layer, j) * kvd + size_t(kvh) * d_, so = slot(layer, j) * heads_ + kvh;
    const float sk = ks_[so], sv = vs_[so];
    for (int e = 0; e < d_; ++e) kt[size_t(e) * ldk + j] = sk * float(kq_[o + e]);
    for (int e = 0; e < d_; ++e) v[size_t(j) * d_ + e] = sv * float(vq_[o + e]);
  }
}

uint64_t KvCache::bytes() const {
  return (kf_.size() + vf_.size() + ks_.size() + vs_.size()) * sizeof(float) + kq_.size() + vq_.size();
}

}  // namespace lmq
