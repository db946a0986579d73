// `lmq quantize --format gptq|awq|compressed-tensors` (quant/hf_export.h), checked independently
// of the writer: every exported tensor is unpacked by the small unpackers below, written from
// the formats' documents (AutoGPTQ's qlinear pack, AutoAWQ's WQLinear_GEMM, compressed-tensors'
// pack_quantized), not calling the writer or codecs/hf_packing.h. Their dequantized weights are
// compared with
//   - the source's float weights: for round-to-nearest exports every element lies within the
//     quantization step (the scale) of its group, and a deliberately mis-ordered unpacker fails
//     that check;
//   - lmq's own file of the same quantization, read by lmq's reader: identical, for the
//     calibrated methods (GPTQ with and without act-order, AWQ), whose weights moved away from
//     the source's on purpose.
// The bad-input suite (BadInputHfExport) runs each scheme a format cannot hold.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmq/formats/safetensors.h"
#include "lmq/half.h"
#include "lmq/mapped_file.h"
#include "lmq/model/model.h"
#include "lmq/kernels/matmul.h"
#include "lmq/model/forward.h"
#include "test_support.h"

using namespace lmq;
namespace fs = std::filesystem;
using json = nlohmann::json;
using lmq::test::read_file;
using lmq::test::run_lmq;
using lmq::test::shared_path;
using lmq::test::temp_dir;

