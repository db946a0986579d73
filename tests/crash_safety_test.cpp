// Crash-safe output: `lmq quantize` killed with SIGKILL at several points of its work leaves the
// previous output byte-identical and nothing else under the final name (only a stray
// <output>.tmp-XXXXXX beside it, which the next run does not read).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "lmq/model/model.h"
#include "test_support.h"

extern char** environ;

namespace {
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

pid_t spawn_quantize(const std::string& out) {
  std::vector<std::string> args = {LMQ_BINARY, "quantize", lmq::test::shared_path("models/lmq-llama-25m"), "-o", out,
                                   "--scheme", "int3:g64:asym:mse", "--threads", "1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, LMQ_BINARY, &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Both files load and hold the same tensors, byte for byte.
bool same_tensors(const std::string& a, const std::string& b) {
  try {
    const auto ma = lmq::Model::load(a), mb = lmq::Model::load(b);
    if (ma->tensors().size() != mb->tensors().size()) return false;
    for (const lmq::Tensor& t : ma->tensors()) {
      const lmq::Tensor* u = mb->find(t.name);
      if (!u || u->format != t.format || u->nbytes != t.nbytes || std::memcmp(u->data, t.data, t.nbytes) != 0) return false;
    }
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

TEST(CrashSafety, SigkillDuringQuantizeKeepsThePreviousOutput) {
  const std::string dir = lmq::test::temp_dir();
  // How long a whole run takes here, so the kills land at 10%, 50% and 90% of the work.
  const auto t0 = clock_type::now();
  pid_t pid = spawn_quantize(dir + "/timing.lmq");
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const auto full = clock_type::now() - t0;

  const std::string out = dir + "/model.lmq";
  pid = spawn_quantize(out);  // a complete run under the final name holds the timing run's tensors
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_TRUE(same_tensors(out, dir + "/timing.lmq"));
  const std::string previous = "previous output that must survive\n";
  ASSERT_FALSE(same_tensors(dir + "/timing.lmq", dir + "/missing.lmq"));
  lmq::test::write_file(out, previous);
  int killed_running = 0;
  for (double frac : {0.1, 0.5, 0.9}) {
    pid = spawn_quantize(out);
    std::this_thread::sleep_for(std::chrono::duration_cast<std::chrono::milliseconds>(full * frac));
    const bool running = waitpid(pid, &status, WNOHANG) == 0;
    if (running) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    }
    // The final name holds the previous file or the complete new one (the same tensors as the
    // timing run: quantization is deterministic; the metadata differs by the command line),
    // never anything in between. A kill can land after the rename but before the process exits;
    // only kills that found the work unfinished count below.
    if (lmq::test::read_file(out) == previous) {
      killed_running += running;
    } else {
      EXPECT_TRUE(same_tensors(out, dir + "/timing.lmq")) << "killed at " << frac << ": not the complete output";
      lmq::test::write_file(out, previous);  // the run replaced it whole; restore for the next kill
    }
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      EXPECT_TRUE(name == "model.lmq" || name == "timing.lmq" || name.rfind("model.lmq.tmp-", 0) == 0) << name;
    }
  }
  EXPECT_GE(killed_running, 2) << "most kills must land while quantize is still working";
  // After the interruptions a complete run still replaces the file with a loadable model.
  auto r = lmq::test::run_lmq({"quantize", lmq::test::shared_path("models/lmq-llama-25m"), "-o", out, "--scheme", "int8:channel:sym"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lmq::test::run_lmq({"inspect", out}).exit_code, 0);
}

}  // namespace
