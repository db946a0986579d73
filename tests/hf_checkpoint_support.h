// Crafting GPTQ / AWQ / compressed-tensors checkpoints in tests, by the formats' rules, from a
// float model of ../shared: each decoder linear is quantized here by a plain round-to-nearest
// (independent of lmq's quantizers), packed with codecs/hf_packing.h, and written with the
// test support's safetensors writer next to a config.json carrying the quantization_config.
// The expected dequantized weights are computed here from the codes and scales, s·(u − z).
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "lmq/codecs/hf_packing.h"
#include "lmq/half.h"
#include "lmq/model/model.h"
#include "test_support.h"

namespace lmq::test {

struct CraftSpec {
  std::string model = "models/lmq-llama-25m";
  std::string method = "gptq";  // gptq, awq, ct-pack, ct-int8
  int bits = 4;
  int group = 128;  // -1: per output channel
  bool sym = true;
  bool act_order = false;                   // a shuffled, non-monotone g_idx
  bool v1 = true;                           // GPTQ checkpoint_format gptq (else gptq_v2); v1 needs zeros >= 1
  bool coarse_scales = false;               // scales of 7 significant bits: −s·z exact in fp16 (Q4_1)
  unsigned seed = 7;
};

struct Crafted {
  std::string dir;
  std::map<std::string, std::vector<float>> expected;  // weight name -> dequantized values [out, in]
};

namespace craft {

inline float f16r(float x) { return f16_to_f32(f32_to_f16(x)); }
// x to 7 significant bits (then a 4-bit zero point times it fits fp16's 11).
inline float coarse(float x) {
  int e;
  const float m = std::frexp(x, &e);
  return f16r(std::ldexp(std::round(m * 128) / 128, e));
}

struct Rtn {
  std::vector<uint8_t> codes;                // [out, in]
  std::vector<float> scales;                 // [out, groups], fp16 values
  std::vector<int32_t> zeros;                // [out, groups]
  std::vector<float> expected;               // [out, in]
};

// Round-to-nearest of w [out, in] with the groups that g_idx assigns.
inline Rtn rtn(const std::vector<float>& w, int64_t out, int64_t in, int bits, const std::vector<int32_t>& g_idx,
               int64_t groups, bool sym, bool coarse_scales = false) {
  const int32_t qmax = (1 << bits) - 1;
  std::vector<std::vector<int64_t>> cols(static_cast<size_t>(groups));
  for (int64_t c = 0; c < in; ++c) cols[size_t(g_idx[size_t(c)])].push_back(c);
  Rtn r;
  r.codes.resize(size_t(out * in));
  r.scales.resize(size_t(out * groups));
  r.zeros.resize(size_t(out * groups));
  r.expected.resize(size_t(out * in));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      float lo = 0, hi = 0, amax = 0;
      for (const int64_t c : cols[size_t(g)]) {
        const float v = w[size_t(o * in + c)];
        lo = std::min(lo, v), hi = std::max(hi, v), amax = std::max(amax, std::fabs(v));
      }
      float s;
      int32_t z;
      if (sym) {
        s = f16r(std::max(amax, 1e-6f) / float((1 << (bits - 1)) - 1));
        z = 1 << (bits - 1);
      } else {
        s = f16r(std::max(hi - lo, 1e-6f) / float(qmax));
        z = std::clamp(int32_t(std::lround(-lo / s)), 0, qmax);
      }
      if (coarse_scales) {
        s = coarse(s);
        if (!sym) z = std::clamp(int32_t(std::lround(-lo / s)), 0, qmax);
      }
      r.scales[size_t(o * groups + g)] = s;
      r.zeros[size_t(o * groups + g)] = z;
      for (const int64_t c : cols[size_t(g)]) {
        const size_t i = size_t(o * in + c);
        const int32_t u = std::clamp(int32_t(std::lround(w[i] / s)) + z, 0, qmax);
        r.codes[i] = uint8_t(u);
        r.expected[i] = s * float(u - z);
      }
    }
  return r;
}

inline std::string f16_bytes(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]);
  return bytes_of(h);
}

inline const char* st_dtype(Format f) {
  return f == Format::BF16 ? "BF16" : f == Format::F16 ? "F16" : "F32";
}

inline bool is_decoder_linear(const std::string& n) {
  return n.rfind("model.layers.", 0) == 0 && n.size() > 12 && n.compare(n.size() - 12, 12, "_proj.weight") == 0;
}

inline nlohmann::json quant_config(const CraftSpec& s) {
  using nlohmann::json;
  if (s.method == "gptq")
    return {{"quant_method", "gptq"}, {"bits", s.bits}, {"group_size", s.group}, {"sym", s.sym},
            {"desc_act", s.act_order}, {"checkpoint_format", s.v1 ? "gptq" : "gptq_v2"}, {"static_groups", false}};
  if (s.method == "awq")
    return {{"quant_method", "awq"}, {"bits", s.bits}, {"group_size", s.group}, {"zero_point", !s.sym},
            {"version", "gemm"}};
  const bool int8 = s.method == "ct-int8";
  json w = {{"num_bits", s.bits}, {"type", "int"}, {"symmetric", s.sym}, {"dynamic", false},
            {"strategy", s.group > 0 ? "group" : "channel"}, {"group_size", s.group > 0 ? json(s.group) : json()},
            {"actorder", s.act_order ? json("group") : json()}};
  json g = {{"targets", {"Linear"}}, {"weights", w}, {"output_activations", nullptr},
            {"input_activations", int8 ? json({{"num_bits", 8}, {"type", "int"}, {"symmetric", true},
                                               {"dynamic", true}, {"strategy", "token"}})
                                       : json()}};
  return {{"quant_method", "compressed-tensors"}, {"format", int8 ? "int-quantized" : "pack-quantized"},
          {"config_groups", {{"group_0", g}}}, {"ignore", {"lm_head"}}, {"quantization_status", "compressed"}};
}