namespace {

// ---- reading a checkpoint directory (one file, or shards with an index) ----
struct Ckpt {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, const StTensor*> t;
  json config;
  explicit Ckpt(const std::string& dir) {
    std::set<std::string> names;
    if (fs::exists(dir + "/model.safetensors.index.json")) {
      const json idx = json::parse(read_file(dir + "/model.safetensors.index.json"));
      for (const auto& [k, v] : idx["weight_map"].items()) names.insert(v.get<std::string>());
    } else {
      names.insert("model.safetensors");
    }
    for (const std::string& n : names) {
      files.push_back(std::make_unique<SafetensorsFile>(dir + "/" + n));
      for (const StTensor& s : files.back()->tensors()) t[s.tensor.name] = &s;
    }
    config = json::parse(read_file(dir + "/config.json"));
  }
  bool has(const std::string& n) const { return t.count(n) != 0; }
  const StTensor& at(const std::string& n) const {
    const auto it = t.find(n);
    if (it == t.end()) throw std::runtime_error("missing tensor " + n);
    return *it->second;
  }
  std::vector<int64_t> shape(const std::string& n) const { return at(n).tensor.shape; }
  // int32 values (packed words, g_idx), as stored little-endian
  std::vector<uint32_t> u32(const std::string& n) const {
    const StTensor& s = at(n);
    EXPECT_EQ(s.dtype, StDType::I32) << n;
    std::vector<uint32_t> v(s.tensor.nbytes / 4);
    std::memcpy(v.data(), s.tensor.data, s.tensor.nbytes);
    return v;
  }
  // float values of an F16 / BF16 / F32 tensor
  std::vector<float> f32(const std::string& n) const {
    const StTensor& s = at(n);
    const size_t k = s.tensor.nbytes / st_dtype_size(s.dtype);
    std::vector<float> v(k);
    for (size_t i = 0; i < k; ++i) {
      const uint8_t* p = s.tensor.data + i * st_dtype_size(s.dtype);
      uint16_t h = 0;
      if (s.dtype == StDType::F32) {
        std::memcpy(&v[i], p, 4);
        continue;
      }
      std::memcpy(&h, p, 2);
      if (s.dtype == StDType::F16) v[i] = f16_to_f32(h);
      else if (s.dtype == StDType::BF16) v[i] = bf16_to_f32(h);
      else ADD_FAILURE() << n << ": not a float tensor";
    }
    return v;
  }
};

// ---- the unpackers, from the formats' documents ----
// Field k of b bits in an LSB-first bitstream over 32-bit words, where word(w) gives word w:
// AutoGPTQ packs 32/b fields per word for b = 2/4/8 and, for b = 3, 32 fields into 3 words with
// fields 10 and 21 straddling the word boundaries — both are this one stream.
template <typename Word>
uint32_t field(const Word& word, int64_t k, int b) {
  const int64_t bit = k * b;
  const int64_t w = bit / 32, sh = bit % 32;
  uint64_t v = word(w);
  if (sh + b > 32) v |= uint64_t(word(w + 1)) << 32;
  return uint32_t((v >> sh) & ((1u << b) - 1));
}

struct Deq {
  std::vector<float> w;     // [out, in]
  std::vector<float> step;  // the scale of each element's group
};

// GPTQ: qweight [in·b/32, out] packed along the inputs (column j is a stream over the inputs),
// qzeros [groups, out·b/32] packed along the outputs, zero point stored minus one in v1
// ("gptq"), as is in v2; scales [groups, out]; g_idx [in]; w = s·(q − z).
Deq deq_gptq(const Ckpt& c, const std::string& base, int b, bool v1) {
  const auto qw = c.u32(base + ".qweight"), qz = c.u32(base + ".qzeros"), gi = c.u32(base + ".g_idx");
  const auto sc = c.f32(base + ".scales");
  const int64_t out = c.shape(base + ".qweight")[1], in = c.shape(base + ".g_idx")[0];
  const int64_t zw = c.shape(base + ".qzeros")[1];
  Deq d{std::vector<float>(size_t(out * in)), std::vector<float>(size_t(out * in))};
  for (int64_t j = 0; j < out; ++j)
    for (int64_t i = 0; i < in; ++i) {
      const int64_t g = int64_t(gi[size_t(i)]);
      const uint32_t q = field([&](int64_t w) { return qw[size_t(w * out + j)]; }, i, b);
      const int32_t z = int32_t(field([&](int64_t w) { return qz[size_t(g * zw + w)]; }, j, b)) + (v1 ? 1 : 0);
      const float s = sc[size_t(g * out + j)];
      d.w[size_t(j * in + i)] = s * float(int32_t(q) - z);
      d.step[size_t(j * in + i)] = s;
    }
  return d;
}

// AWQ gemm: qweight [in, out/8], word w of row i holds outputs 8w..8w+7, nibble k (bits 4k..)
// holding output 8w + order[k] with AutoAWQ's order {0, 2, 4, 6, 1, 3, 5, 7}; qzeros [groups,
// out/8] the same; scales [groups, out]; groups of consecutive inputs; w = s·(q − z).
constexpr std::array<int, 8> kAwqDocOrder = {0, 2, 4, 6, 1, 3, 5, 7};
Deq deq_awq(const Ckpt& c, const std::string& base, const std::array<int, 8>& order) {
  const auto qw = c.u32(base + ".qweight"), qz = c.u32(base + ".qzeros");
  const auto sc = c.f32(base + ".scales");
  const int64_t in = c.shape(base + ".qweight")[0], out = c.shape(base + ".scales")[1];
  const int64_t groups = c.shape(base + ".scales")[0], G = in / groups;
  const auto nib = [&](const std::vector<uint32_t>& m, int64_t row, int64_t o) {
    for (int k = 0; k < 8; ++k)
      if (o % 8 == order[size_t(k)]) return int32_t((m[size_t(row * (out / 8) + o / 8)] >> (4 * k)) & 15);
    return -1;
  };
  Deq d{std::vector<float>(size_t(out * in)), std::vector<float>(size_t(out * in))};
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      const float s = sc[size_t(i / G * out + o)];
      d.w[size_t(o * in + i)] = s * float(nib(qw, i, o) - nib(qz, i / G, o));
      d.step[size_t(o * in + i)] = s;
    }
  return d;
}

