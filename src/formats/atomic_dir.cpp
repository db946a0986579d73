#include "lmq/formats/atomic_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "lmq/error.h"

namespace fs = std::filesystem;

namespace lmq {

namespace {

void fsync_path(const std::string& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string parent_of(const std::string& p) {
  const fs::path d = fs::path(p).parent_path();
  return d.empty() ? "." : d.string();
}

}  // namespace

AtomicDir::AtomicDir(std::string dest) : dest_(std::move(dest)) {
  while (dest_.size() > 1 && dest_.back() == '/') dest_.pop_back();
  std::error_code ec;
  if (fs::exists(dest_, ec)) {
    if (!fs::is_directory(dest_, ec)) fail("{}: exists and is not a directory", dest_);
    if (!fs::is_empty(dest_, ec) && !fs::exists(dest_ + "/config.json", ec))
      fail("{}: exists and is not a model directory (no config.json); refusing to replace it", dest_);
  }
  tmp_ = dest_ + ".tmp-XXXXXX";
  if (!::mkdtemp(tmp_.data())) fail("{}: cannot create a temporary directory beside it: {}", dest_, std::strerror(errno));
  const mode_t mask = ::umask(0);  // mkdtemp makes it 0700; a model directory is as mkdir would make it
  ::umask(mask);
  ::chmod(tmp_.c_str(), 0777 & ~mask);
}

AtomicDir::~AtomicDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

void AtomicDir::commit() {
  if (committed_) fail("{}: committed twice", dest_);
  fsync_path(tmp_);
  std::error_code ec;
  if (fs::exists(dest_, ec)) {
    if (::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, dest_.c_str(), RENAME_EXCHANGE) != 0)
      fail("{}: cannot swap the finished directory into place: {}", dest_, std::strerror(errno));
    committed_ = true;
    fs::remove_all(tmp_, ec);  // now the old directory
  } else {
    if (::rename(tmp_.c_str(), dest_.c_str()) != 0)
      fail("{}: cannot rename the finished directory into place: {}", dest_, std::strerror(errno));
    committed_ = true;
  }
  fsync_path(parent_of(dest_));
}

}  // namespace lmq
