// lmq's default OpenMP spin count (cli/main.cpp: set, then the executable run again so libgomp
// reads it): checked through libgomp's own report of its settings (OMP_DISPLAY_ENV=verbose,
// printed on stderr when it is loaded), not through lmq's.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_support.h"

using lmq::test::run_program;

namespace {
// The GOMP_SPINCOUNT values libgomp printed, in order (one per time it was loaded).
std::vector<std::string> spin_counts(const std::vector<std::string>& env) {
  std::vector<std::string> args{"-u", "GOMP_SPINCOUNT", "-u", "OMP_WAIT_POLICY", "OMP_DISPLAY_ENV=verbose"};
  args.insert(args.end(), env.begin(), env.end());
  args.insert(args.end(), {LMQ_BINARY, "--help"});
  const auto r = run_program("env", args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> got;
  const std::string key = "GOMP_SPINCOUNT = '";
  for (size_t at = r.err.find(key); at != std::string::npos; at = r.err.find(key, at + 1)) {
    const size_t from = at + key.size();
    got.push_back(r.err.substr(from, r.err.find('\'', from) - from));
  }
  return got;
}
}  // namespace

TEST(OmpSpin, LibgompRunsWithLmqsSpinCount) {
  const auto got = spin_counts({});
  ASSERT_EQ(got.size(), 2u) << "libgomp loaded once with its default, then in the re-executed lmq";
  EXPECT_EQ(got.back(), "1000");
}

TEST(OmpSpin, UsersSettingWins) {
  EXPECT_EQ(spin_counts({"GOMP_SPINCOUNT=77"}), std::vector<std::string>{"77"});
  const auto passive = spin_counts({"OMP_WAIT_POLICY=passive"});
  ASSERT_EQ(passive.size(), 1u) << "no re-execution when the user chose a wait policy";
  EXPECT_EQ(passive[0], "0");
}