// compressed-tensors pack-quantized: signed q in [−2^(b−1), 2^(b−1)) stored as q + 2^(b−1),
// weight_packed [out, ceil(in·b/32)] packed along dim 1; weight_zero_point (asymmetric only)
// [ceil(out·b/32), groups] packed along dim 0, also offset by 2^(b−1); weight_scale [out,
// groups]; weight_shape = [out, in]; w = s·(q − zp).
Deq deq_ct_packed(const Ckpt& c, const std::string& base, int b) {
  const auto wp = c.u32(base + ".weight_packed");
  const auto sc = c.f32(base + ".weight_scale");
  const StTensor& shp = c.at(base + ".weight_shape");
  EXPECT_EQ(shp.dtype, StDType::I64);
  int64_t dims[2];
  std::memcpy(dims, shp.tensor.data, 16);
  const int64_t out = dims[0], in = dims[1], words = c.shape(base + ".weight_packed")[1];
  const int64_t groups = c.shape(base + ".weight_scale")[1], G = in / groups;
  const bool asym = c.has(base + ".weight_zero_point");
  const std::vector<uint32_t> zp = asym ? c.u32(base + ".weight_zero_point") : std::vector<uint32_t>{};
  const int32_t off = 1 << (b - 1);
  Deq d{std::vector<float>(size_t(out * in)), std::vector<float>(size_t(out * in))};
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      const int64_t g = i / G;
      const int32_t q = int32_t(field([&](int64_t w) { return wp[size_t(o * words + w)]; }, i, b)) - off;
      const int32_t z = asym ? int32_t(field([&](int64_t w) { return zp[size_t(w * groups + g)]; }, o, b)) - off : 0;
      const float s = sc[size_t(o * groups + g)];
      d.w[size_t(o * in + i)] = s * float(q - z);
      d.step[size_t(o * in + i)] = s;
    }
  return d;
}

// compressed-tensors int-quantized: weight int8 [out, in] = q, weight_scale [out, 1]; w = s·q.
Deq deq_ct_int8(const Ckpt& c, const std::string& base) {
  const StTensor& w = c.at(base + ".weight");
  EXPECT_EQ(w.dtype, StDType::I8);
  const auto sc = c.f32(base + ".weight_scale");
  const int64_t out = w.tensor.shape[0], in = w.tensor.shape[1];
  Deq d{std::vector<float>(size_t(out * in)), std::vector<float>(size_t(out * in))};
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      d.w[size_t(o * in + i)] = sc[size_t(o)] * float(int8_t(w.tensor.data[o * in + i]));
      d.step[size_t(o * in + i)] = sc[size_t(o)];
    }
  return d;
}

