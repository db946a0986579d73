// Quantized Hugging Face checkpoints (GPTQ, AWQ gemm, compressed-tensors) read into LMQ_INT
// tensors; see model/hf_quant.h and, for the packed layouts, codecs/hf_packing.h.
#include "lmq/model/hf_quant.h"

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "lmq/codecs/int_format.h"
#include "lmq/error.h"
#include "lmq/half.h"

namespace lmq {

const char* hf_quant_method_name(HfQuantMethod m) {
  switch (m) {
    case HfQuantMethod::Gptq: return "gptq";
    case HfQuantMethod::Awq: return "awq";
    case HfQuantMethod::CtPacked: return "compressed-tensors pack-quantized";
    case HfQuantMethod::CtInt8: return "compressed-tensors int-quantized";
  }
  return "?";
}

// ---- quantization_config ------------------------------------------------------------------------

namespace {
using json = nlohmann::json;

// An optional integer key (any of `keys`, first found), else dflt; `where` names the block.
int64_t opt_int(const json& o, std::initializer_list<const char*> keys, int64_t dflt, const std::string& where) {
  for (const char* k : keys) {
    const auto it = o.find(k);
    if (it == o.end() || it->is_null()) continue;
    if (!it->is_number_integer()) fail("{}: '{}' must be an integer, not {}", where, k, it->dump());
    const int64_t v = it->get<int64_t>();
    if (v < -1 || v > (int64_t(1) << 30)) fail("{}: '{}' = {} is out of range", where, k, v);
    return v;
  }
  return dflt;
}
bool opt_bool(const json& o, const char* key, bool dflt, const std::string& where) {
  const auto it = o.find(key);
  if (it == o.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) fail("{}: '{}' must be true or false, not {}", where, key, it->dump());
  return it->get<bool>();
}
std::string opt_string(const json& o, const char* key, const std::string& dflt, const std::string& where) {
  const auto it = o.find(key);
  if (it == o.end() || it->is_null()) return dflt;
  if (!it->is_string()) fail("{}: '{}' must be a string, not {}", where, key, it->dump());
  return it->get<std::string>();
}
int group_size_of(int64_t g, const std::string& where) {
  if (g == 0 || g < -1) fail("{}: group_size {} (a positive number of inputs, or -1 for per channel)", where, g);
  return int(g);
}

HfQuantConfig parse_gptq(const json& o, const std::string& where) {
  HfQuantConfig q;
  q.method = HfQuantMethod::Gptq;
  q.bits = int(opt_int(o, {"bits"}, 0, where));
  if (!hf::gptq_bits_allowed(q.bits)) fail("{}: GPTQ bits {} not allowed (2, 3, 4 or 8)", where, q.bits);
  q.group_size = group_size_of(opt_int(o, {"group_size"}, -1, where), where);
  q.sym = opt_bool(o, "sym", true, where);
  q.desc_act = opt_bool(o, "desc_act", false, where);
  const std::string fmt = opt_string(o, "checkpoint_format", "gptq", where);
  if (fmt == "gptq") q.version = hf::GptqVersion::V1;
  else if (fmt == "gptq_v2") q.version = hf::GptqVersion::V2;
  else fail("{}: checkpoint_format '{}' is not read (gptq or gptq_v2)", where, fmt);
  return q;
}

HfQuantConfig parse_awq(const json& o, const std::string& where) {
  HfQuantConfig q;
  q.method = HfQuantMethod::Awq;
  q.bits = int(opt_int(o, {"bits", "w_bit"}, 0, where));
  if (q.bits != 4) fail("{}: AWQ bits {} not allowed (gemm holds 4-bit weights only)", where, q.bits);
  q.group_size = group_size_of(opt_int(o, {"group_size", "q_group_size"}, -1, where), where);
  q.sym = !opt_bool(o, "zero_point", true, where);
  std::string v = opt_string(o, "version", "gemm", where);
  for (char& c : v) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (v != "gemm") fail("{}: AWQ version '{}' is not read (only gemm)", where, v);
  return q;
}

// One config group of compressed-tensors.
HfQuantConfig parse_ct_group(const json& g, const std::string& fmt, const std::string& where) {
  if (!g.is_object()) fail("{}: a config group must be an object", where);
  HfQuantConfig q;
  const std::string f = opt_string(g, "format", fmt, where);
  if (f == "pack-quantized") q.method = HfQuantMethod::CtPacked;
  else if (f == "int-quantized") q.method = HfQuantMethod::CtInt8;
  else fail("{}: compressed-tensors format '{}' is not read (pack-quantized or int-quantized)", where, f);
  const auto w = g.find("weights");
  if (w == g.end() || !w->is_object()) fail("{}: config group has no 'weights' object", where);
  if (opt_string(*w, "type", "int", where) != "int")
    fail("{}: weights type '{}' is not read (int only)", where, opt_string(*w, "type", "int", where));
  q.bits = int(opt_int(*w, {"num_bits"}, 0, where));
  if (q.method == HfQuantMethod::CtPacked && !hf::ct_pack_bits_allowed(q.bits))
    fail("{}: pack-quantized num_bits {} not allowed (2, 4 or 8)", where, q.bits);
  if (q.method == HfQuantMethod::CtInt8 && q.bits != 8)
    fail("{}: int-quantized num_bits {} not allowed (8)", where, q.bits);
  q.sym = opt_bool(*w, "symmetric", true, where);
  const std::string strategy = opt_string(*w, "strategy", "channel", where);
  if (strategy == "channel") q.group_size = -1;
  else if (strategy == "group") q.group_size = group_size_of(opt_int(*w, {"group_size"}, 0, where), where);
  else fail("{}: weights strategy '{}' is not read (channel or group)", where, strategy);
  if (q.group_size == -1 && strategy == "group") fail("{}: strategy group needs a group_size", where);
  const auto ao = w->find("actorder");
  q.desc_act = ao != w->end() && !ao->is_null() && !(ao->is_boolean() && !ao->get<bool>());
  if (opt_bool(*w, "dynamic", false, where)) fail("{}: dynamic weight scales are not read", where);
  const auto in = g.find("input_activations");
  if (in != g.end() && !in->is_null()) {
    if (!in->is_object()) fail("{}: input_activations must be an object or null", where);
    if (!opt_bool(*in, "dynamic", false, where) || opt_int(*in, {"num_bits"}, 0, where) != 8 ||
        opt_string(*in, "type", "int", where) != "int" || opt_string(*in, "strategy", "token", where) != "token")
      fail("{}: input_activations other than dynamic per-token int8 are not read", where);
    q.dynamic_acts = true;
  }
  return q;
}

HfQuantConfig parse_ct(const json& o, const std::string& where) {
  const std::string fmt = opt_string(o, "format", "", where);
  const auto groups = o.find("config_groups");
  if (groups == o.end() || !groups->is_object() || groups->empty())
    fail("{}: compressed-tensors needs a non-empty config_groups object", where);
  std::optional<HfQuantConfig> one;
  for (const auto& [name, g] : groups->items()) {
    const HfQuantConfig q = parse_ct_group(g, fmt, where + " config_groups." + name);
    if (one && (q.method != one->method || q.bits != one->bits || q.group_size != one->group_size ||
                q.sym != one->sym || q.dynamic_acts != one->dynamic_acts))
      fail("{}: config groups with different schemes are not read (lmq reads one scheme per checkpoint)", where);
    one = q;
  }
  return *one;
}

}  // namespace

std::optional<HfQuantConfig> parse_quantization_config(const std::string& config_text, const std::string& path) {
  json j;
  try {
    j = json::parse(config_text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
  if (!j.is_object()) fail("{}: not a JSON object", path);
  const auto it = j.find("quantization_config");
  if (it == j.end() || it->is_null()) return std::nullopt;
  const std::string where = path + ": quantization_config";
  if (!it->is_object()) fail("{} must be an object", where);
  const auto m = it->find("quant_method");
  if (m == it->end() || !m->is_string()) fail("{}: no quant_method string", where);
  const std::string method = m->get<std::string>();
  if (method == "gptq") return parse_gptq(*it, where);
  if (method == "awq") return parse_awq(*it, where);
  if (method == "compressed-tensors") return parse_ct(*it, where);
  fail("{}: unknown quant_method '{}' (lmq reads gptq, awq and compressed-tensors)", where, method);
}

// ---- the packed linears ---------------------------------------------------------------------------

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// The stored pieces of one quantized linear, by suffix ("qweight", "scales", ...).
struct Pieces {
  std::string prefix;  // "model.layers.0.self_attn.q_proj"
  std::map<std::string, const HfTensor*> by_suffix;
  const HfTensor* get(const std::string& suffix) const {
    const auto it = by_suffix.find(suffix);
    return it == by_suffix.end() ? nullptr : it->second;
  }
  const HfTensor& need(const std::string& suffix, const std::string& beside) const {
    const HfTensor* t = get(suffix);
    if (!t) {
      const HfTensor& b = *get(beside);
      fail("{}: tensor '{}.{}' has no '{}.{}' beside it", b.file, prefix, beside, prefix, suffix);
    }
    return *t;
  }
};

std::string what(const HfTensor& t) { return t.file + ": tensor '" + t.st->tensor.name + "'"; }

void need_dtype(const HfTensor& t, StDType d, size_t dims) {
  if (t.st->dtype != d)
    fail("{} has dtype {}, expected {}", what(t), st_dtype_name(t.st->dtype), st_dtype_name(d));
  if (t.st->tensor.shape.size() != dims)
    fail("{} has shape {}, expected {} dimensions", what(t), shape_str(t.st->tensor.shape), dims);
}
void need_shape(const HfTensor& t, const std::vector<int64_t>& shape, const char* why) {
  if (t.st->tensor.shape != shape)
    fail("{} has shape {}, but {} make {}", what(t), shape_str(t.st->tensor.shape), why, shape_str(shape));
}

std::vector<int32_t> read_i32(const HfTensor& t) {
  std::vector<int32_t> v(size_t(t.st->tensor.numel()));
  if (!v.empty()) std::memcpy(v.data(), t.st->tensor.data, v.size() * 4);  // any alignment
  return v;
}
std::vector<int8_t> read_i8(const HfTensor& t) {
  const auto* p = reinterpret_cast<const int8_t*>(t.st->tensor.data);
  return {p, p + t.st->tensor.numel()};
}
// Scales in their stored float dtype, which the LMQ_INT tensor keeps (exact).
std::vector<float> read_scales(const HfTensor& t, size_t dims, ScaleType& st) {
  const StDType d = t.st->dtype;
  if (d == StDType::F16) st = ScaleType::F16;
  else if (d == StDType::BF16) st = ScaleType::BF16;
  else if (d == StDType::F32) st = ScaleType::F32;
  else fail("{} has dtype {}, expected F16, BF16 or F32", what(t), st_dtype_name(d));
  if (t.st->tensor.shape.size() != dims)
    fail("{} has shape {}, expected {} dimensions", what(t), shape_str(t.st->tensor.shape), dims);
  std::vector<float> v(size_t(t.st->tensor.numel()));
  dequantize_rows(t.st->tensor, 0, t.st->tensor.shape.empty() ? 1 : t.st->tensor.rows(), v.data());
  return v;
}

// A linear in lmq's terms, unpacked, before it becomes an LMQ_INT tensor.
struct LinearQ {
  int64_t out = 0, in = 0;
  int bits = 4;
  int group = -1;  // lmq's: -1 per channel, else G
  ScaleType scale_type = ScaleType::F16;
  std::vector<uint8_t> codes;  // [out, in]
  std::vector<float> scales;   // [out, groups]
  std::vector<int32_t> zeros;  // [out, groups]
  std::vector<int32_t> perm;   // act-order input permutation, empty when none
};

int64_t groups_for(int64_t in, int group_size) { return group_size > 0 ? (in + group_size - 1) / group_size : 1; }

void check_groups(const HfTensor& scales, int64_t groups, int64_t in, int group_size) {
  if (groups != groups_for(in, group_size))
    fail("{} holds {} groups, but {} inputs at group_size {} make {}", what(scales), groups, in, group_size,
         groups_for(in, group_size));
}

void check_zeros(const std::vector<int32_t>& zeros, int bits, const HfTensor& t) {
  for (const int32_t z : zeros)
    if (z < 0 || z > quant::code_max(bits))
      fail("{}: zero point {} lies outside the {}-bit code range [0, {}]", what(t), z, bits, quant::code_max(bits));
}

// g_idx (or the sequential one): checked, and the act-order permutation it asks for.
std::vector<int32_t> read_perm(const HfTensor* g_idx, int64_t in, int64_t groups, int group_size) {
  if (!g_idx) return {};
  need_dtype(*g_idx, StDType::I32, 1);
  need_shape(*g_idx, {in}, "the inputs");
  const std::vector<int32_t> g = read_i32(*g_idx);
  hf::check_g_idx(g.data(), in, groups, what(*g_idx));
  return hf::act_order_perm(g.data(), in, group_size, what(*g_idx));
}

// What GPTQ and AWQ share: int32 qweight and qzeros, and scales [groups, out] whose shape
// gives the outputs and the groups. Fills l's bits, group, scales (still [groups, out]) and out.
struct Packed {
  const HfTensor &qw, &qz, &sc;
  int64_t groups;
};
Packed packed_pieces(const Pieces& p, int bits, int group, LinearQ& l) {
  const HfTensor& qw = *p.get("qweight");
  const HfTensor &qz = p.need("qzeros", "qweight"), &sc = p.need("scales", "qweight");
  need_dtype(qw, StDType::I32, 2);
  need_dtype(qz, StDType::I32, 2);
  l.bits = bits;
  l.group = group;
  l.scales = read_scales(sc, 2, l.scale_type);
  l.out = sc.st->tensor.shape[1];
  return {qw, qz, sc, sc.st->tensor.shape[0]};
}

LinearQ gptq_linear(const HfQuantConfig& q, const Pieces& p) {
  LinearQ l;
  const auto [qw, qz, sc, groups] = packed_pieces(p, q.bits, q.group_size, l);
  l.in = qw.st->tensor.shape[0] * 32 / q.bits;
  const hf::GptqShapes sh = hf::gptq_shapes(l.out, l.in, q.bits, groups, what(qw));
  need_shape(qw, {sh.qweight[0], sh.qweight[1]}, "bits and the scales' outputs");
  need_shape(qz, {sh.qzeros[0], sh.qzeros[1]}, "bits and the scales' groups/outputs");
  check_groups(sc, groups, l.in, q.group_size);
  l.codes.resize(size_t(l.out * l.in));
  hf::gptq_unpack_qweight(read_i32(qw).data(), l.out, l.in, q.bits, l.codes.data());
  l.zeros.resize(size_t(l.out * groups));
  hf::gptq_unpack_qzeros(read_i32(qz).data(), l.out, groups, q.bits, q.version, l.zeros.data());
  check_zeros(l.zeros, q.bits, qz);
  l.scales = hf::transpose(l.scales.data(), groups, l.out);
  l.perm = read_perm(p.get("g_idx"), l.in, groups, q.group_size);
  return l;
}

LinearQ awq_linear(const HfQuantConfig& q, const Pieces& p) {
  LinearQ l;
  const auto [qw, qz, sc, groups] = packed_pieces(p, 4, q.group_size, l);
  l.in = qw.st->tensor.shape[0];
  hf::awq_check(l.out, q.bits, what(sc));
  need_shape(qw, {l.in, l.out / 8}, "4-bit words over the scales' outputs");
  need_shape(qz, {groups, l.out / 8}, "4-bit words over the scales' groups/outputs");
  check_groups(sc, groups, l.in, q.group_size);
  l.codes.resize(size_t(l.out * l.in));
  hf::awq_unpack_qweight(read_i32(qw).data(), l.out, l.in, l.codes.data());
  l.zeros.resize(size_t(l.out * groups));
  hf::awq_unpack_qzeros(read_i32(qz).data(), l.out, groups, l.zeros.data());
  l.scales = hf::transpose(l.scales.data(), groups, l.out);
  return l;
}

// compressed-tensors zero points: packed int32 along the outputs, or (older writers, and
// int-quantized) one signed int8 per scale. Both hold z − 2^(b−1).
std::vector<int32_t> ct_zeros(const HfQuantConfig& q, const Pieces& p, int64_t out, int64_t groups) {
  const HfTensor* zp = p.get("weight_zero_point");
  std::vector<int32_t> z(size_t(out * groups), quant::sym_zero(q.bits));
  if (!zp) {
    if (!q.sym) fail("{}: tensor '{}.weight_zero_point' is missing for asymmetric weights", p.by_suffix.begin()->second->file, p.prefix);
    return z;
  }
  if (zp->st->dtype == StDType::I8) {
    need_shape(*zp, {out, groups}, "the outputs and groups");
    const auto v = read_i8(*zp);
    for (size_t i = 0; i < z.size(); ++i) z[i] = int32_t(v[i]) + quant::sym_zero(q.bits);
  } else {
    need_dtype(*zp, StDType::I32, 2);
    need_shape(*zp, {hf::run_words(out, q.bits), groups}, "bits packed along the outputs, and the groups");
    hf::ct_unpack_zero_point(read_i32(*zp).data(), out, groups, q.bits, z.data());
  }
  check_zeros(z, q.bits, *zp);
  return z;
}

LinearQ ct_packed_linear(const HfQuantConfig& q, const Pieces& p) {
  const HfTensor& wp = *p.get("weight_packed");
  const HfTensor &ws = p.need("weight_shape", "weight_packed"), &sc = p.need("weight_scale", "weight_packed");
  need_dtype(wp, StDType::I32, 2);
  if ((ws.st->dtype != StDType::I64 && ws.st->dtype != StDType::I32) || ws.st->tensor.shape != std::vector<int64_t>{2})
    fail("{} must be 2 integers (I64 or I32)", what(ws));
  int64_t dims[2];
  for (int i = 0; i < 2; ++i) {
    if (ws.st->dtype == StDType::I64) std::memcpy(&dims[i], ws.st->tensor.data + 8 * i, 8);
    else {
      int32_t d;
      std::memcpy(&d, ws.st->tensor.data + 4 * i, 4);
      dims[i] = d;
    }
    if (dims[i] < 1 || dims[i] > (int64_t(1) << 30)) fail("{}: dimension {} is out of range", what(ws), dims[i]);
  }
  LinearQ l;
  l.bits = q.bits;
  l.group = q.group_size;
  l.out = dims[0];
  l.in = dims[1];
  l.scales = read_scales(sc, 2, l.scale_type);
  const int64_t groups = groups_for(l.in, q.group_size);
  need_shape(sc, {l.out, groups}, "weight_shape and group_size");
  need_shape(wp, {l.out, hf::ct_weight_words(l.in, q.bits)}, "weight_shape and num_bits");
  l.codes.resize(size_t(l.out * l.in));
  hf::ct_unpack_weight(read_i32(wp).data(), l.out, l.in, q.bits, l.codes.data());
  l.zeros = ct_zeros(q, p, l.out, groups);
  l.perm = read_perm(p.get("weight_g_idx"), l.in, groups, q.group_size);
  return l;
}

LinearQ ct_int8_linear(const HfQuantConfig& q, const Pieces& p) {
  const HfTensor& w = *p.get("weight");
  const HfTensor& sc = p.need("weight_scale", "weight");
  need_dtype(w, StDType::I8, 2);
  LinearQ l;
  l.bits = 8;
  l.group = q.group_size;
  l.out = w.st->tensor.shape[0];
  l.in = w.st->tensor.shape[1];
  l.scales = read_scales(sc, 2, l.scale_type);
  const int64_t groups = groups_for(l.in, q.group_size);
  need_shape(sc, {l.out, groups}, "the weight's outputs and group_size");
  l.codes.resize(size_t(l.out * l.in));
  const auto v = read_i8(w);
  hf::ct_int8_to_codes(v.data(), int64_t(v.size()), l.codes.data());
  l.zeros = ct_zeros(q, p, l.out, groups);
  return l;
}

// The LMQ_INT tensor of a linear: codes over the permuted inputs, the permutation beside.
Tensor int_tensor(const std::string& name, LinearQ l, Model::Parts& parts) {
  if (!l.perm.empty()) {
    std::vector<uint8_t> permuted(l.codes.size());
    hf::permute_columns(l.codes.data(), l.out, l.in, l.perm.data(), permuted.data());
    l.codes = std::move(permuted);
  }
  IntParams ip;
  ip.bits = uint8_t(l.bits);
  ip.group = l.group;
  ip.scale_type = l.scale_type;
  for (const int32_t z : l.zeros) ip.asym = ip.asym || z != quant::sym_zero(l.bits);
  std::vector<quant::GroupQ> qs(l.scales.size());
  for (size_t i = 0; i < qs.size(); ++i) qs[i] = {l.scales[i], l.zeros[i], !ip.asym};
  auto bytes = std::make_shared<std::vector<uint8_t>>(quant::int_tensor_bytes(ip, l.out, l.in));
  quant::store_int_tensor(ip, l.out, l.in, l.codes.data(), qs.data(), bytes->data());
  Tensor t;
  t.name = name;
  t.shape = {l.out, l.in};
  t.format = Format::LMQ_INT;
  t.q = ip;
  t.data = bytes->data();
  t.nbytes = bytes->size();
  parts.storage.push_back(bytes);
  if (!l.perm.empty()) {
    auto perm = std::make_shared<std::vector<int32_t>>(std::move(l.perm));
    t.in_perm = perm->data();
    parts.storage.push_back(perm);
  }
  return t;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The suffixes that make up one quantized linear, the first being the one that marks it.
std::vector<std::string> suffixes_of(HfQuantMethod m) {
  switch (m) {
    case HfQuantMethod::Gptq: return {"qweight", "qzeros", "scales", "g_idx"};
    case HfQuantMethod::Awq: return {"qweight", "qzeros", "scales"};
    case HfQuantMethod::CtPacked:
      return {"weight_packed", "weight_shape", "weight_scale", "weight_zero_point", "weight_g_idx"};
    case HfQuantMethod::CtInt8: return {"weight", "weight_scale", "weight_zero_point"};
  }
  return {};
}

}  // namespace

std::vector<HfTensor> load_hf_quantized(const HfQuantConfig& q, const std::vector<HfTensor>& tensors,
                                        Model::Parts& parts) {
  std::map<std::string, const HfTensor*> by_name;
  for (const HfTensor& t : tensors) by_name[t.st->tensor.name] = &t;
  const std::vector<std::string> suffixes = suffixes_of(q.method);
  // A linear is marked by its first piece (int-quantized: an int8 "weight").
  std::map<std::string, Pieces> linears;
  for (const HfTensor& t : tensors) {
    const std::string& n = t.st->tensor.name;
    if (!ends_with(n, "." + suffixes[0])) continue;
    if (q.method == HfQuantMethod::CtInt8 && t.st->dtype != StDType::I8) continue;
    const std::string prefix = n.substr(0, n.size() - suffixes[0].size() - 1);
    if (q.method != HfQuantMethod::CtInt8 && by_name.contains(prefix + ".weight"))
      fail("{} and a float '{}.weight' both claim the same linear", what(t), prefix);
    Pieces p{prefix, {}};
    for (const std::string& s : suffixes)
      if (const auto it = by_name.find(prefix + "." + s); it != by_name.end()) p.by_suffix[s] = it->second;
    linears.emplace(prefix, std::move(p));
  }
  std::set<std::string> taken;
  for (const auto& [prefix, p] : linears) {
    LinearQ l;
    switch (q.method) {
      case HfQuantMethod::Gptq: l = gptq_linear(q, p); break;
      case HfQuantMethod::Awq: l = awq_linear(q, p); break;
      case HfQuantMethod::CtPacked: l = ct_packed_linear(q, p); break;
      case HfQuantMethod::CtInt8: l = ct_int8_linear(q, p); break;
    }
    parts.tensors.push_back(int_tensor(prefix + ".weight", std::move(l), parts));
    for (const auto& [s, t] : p.by_suffix) taken.insert(t->st->tensor.name);
  }
  if (q.dynamic_acts) parts.metadata["lmq.activations"] = "int8:dynamic";
  std::vector<HfTensor> rest;
  for (const HfTensor& t : tensors) {
    if (taken.contains(t.st->tensor.name)) continue;
    for (const std::string& s : suffixes)
      if (s != "weight" && ends_with(t.st->tensor.name, "." + s))
        fail("{} is part of a {} linear whose '{}' is missing", what(t), hf_quant_method_name(q.method), suffixes[0]);
    rest.push_back(t);
  }
  return rest;
}

}  // namespace lmq
