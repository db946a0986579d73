#include "lmq/formats/lmq_file.h"

#include <nlohmann/json.hpp>

#include "lmq/error.h"
#include "lmq/formats/safetensors.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/int_format.h"

namespace lmq {

using ojson = nlohmann::ordered_json;

namespace {

uint64_t padded(uint64_t n) { return (n + kLmqAlign - 1) / kLmqAlign * kLmqAlign; }

const char* scale_type_name(ScaleType t) {
  return t == ScaleType::F16 ? "f16" : t == ScaleType::BF16 ? "bf16" : "f32";
}

Format format_from_name(const std::string& s, const std::string& path) {
  if (const std::optional<Format> f = format_by_name(s)) {
    if (format_traits(*f).row_group > 1) fail("{}: tensor format '{}' is an in-memory layout, never stored", path, s);
    return *f;
  }
  fail("{}: unknown tensor format '{}'", path, s);
}

}  // namespace

uint64_t stored_bytes(Format f, const IntParams& q, const std::vector<int64_t>& shape) {
  int64_t numel = 1;
  for (int64_t d : shape) numel = int64_t(checked_mul(uint64_t(numel), uint64_t(d), "tensor shape"));
  const int64_t cols = shape.empty() ? 1 : shape.back(), rows = cols ? numel / cols : 0;
  if (f == Format::LMQ_INT || f == Format::LMQ_INT_X16) return quant::int_tensor_bytes(q, rows, cols);
  return checked_mul(uint64_t(rows), format_row_bytes(f, cols), "tensor bytes");
}

LmqFileWriter::LmqFileWriter(const std::string& dest, const std::string& config_json,
                             const std::string& tokenizer_bytes, const std::map<std::string, std::string>& metadata,
                             std::vector<LmqTensorSpec> specs)
    : out_(dest), specs_(std::move(specs)) {
  ojson tensors = ojson::object();
  for (const auto& s : specs_) {
    ojson t{{"format", std::string(format_name(s.format))}, {"shape", s.shape}, {"bytes", s.nbytes}};
    if (s.format == Format::LMQ_INT)
      t["int"] = {{"bits", s.q.bits}, {"asym", s.q.asym}, {"group", s.q.group}, {"scale", scale_type_name(s.q.scale_type)}};
    if (!s.scheme.empty()) t["scheme"] = s.scheme;
    tensors[s.name] = t;
  }
  ojson meta;
  meta["lmq.format"] = kLmqFormatVersion;  // first: the sniffer looks for it
  meta["lmq.config"] = config_json;
  meta["lmq.tensors"] = tensors.dump();
  meta["lmq.tokenizer_bytes"] = std::to_string(tokenizer_bytes.size());
  for (const auto& [k, v] : metadata) meta[k] = v;
  ojson header;
  header["__metadata__"] = meta;
  uint64_t off = 0;
  auto add = [&](const std::string& name, uint64_t n) {
    header[name] = {{"dtype", "U8"}, {"shape", {padded(n)}}, {"data_offsets", {off, off + padded(n)}}};
    off += padded(n);
  };
  add("lmq.tokenizer", tokenizer_bytes.size());
  for (const auto& s : specs_) add(s.name, s.nbytes);
  std::string h = header.dump();
  h.append((kLmqAlign - (8 + h.size()) % kLmqAlign) % kLmqAlign, ' ');
  out_.put<uint64_t>(h.size());
  out_.write(h.data(), h.size());
  out_.write(tokenizer_bytes.data(), tokenizer_bytes.size());
  out_.zeros(padded(tokenizer_bytes.size()) - tokenizer_bytes.size());
}

void LmqFileWriter::write_tensor(const std::string& name, const uint8_t* data, uint64_t nbytes) {
  if (next_ >= specs_.size() || specs_[next_].name != name)
    fail("{}: tensor '{}' written out of order", out_.dest(), name);
  if (nbytes != specs_[next_].nbytes)
    fail("{}: tensor '{}' has {} bytes, planned {}", out_.dest(), name, nbytes, specs_[next_].nbytes);
  out_.write(data, nbytes);
  out_.zeros(padded(nbytes) - nbytes);
  ++next_;
}

void LmqFileWriter::commit() {
  if (next_ != specs_.size()) fail("{}: only {} of {} tensors written", out_.dest(), next_, specs_.size());
  out_.commit();
}

// ------------------------------------------------------------------------------------ reader
LmqFileContents read_lmq_file(const std::string& path) {
  auto file = std::make_shared<SafetensorsFile>(path);
  const auto& meta = file->metadata();
  auto need = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    if (it == meta.end()) fail("{}: lmq file without metadata '{}'", path, key);
    return it->second;
  };
  if (need("lmq.format") != kLmqFormatVersion)
    fail("{}: lmq file format '{}' is not supported (this lmq reads {})", path, need("lmq.format"), kLmqFormatVersion);
  LmqFileContents parts;
  parts.file_bytes = file->file_size();
  parts.config_json = need("lmq.config");
  for (const auto& [k, v] : meta) parts.metadata[k] = v;
  const StTensor* tok = file->find("lmq.tokenizer");
  if (!tok) fail("{}: lmq file without the lmq.tokenizer tensor", path);
  uint64_t tok_bytes = 0;
  try {
    tok_bytes = std::stoull(need("lmq.tokenizer_bytes"));
  } catch (const std::exception&) {
    fail("{}: lmq.tokenizer_bytes is not a number", path);
  }
  if (tok_bytes > tok->tensor.nbytes) fail("{}: lmq.tokenizer_bytes exceeds the stored tokenizer", path);
  parts.tokenizer_bytes.assign(reinterpret_cast<const char*>(tok->tensor.data), tok_bytes);
  ojson tensors;
  try {
    tensors = ojson::parse(need("lmq.tensors"));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: lmq.tensors is not valid JSON: {}", path, e.what());
  }
  if (!tensors.is_object()) fail("{}: lmq.tensors is not an object", path);
  try {
    for (const auto& [name, d] : tensors.items()) {
      const StTensor* st = file->find(name);
      if (!st) fail("{}: tensor '{}' is described but not stored", path, name);
      Tensor t;
      t.name = name;
      t.format = format_from_name(d.at("format").get<std::string>(), path);
      t.shape = d.at("shape").get<std::vector<int64_t>>();
      if (t.shape.size() > 4) fail("{}: tensor '{}' has more than 4 dims", path, name);
      for (int64_t x : t.shape)
        if (x < 0 || x > (int64_t(1) << 40)) fail("{}: tensor '{}' has an absurd dim {}", path, name, x);
      if (t.format == Format::LMQ_INT) {
        const auto& q = d.at("int");
        const int bits = q.at("bits").get<int>();
        if (bits < 2 || bits > 8) fail("{}: tensor '{}': bits {} outside 2..8", path, name, bits);
        t.q.bits = uint8_t(bits);
        t.q.asym = q.at("asym").get<bool>();
        t.q.group = q.at("group").get<int32_t>();
        if (t.q.group < -1) fail("{}: tensor '{}': bad group {}", path, name, t.q.group);
        const std::string sc = q.at("scale").get<std::string>();
        if (sc == "f16") t.q.scale_type = ScaleType::F16;
        else if (sc == "bf16") t.q.scale_type = ScaleType::BF16;
        else if (sc == "f32") t.q.scale_type = ScaleType::F32;
        else fail("{}: tensor '{}': unknown scale type '{}'", path, name, sc);
      }
      uint64_t want = 0;
      try {  // shape/format mismatches (a Q8_0 row of 33 values) and overflows, named for the file
        want = stored_bytes(t.format, t.q, t.shape);
      } catch (const Error& e) {
        fail("{}: tensor '{}': {}", path, name, e.what());
      }
      if (d.at("bytes").get<uint64_t>() != want || want > st->tensor.nbytes)
        fail("{}: tensor '{}' needs {} bytes for its shape and format, but {} are stored", path, name, want,
             st->tensor.nbytes);
      t.data = st->tensor.data;
      t.nbytes = want;
      parts.tensors.push_back(std::move(t));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: bad entry in lmq.tensors: {}", path, e.what());
  }
  parts.storage = file;
  return parts;
}

}  // namespace lmq
