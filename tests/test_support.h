// Helpers for tests: where ../shared is, and running the lmq binary as a user would.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmq::test {

// Path under the shared folder: $LMQ_SHARED if set, else the build-time default (../shared).
std::string shared_path(const std::string& rel);

// A fresh empty temporary directory, removed at process exit.
std::string temp_dir();

struct RunResult {
  int exit_code = -1;  // -signal if killed
  std::string out, err;
  uint64_t peak_anon_bytes = 0;  // with sample_memory: the largest RssAnon seen (sampled every 5 ms)
};
// Runs build/lmq with the arguments (no shell), capturing stdout and stderr.
RunResult run_lmq(const std::vector<std::string>& args, bool sample_memory = false);
// The same for another program (a path, or a name looked up in PATH).
RunResult run_program(const std::string& exe, const std::vector<std::string>& args, bool sample_memory = false);

void write_file(const std::string& path, const std::string& bytes);

// One tensor of a safetensors file: dtype as the format spells it ("F16", "I32", ...), the
// little-endian bytes of its values.
struct StEntry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
// Writes a safetensors file by the format's rules ({"format": "pt"} metadata, header padded to
// 8 bytes, tensors in order); for crafting checkpoints that lmq did not write.
void write_safetensors(const std::string& path, const std::vector<StEntry>& tensors);
template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)};
}
std::string read_file(const std::string& path);

}  // namespace lmq::test
