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

namespace {

// A "Key:   123 kB" field of /proc/meminfo, in bytes; 0 when absent.
uint64_t meminfo_bytes(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  for (std::string k; in >> k;) {
    uint64_t kb = 0;
    in >> kb;
    if (k == key + ":") return kb * 1024;
    in.ignore(256, '\n');
  }
  return 0;
}

uint64_t cgroup_value(const char* file) {  // UINT64_MAX for "max" or no such file
  std::ifstream in(std::string("/sys/fs/cgroup/") + file);
  std::string s;
  return in >> s && !s.empty() && s != "max" ? std::strtoull(s.c_str(), nullptr, 10) : UINT64_MAX;
}

struct Available {
  uint64_t bytes;
  const char* source;
};

Available available() {
  if (const char* env = std::getenv("LMQ_MEMORY_LIMIT")) return {std::strtoull(env, nullptr, 10), "LMQ_MEMORY_LIMIT"};
  Available a{meminfo_bytes("MemAvailable"), "MemAvailable"};
  if (a.bytes == 0) a = {memory_limit_bytes(), "physical memory"};
  const uint64_t max = cgroup_value("memory.max"), cur = cgroup_value("memory.current");
  if (max != UINT64_MAX && cur != UINT64_MAX) {
    const uint64_t left = max > cur ? max - cur : 0;
    if (left < a.bytes) a = {left, "cgroup memory.max - memory.current"};
  }
  return a;
}

}  // namespace

uint64_t available_memory_bytes() { return available().bytes; }

void require_available_memory(uint64_t bytes, const std::string& what, const std::string& detail) {
  const Available a = available();
  if (bytes > a.bytes)
    fail("{} needs about {:.2f} GiB ({}), more than the {:.2f} GiB available ({})", what, double(bytes) / (1 << 30),
         detail, double(a.bytes) / (1 << 30), a.source);
}

}  // namespace lmq
