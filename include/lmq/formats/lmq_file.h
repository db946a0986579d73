// lmq's quantized model file: one self-contained, mmap-able safetensors container holding the
// config, the tokenizer and every tensor in its stored format. Byte by byte in
// docs/file-format.md. In short:
//   - a valid safetensors file: 8-byte little-endian header length N, JSON header, data;
//   - the header is padded with spaces so the data section starts at a multiple of 64, and
//     every tensor is stored as dtype U8 with its byte length padded to a multiple of 64, so
//     every tensor starts 64-byte aligned and the data section has no gaps (strict readers
//     accept it);
//   - "__metadata__" (written first) holds "lmq.format" = "lmq-1", "lmq.config" (Hugging Face
//     style config JSON), "lmq.tensors" (JSON: per tensor its format, shape, integer
//     parameters, scheme and exact byte length), and free-form "lmq.*" provenance keys;
//   - the tensor "lmq.tokenizer" holds the tokenizer's serialized bytes: the SentencePiece model,
//     or with metadata lmq.tokenizer_kind = "bpe" the tokenizer.json text.
// The writer streams: the header is computed from the planned sizes, then each tensor is
// written as it is produced (never two full copies of a model in memory), through AtomicFile.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lmq/formats/atomic_file.h"
#include "lmq/tensor.h"

namespace lmq {

inline constexpr const char* kLmqFormatVersion = "lmq-1";
inline constexpr uint64_t kLmqAlign = 64;

struct LmqTensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  Format format = Format::F32;
  IntParams q{};
  std::string scheme;  // how it was made, e.g. "int4:g128:asym:mse:s=f16"
  uint64_t nbytes = 0;
};

// Exact stored bytes of a tensor of this shape and format.
uint64_t stored_bytes(Format f, const IntParams& q, const std::vector<int64_t>& shape);

// What an lmq file holds, checked (format version, every tensor's bytes against its shape and
// format) but not interpreted: model/ turns it into a Model.
struct LmqFileContents {
  std::string config_json;      // "lmq.config", a Hugging Face style config
  std::string tokenizer_bytes;  // the serialized tokenizer (see lmq.tokenizer_kind)
  std::map<std::string, std::string> metadata;  // every "__metadata__" key
  std::vector<Tensor> tensors;  // pointing into the mapped file
  std::shared_ptr<void> storage;  // keeps the mapping alive
  uint64_t file_bytes = 0;
};
LmqFileContents read_lmq_file(const std::string& path);

class LmqFileWriter {
 public:
  // Writes the header at once; then write_tensor() must be called for every spec, in order.
  LmqFileWriter(const std::string& dest, const std::string& config_json, const std::string& tokenizer_bytes,
                const std::map<std::string, std::string>& metadata, std::vector<LmqTensorSpec> specs);
  void write_tensor(const std::string& name, const uint8_t* data, uint64_t nbytes);
  void commit();  // after the last tensor; renames the file into place

 private:
  AtomicFile out_;
  std::vector<LmqTensorSpec> specs_;
  size_t next_ = 0;
};

}  // namespace lmq
