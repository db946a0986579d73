// A temporary file for bytes made now and read back later (the quantization plan's calibrated
// linears, calib/pipeline.h): appended once, read back with pread. It has no name from the start
// (O_TMPFILE; where the file system lacks it, a mkstemp name unlinked at once), so no run, however
// it ends, leaves it behind; and its bytes live in the page cache, which the kernel writes back
// and drops under pressure, not in the process's anonymous memory.
#pragma once
#include <cstdint>
#include <string>

namespace lmq {

class SpillFile {
 public:
  // Where bytes landed: [offset, offset + size) of the file.
  struct Extent {
    uint64_t offset = 0, size = 0;
  };

  explicit SpillFile(std::string dir);  // throws lmq::Error naming dir
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;

  Extent append(const uint8_t* p, size_t n);         // throws lmq::Error (a full disk) naming the directory
  void read(const Extent& e, uint8_t* out) const;    // throws lmq::Error on a short read
  uint64_t size() const { return end_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int fd_ = -1;
  uint64_t end_ = 0;
};

// Free bytes for an unprivileged writer on the file system holding `dir` (statvfs); throws
// lmq::Error naming dir when it cannot be asked.
uint64_t free_disk_bytes(const std::string& dir);

}  // namespace lmq
