#include "lmq/model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <nlohmann/json.hpp>

#include "lmq/error.h"

namespace lmq {

namespace {

using json = nlohmann::json;

// Reads the keys of one JSON object, for errors naming the file and the key.
class Keys {
 public:
  Keys(const json* obj, std::string where, const std::string& origin)
      : obj_(obj), where_(std::move(where)), origin_(origin) {}

  bool has(const char* key) const { return get(key) != nullptr; }
  std::optional<double> number(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) bad(key, "must be a number, not " + v->dump());
    return v->get<double>();
  }
  double need(const char* key) const {
    const auto v = number(key);
    if (!v) bad(key, "is missing");
    return *v;
  }
  [[noreturn]] void bad(const char* key, const std::string& problem) const {
    fail("{}: {}{}: {}", origin_, where_.empty() ? "" : where_ + ".", key, problem);
  }

 private:
  const json* get(const char* key) const {
    if (!obj_) return nullptr;
    const auto it = obj_->find(key);
    return it == obj_->end() || it->is_null() ? nullptr : &*it;
  }
  const json* obj_;
  std::string where_;
  const std::string& origin_;
};

RopeType parse_type(const std::string& name, const Keys& keys, const char* key) {
  static const std::pair<const char*, RopeType> kTypes[] = {
      {"default", RopeType::Default}, {"linear", RopeType::Linear}, {"dynamic", RopeType::Dynamic},
      {"yarn", RopeType::Yarn},       {"llama3", RopeType::Llama3},
  };
  for (const auto& [n, t] : kTypes)
    if (name == n) return t;
  keys.bad(key, "RoPE type '" + name + "' is not supported (lmq implements default, linear, dynamic, yarn, llama3)");
}

void check(bool ok, const Keys& keys, const char* key, double v, const char* rule) {
  if (!ok || !std::isfinite(v)) keys.bad(key, fmt::format("{} is absurd ({})", v, rule));
}

// transformers' YaRN helpers (modeling_rope_utils._compute_yarn_parameters).
double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }
double yarn_correction_dim(double rotations, int dim, double base, double max_pos) {
  return dim * std::log(max_pos / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base));
}

}  // namespace

const char* rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::Default: return "default";
    case RopeType::Linear: return "linear";
    case RopeType::Dynamic: return "dynamic";
    case RopeType::Yarn: return "yarn";
    case RopeType::Llama3: return "llama3";
  }
  return "?";
}

RopeParams RopeParams::from_config(const json& c, const std::string& origin) {
  if (!c.is_object()) fail("{}: not a JSON object", origin);
  const Keys top(&c, "", origin);
  // transformers: `rope_scaling or rope_parameters` (an empty dict counts as none).
  const json* dict = nullptr;
  std::string where;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    const auto it = c.find(key);
    if (dict || it == c.end() || it->is_null()) continue;
    if (!it->is_object()) top.bad(key, "must be an object, not " + it->dump());
    if (it->empty()) continue;
    dict = &*it, where = key;
  }
  const Keys keys(dict, where, origin);
  if (dict)
    for (const auto& [k, v] : dict->items())
      if (v.is_object()) keys.bad(k.c_str(), "per-layer-type RoPE parameters are not supported");

  RopeParams p;
  p.origin = origin;
  const char* type_key = keys.has("rope_type") ? "rope_type" : "type";
  if (dict && keys.has(type_key)) {
    const json& t = dict->at(type_key);
    if (!t.is_string()) keys.bad(type_key, "must be a string");
    p.type = parse_type(t.get<std::string>(), keys, type_key);
  }
  const bool in_dict = keys.has("rope_theta");
  p.theta = in_dict ? keys.need("rope_theta") : top.number("rope_theta").value_or(10000.0);
  check(p.theta > 1, in_dict ? keys : top, "rope_theta", p.theta, "must be > 1");
  const bool prf_top = top.has("partial_rotary_factor");
  p.partial_rotary_factor = (prf_top ? top : keys).number("partial_rotary_factor").value_or(1.0);
  check(p.partial_rotary_factor > 0 && p.partial_rotary_factor <= 1, prf_top ? top : keys, "partial_rotary_factor",
        p.partial_rotary_factor, "must be in (0, 1]");
  p.max_position_embeddings = int64_t(top.number("max_position_embeddings").value_or(0));
  if (p.type == RopeType::Default) return p;

  if (p.type == RopeType::Yarn || p.type == RopeType::Llama3) {
    const bool orig_top = top.has("original_max_position_embeddings");
    const Keys& k = orig_top ? top : keys;
    const double orig = k.number("original_max_position_embeddings").value_or(double(p.max_position_embeddings));
    check(orig >= 1 && orig <= 1e9, k, "original_max_position_embeddings", orig, "must be 1..1e9");
    p.original_max_position_embeddings = int64_t(orig);
  }
  if (p.type == RopeType::Yarn && !keys.has("factor"))  // DeepSeek-style: the context extension ratio
    p.factor = double(p.max_position_embeddings) / double(p.original_max_position_embeddings);
  else
    p.factor = keys.need("factor");
  check(p.factor >= 1 && p.factor <= 1e6, keys, "factor", p.factor, "must be 1..1e6");
  if (p.type == RopeType::Dynamic)
    check(p.max_position_embeddings >= 1, top, "max_position_embeddings", double(p.max_position_embeddings),
          "dynamic scaling needs it >= 1");
  if (p.type == RopeType::Llama3) {
    p.low_freq_factor = keys.need("low_freq_factor");
    p.high_freq_factor = keys.need("high_freq_factor");
    check(p.low_freq_factor > 0, keys, "low_freq_factor", p.low_freq_factor, "must be > 0");
    check(p.high_freq_factor > p.low_freq_factor, keys, "high_freq_factor", p.high_freq_factor,
          "must be > low_freq_factor");
  }
  if (p.type == RopeType::Yarn) {
    // transformers reads `beta_fast or 32`: an absent, null or zero value takes the default.
    p.beta_fast = keys.number("beta_fast").value_or(0) ? *keys.number("beta_fast") : 32.0;
    p.beta_slow = keys.number("beta_slow").value_or(0) ? *keys.number("beta_slow") : 1.0;
    check(p.beta_fast > 0, keys, "beta_fast", p.beta_fast, "must be > 0");
    check(p.beta_slow > 0, keys, "beta_slow", p.beta_slow, "must be > 0");
    p.attention_factor = keys.number("attention_factor");
    if (p.attention_factor) check(*p.attention_factor > 0, keys, "attention_factor", *p.attention_factor, "must be > 0");
    p.mscale = keys.number("mscale");
    p.mscale_all_dim = keys.number("mscale_all_dim");
    for (const auto& [key, v] : {std::pair{"mscale", p.mscale}, {"mscale_all_dim", p.mscale_all_dim}})
      if (v) check(*v >= 0, keys, key, *v, "must be >= 0");
    if (dict && dict->contains("truncate")) {
      const json& t = dict->at("truncate");
      if (!t.is_boolean()) keys.bad("truncate", "must be true or false");
      p.truncate = t.get<bool>();
    }
  }
  return p;
}

