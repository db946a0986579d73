// GGUF reader: parses and validates the whole header against the file size before exposing
// any tensor; tensor data stays in the memory map.
#include "lmq/formats/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "lmq/error.h"
#include "lmq/codecs/format_traits.h"

namespace lmq {

static_assert(std::endian::native == std::endian::little, "GGUF reading assumes a little-endian host");

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8: return "uint8";
    case GgufType::INT8: return "int8";
    case GgufType::UINT16: return "uint16";
    case GgufType::INT16: return "int16";
    case GgufType::UINT32: return "uint32";
    case GgufType::INT32: return "int32";
    case GgufType::FLOAT32: return "float32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::UINT64: return "uint64";
    case GgufType::INT64: return "int64";
    case GgufType::FLOAT64: return "float64";
  }
  return "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64:
      return true;
    default: return false;
  }
}
bool GgufValue::is_unsigned() const {
  return type == GgufType::UINT8 || type == GgufType::UINT16 || type == GgufType::UINT32 ||
         type == GgufType::UINT64;
}

GgufValue GgufValue::u8(uint8_t x) { return {GgufType::UINT8, GgufType::UINT8, uint64_t(x)}; }
GgufValue GgufValue::i8(int8_t x) { return {GgufType::INT8, GgufType::UINT8, int64_t(x)}; }
GgufValue GgufValue::u16(uint16_t x) { return {GgufType::UINT16, GgufType::UINT8, uint64_t(x)}; }
GgufValue GgufValue::i16(int16_t x) { return {GgufType::INT16, GgufType::UINT8, int64_t(x)}; }
GgufValue GgufValue::u32(uint32_t x) { return {GgufType::UINT32, GgufType::UINT8, uint64_t(x)}; }
GgufValue GgufValue::i32(int32_t x) { return {GgufType::INT32, GgufType::UINT8, int64_t(x)}; }
GgufValue GgufValue::u64(uint64_t x) { return {GgufType::UINT64, GgufType::UINT8, x}; }
GgufValue GgufValue::i64(int64_t x) { return {GgufType::INT64, GgufType::UINT8, x}; }
GgufValue GgufValue::f32(float x) { return {GgufType::FLOAT32, GgufType::UINT8, double(x)}; }
GgufValue GgufValue::f64(double x) { return {GgufType::FLOAT64, GgufType::UINT8, x}; }
GgufValue GgufValue::boolean(bool x) { return {GgufType::BOOL, GgufType::UINT8, x}; }
GgufValue GgufValue::str(std::string x) { return {GgufType::STRING, GgufType::UINT8, std::move(x)}; }
GgufValue GgufValue::array(GgufType elem_type, std::vector<GgufValue> elems) {
  return {GgufType::ARRAY, elem_type, std::move(elems)};
}
GgufValue GgufValue::string_array(const std::vector<std::string>& xs) {
  std::vector<GgufValue> e;
  e.reserve(xs.size());
  for (const auto& s : xs) e.push_back(str(s));
  return array(GgufType::STRING, std::move(e));
}

bool ggml_type_to_format(uint32_t id, Format& out) {
  const std::optional<Format> f = format_by_gguf_type(id);
  if (f) out = *f;
  return f.has_value();
}

uint32_t format_to_ggml_type(Format f) {
  const int id = format_traits(f).gguf_type;
  if (id < 0) fail("format {} cannot be stored in GGUF", int(f));
  return uint32_t(id);
}

bool is_gguf_magic(const uint8_t* p, size_t n) {
  return n >= 4 && p[0] == 'G' && p[1] == 'G' && p[2] == 'U' && p[3] == 'F';
}

namespace {

constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMaxAlignment = uint64_t(1) << 30;
constexpr uint32_t kMaxDims = 4;

// Bounds-checked little-endian reader over the mapped header.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* p, uint64_t size) : path_(path), p_(p), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  const std::string& path() const { return path_; }

  void need(uint64_t n, std::string_view what) const {
    if (n > left())
      fail("{}: truncated: {} needs {} bytes at offset {} but only {} remain", path_, what, n, pos_, left());
  }
  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(std::string_view what) {
    const uint64_t n = read<uint64_t>(what);
    if (n > left())
      fail("{}: {}: string length {} exceeds the {} bytes left in the file (offset {})", path_, what, n,
           left(), pos_);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), size_t(n));
    pos_ += n;
    return s;
  }

 private:
  std::string path_;
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

// Smallest encoding of one value of a type: used to refuse absurd counts before allocating.
uint64_t min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 1;
}

