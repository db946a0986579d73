// Writing safetensors (huggingface/safetensors), streamed: the tensors' names, dtypes and shapes
// are known first, so each file's header is written before any data and the data follow one
// tensor at a time in the order given (never the whole model in memory).
//   - header: the JSON object ({"__metadata__": {"format": "pt"}, name: {dtype, shape,
//     data_offsets}}), padded with spaces so that 8 + header length is a multiple of 8, as the
//     reference implementation does (the data section starts 8-aligned);
//   - the data section is the tensors back to back, no holes (the spec forbids them);
//   - shards: tensors go into files of at most shard_bytes of data each, in order (a tensor
//     larger than a shard gets a file of its own). One file: "model.safetensors"; several:
//     "model-0000i-of-0000n.safetensors" plus "model.safetensors.index.json" ({"metadata":
//     {"total_size": bytes of all tensors}, "weight_map": {name: file}}), as transformers'
//     save_pretrained names them.
// Every file goes through AtomicFile: nothing is visible under its name until commit().
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lmq/formats/safetensors.h"

namespace lmq {

struct StTensorSpec {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;  // numel × dtype size
};

// transformers' default max_shard_size ("5GB" = 5·10^9 bytes).
inline constexpr uint64_t kDefaultShardBytes = 5'000'000'000ull;

class SafetensorsWriter {
 public:
  // Plans the shards of `specs` in `dir` (an existing directory). Throws on duplicate names.
  SafetensorsWriter(std::string dir, std::vector<StTensorSpec> specs, uint64_t shard_bytes = kDefaultShardBytes,
                    std::map<std::string, std::string> metadata = {{"format", "pt"}});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The next tensor's bytes, in the order of specs; n must be its nbytes().
  void write(const std::string& name, const void* data, size_t n);
  // After the last tensor: renames every file into place and writes the index when sharded.
  void commit();
  // The file names (relative to dir), in order.
  std::vector<std::string> files() const;
  uint64_t total_bytes() const { return total_; }

 private:
  struct Shard;
  void open_shard(size_t s);
  std::string dir_;
  std::vector<StTensorSpec> specs_;
  std::map<std::string, std::string> metadata_;
  std::vector<Shard> shards_;
  size_t next_ = 0, shard_ = 0;
  uint64_t total_ = 0;
};

}  // namespace lmq
