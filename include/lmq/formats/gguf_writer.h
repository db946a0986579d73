// Streaming GGUF (version 3) writer. Two ways to use it:
//  - buffered: set() metadata, add_tensor() each tensor (its bytes are referenced, not
//    copied, until finish()), then finish();
//  - streamed: set() metadata, plan_tensor() every tensor (name, shape, format: sizes are
//    known up front), then write_tensor() each one's bytes in plan order as they are made
//    (the first call writes the header; nothing is held), then finish().
// Either way finish() writes header, metadata, tensor infos, and the
// aligned tensor data to `<dest>.tmp-XXXXXX` in the destination's directory, fsyncs it and
// rename()s it over dest: an existing dest is never truncated or left half-written.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lmq/formats/gguf.h"

namespace lmq {

class AtomicFile;

class GgufWriter {
 public:
  // alignment: a power of two; when not 32 it is recorded as general.alignment.
  explicit GgufWriter(std::string dest, uint64_t alignment = 32);
  ~GgufWriter();  // an unfinished writer removes its temporary file

  // Adds or replaces a metadata key; keys are written in the order first set.
  void set(const std::string& key, GgufValue value);
  // Adds a tensor. shape is in lmq (PyTorch) order; data must hold exactly the format's bytes
  // for that shape and stay valid until finish(). Throws lmq::Error on a bad tensor.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, Format format, const uint8_t* data,
                  uint64_t nbytes);
  void add_tensor(const Tensor& t) { add_tensor(t.name, t.shape, t.format, t.data, t.nbytes); }

  // Streamed mode (not mixable with add_tensor): declare a tensor whose bytes come later.
  void plan_tensor(const std::string& name, const std::vector<int64_t>& shape, Format format);
  // Writes the next planned tensor's bytes (name must be the next in plan order, nbytes its
  // exact size); metadata can no longer change after the first call.
  void write_tensor(const std::string& name, const uint8_t* data, uint64_t nbytes);

  void finish();  // throws lmq::Error naming dest on any I/O failure (the temp file is removed)

 private:
  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    Format format;
    const uint8_t* data;
    uint64_t nbytes;
  };
  uint64_t check_tensor(const std::string& name, const std::vector<int64_t>& shape, Format format);
  void write_header();

  std::string dest_;
  std::unique_ptr<AtomicFile> out_;  // open from the header on
  size_t next_ = 0;                         // streamed: tensors written so far
  bool streamed_ = false;
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Entry> tensors_;
  bool finished_ = false;
};

}  // namespace lmq
