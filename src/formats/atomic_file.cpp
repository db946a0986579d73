#include "lmq/formats/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "lmq/error.h"

namespace lmq {

namespace {
constexpr size_t kBuffer = 1 << 20;
}

AtomicFile::AtomicFile(std::string dest) : dest_(std::move(dest)) {
  std::error_code ec;
  if (std::filesystem::is_directory(dest_, ec)) fail("{}: is a directory", dest_);
  tmp_ = dest_ + ".tmp-XXXXXX";
  fd_ = ::mkstemp(tmp_.data());
  if (fd_ < 0) fail("{}: cannot create a temporary file beside it: {}", dest_, std::strerror(errno));
  ::fchmod(fd_, 0644);
  buf_.reserve(kBuffer);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::raw(const char* p, size_t n) {
  while (n) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed: {}", tmp_, std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
    written_ += uint64_t(w);
  }
}

void AtomicFile::flush() {
  raw(buf_.data(), buf_.size());
  buf_.clear();
}

void AtomicFile::write(const void* p, size_t n) {
  const auto* c = static_cast<const char*>(p);
  if (buf_.size() + n > kBuffer) flush();
  if (n >= kBuffer) return raw(c, n);
  buf_.append(c, n);
}

void AtomicFile::zeros(uint64_t n) {
  static const char z[256] = {};
  while (n) {
    const size_t k = size_t(std::min<uint64_t>(n, sizeof z));
    write(z, k);
    n -= k;
  }
}

void AtomicFile::commit() {
  if (committed_) fail("{}: committed twice", dest_);
  flush();
  if (::fsync(fd_) != 0) fail("{}: fsync failed: {}", tmp_, std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("{}: close failed: {}", tmp_, std::strerror(errno));
  if (::rename(tmp_.c_str(), dest_.c_str()) != 0)
    fail("{}: cannot rename the finished file into place: {}", dest_, std::strerror(errno));
  committed_ = true;
  std::filesystem::path dir = std::filesystem::path(dest_).parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // make the rename itself durable
    ::close(dfd);
  }
}

}  // namespace lmq
