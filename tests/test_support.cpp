#include "test_support.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <nlohmann/json.hpp>

extern char** environ;

namespace lmq::test {
namespace fs = std::filesystem;

std::string shared_path(const std::string& rel) {
  const char* env = std::getenv("LMQ_SHARED");
  std::string base = env && *env ? env : LMQ_SHARED_DEFAULT;
  return base + "/" + rel;
}

namespace {
struct TempRoot {
  std::string path;
  TempRoot() {
    std::string tmpl = (fs::temp_directory_path() / "lmq-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
}  // namespace

std::string temp_dir() {
  static TempRoot root;
  static int counter = 0;
  std::string p = root.path + "/" + std::to_string(counter++);
  fs::create_directories(p);
  return p;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

RunResult run_lmq(const std::vector<std::string>& args, bool sample_memory) {
  return run_program(LMQ_BINARY, args, sample_memory);
}

RunResult run_program(const std::string& exe, const std::vector<std::string>& args, bool sample_memory) {
  std::string dir = temp_dir();
  std::string out_path = dir + "/stdout", err_path = dir + "/stderr";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> all{exe};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  RunResult r;
  // posix_spawnp: a name without a slash is looked up in PATH (the chart tests run chromium, timeout).
  if (posix_spawnp(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    throw std::runtime_error("cannot spawn " + exe);
  }
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  if (!sample_memory) {
    waitpid(pid, &status, 0);
  } else {  // /proc/PID/status every 5 ms until it exits: the peak of its anonymous memory
    const std::string proc = "/proc/" + std::to_string(pid) + "/status";
    while (waitpid(pid, &status, WNOHANG) == 0) {
      std::ifstream st(proc);
      for (std::string line; std::getline(st, line);)
        if (line.rfind("RssAnon:", 0) == 0) r.peak_anon_bytes = std::max<uint64_t>(r.peak_anon_bytes, std::stoull(line.substr(8)) * 1024);
      usleep(5000);
    }
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

void write_safetensors(const std::string& path, const std::vector<StEntry>& tensors) {
  nlohmann::json h;
  h["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const StEntry& t : tensors) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string head(8, '\0');
  for (int i = 0; i < 8; ++i) head[size_t(i)] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  write_file(path, head + header + data);
}

}  // namespace lmq::test
