// Refusing work that cannot fit: sizes that come from a model (context × layers for the KV
// cache, K × K calibration statistics) are checked against the machine's memory before anything
// is allocated, so a hostile or mistaken model fails with one line instead of thrashing or
// being killed by the OOM killer (Linux overcommits: a huge std::vector is "allocated" and then
// dies while being zeroed).
#pragma once
#include <cstdint>
#include <string>

namespace lmq {

// Physical memory, or the cgroup (v2) limit when that is lower; $LMQ_MEMORY_LIMIT (bytes)
// overrides it (for tests).
uint64_t memory_limit_bytes();

// Throws lmq::Error "<what> needs X GiB, more than the Y GiB of memory of this machine" when
// bytes exceed memory_limit_bytes().
void require_memory(uint64_t bytes, const std::string& what);

// Memory a new job can use now: MemAvailable (/proc/meminfo), or what the cgroup (v2) leaves
// (memory.max − memory.current) when that is lower; $LMQ_MEMORY_LIMIT (bytes) overrides it.
uint64_t available_memory_bytes();

// Throws lmq::Error "<what> needs about X GiB (<detail>), more than the Y GiB available
// (<source>)" when bytes exceed available_memory_bytes().
void require_available_memory(uint64_t bytes, const std::string& what, const std::string& detail);

}  // namespace lmq
