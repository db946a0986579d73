// Streaming GGUF (version 3) writer. Collect metadata and tensor descriptions (tensor bytes
// are referenced, not copied), then finish() writes header, metadata, tensor infos, and the
// aligned tensor data to `<dest>.tmp-XXXXXX` in the destination's directory, fsyncs it and
// rename()s it over dest: an existing dest is never truncated or left half-written.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lmq/formats/gguf.h"

namespace lmq {

class GgufWriter {
 public:
  // alignment: a power of two; when not 32 it is recorded as general.alignment.
  explicit GgufWriter(std::string dest, uint64_t alignment = 32);

  // Adds or replaces a metadata key; keys are written in the order first set.
  void set(const std::string& key, GgufValue value);
  // Adds a tensor. shape is in lmq (PyTorch) order; data must hold exactly the format's bytes
  // for that shape and stay valid until finish(). Throws lmq::Error on a bad tensor.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, Format format, const uint8_t* data,
                  uint64_t nbytes);
  void add_tensor(const Tensor& t) { add_tensor(t.name, t.shape, t.format, t.data, t.nbytes); }

  void finish();  // throws lmq::Error naming dest on any I/O failure (the temp file is removed)

 private:
  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    Format format;
    const uint8_t* data;
    uint64_t nbytes;
  };
  std::string dest_;
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Entry> tensors_;
  bool finished_ = false;
};

}  // namespace lmq
