#include "lmq/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "lmq/error.h"

namespace lmq {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is rejected just below).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail("{}: cannot mmap: {}", path, std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void release_mapped_pages(const void* p, size_t n) {
  const long ps = ::sysconf(_SC_PAGESIZE);
  if (ps <= 0 || !p) return;
  const auto page = uintptr_t(ps);
  const uintptr_t begin = (uintptr_t(p) + page - 1) / page * page, end = (uintptr_t(p) + n) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

std::shared_ptr<uint8_t[]> weight_buffer(size_t n) {
  // Sized to whole 4 KiB pages, not 2 MiB: a huge page at the tail would be resident in full, up
  // to 2 MiB per tensor (measured: +307 MiB of RSS over a 7B model's 224 Q4_0 linears).
  constexpr size_t kHuge = size_t(2) << 20, kPage = 4096;
  const size_t size = (std::max<size_t>(n, 1) + kPage - 1) / kPage * kPage;
  void* p = nullptr;  // posix_memalign: aligned_alloc wants a size that is a multiple of the alignment
  if (::posix_memalign(&p, kHuge, size) != 0) fail("cannot allocate {} bytes for weights", n);
  ::madvise(p, size, MADV_HUGEPAGE);  // a hint: ignored where THP is off
  return std::shared_ptr<uint8_t[]>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

std::string read_text_file(const std::string& path) {
  struct stat st {};  // before opening: a FIFO or device would block or never end
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) fail("{}: not a regular file", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("{}: read error", path);
  return ss.str();
}

}  // namespace lmq