const char* kLinears[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                          "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

// Every decoder linear of the export, dequantized by `deq`.
template <typename F>
std::map<std::string, Deq> deq_all(const Ckpt& c, int layers, F&& deq) {
  std::map<std::string, Deq> m;
  for (int l = 0; l < layers; ++l)
    for (const char* lin : kLinears) {
      const std::string base = "model.layers." + std::to_string(l) + "." + lin;
      m[base + ".weight"] = deq(base);
    }
  return m;
}

// Elements farther than their group's step from the source's float weights.
int64_t outside_step(const Ckpt& src, const std::map<std::string, Deq>& deq) {
  int64_t bad = 0;
  for (const auto& [name, d] : deq) {
    const std::vector<float> w = src.f32(name);
    EXPECT_EQ(w.size(), d.w.size()) << name;
    for (size_t k = 0; k < w.size() && k < d.w.size(); ++k)
      if (!(std::fabs(w[k] - d.w[k]) <= d.step[k] * (1 + 1e-6f) + 1e-12f)) ++bad;
  }
  return bad;
}

int n_layers(const std::string& model) { return json::parse(read_file(model + "/config.json"))["num_hidden_layers"]; }

std::string export_dir(const std::string& model, const std::vector<std::string>& flags) {
  const std::string out = temp_dir() + "/export";
  std::vector<std::string> args = {"quantize", model, "-o", out, "--threads", "2"};
  args.insert(args.end(), flags.begin(), flags.end());
  const auto r = run_lmq(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

class HfExportRtn : public ::testing::TestWithParam<std::string> {};

}  // namespace

// Round to nearest into every format: each element within its group's step of the source's
// weights; GPTQ also 3-bit and 8-bit per-channel, v1 and v2; mis-ordered unpacking fails.
TEST_P(HfExportRtn, EveryElementWithinItsStep) {
  const std::string model = shared_path("models/" + GetParam());
  if (!fs::exists(model)) GTEST_SKIP() << "missing model";
  const Ckpt src(model);
  const int L = n_layers(model);
  {
    const Ckpt c(export_dir(model, {"--format", "gptq", "--scheme", "int4:g128"}));
    EXPECT_EQ(c.config["quantization_config"]["checkpoint_format"], "gptq");
    EXPECT_EQ(outside_step(src, deq_all(c, L, [&](const std::string& b) { return deq_gptq(c, b, 4, true); })), 0);
    // v2 zero points read as v1 are off by one code: most elements leave their step
    EXPECT_GT(outside_step(src, deq_all(c, L, [&](const std::string& b) { return deq_gptq(c, b, 4, false); })), 0);
  }
  {
    const Ckpt c(export_dir(model, {"--format", "gptq", "--scheme", "int3:g128:asym"}));
    EXPECT_EQ(c.config["quantization_config"]["checkpoint_format"], "gptq_v2");
    EXPECT_EQ(c.config["quantization_config"]["sym"], false);
    EXPECT_EQ(outside_step(src, deq_all(c, L, [&](const std::string& b) { return deq_gptq(c, b, 3, false); })), 0);
  }
  {
    const Ckpt c(export_dir(model, {"--format", "gptq", "--scheme", "int8:channel"}));
    EXPECT_EQ(c.config["quantization_config"]["group_size"], -1);
    EXPECT_EQ(outside_step(src, deq_all(c, L, [&](const std::string& b) { return deq_gptq(c, b, 8, true); })), 0);
  }
  {
    const Ckpt c(export_dir(model, {"--format", "awq", "--scheme", "int4:g128:asym"}));
    EXPECT_EQ(c.config["quantization_config"]["version"], "gemm");
    EXPECT_EQ(outside_step(src, deq_all(c, L, [&](const std::string& b) { return deq_awq(c, b, kAwqDocOrder); })), 0);
    // the nibbles in plain order (0..7) instead of AWQ's: the check fails
    const std::array<int, 8> plain = {0, 1, 2, 3, 4, 5, 6, 7};
    EXPECT_GT(outside_step(src, deq_all(c, L, [&](const std::string& b) { return deq_awq(c, b, plain); })), 0);
  }
  for (const char* scheme : {"int4:g128", "int4:g128:asym", "int8:channel:asym"}) {
    const Ckpt c(export_dir(model, {"--format", "compressed-tensors", "--scheme", scheme}));
    EXPECT_EQ(c.config["quantization_config"]["format"], "pack-quantized");
    const int b = scheme[3] - '0';
    EXPECT_EQ(outside_step(src, deq_all(c, L, [&](const std::string& x) { return deq_ct_packed(c, x, b); })), 0)
        << scheme;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, HfExportRtn, ::testing::Values("lmq-llama-25m", "lmq-qwen2-21m"));



namespace {

const char* kFloatRest = "(embed_tokens|lm_head|norm|bias)=bf16";  // what the exports keep in bf16

std::string calib_file() {
  static const std::string path = [] {
    const std::string text = read_file(shared_path("text/docs-valid.txt"));
    const std::string p = temp_dir() + "/calib.txt";
    lmq::test::write_file(p, text.substr(text.size() / 2, 20000));  // not the evaluation half
    return p;
  }();
  return path;
}

// The same quantization into lmq's file, every tensor but the decoder linears in bf16 as the
// exports keep them: the model, and its linears dequantized by lmq's reader.
struct LmqSame {
  std::unique_ptr<Model> model;
  std::map<std::string, std::vector<float>> linears;
};
LmqSame lmq_file(const std::string& model, std::vector<std::string> flags) {
  const std::string out = temp_dir() + "/same.lmq";
  std::vector<std::string> args = {"quantize", model, "-o", out, "--threads", "2", "--override", kFloatRest};
  args.insert(args.end(), flags.begin(), flags.end());
  const auto r = run_lmq(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  LmqSame s;
  s.model = Model::load(out);
  for (const Tensor& t : s.model->tensors()) {
    if (t.format != Format::LMQ_INT) continue;
    std::vector<float> v(size_t(t.numel()));
    dequantize_rows(t, 0, t.rows(), v.data());
    s.linears[t.name] = std::move(v);
  }
  return s;
}

std::vector<float> logits_of(const Model& m) {
  const std::vector<int> ids = {1, 450, 8466, 310, 278, 1824, 338, 263, 1243, 29889, 13, 1576};
  Runner r(m, int(ids.size()));
  std::vector<float> out(ids.size() * size_t(m.config().vocab));
  r.forward(ids.data(), int(ids.size()), out.data(), true);
  return out;
}

// The round trip through lmq's reader of these checkpoints (model/hf_quant.h): the export read
// back has the dequantized weights and the logits of lmq's file of the same quantization, exactly.
void expect_round_trip(const std::string& dir, const LmqSame& same) {
  const auto back = Model::load(dir);
  size_t quantized = 0;
  for (const Tensor& t : back->tensors()) {
    if (t.format != Format::LMQ_INT) continue;
    ++quantized;
    std::vector<float> v(size_t(t.numel()));
    dequantize_rows(t, 0, t.rows(), v.data());
    const auto it = same.linears.find(t.name);
    ASSERT_NE(it, same.linears.end()) << t.name;
    EXPECT_TRUE(v == it->second) << t.name << " read back differs from lmq's file";
  }
  EXPECT_EQ(quantized, same.linears.size()) << dir;
  EXPECT_TRUE(logits_of(*back) == logits_of(*same.model)) << dir << ": logits differ from lmq's file";
}

// Elements of the export (independently unpacked) that differ from lmq's file.
int64_t differ(const std::map<std::string, Deq>& deq, const std::map<std::string, std::vector<float>>& lmq) {
  int64_t bad = 0;
  EXPECT_EQ(deq.size(), lmq.size());
  for (const auto& [name, d] : deq) {
    const auto it = lmq.find(name);
    if (it == lmq.end()) {
      ADD_FAILURE() << name << " not quantized in lmq's file";
      continue;
    }
    for (size_t k = 0; k < d.w.size(); ++k) bad += d.w[k] != it->second[k];
  }
  return bad;
}

// Runs `flags` (and the calibration) into the format and into lmq's file; the export's decoder
// linears, unpacked by `deq`, must equal the file's exactly, and so must the export read back by
// lmq (weights and logits). Returns the export.
template <typename Deq_>
Ckpt expect_identical(const std::string& model, std::vector<std::string> flags, const std::string& format,
                      Deq_&& deq, std::map<std::string, std::vector<float>>* lmq_out = nullptr) {
  flags.insert(flags.end(), {"--calib", calib_file(), "--calib-samples", "2", "--calib-len", "64"});
  std::vector<std::string> fx = flags;
  fx.insert(fx.end(), {"--format", format});
  const std::string dir = export_dir(model, fx);
  Ckpt c(dir);
  LmqSame same = lmq_file(model, flags);
  EXPECT_EQ(differ(deq_all(c, n_layers(model), [&](const std::string& b) { return deq(c, b); }), same.linears), 0)
      << format;
  expect_round_trip(dir, same);
  if (lmq_out) *lmq_out = std::move(same.linears);
  return c;
}

class HfExportGptq : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

}  // namespace

// GPTQ with and without act-order: the independently unpacked weights equal lmq's file of the
// same quantization; desc_act / static_groups say what ran (act-order's g_idx is i / 128).
TEST_P(HfExportGptq, IdenticalToLmqFile) {
  const auto& [name, act_order] = GetParam();
  const std::string model = shared_path("models/" + name);
  if (!fs::exists(model)) GTEST_SKIP() << "missing model";
  std::vector<std::string> f = {"--scheme", "int4:g128", "--method", "gptq"};
  if (act_order) f.push_back("--act-order");
  const Ckpt c = expect_identical(model, f, "gptq", [](const Ckpt& k, const std::string& b) { return deq_gptq(k, b, 4, true); });
  const json& qc = c.config["quantization_config"];
  EXPECT_EQ(qc["desc_act"], act_order);
  EXPECT_EQ(qc["static_groups"], act_order);
  EXPECT_EQ(qc["group_size"], 128);
  EXPECT_EQ(qc["bits"], 4);
  EXPECT_EQ(qc["checkpoint_format"], "gptq");
}

INSTANTIATE_TEST_SUITE_P(Models, HfExportGptq,
                         ::testing::Combine(::testing::Values("lmq-llama-25m", "lmq-qwen2-21m"), ::testing::Bool()));

// AWQ (scales folded into the norms and v/up rows, then quantized): identical to lmq's file, and
// two swapped nibbles in the unpacker break that. On qwen2 only (AWQ's search takes ~35 s on
// llama-25m here; its packing is the same, checked on both models by HfExportRtn).
TEST(HfExportAwq, IdenticalToLmqFileAndNibbleOrderMatters) {
  const std::string model = shared_path("models/lmq-qwen2-21m");
  if (!fs::exists(model)) GTEST_SKIP() << "missing model";
  const std::vector<std::string> f = {"--scheme", "int4:g128:asym", "--method", "awq"};
  std::map<std::string, std::vector<float>> lmq;
  const Ckpt c = expect_identical(
      model, f, "awq", [](const Ckpt& k, const std::string& b) { return deq_awq(k, b, kAwqDocOrder); }, &lmq);
  const std::array<int, 8> swapped = {0, 2, 4, 6, 1, 3, 7, 5};
  EXPECT_GT(differ(deq_all(c, n_layers(model), [&](const std::string& b) { return deq_awq(c, b, swapped); }), lmq), 0);
}

// compressed-tensors with act-order: actorder "group" and weight_g_idx, asymmetric zero points.
TEST(HfExportCompressedTensors, ActOrderIdenticalToLmqFile) {
  const std::string model = shared_path("models/lmq-llama-25m");
  if (!fs::exists(model)) GTEST_SKIP() << "missing model";
  const Ckpt c = expect_identical(model, {"--scheme", "int4:g128:asym", "--method", "gptq", "--act-order"},
                                  "compressed-tensors",
                                  [](const Ckpt& k, const std::string& b) { return deq_ct_packed(k, b, 4); });
  EXPECT_EQ(c.config["quantization_config"]["config_groups"]["group_0"]["weights"]["actorder"], "group");
  EXPECT_TRUE(c.has("model.layers.0.mlp.down_proj.weight_g_idx"));
  EXPECT_TRUE(c.has("model.layers.0.mlp.down_proj.weight_zero_point"));
}

// lmq's W8A8 (SmoothQuant folded, dynamic per-token activations) as compressed-tensors
// int-quantized: int8 weights equal to lmq's file of the same quantization.
TEST(HfExportW8A8, IntQuantizedIdenticalToLmqFile) {
  const std::string model = shared_path("models/lmq-qwen2-21m");
  if (!fs::exists(model)) GTEST_SKIP() << "missing model";
  const Ckpt c = expect_identical(model, {"--scheme", "int8:channel", "--activations", "int8:dynamic"},
                                  "compressed-tensors", [](const Ckpt& k, const std::string& b) { return deq_ct_int8(k, b); });
  const json& qc = c.config["quantization_config"];
  EXPECT_EQ(qc["format"], "int-quantized");
  EXPECT_EQ(qc["config_groups"]["group_0"]["input_activations"]["strategy"], "token");
  EXPECT_EQ(qc["config_groups"]["group_0"]["input_activations"]["dynamic"], true);
  EXPECT_EQ(qc["config_groups"]["group_0"]["weights"]["strategy"], "channel");
}

// Each scheme a format cannot hold: exit 1, one line naming the flag and saying what the format
// holds; nothing written.
TEST(BadInputHfExport, SchemesTheFormatCannotHold) {
  const std::string model = shared_path("models/lmq-qwen2-21m");
  if (!fs::exists(model)) GTEST_SKIP() << "missing model";
  const std::string calib = calib_file();
  struct Case {
    std::vector<std::string> flags;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{"--format", "awq", "--scheme", "int3:g128:asym"}, "3 bits; awq holds 4 bits"},
      {{"--format", "gptq", "--scheme", "int5:g128"}, "5 bits; gptq holds 2, 3, 4 or 8 bits"},
      {{"--format", "gptq", "--scheme", "int4:tensor"}, "one scale per tensor; gptq holds"},
      {{"--format", "awq", "--scheme", "int4:channel:asym"}, "per-channel scales; awq holds 4 bits in groups"},
      {{"--format", "gptq", "--scheme", "int4:g96"}, "group size 96 does not divide its 256 inputs"},
      {{"--format", "gptq", "--scheme", "int4:g128:s=bf16"}, "scales not f16"},
      {{"--format", "compressed-tensors", "--scheme", "int3:g128"}, "3 bits; compressed-tensors pack-quantized holds 4 or 8"},
      {{"--format", "gptq", "--scheme", "int4:g128", "--override", "k_proj=int8:g128"},
       "holds one bit width and group size for every decoder linear (vLLM fuses q/k/v and gate/up)"},
      {{"--format", "gptq", "--scheme", "int4:g128", "--override", "down_proj=bf16"},
       "the format holds every decoder linear quantized"},
      {{"--format", "awq", "--scheme", "int4:g128", "--target-bpw", "4.5", "--calib", calib},
       "--target-bpw: --format awq holds one bit width"},
      {{"--format", "awq", "--scheme", "int8:channel", "--activations", "int8:dynamic", "--calib", calib},
       "W8A8 is written as --format compressed-tensors"},
      {{"--format", "compressed-tensors", "--scheme", "int8:channel", "--activations", "int8", "--calib", calib},
       "use --activations int8:dynamic"},
      {{"--format", "compressed-tensors", "--scheme", "int4:g128", "--activations", "int8:dynamic", "--calib", calib},
       "int-quantized holds int8:channel:sym weights"},
      {{"--format", "gptq-v3", "--scheme", "int4:g128"}, "expected lmq, gguf, gptq, awq or compressed-tensors"},
      {{"--format", "gptq", "--scheme", "int4:g128", "--override", "embed_tokens=int8"},
       "--format gptq quantizes only the decoder blocks' linears; 'model.embed_tokens.weight' can be f32, f16 or bf16"},
  };
  for (const Case& c : cases) {
    const std::string out = temp_dir() + "/out";
    std::vector<std::string> args = {"quantize", model, "-o", out};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    const auto r = run_lmq(args);
    EXPECT_EQ(r.exit_code, 1) << c.expect;
    EXPECT_EQ(r.err.rfind("lmq: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.expect;
  }
}

// A source that is not a Hugging Face directory, and an output that is a foreign directory.
TEST(BadInputHfExport, SourceAndOutput) {
  const std::string model = shared_path("models/lmq-qwen2-21m");
  if (!fs::exists(model)) GTEST_SKIP() << "missing model";
  const std::string dir = temp_dir(), lmqf = dir + "/m.lmq";
  ASSERT_EQ(run_lmq({"quantize", model, "-o", lmqf, "--scheme", "bf16"}).exit_code, 0);
  auto r = run_lmq({"quantize", lmqf, "-o", dir + "/out", "--format", "gptq", "--scheme", "int4:g128"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("needs a Hugging Face model directory as the source"), std::string::npos) << r.err;
  fs::create_directory(dir + "/notes");
  lmq::test::write_file(dir + "/notes/keep.txt", "keep");
  r = run_lmq({"quantize", model, "-o", dir + "/notes", "--format", "gptq", "--scheme", "int4:g128"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a model directory"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(dir + "/notes/keep.txt"), "keep");
}

// Legal checkpoints that miss vLLM's Marlin kernels: one warning line each; a Marlin-friendly one
// prints none. A second export over the first replaces the directory whole.
TEST(HfExport, MarlinWarningsAndReplacingAnExport) {
  const std::string model = shared_path("models/lmq-qwen2-21m");
  if (!fs::exists(model)) GTEST_SKIP() << "missing model";
  const std::string out = temp_dir() + "/out";
  auto r = run_lmq({"quantize", model, "-o", out, "--format", "gptq", "--scheme", "int4:g128", "--max-shard-bytes",
                    "4000000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(out + "/model.safetensors.index.json"));  // sharded by the flag
  EXPECT_TRUE(fs::exists(out + "/tokenizer.model"));
  EXPECT_TRUE(fs::exists(out + "/generation_config.json"));
  const Ckpt sharded(out);
  EXPECT_GE(sharded.files.size(), 3u);
  EXPECT_FALSE(sharded.has("lm_head.qweight"));
  EXPECT_EQ(sharded.at("lm_head.weight").dtype, StDType::BF16);  // untied lm_head stays float
  EXPECT_EQ(sharded.at("model.embed_tokens.weight").dtype, StDType::BF16);
  EXPECT_EQ(sharded.at("model.layers.0.self_attn.q_proj.bias").dtype, StDType::BF16);

  r = run_lmq({"quantize", model, "-o", out, "--format", "gptq", "--scheme", "int4:g256:asym"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("lmq: warning: --format gptq: group size 256 misses vLLM's Marlin kernels"), std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out + "/model.safetensors.index.json"));  // the old shards went with the old directory
  const Ckpt one(out);
  EXPECT_EQ(one.config["quantization_config"]["checkpoint_format"], "gptq_v2");

  r = run_lmq({"quantize", model, "-o", out, "--format", "gptq", "--scheme", "int4:g128:asym"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("lmq: warning: --format gptq: asymmetric weights are written as checkpoint_format gptq_v2"),
            std::string::npos)
      << r.err;
}

// A tied model keeps one embedding (no lm_head tensor written), in the source's bf16.
TEST(HfExport, TiedEmbeddingsStayTied) {
  const std::string model = shared_path("models/lmq-llama-25m");
  if (!fs::exists(model)) GTEST_SKIP() << "missing model";
  const Ckpt c(export_dir(model, {"--format", "awq", "--scheme", "int4:g128"}));
  EXPECT_FALSE(c.has("lm_head.weight"));
  EXPECT_EQ(c.at("model.embed_tokens.weight").dtype, StDType::BF16);
  EXPECT_EQ(c.config["tie_word_embeddings"], true);
  EXPECT_EQ(c.at("model.layers.0.input_layernorm.weight").dtype, StDType::BF16);
  // asked for, a float tensor takes another float dtype
  const Ckpt f(export_dir(model, {"--format", "awq", "--scheme", "int4:g128", "--override", "norm=f32"}));
  EXPECT_EQ(f.at("model.layers.0.input_layernorm.weight").dtype, StDType::F32);
  EXPECT_EQ(f.at("model.embed_tokens.weight").dtype, StDType::BF16);
}

namespace {
class HfExportRoundTrip : public ::testing::TestWithParam<std::string> {};
}  // namespace

// Every format, round to nearest, read back by lmq: the weights and logits of lmq's file of the
// same scheme (the calibrated exports do the same in expect_identical).
TEST_P(HfExportRoundTrip, ReadBackEqualsLmqFile) {
  const std::string model = shared_path("models/" + GetParam());
  if (!fs::exists(model)) GTEST_SKIP() << "missing model";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"gptq", "int4:g128"},
      {"gptq", "int4:g128:asym"},
      {"awq", "int4:g128:asym"},
      {"compressed-tensors", "int4:g128"},
      {"compressed-tensors", "int4:g128:asym"},
  };
  for (const auto& [format, scheme] : cases) {
    SCOPED_TRACE(format + " " + scheme);
    expect_round_trip(export_dir(model, {"--format", format, "--scheme", scheme}), lmq_file(model, {"--scheme", scheme}));
  }
}

INSTANTIATE_TEST_SUITE_P(Models, HfExportRoundTrip, ::testing::Values("lmq-llama-25m", "lmq-qwen2-21m"));

// lmq's own GPTQ export (symmetric 4-bit g32) into GGUF Q4_0: every decoder linear carried
// over without a second rounding (the reader's hand-off, quant/gguf_carry.cpp), so the GGUF's
// linears dequantize to the export's read back.
TEST(HfExport, GptqG32ExportCarriedIntoQ4_0) {
  const std::string model = shared_path("models/lmq-llama-25m");
  if (!fs::exists(model)) GTEST_SKIP() << "missing model";
  const std::string dir = export_dir(model, {"--format", "gptq", "--scheme", "int4:g32"});
  const std::string gguf = temp_dir() + "/x.gguf";
  // the embedding kept in bf16 as in the export (llama.cpp's recipe would give it Q6_K)
  const auto r = run_lmq(
      {"quantize", dir, "-o", gguf, "--format", "gguf", "--scheme", "q4_0", "--override", "embed_tokens=bf16", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  int carried = 0;
  for (const auto& t : j["tensors"]) {
    const bool linear = t["hf_name"].get<std::string>().find("_proj.weight") != std::string::npos;
    EXPECT_EQ(t["path"] == "carried", linear) << t["hf_name"];
    carried += t["path"] == "carried";
  }
  EXPECT_EQ(carried, 8 * 7);
  // the GGUF computes what the export computes
  const auto a = Model::load(dir), b = Model::load(gguf);
  const auto la = logits_of(*a), lb = logits_of(*b);
  float mx = 0, diff = 0;
  for (size_t k = 0; k < la.size(); ++k) mx = std::max(mx, std::fabs(la[k])), diff = std::max(diff, std::fabs(la[k] - lb[k]));
  EXPECT_LT(diff, 1e-3f * mx) << "max |Δlogit| " << diff << " of " << mx;
}
