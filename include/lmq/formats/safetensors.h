// safetensors, read to the spec (huggingface/safetensors):
//   bytes 0..7   N, the header length, unsigned 64-bit little-endian
//   bytes 8..8+N a UTF-8 JSON object: "__metadata__" (optional, string → string) and, for each
//                tensor, {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}
//   the rest     the data section; offsets are relative to its start (byte 8+N)
// Every header field is validated against the file size before any tensor byte is touched:
// a known dtype, non-negative dims whose product does not overflow, begin ≤ end ≤ data size,
// end − begin = numel × dtype size, and no two tensors overlapping.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lmq/mapped_file.h"
#include "lmq/tensor.h"

namespace lmq {

enum class StDType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };
std::string_view st_dtype_name(StDType d);
size_t st_dtype_size(StDType d);

struct StTensor {
  StDType dtype;
  Tensor tensor;  // format F32/F16/BF16/I32 for those dtypes; data points into the map
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws lmq::Error naming the path
  const std::string& path() const { return file_->path(); }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<StTensor>& tensors() const { return tensors_; }
  const StTensor* find(const std::string& name) const;
  uint64_t file_size() const { return file_->size(); }

 private:
  std::unique_ptr<MappedFile> file_;
  std::map<std::string, std::string> metadata_;
  std::vector<StTensor> tensors_;
  std::map<std::string, size_t> index_;
};

// True if the bytes look like a safetensors file (a sane header length followed by '{').
bool is_safetensors_magic(const uint8_t* p, size_t n, uint64_t file_size);

}  // namespace lmq
