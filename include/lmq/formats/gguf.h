// GGUF reader (llama.cpp's model file format, versions 2 and 3).
//
// Layout (all little-endian):
//   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv   x { string key | u32 value_type | value }
//   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to general.alignment (default 32) | tensor data
// A string is u64 length + bytes (no terminator); an array value is u32 element type +
// u64 count + elements. Tensor offsets are relative to the start of the data section and
// must be multiples of the alignment. ne[0] is the contiguous dimension: lmq's Tensor.shape
// is the reverse (PyTorch order), so a 2-D [ne0, ne1] tensor has shape {ne1, ne0}.
//
// Everything in the header is validated against the file size before any tensor data is
// touched; every failure throws lmq::Error naming the file.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "lmq/mapped_file.h"
#include "lmq/tensor.h"

namespace lmq {

enum class GgufType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
std::string_view gguf_type_name(GgufType t);

// One metadata value. Integers are held widened (signed types in int64_t, unsigned in
// uint64_t); `type` keeps the type the file used. An array holds its elements in `array`
// and its element type in `elem_type` (elements of an array of arrays are ARRAY values).
struct GgufValue {
  GgufType type = GgufType::UINT8;
  GgufType elem_type = GgufType::UINT8;  // ARRAY only
  std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<GgufValue>> v;

  bool is_integer() const;
  bool is_unsigned() const;
  bool is_float() const { return type == GgufType::FLOAT32 || type == GgufType::FLOAT64; }

  // Convenience constructors (used by the writer and tests).
  static GgufValue u8(uint8_t x);
  static GgufValue i8(int8_t x);
  static GgufValue u16(uint16_t x);
  static GgufValue i16(int16_t x);
  static GgufValue u32(uint32_t x);
  static GgufValue i32(int32_t x);
  static GgufValue u64(uint64_t x);
  static GgufValue i64(int64_t x);
  static GgufValue f32(float x);
  static GgufValue f64(double x);
  static GgufValue boolean(bool x);
  static GgufValue str(std::string x);
  static GgufValue array(GgufType elem_type, std::vector<GgufValue> elems);
  static GgufValue string_array(const std::vector<std::string>& xs);

  bool operator==(const GgufValue&) const = default;
};

// ggml type id <-> lmq::Format for the types lmq handles (F32=0, F16=1, Q4_0=2, Q4_1=3,
// Q5_0=6, Q5_1=7, Q8_0=8, Q2_K=10, Q3_K=11, Q4_K=12, Q5_K=13, Q6_K=14, IQ2_XXS=16, IQ2_XS=17,
// IQ3_XXS=18, IQ1_S=19, IQ4_NL=20, IQ3_S=21, IQ2_S=22, IQ4_XS=23, IQ1_M=29, BF16=30), from the format table.
bool ggml_type_to_format(uint32_t type_id, Format& out);
uint32_t format_to_ggml_type(Format f);  // throws for formats GGUF cannot hold

bool is_gguf_magic(const uint8_t* p, size_t n);

// A GGUF file's header without its data: the metadata and, per tensor, name, shape (outermost
// first, as Tensor::shape) and ggml type id, also for types lmq cannot read (to compare a file's
// types with a recipe). Validated as GgufFile validates it, except the type ids.
struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  uint32_t type_id = 0;
};
struct GgufHeader {
  std::map<std::string, GgufValue> metadata;
  std::vector<GgufTensorInfo> tensors;
};
GgufHeader read_gguf_header(const std::string& path);

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);  // maps and validates; throws lmq::Error

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  // Tensors in file order; data points into the map (valid while this object lives).
  const std::vector<Tensor>& tensors() const { return tensors_; }
  const Tensor* find(std::string_view name) const;
  // Offset of a tensor's data relative to the data section, as stored in the file.
  uint64_t tensor_offset(size_t index) const { return offsets_.at(index); }

  bool has(std::string_view key) const;
  const GgufValue& get(std::string_view key) const;  // throws if missing
  // Typed getters: throw lmq::Error naming the file and key when missing or of the wrong
  // type. get_u32 accepts any integer type whose value fits; get_f32 any float or integer.
  uint32_t get_u32(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  int64_t get_i64(std::string_view key) const;
  float get_f32(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  // With defaults when the key is absent (still an error when present with a wrong type).
  uint32_t get_u32_or(std::string_view key, uint32_t def) const;
  float get_f32_or(std::string_view key, float def) const;

 private:
  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<Tensor> tensors_;
  std::vector<uint64_t> offsets_;
  std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace lmq
