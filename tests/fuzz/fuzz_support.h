// Shared by the libFuzzer targets (tests/fuzz/*_fuzz.cpp).
//  - as_file(): the readers of model files take a path (they mmap it); the input goes to one
//    in-memory file (memfd) reopened through /proc/self/fd, so no disk I/O per execution.
//  - expect_clean_error(): the project's rule for bad input is one lmq::Error whose single
//    line names the file or flag; a message without the name or with a line break is a bug,
//    reported as a crash. Anything but lmq::Error escaping a parser is a bug as well (libFuzzer
//    reports the uncaught exception).
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "lmq/error.h"

namespace lmq::fuzz {

inline std::string as_file(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("lmq-fuzz", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, 0) != 0) std::abort();
  for (size_t done = 0; done < size;) {
    const ssize_t n = pwrite(fd, data + done, size - done, off_t(done));
    if (n <= 0) std::abort();
    done += size_t(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

inline void expect_clean_error(const Error& e, std::string_view name) {
  const std::string_view msg = e.what();
  if (msg.find('\n') != std::string_view::npos || msg.find(name) == std::string_view::npos) {
    std::fprintf(stderr, "error message does not name '%.*s' on one line: %s\n", int(name.size()), name.data(),
                 e.what());
    std::abort();
  }
}

// Reads the first and last byte of [p, p+n): the mapping is one contiguous range, so ASan
// checking both ends proves a tensor's bytes lie inside it (reading every byte costs ~10x).
inline uint8_t touch(const uint8_t* p, uint64_t n) { return n ? uint8_t(p[0] ^ p[n - 1]) : 0; }

}  // namespace lmq::fuzz