// The stored pieces of one linear in the spec's format.
inline void add_linear(const CraftSpec& s, const std::string& prefix, int64_t out, int64_t in, int64_t groups,
                       const Rtn& q, const std::vector<int32_t>& g_idx, std::vector<StEntry>& e) {
  const std::vector<float> sg = hf::transpose(q.scales.data(), out, groups);  // [groups, out]
  if (s.method == "gptq") {
    const auto v = s.v1 ? hf::GptqVersion::V1 : hf::GptqVersion::V2;
    e.push_back({prefix + ".qweight", "I32", {in * s.bits / 32, out}, bytes_of(hf::gptq_pack_qweight(q.codes.data(), out, in, s.bits))});
    e.push_back({prefix + ".qzeros", "I32", {groups, out * s.bits / 32},
                 bytes_of(hf::gptq_pack_qzeros(q.zeros.data(), out, groups, s.bits, v, prefix))});
    e.push_back({prefix + ".scales", "F16", {groups, out}, f16_bytes(sg)});
    e.push_back({prefix + ".g_idx", "I32", {in}, bytes_of(g_idx)});
  } else if (s.method == "awq") {
    e.push_back({prefix + ".qweight", "I32", {in, out / 8}, bytes_of(hf::awq_pack_qweight(q.codes.data(), out, in))});
    e.push_back({prefix + ".qzeros", "I32", {groups, out / 8}, bytes_of(hf::awq_pack_qzeros(q.zeros.data(), out, groups))});
    e.push_back({prefix + ".scales", "F16", {groups, out}, f16_bytes(sg)});
  } else if (s.method == "ct-pack") {
    e.push_back({prefix + ".weight_packed", "I32", {out, hf::ct_weight_words(in, s.bits)},
                 bytes_of(hf::ct_pack_weight(q.codes.data(), out, in, s.bits))});
    e.push_back({prefix + ".weight_shape", "I64", {2}, bytes_of(std::vector<int64_t>{out, in})});
    e.push_back({prefix + ".weight_scale", "F16", {out, groups}, f16_bytes(q.scales)});
    if (!s.sym)
      e.push_back({prefix + ".weight_zero_point", "I32", {hf::run_words(out, s.bits), groups},
                   bytes_of(hf::ct_pack_zero_point(q.zeros.data(), out, groups, s.bits))});
    if (s.act_order) e.push_back({prefix + ".weight_g_idx", "I32", {in}, bytes_of(g_idx)});
  } else {  // ct-int8
    std::vector<int8_t> q8(q.codes.size());
    hf::ct_codes_to_int8(q.codes.data(), int64_t(q8.size()), q8.data());
    e.push_back({prefix + ".weight", "I8", {out, in}, bytes_of(q8)});
    e.push_back({prefix + ".weight_scale", "F16", {out, groups}, f16_bytes(q.scales)});
  }
}

}  // namespace craft

inline Crafted craft_checkpoint(const CraftSpec& s) {
  namespace fs = std::filesystem;
  static std::atomic<int> counter{0};
  const std::string src = shared_path(s.model);
  const auto m = Model::load(src);
  Crafted c;
  c.dir = temp_dir() + "/crafted-" + std::to_string(counter++);
  fs::create_directories(c.dir);
  std::mt19937 rng(s.seed);
  std::vector<StEntry> entries;
  for (const Tensor& t : m->tensors()) {
    if (!craft::is_decoder_linear(t.name)) {
      entries.push_back({t.name, craft::st_dtype(t.format), t.shape,
                         std::string(reinterpret_cast<const char*>(t.data), t.nbytes)});
      continue;
    }
    const int64_t out = t.rows(), in = t.cols();
    std::vector<float> w(size_t(out * in));
    dequantize_rows(t, 0, out, w.data());
    const int64_t G = s.group > 0 ? s.group : in, groups = (in + G - 1) / G;
    std::vector<int32_t> order(static_cast<size_t>(in)), g_idx(static_cast<size_t>(in));
    std::iota(order.begin(), order.end(), 0);
    if (s.act_order) std::shuffle(order.begin(), order.end(), rng);
    for (int64_t k = 0; k < in; ++k) g_idx[size_t(order[size_t(k)])] = int32_t(k / G);
    const craft::Rtn q = craft::rtn(w, out, in, s.bits, g_idx, groups, s.sym, s.coarse_scales);
    craft::add_linear(s, t.name.substr(0, t.name.size() - 7), out, in, groups, q, g_idx, entries);
    c.expected[t.name] = q.expected;
  }
  write_safetensors(c.dir + "/model.safetensors", entries);
  nlohmann::json cfg = nlohmann::json::parse(read_file(src + "/config.json"));
  cfg["quantization_config"] = craft::quant_config(s);
  write_file(c.dir + "/config.json", cfg.dump(2));
  for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    if (fs::exists(src + "/" + f)) fs::copy_file(src + "/" + f, c.dir + "/" + f);
  return c;
}

}  // namespace lmq::test
