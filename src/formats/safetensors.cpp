#include "lmq/formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <nlohmann/json.hpp>

#include "lmq/error.h"

namespace lmq {
namespace {

// The header is small JSON; anything beyond this is hostile or not a safetensors file.
constexpr uint64_t kMaxHeader = 100ull << 20;

struct DTypeInfo {
  const char* name;
  StDType dtype;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"F64", StDType::F64, 8}, {"F32", StDType::F32, 4}, {"F16", StDType::F16, 2},
    {"BF16", StDType::BF16, 2}, {"I64", StDType::I64, 8}, {"I32", StDType::I32, 4},
    {"I16", StDType::I16, 2}, {"I8", StDType::I8, 1},   {"U8", StDType::U8, 1},
    {"BOOL", StDType::BOOL, 1},
};

uint64_t read_u64le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

Format format_of(StDType d) {
  switch (d) {
    case StDType::F32: return Format::F32;
    case StDType::F16: return Format::F16;
    case StDType::BF16: return Format::BF16;
    case StDType::I32: return Format::I32;
    default: return Format::F32;  // not usable as a weight; callers check dtype first
  }
}

}  // namespace

std::string_view st_dtype_name(StDType d) {
  for (const auto& i : kDTypes)
    if (i.dtype == d) return i.name;
  return "?";
}
size_t st_dtype_size(StDType d) {
  for (const auto& i : kDTypes)
    if (i.dtype == d) return i.size;
  return 0;
}

bool is_safetensors_magic(const uint8_t* p, size_t n, uint64_t file_size) {
  if (n < 9) return false;
  uint64_t len = read_u64le(p);
  return len >= 2 && len <= file_size - 8 && len <= kMaxHeader && p[8] == '{';
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(std::make_unique<MappedFile>(path)) {
  const uint8_t* base = file_->data();
  const uint64_t size = file_->size();
  if (size < 8) fail("{}: truncated safetensors file ({} bytes; the header length alone takes 8)", path, size);
  const uint64_t hlen = read_u64le(base);
  if (hlen > size - 8)
    fail("{}: header length {} is larger than the file ({} bytes)", path, hlen, size);
  if (hlen > kMaxHeader) fail("{}: header length {} exceeds the 100 MiB limit", path, hlen);
  const uint64_t data_start = 8 + hlen;
  const uint64_t data_size = size - data_start;

  // nlohmann keeps the last of duplicate keys silently; a header naming a tensor twice is ambiguous.
  std::vector<std::set<std::string>> keys;  // the keys seen in each open object
  auto no_duplicates = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start) keys.emplace_back();
    else if (ev == E::object_end) keys.pop_back();
    else if (ev == E::key && !keys.back().insert(parsed.get<std::string>()).second)
      fail("{}: header has a duplicate key '{}'", path, parsed.get<std::string>());
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(base + 8, base + data_start, no_duplicates);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: header is not valid JSON: {}", path, e.what());
  }
  if (!header.is_object()) fail("{}: header is not a JSON object", path);

  struct Span { uint64_t begin, end; size_t idx; };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail("{}: __metadata__ is not an object", path);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail("{}: __metadata__ value '{}' is not a string", path, m.key());
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail("{}: tensor '{}' needs dtype, shape and data_offsets", path, name);
    const auto& jd = v["dtype"];
    if (!jd.is_string()) fail("{}: tensor '{}': dtype is not a string", path, name);
    const std::string dname = jd.get<std::string>();
    const DTypeInfo* info = nullptr;
    for (const auto& i : kDTypes)
      if (dname == i.name) info = &i;
    if (!info) fail("{}: tensor '{}': unknown dtype '{}'", path, name, dname);

    const auto& js = v["shape"];
    if (!js.is_array() || js.size() > 8) fail("{}: tensor '{}': shape must be an array of at most 8 dims", path, name);
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const auto& d : js) {
      if (!d.is_number_unsigned()) fail("{}: tensor '{}': shape has a dim that is not a non-negative integer", path, name);
      uint64_t dim = d.get<uint64_t>();
      if (dim > (1ull << 40)) fail("{}: tensor '{}': dim {} is absurd", path, name, dim);
      if (__builtin_mul_overflow(numel, dim, &numel))
        fail("{}: tensor '{}': shape {} overflows 64 bits", path, name, js.dump());
      shape.push_back(int64_t(dim));
    }
    const auto& jo = v["data_offsets"];
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      fail("{}: tensor '{}': data_offsets must be [begin, end]", path, name);
    const uint64_t b = jo[0].get<uint64_t>(), e = jo[1].get<uint64_t>();
    if (b > e) fail("{}: tensor '{}': data_offsets [{}, {}] begin after they end", path, name, b, e);
    if (e > data_size)
      fail("{}: tensor '{}': data_offsets [{}, {}] lie outside the data section ({} bytes): the file is truncated "
           "or corrupt", path, name, b, e, data_size);
    uint64_t want;
    if (__builtin_mul_overflow(numel, uint64_t(info->size), &want))
      fail("{}: tensor '{}': shape {} of {} overflows 64 bits in bytes", path, name, js.dump(), dname);
    if (e - b != want)
      fail("{}: tensor '{}': shape {} of {} needs {} bytes but data_offsets span {}", path, name,
           js.dump(), dname, want, e - b);

    StTensor t;
    t.dtype = info->dtype;
    t.tensor.name = name;
    t.tensor.shape = std::move(shape);
    t.tensor.format = format_of(info->dtype);
    t.tensor.data = base + data_start + b;
    t.tensor.nbytes = want;
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
    spans.push_back({b, e, tensors_.size() - 1});
  }
  // No two tensors may share bytes (empty tensors share nothing).
  std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.begin < y.begin; });
  size_t widest = 0;  // the earlier span reaching furthest
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].begin < spans[i].end && spans[i].begin < spans[widest].end)
      fail("{}: tensors '{}' and '{}' overlap in the data section", path,
           tensors_[spans[widest].idx].tensor.name, tensors_[spans[i].idx].tensor.name);
    if (spans[i].end > spans[widest].end) widest = i;
  }
}

const StTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace lmq
