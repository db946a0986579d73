#include "lmq/model/memory_limit.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "lmq/error.h"

namespace lmq {

uint64_t memory_limit_bytes() {
  if (const char* env = std::getenv("LMQ_MEMORY_LIMIT")) return std::strtoull(env, nullptr, 10);
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  uint64_t limit = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : UINT64_MAX;
  std::ifstream cg("/sys/fs/cgroup/memory.max");  // "max" or a byte count
  std::string s;
  if (cg >> s && !s.empty() && s != "max") limit = std::min<uint64_t>(limit, std::strtoull(s.c_str(), nullptr, 10));
  return limit;
}

void require_memory(uint64_t bytes, const std::string& what) {
  const uint64_t limit = memory_limit_bytes();
  if (bytes > limit)
    fail("{} needs {:.1f} GiB, more than the {:.1f} GiB of memory of this machine", what, double(bytes) / (1 << 30),
         double(limit) / (1 << 30));
}

}  // namespace lmq
