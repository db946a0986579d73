// The dependency rule of docs/architecture.md, checked on the sources: each folder of src/ (and
// its headers under include/lmq/) may include only the layers below it.
//   codecs, formats  →  kernels  →  model  →  quant  →  calib  →  eval  →  cli
// (codecs: the weight formats' layouts and traits; formats: file containers, which may read
// codecs; kernels: no file formats). A violation names the file, the line and the header.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// folder → the lmq folders its files must not include
const std::map<std::string, std::set<std::string>> kForbidden = {
    {"codecs", {"formats", "tokenizer", "kernels", "model", "quant", "calib", "eval", "cli"}},
    {"formats", {"tokenizer", "kernels", "model", "quant", "calib", "eval", "cli"}},
    // tokenizer/ reads formats/ (a GGUF vocabulary), nothing else of lmq's
    {"tokenizer", {"codecs", "kernels", "model", "quant", "calib", "eval", "cli"}},
    {"kernels", {"formats", "model", "quant", "calib", "eval", "cli"}},
    {"model", {"quant", "calib", "eval", "cli"}},
    {"quant", {"calib", "eval", "cli"}},
    {"calib", {"eval", "cli"}},
    {"eval", {"cli"}},
};

std::vector<std::string> violations(const std::string& root) {
  const std::regex include_re(R"(^\s*#\s*include\s*"lmq/([a-z_]+)/)");
  std::vector<std::string> found;
  for (const auto& [folder, forbidden] : kForbidden)
    for (const fs::path& dir : {fs::path(root) / "src" / folder, fs::path(root) / "include" / "lmq" / folder}) {
      if (!fs::exists(dir)) continue;
      for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (!e.is_regular_file()) continue;
        std::ifstream in(e.path());
        std::string line;
        for (int n = 1; std::getline(in, line); ++n) {
          std::smatch m;
          if (std::regex_search(line, m, include_re) && forbidden.contains(m[1].str()))
            found.push_back(fs::relative(e.path(), root).string() + ":" + std::to_string(n) + ": " + line);
        }
      }
    }
  return found;
}

TEST(Layering, NoIncludeAgainstTheDependencyDirection) {
  const std::vector<std::string> v = violations(LMQ_SOURCE_DIR);
  std::string all;
  for (const auto& s : v) all += s + "\n";
  EXPECT_TRUE(v.empty()) << "includes against the dependency direction (docs/architecture.md):\n" << all;
}

// The check itself: a file that breaks the rule is reported.
TEST(Layering, CheckFindsAViolation) {
  const fs::path root = fs::temp_directory_path() / ("lmq-layering-" + std::to_string(::getpid()));
  fs::create_directories(root / "src" / "kernels");
  std::ofstream(root / "src" / "kernels" / "bad.cpp") << "#include \"lmq/kernels/vec.h\"\n#include \"lmq/model/model.h\"\n";
  const std::vector<std::string> v = violations(root.string());
  fs::remove_all(root);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_NE(v[0].find("src/kernels/bad.cpp:2"), std::string::npos) << v[0];
}

}  // namespace
