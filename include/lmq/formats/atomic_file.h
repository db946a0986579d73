// Every file lmq writes goes through AtomicFile: the bytes go to `<dest>.tmp-XXXXXX` in the
// destination's directory; commit() flushes, fsyncs, renames it over dest and fsyncs the
// directory. Until then an existing dest is untouched, and an AtomicFile destroyed without
// commit() (an error, an exception) removes its temporary file. A process killed mid-write
// leaves at most a stray .tmp file, never a half-written dest.
#pragma once
#include <cstdint>
#include <string>

namespace lmq {

class AtomicFile {
 public:
  explicit AtomicFile(std::string dest);  // throws lmq::Error naming dest
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* p, size_t n);
  template <typename T>
  void put(T v) { write(&v, sizeof(T)); }
  void zeros(uint64_t n);
  uint64_t pos() const { return written_ + buf_.size(); }
  void commit();
  const std::string& dest() const { return dest_; }

 private:
  void flush();
  void raw(const char* p, size_t n);

  std::string dest_, tmp_;
  int fd_ = -1;
  std::string buf_;
  uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace lmq