bool valid_type(uint32_t t) { return t <= 12; }

GgufValue read_value(Cursor& c, GgufType t, const std::string& what, int depth) {
  GgufValue v;
  v.type = t;
  switch (t) {
    case GgufType::UINT8: v.v = uint64_t(c.read<uint8_t>(what)); break;
    case GgufType::INT8: v.v = int64_t(c.read<int8_t>(what)); break;
    case GgufType::UINT16: v.v = uint64_t(c.read<uint16_t>(what)); break;
    case GgufType::INT16: v.v = int64_t(c.read<int16_t>(what)); break;
    case GgufType::UINT32: v.v = uint64_t(c.read<uint32_t>(what)); break;
    case GgufType::INT32: v.v = int64_t(c.read<int32_t>(what)); break;
    case GgufType::UINT64: v.v = c.read<uint64_t>(what); break;
    case GgufType::INT64: v.v = c.read<int64_t>(what); break;
    case GgufType::FLOAT32: v.v = double(c.read<float>(what)); break;
    case GgufType::FLOAT64: v.v = c.read<double>(what); break;
    case GgufType::BOOL: {
      const uint8_t b = c.read<uint8_t>(what);
      if (b > 1) fail("{}: {}: bool value {} is neither 0 nor 1", c.path(), what, b);
      v.v = b != 0;
      break;
    }
    case GgufType::STRING: v.v = c.read_string(what); break;
    case GgufType::ARRAY: {
      if (depth >= kMaxArrayDepth)
        fail("{}: {}: arrays nested more than {} deep", c.path(), what, kMaxArrayDepth);
      const uint32_t et = c.read<uint32_t>(what);
      if (!valid_type(et)) fail("{}: {}: unknown array element type {}", c.path(), what, et);
      v.elem_type = GgufType(et);
      const uint64_t n = c.read<uint64_t>(what);
      if (n > c.left() / min_value_bytes(v.elem_type))
        fail("{}: {}: array of {} {} elements cannot fit in the {} bytes left in the file", c.path(), what,
             n, gguf_type_name(v.elem_type), c.left());
      std::vector<GgufValue> elems;
      elems.reserve(size_t(n));
      for (uint64_t i = 0; i < n; ++i) elems.push_back(read_value(c, v.elem_type, what, depth + 1));
      v.v = std::move(elems);
      break;
    }
  }
  return v;
}

}  // namespace

namespace {

// The header: metadata and the tensor table as stored (type ids unchecked), validated against
// the file size; end: the offset just past it.
struct RawHeader {
  uint32_t version = 0;
  uint64_t alignment = 32;
  std::map<std::string, GgufValue> metadata;
  std::vector<GgufTensorInfo> infos;
  std::vector<uint64_t> offsets;
  uint64_t end = 0;
};

RawHeader read_header(const std::string& path, const uint8_t* base, uint64_t size) {
  RawHeader h;
  Cursor c(path, base, size);

  if (size < 4 || !is_gguf_magic(base, size)) fail("{}: not a GGUF file (bad magic)", path);
  c.read<uint32_t>("magic");
  h.version = c.read<uint32_t>("version");
  if (h.version == 1) fail("{}: GGUF version 1 is not supported (only versions 2 and 3)", path);
  if (h.version != 2 && h.version != 3) {
    if (__builtin_bswap32(h.version) <= 3)
      fail("{}: GGUF version {} looks byte-swapped: big-endian GGUF files are not supported", path, h.version);
    fail("{}: unsupported GGUF version {} (only versions 2 and 3)", path, h.version);
  }
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Each KV takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least
  // 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset).
  if (n_kv > c.left() / 13)
    fail("{}: metadata count {} is larger than the file could hold", path, n_kv);
  if (n_tensors > c.left() / 24)
    fail("{}: tensor count {} is larger than the file could hold", path, n_tensors);

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string(fmt::format("metadata key #{}", i));
    const std::string what = fmt::format("metadata '{}'", key);
    const uint32_t t = c.read<uint32_t>(what);
    if (!valid_type(t)) fail("{}: {}: unknown value type {}", path, what, t);
    GgufValue v = read_value(c, GgufType(t), what, 0);
    if (!h.metadata.emplace(std::move(key), std::move(v)).second)
      fail("{}: {}: duplicate metadata key", path, what);
  }

