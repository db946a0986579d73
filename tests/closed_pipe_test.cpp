// lmq as a Unix citizen when its reader goes away (src/cli/closed_output.h): `lmq … | head -N`
// ends lmq with the status of a closed pipe (SIGPIPE, 141 in bash), nothing on stderr, and no
// partial file; a failing stdout of another kind (a full disk) is one error line, status 1.
// The pipelines run in bash exactly as a user types them.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "test_support.h"

namespace {
namespace fs = std::filesystem;
using lmq::test::read_file;
using lmq::test::shared_path;
using lmq::test::temp_dir;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Runs a bash script (written to a file, so that its own quoting stays as written).
int run_bash(const std::string& script) {
  const std::string file = temp_dir() + "/script.sh";
  lmq::test::write_file(file, script + "\n");
  return std::system(("bash " + file).c_str());
}

struct Pipeline {
  int lmq_status = -1;  // ${PIPESTATUS[0]}: lmq's exit status as the shell sees it
  std::string err;      // lmq's stderr
};

// Runs `lmq ARGS 2>ERR | READER` in bash and returns lmq's status in the pipeline.
Pipeline run_piped(const std::string& args, const std::string& reader) {
  const std::string dir = temp_dir();
  const std::string err = dir + "/stderr", status = dir + "/status";
  const std::string script = quoted(LMQ_BINARY) + " " + args + " 2>" + quoted(err) + " | " + reader +
                             " >/dev/null; echo ${PIPESTATUS[0]} >" + quoted(status);
  const int rc = run_bash(script);
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << script;
  Pipeline p;
  p.lmq_status = std::stoi(read_file(status));
  p.err = read_file(err);
  return p;
}

const std::string kModel = shared_path("models/lmq-llama-25m");

TEST(ClosedPipe, InspectIntoHeadOneEndsLikeAClosedPipe) {
  const Pipeline p = run_piped("inspect " + quoted(kModel), "head -1");
  EXPECT_EQ(p.lmq_status, 128 + SIGPIPE);
  EXPECT_EQ(p.err, "");
}

TEST(ClosedPipe, RunStopsWhenTheReaderGoes) {
  const Pipeline p = run_piped("run " + quoted(kModel) + " -p 'The kernel' -n 400 --temp 0", "head -c 16");
  EXPECT_EQ(p.lmq_status, 128 + SIGPIPE);
  EXPECT_EQ(p.err, "");
}

// The sweep prints what it measures first; `head -3` takes those lines and leaves, and the sweep
// stops at its next stage instead of quantizing and evaluating for nobody: no table, no partial
// file (AtomicFile's temporaries are removed on the way out).
TEST(ClosedPipe, SweepIntoHeadThreeStopsEarlyAndLeavesNoPartialFile) {
  const std::string out = temp_dir() + "/sweep";
  const Pipeline p = run_piped("sweep " + quoted(kModel) + " --text " + quoted(shared_path("text/docs-valid.txt")) +
                                   " --windows 1 --no-bench --schemes int8:channel:sym,int4:g128:asym,int3:g64:asym"
                                   " --out-dir " + quoted(out),
                               "head -3");
  EXPECT_EQ(p.lmq_status, 128 + SIGPIPE);
  EXPECT_EQ(p.err, "");
  EXPECT_FALSE(fs::exists(out + "/sweep.json"));
  if (!fs::exists(out)) return;
  for (const auto& e : fs::directory_iterator(out)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
}

// Not a closed pipe: stdout that cannot be written is a user-visible failure.
TEST(ClosedPipe, FullStdoutIsOneErrorLine) {
  const std::string dir = temp_dir();
  const std::string script = quoted(LMQ_BINARY) + " inspect " + quoted(kModel) + " >/dev/full 2>" +
                             quoted(dir + "/stderr") + "; echo $? >" + quoted(dir + "/status");
  ASSERT_EQ(run_bash(script), 0);
  EXPECT_EQ(std::stoi(read_file(dir + "/status")), 1);
  EXPECT_EQ(read_file(dir + "/stderr"), "lmq: error: standard output: write failed: No space left on device\n");
}

}  // namespace
