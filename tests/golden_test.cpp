// The golden-output guard of issue 14: the files that a fixed set of `lmq quantize` commands
// writes, and the quality fields of `lmq eval --json` on some of them, hash to the digests the
// code had before the structural redesign (tests/golden/digests.txt, made by
// scripts/golden-digests.sh). A change that moves one byte of any of them fails here; one that
// changes an output on purpose regenerates the file with the script and says why in its commit.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <sstream>
#include <string>

#include "test_support.h"

namespace {

// "sha256  name" lines → name → digest
std::map<std::string, std::string> parse_digests(const std::string& text) {
  std::map<std::string, std::string> m;
  std::istringstream in(text);
  for (std::string digest, name; in >> digest >> name;) m[name] = digest;
  return m;
}

TEST(Golden, OutputsByteIdentical) {
  const std::string want_text = lmq::test::read_file(std::string(LMQ_SOURCE_DIR) + "/tests/golden/digests.txt");
  const std::map<std::string, std::string> want = parse_digests(want_text);
  ASSERT_GE(want.size(), 15u) << "tests/golden/digests.txt is incomplete";
  const std::string cmd = std::string("bash '") + LMQ_SOURCE_DIR + "/scripts/golden-digests.sh' '" + LMQ_BINARY +
                          "' '" + lmq::test::shared_path("") + "' 2";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string got_text;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) got_text.append(buf, n);
  ASSERT_EQ(pclose(p), 0) << "scripts/golden-digests.sh failed:\n" << got_text;
  const std::map<std::string, std::string> got = parse_digests(got_text);
  for (const auto& [name, digest] : want) {
    const auto it = got.find(name);
    ASSERT_NE(it, got.end()) << name << ": not written";
    EXPECT_EQ(it->second, digest) << name << ": the bytes differ from the recorded output";
  }
  EXPECT_EQ(got.size(), want.size()) << "the script writes other files than the recorded ones:\n" << got_text;
}

}  // namespace