  if (auto it = h.metadata.find("general.alignment"); it != h.metadata.end()) {
    const GgufValue& a = it->second;
    if (!a.is_integer()) fail("{}: general.alignment has type {}, not an integer", path, gguf_type_name(a.type));
    const bool neg = std::holds_alternative<int64_t>(a.v) && std::get<int64_t>(a.v) < 0;
    const uint64_t al = neg ? 0 : (a.is_unsigned() ? std::get<uint64_t>(a.v) : uint64_t(std::get<int64_t>(a.v)));
    if (neg || al == 0 || !std::has_single_bit(al) || al > kMaxAlignment)
      fail("{}: general.alignment {} is not a power of two between 1 and {}", path,
           neg ? std::get<int64_t>(a.v) : int64_t(al), kMaxAlignment);
    h.alignment = al;
  }

  h.infos.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo ti;
    ti.name = c.read_string(fmt::format("tensor info #{} name", i));
    const std::string what = fmt::format("tensor '{}'", ti.name);
    const uint32_t n_dims = c.read<uint32_t>(what);
    if (n_dims > kMaxDims) fail("{}: {}: {} dimensions (at most {} supported)", path, what, n_dims, kMaxDims);
    std::vector<int64_t> ne(n_dims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t x = c.read<uint64_t>(what);
      if (x > uint64_t(INT64_MAX)) fail("{}: {}: dimension {} is {} (negative or too large)", path, what, d, x);
      uint64_t r;
      if (__builtin_mul_overflow(numel, x, &r) || r > uint64_t(INT64_MAX))
        fail("{}: {}: element count overflows (dims too large)", path, what);
      numel = r;
      ne[d] = int64_t(x);
    }
    ti.type_id = c.read<uint32_t>(what);
    const uint64_t offset = c.read<uint64_t>(what);
    if (offset % h.alignment != 0)
      fail("{}: {}: data offset {} is not a multiple of the alignment {}", path, what, offset, h.alignment);
    ti.shape.assign(ne.rbegin(), ne.rend());
    h.infos.push_back(std::move(ti));
    h.offsets.push_back(offset);
  }
  h.end = c.pos();
  return h;
}

}  // namespace

GgufHeader read_gguf_header(const std::string& path) {
  const MappedFile f(path);
  RawHeader h = read_header(path, f.data(), f.size());
  return {std::move(h.metadata), std::move(h.infos)};
}

