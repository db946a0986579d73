#include "lmq/eval/reference_points.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmq/error.h"
#include "lmq/mapped_file.h"

namespace lmq {

using json = nlohmann::json;

std::string model_name(const std::string& path) {
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  for (const char* ext : {".lmq", ".gguf", ".safetensors"})
    if (p.extension() == ext) return p.stem().string();
  return p.filename().string();
}

namespace {

std::string file_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

const json& need(const json& j, const std::string& key, const std::string& where, const std::string& path) {
  if (!j.is_object() || !j.contains(key)) fail("{}: {} has no '{}'", path, where, key);
  return j[key];
}
std::string need_string(const json& j, const std::string& key, const std::string& where, const std::string& path) {
  const json& v = need(j, key, where, path);
  if (!v.is_string()) fail("{}: {}: '{}' must be a string", path, where, key);
  return v.get<std::string>();
}
int need_count(const json& j, const std::string& key, const std::string& where, const std::string& path) {
  const json& v = need(j, key, where, path);
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 1 << 30)
    fail("{}: {}: '{}' must be a positive whole number", path, where, key);
  return int(v.get<int64_t>());
}
double need_number(const json& v, const std::string& what, const std::string& path) {
  if (!v.is_number()) fail("{}: {} must be a number", path, what);
  return v.get<double>();
}

ReferencePoint make_point(std::string label, const json& bpw, const json& kld, const std::string& where,
                          const std::string& path) {
  ReferencePoint p{std::move(label), need_number(bpw, where + ": bpw", path),
                   need_number(kld, where + ": kld_mean", path)};
  if (!(p.bpw > 0 && p.bpw <= 64)) fail("{}: {}: bpw {} is not a bit width (0 < bpw ≤ 64)", path, where, p.bpw);
  if (!(p.kld_mean >= 0 && std::isfinite(p.kld_mean)))
    fail("{}: {}: kld_mean {} is not a KL divergence (≥ 0)", path, where, p.kld_mean);
  return p;
}

// The parts of a measurement a reference must share with the sweep.
void same_measurement(const std::string& path, const std::string& where, const std::string& text, int windows,
                      const Measurement& m) {
  if (file_name(text) != m.text)
    fail("{}: {} was measured on {}, the sweep on {}: the figures are not comparable", path, where, file_name(text),
         m.text);
  if (windows != m.windows)
    fail("{}: {} was measured on {} windows, the sweep on {} (--windows {})", path, where, windows, m.windows, windows);
}

void same_protocol(const std::string& path, const std::string& protocol, int ctx, const Measurement& m) {
  if (protocol != m.protocol)
    fail("{}: measured with the {} protocol, the sweep with {} (run the sweep with --protocol {})", path, protocol,
         m.protocol, protocol);
  if (ctx != m.ctx) fail("{}: measured with windows of {} tokens, the sweep with {} (--ctx {})", path, ctx, m.ctx, ctx);
}

// llama.cpp's figures (shared/gguf/llamacpp.json): "protocol" is the llama-perplexity command line
// ("llama-perplexity -f FILE -c CTX --chunks N: how it scores"), "fixtures" one object per GGUF
// file, "other_types_measured" more types per model as [bpw, kld_mean] measured the same way.
struct PerplexityCommand {
  std::string text;
  int ctx = 0, chunks = 0;
};

PerplexityCommand parse_command(const std::string& protocol, const std::string& path) {
  std::istringstream in(protocol.substr(0, protocol.find(": ")));
  std::string tool, flag, value;
  in >> tool;
  if (tool != "llama-perplexity")
    fail(
        "{}: 'protocol' must start with the llama-perplexity command line (\"llama-perplexity -f FILE -c N "
        "--chunks N: …\")",
        path);
  PerplexityCommand c;
  while (in >> flag) {
    if (!(in >> value)) break;
    if (flag == "-f") c.text = value;
    if (flag == "-c" || flag == "--chunks") {
      int& dst = flag == "-c" ? c.ctx : c.chunks;
      try {
        dst = std::stoi(value);
      } catch (const std::exception&) {
        fail("{}: 'protocol': {} {} is not a number", path, flag, value);
      }
    }
  }
  if (c.ctx <= 0) fail("{}: 'protocol' does not state the context (-c N) llama-perplexity ran with", path);
  return c;
}

ReferenceSet read_llamacpp(const json& j, const std::string& path, const Measurement& m) {
  const PerplexityCommand cmd = parse_command(need_string(j, "protocol", "the file", path), path);
  same_protocol(path, "llamacpp", cmd.ctx, m);
  ReferenceSet r;
  r.path = path;
  const std::string producer =
      j.contains("producer") && j["producer"].is_string() ? j["producer"].get<std::string>() : "";
  r.tool = producer.empty() ? "llama.cpp" : producer.substr(0, producer.find(':'));
  const json& fixtures = need(j, "fixtures", "the file", path);
  if (!fixtures.is_object()) fail("{}: 'fixtures' must be an object", path);
  for (const auto& [name, f] : fixtures.items()) {
    const std::string where = "fixture '" + name + "'";
    if (need_string(f, "model", where, path) != m.model) continue;
    same_measurement(path, where, need_string(f, "text", where, path), need_count(f, "chunks", where, path), m);
    const std::string label = f.contains("type") && f["type"].is_string() ? f["type"].get<std::string>() : name;
    r.points.push_back(make_point(label, need(f, "bpw", where, path), need(f, "kld_mean", where, path), where, path));
  }
  if (j.contains("other_types_measured") && j["other_types_measured"].is_object() &&
      j["other_types_measured"].contains(m.model)) {
    const json& more = j["other_types_measured"][m.model];
    const std::string where = "other_types_measured['" + m.model + "']";
    if (!more.is_object()) fail("{}: {} must be an object", path, where);
    if (cmd.text.empty() || cmd.chunks <= 0)
      fail("{}: {}: 'protocol' must state -f FILE and --chunks N for these figures", path, where);
    same_measurement(path, where, cmd.text, cmd.chunks, m);
    for (const auto& item : more.items()) {  // no structured binding: clang 14 cannot capture one
      const std::string type = item.key();
      const json& v = item.value();
      if (!v.is_array() || v.size() != 2) fail("{}: {}['{}'] must be [bpw, kld_mean]", path, where, type);
      const bool seen = std::any_of(r.points.begin(), r.points.end(), [&](const auto& p) { return p.label == type; });
      if (!seen) r.points.push_back(make_point(type, v[0], v[1], where + "['" + type + "']", path));
    }
  }
  return r;
}

// lmq's own shape (docs/chart.md).
ReferenceSet read_lmq(const json& j, const std::string& path, const Measurement& m) {
  const std::string where = "the file";
  same_protocol(path, need_string(j, "protocol", where, path), need_count(j, "ctx", where, path), m);
  same_measurement(path, "it", need_string(j, "text", where, path), need_count(j, "windows", where, path), m);
  if (j.contains("model") && need_string(j, "model", where, path) != m.model)
    fail("{}: its figures are for model '{}', the sweep's is '{}'", path, j["model"].get<std::string>(), m.model);
  ReferenceSet r;
  r.path = path;
  r.tool = j.contains("tool") ? need_string(j, "tool", where, path) : "reference";
  const json& pts = need(j, "points", where, path);
  if (!pts.is_array()) fail("{}: 'points' must be an array", path);
  for (size_t i = 0; i < pts.size(); ++i) {
    const std::string w = fmt::format("points[{}]", i);
    r.points.push_back(make_point(need_string(pts[i], "label", w, path), need(pts[i], "bpw", w, path),
                                  need(pts[i], "kld_mean", w, path), w, path));
  }
  return r;
}

}  // namespace

ReferenceSet load_reference(const std::string& path, const Measurement& m) {
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
  if (!j.is_object()) fail("{}: not a JSON object", path);
  ReferenceSet r;
  if (j.contains("format")) {
    if (j["format"] != "lmq-reference/1")
      fail("{}: unknown 'format' {} (lmq reads lmq-reference/1)", path, j["format"].dump());
    r = read_lmq(j, path, m);
  } else if (j.contains("fixtures")) {
    r = read_llamacpp(j, path, m);
  } else {
    fail("{}: neither lmq's reference shape (\"format\": \"lmq-reference/1\") nor llama.cpp figures (\"fixtures\")",
         path);
  }
  if (r.points.empty()) fail("{}: no figures for model '{}'", path, m.model);
  return r;
}

}  // namespace lmq
