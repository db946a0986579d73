#include "lmq/formats/spill_file.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lmq/error.h"

namespace lmq {

namespace {

int open_unnamed(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)) return fd;
  std::string name = dir;  // a file system without O_TMPFILE
  name.append("/.lmq-spill-XXXXXX");
  const int named = ::mkstemp(name.data());
  if (named >= 0) ::unlink(name.c_str());
  return named;
}

}  // namespace

SpillFile::SpillFile(std::string dir) : dir_(dir.empty() ? std::string(".") : std::move(dir)) {
  fd_ = open_unnamed(dir_);
  if (fd_ < 0) fail("{}: cannot create a temporary file there: {}", dir_, std::strerror(errno));
}

SpillFile::~SpillFile() {
  if (fd_ >= 0) ::close(fd_);
}

SpillFile::Extent SpillFile::append(const uint8_t* p, size_t n) {
  const Extent e{end_, n};
  uint64_t at = end_;
  while (n) {
    const ssize_t w = ::pwrite(fd_, p, n, off_t(at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("{}: writing a temporary file there failed: {}", dir_, w < 0 ? std::strerror(errno) : "no progress");
    p += w, at += uint64_t(w), n -= size_t(w);
  }
  end_ = at;
  return e;
}

void SpillFile::read(const Extent& e, uint8_t* out) const {
  LMQ_CHECK(e.offset + e.size <= end_, "extent [{}, +{}) past the spill file's {} bytes", e.offset, e.size, end_);
  uint64_t at = e.offset, n = e.size;
  while (n) {
    const ssize_t r = ::pread(fd_, out, size_t(n), off_t(at));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) fail("{}: reading back a temporary file there failed: {}", dir_, r < 0 ? std::strerror(errno) : "short read");
    out += r, at += uint64_t(r), n -= uint64_t(r);
  }
}

uint64_t free_disk_bytes(const std::string& dir) {
  struct statvfs s {};
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &s) != 0) fail("{}: cannot ask for its free space: {}", dir, std::strerror(errno));
  return uint64_t(s.f_bavail) * uint64_t(s.f_frsize);
}

}  // namespace lmq