GgufFile::GgufFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)) {
  const uint8_t* base = file_->data();
  const uint64_t size = file_->size();
  RawHeader h = read_header(path, base, size);
  version_ = h.version;
  alignment_ = h.alignment;
  metadata_ = std::move(h.metadata);

  struct Info {
    std::string name;
    std::vector<int64_t> shape;
    Format format;
    uint64_t offset, nbytes;
  };
  std::vector<Info> infos;
  infos.reserve(h.infos.size());
  for (size_t i = 0; i < h.infos.size(); ++i) {
    GgufTensorInfo& raw = h.infos[i];
    Info ti;
    ti.name = std::move(raw.name);
    ti.shape = std::move(raw.shape);
    ti.offset = h.offsets[i];
    const std::string what = fmt::format("tensor '{}'", ti.name);
    if (!ggml_type_to_format(raw.type_id, ti.format))
      fail("{}: {}: unsupported ggml tensor type id {}", path, what, raw.type_id);
    uint64_t numel = 1;
    for (int64_t d : ti.shape) numel *= uint64_t(d);  // checked against overflow by read_header
    const int64_t bs = ggml_block_size(ti.format);
    const int64_t row = ti.shape.empty() ? 1 : ti.shape.back();
    if (row % bs != 0)
      fail("{}: {}: row length {} is not a multiple of the {}-value block of type id {}", path, what, row, bs,
           raw.type_id);
    uint64_t nb;
    if (__builtin_mul_overflow(numel / uint64_t(bs), uint64_t(ggml_block_bytes(ti.format)), &nb))
      fail("{}: {}: byte size overflows (dims too large)", path, what);
    ti.nbytes = nb;
    infos.push_back(std::move(ti));
  }

  // Data section: starts at the header's end rounded up to the alignment.
  const uint64_t hdr_end = h.end;
  const uint64_t rem = hdr_end % alignment_;
  data_offset_ = rem ? checked_add(hdr_end, alignment_ - rem, "GGUF data offset") : hdr_end;
  if (!infos.empty() && data_offset_ > size)
    fail("{}: truncated: data section would start at {} but the file has {} bytes", path, data_offset_, size);
  const uint64_t data_size = data_offset_ <= size ? size - data_offset_ : 0;

  for (const Info& ti : infos) {
    if (ti.offset > data_size || ti.nbytes > data_size - ti.offset)
      fail("{}: tensor '{}': data [{}, +{}) lies outside the {}-byte data section (file truncated?)", path,
           ti.name, ti.offset, ti.nbytes, data_size);
  }
  // No two tensors may share bytes.
  std::vector<size_t> order(infos.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return infos[a].offset < infos[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const Info& a = infos[order[k - 1]];
    const Info& b = infos[order[k]];
    if (a.nbytes > 0 && b.nbytes > 0 && a.offset + a.nbytes > b.offset)
      fail("{}: tensors '{}' and '{}' overlap in the data section", path, a.name, b.name);
  }

  tensors_.reserve(infos.size());
  offsets_.reserve(infos.size());
  for (size_t i = 0; i < infos.size(); ++i) {
    Info& ti = infos[i];
    if (!index_.emplace(ti.name, i).second) fail("{}: duplicate tensor name '{}'", path, ti.name);
    Tensor t;
    t.name = std::move(ti.name);
    t.shape = std::move(ti.shape);
    t.format = ti.format;
    t.data = base + data_offset_ + ti.offset;
    t.nbytes = ti.nbytes;
    tensors_.push_back(std::move(t));
    offsets_.push_back(ti.offset);
  }
}

const Tensor* GgufFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

bool GgufFile::has(std::string_view key) const { return metadata_.find(std::string(key)) != metadata_.end(); }

const GgufValue& GgufFile::get(std::string_view key) const {
  auto it = metadata_.find(std::string(key));
  if (it == metadata_.end()) fail("{}: metadata key '{}' is missing", path(), key);
  return it->second;
}

namespace {
[[noreturn]] void wrong_type(const std::string& path, std::string_view key, const GgufValue& v, std::string_view want) {
  fail("{}: metadata '{}' has type {}, expected {}", path, key, gguf_type_name(v.type), want);
}
}  // namespace

uint64_t GgufFile::get_u64(std::string_view key) const {
  const GgufValue& v = get(key);
  if (!v.is_integer()) wrong_type(path(), key, v, "an unsigned integer");
  if (v.is_unsigned()) return std::get<uint64_t>(v.v);
  const int64_t x = std::get<int64_t>(v.v);
  if (x < 0) fail("{}: metadata '{}' is {}, expected a non-negative value", path(), key, x);
  return uint64_t(x);
}

uint32_t GgufFile::get_u32(std::string_view key) const {
  const uint64_t x = get_u64(key);
  if (x > UINT32_MAX) fail("{}: metadata '{}' is {}, too large for 32 bits", path(), key, x);
  return uint32_t(x);
}

int64_t GgufFile::get_i64(std::string_view key) const {
  const GgufValue& v = get(key);
  if (!v.is_integer()) wrong_type(path(), key, v, "an integer");
  if (!v.is_unsigned()) return std::get<int64_t>(v.v);
  const uint64_t x = std::get<uint64_t>(v.v);
  if (x > uint64_t(INT64_MAX)) fail("{}: metadata '{}' is {}, too large for int64", path(), key, x);
  return int64_t(x);
}

float GgufFile::get_f32(std::string_view key) const {
  const GgufValue& v = get(key);
  if (v.is_float()) return float(std::get<double>(v.v));
  if (v.is_integer()) return v.is_unsigned() ? float(std::get<uint64_t>(v.v)) : float(std::get<int64_t>(v.v));
  wrong_type(path(), key, v, "a number");
}

bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufType::BOOL) wrong_type(path(), key, v, "bool");
  return std::get<bool>(v.v);
}

const std::string& GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufType::STRING) wrong_type(path(), key, v, "string");
  return std::get<std::string>(v.v);
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = get(key);
  if (v.type != GgufType::ARRAY || v.elem_type != GgufType::STRING) {
    if (v.type == GgufType::ARRAY)
      fail("{}: metadata '{}' is an array of {}, expected an array of strings", path(), key,
           gguf_type_name(v.elem_type));
    wrong_type(path(), key, v, "array of strings");
  }
  std::vector<std::string> out;
  const auto& elems = std::get<std::vector<GgufValue>>(v.v);
  out.reserve(elems.size());
  for (const auto& e : elems) out.push_back(std::get<std::string>(e.v));
  return out;
}

uint32_t GgufFile::get_u32_or(std::string_view key, uint32_t def) const { return has(key) ? get_u32(key) : def; }
float GgufFile::get_f32_or(std::string_view key, float def) const { return has(key) ? get_f32(key) : def; }

}  // namespace lmq