RopeParams RopeParams::from_config_text(std::string_view text, const std::string& origin) {
  json c;
  try {
    c = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", origin, e.what());
  }
  return from_config(c, origin);
}

void RopeParams::to_config(json& c) const {
  c["rope_theta"] = theta;
  if (partial_rotary_factor != 1.0) c["partial_rotary_factor"] = partial_rotary_factor;
  if (type == RopeType::Default) return;
  json s{{"rope_type", rope_type_name(type)}, {"factor", factor}};
  if (type == RopeType::Yarn || type == RopeType::Llama3)
    s["original_max_position_embeddings"] = original_max_position_embeddings;
  if (type == RopeType::Llama3) {
    s["low_freq_factor"] = low_freq_factor;
    s["high_freq_factor"] = high_freq_factor;
  }
  if (type == RopeType::Yarn) {
    s["beta_fast"] = beta_fast;
    s["beta_slow"] = beta_slow;
    s["truncate"] = truncate;
    if (attention_factor) s["attention_factor"] = *attention_factor;
    if (mscale) s["mscale"] = *mscale;
    if (mscale_all_dim) s["mscale_all_dim"] = *mscale_all_dim;
  }
  c["rope_scaling"] = std::move(s);
}

int RopeParams::rotary_dim(int head_dim) const {
  const int dim = int(head_dim * partial_rotary_factor);  // transformers: int(head_dim * factor)
  const int min_dim = type == RopeType::Dynamic ? 4 : 2;  // dynamic raises to dim / (dim - 2)
  if (dim < min_dim || dim % 2)
    fail("{}: RoPE: head_dim {} × partial_rotary_factor {} gives {} rotary dims (an even number >= {} is needed)",
         origin, head_dim, partial_rotary_factor, dim, min_dim);
  return dim;
}

RopeFrequencies rope_frequencies(const RopeParams& p, int head_dim, int64_t seq_len) {
  const int dim = p.rotary_dim(head_dim);
  const int half = dim / 2;
  double base = p.theta;
  if (p.type == RopeType::Dynamic) {  // NTK: a larger base once the sequence outgrows the context
    const double len = double(std::max<int64_t>(seq_len, p.max_position_embeddings));
    base *= std::pow(p.factor * len / double(p.max_position_embeddings) - (p.factor - 1), double(dim) / (dim - 2));
  }
  std::vector<double> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) inv[size_t(i)] = 1.0 / std::pow(base, double(2 * i) / dim);
  double attention = 1.0;

  if (p.type == RopeType::Linear) {
    for (double& f : inv) f /= p.factor;
  } else if (p.type == RopeType::Llama3) {
    // Wavelengths longer than the original context / low_freq_factor are slowed by `factor`,
    // shorter than original / high_freq_factor kept, and those between blended smoothly.
    const double orig = double(p.original_max_position_embeddings);
    const double low_wavelen = orig / p.low_freq_factor, high_wavelen = orig / p.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f /= p.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (orig / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
        f = (1 - smooth) * f / p.factor + smooth * f;
      }
    }
  } else if (p.type == RopeType::Yarn) {
    const double orig = double(p.original_max_position_embeddings);
    double low = yarn_correction_dim(p.beta_fast, dim, p.theta, orig);
    double high = yarn_correction_dim(p.beta_slow, dim, p.theta, orig);
    if (p.truncate) low = std::floor(low), high = std::ceil(high);
    low = std::max(low, 0.0), high = std::min(high, double(dim - 1));
    if (low == high) high += 0.001;  // as transformers: no division by zero
    for (int i = 0; i < half; ++i) {
      // ramp 0 → keep the original frequency (extrapolate), 1 → divide it by factor (interpolate)
      const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
      double& f = inv[size_t(i)];
      f = f / p.factor * ramp + f * (1 - ramp);
    }
    if (p.attention_factor) attention = *p.attention_factor;
    else if (p.mscale.value_or(0) && p.mscale_all_dim.value_or(0))
      attention = yarn_mscale(p.factor, *p.mscale) / yarn_mscale(p.factor, *p.mscale_all_dim);
    else attention = yarn_mscale(p.factor, 1.0);
  }
  RopeFrequencies out;
  out.inv_freq.assign(inv.begin(), inv.end());
  out.attention_scaling = float(attention);
  return out;
}

}  // namespace lmq
