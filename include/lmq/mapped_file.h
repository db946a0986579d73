// A read-only memory map of a whole file. Model weights are used in place from the map:
// lmq never holds a second copy of a model in memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace lmq {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws lmq::Error naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Drops the resident pages that lie wholly inside [p, p + n) of a read-only file map, for bytes
// the program has copied elsewhere (a loader's repacked weights): they leave the process's RSS
// and would be read from the file again if touched. Pages shared with neighbouring bytes stay.
// A hint: does nothing where the system declines.
void release_mapped_pages(const void* p, size_t n);

// n bytes of anonymous memory for weights a loader builds (the X16 layouts' records), uninitialized,
// 2 MiB-aligned with transparent huge pages asked for (madvise): decode streams such a buffer
// once per token, and a huge page costs one TLB miss where 4 KiB pages cost 512. Throws
// lmq::Error when the memory is not there.
std::shared_ptr<uint8_t[]> weight_buffer(size_t n);

// Reads a whole (small) file into a string: configs, JSON indexes, text.
std::string read_text_file(const std::string& path);

}  // namespace lmq
