// SafetensorsWriter (formats/safetensors_writer.h) read back by the existing SafetensorsFile
// reader: bytes, dtypes, shapes, the {"format": "pt"} metadata, the 8-aligned header, shards
// and the index; AtomicDir (formats/atomic_dir.h): nothing visible before commit, an existing
// model directory swapped whole, other paths refused (BadInputAtomicDir).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "lmq/error.h"
#include "lmq/formats/atomic_dir.h"
#include "lmq/formats/safetensors.h"
#include "lmq/formats/safetensors_writer.h"
#include "test_support.h"

using namespace lmq;
namespace fs = std::filesystem;
using lmq::test::read_file;
using lmq::test::temp_dir;
using lmq::test::write_file;

namespace {

struct Fixture {
  std::vector<StTensorSpec> specs;
  std::vector<std::vector<uint8_t>> data;
};

// Tensors of several dtypes (odd byte counts included), each filled with its own byte pattern.
Fixture fixture() {
  Fixture f;
  f.specs = {{"a.weight", StDType::BF16, {3, 5}},   {"b.qweight", StDType::I32, {4, 6}},
             {"c.scales", StDType::F16, {2, 3}},    {"d.weight", StDType::I8, {7, 3}},
             {"e.shape", StDType::I64, {2}},        {"f.norm", StDType::F32, {9}}};
  for (size_t i = 0; i < f.specs.size(); ++i) {
    std::vector<uint8_t> d(f.specs[i].nbytes());
    for (size_t k = 0; k < d.size(); ++k) d[k] = uint8_t(k * 7 + i * 31 + 1);
    f.data.push_back(std::move(d));
  }
  return f;
}

void write_all(const std::string& dir, const Fixture& f, uint64_t shard) {
  SafetensorsWriter w(dir, f.specs, shard);
  for (size_t i = 0; i < f.specs.size(); ++i) w.write(f.specs[i].name, f.data[i].data(), f.data[i].size());
  w.commit();
}

// Every tensor of f found, with its bytes, dtype and shape, in the files of dir.
void expect_tensors(const std::string& dir, const std::vector<std::string>& files, const Fixture& f) {
  std::map<std::string, const StTensor*> found;
  std::vector<std::unique_ptr<SafetensorsFile>> opened;
  for (const std::string& name : files) {
    opened.push_back(std::make_unique<SafetensorsFile>(dir + "/" + name));
    EXPECT_EQ(opened.back()->metadata().at("format"), "pt");
    for (const StTensor& t : opened.back()->tensors()) found[t.tensor.name] = &t;
    const std::string bytes = read_file(dir + "/" + name);
    uint64_t hlen = 0;
    std::memcpy(&hlen, bytes.data(), 8);
    EXPECT_EQ((8 + hlen) % 8, 0u) << name;  // the data section starts 8-aligned
  }
  ASSERT_EQ(found.size(), f.specs.size());
  for (size_t i = 0; i < f.specs.size(); ++i) {
    const StTensor* t = found.at(f.specs[i].name);
    EXPECT_EQ(t->dtype, f.specs[i].dtype);
    EXPECT_EQ(t->tensor.shape, f.specs[i].shape);
    ASSERT_EQ(t->tensor.nbytes, f.data[i].size());
    EXPECT_EQ(std::memcmp(t->tensor.data, f.data[i].data(), f.data[i].size()), 0) << f.specs[i].name;
  }
}

}  // namespace

TEST(SafetensorsWriter, OneFileReadsBack) {
  const std::string dir = temp_dir();
  const Fixture f = fixture();
  write_all(dir, f, kDefaultShardBytes);
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
  expect_tensors(dir, {"model.safetensors"}, f);
}

TEST(SafetensorsWriter, ShardsAndIndex) {
  const std::string dir = temp_dir();
  const Fixture f = fixture();
  write_all(dir, f, 64);  // a.weight 30 + b 96 (alone: over the limit) + ...
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 3u);
  EXPECT_EQ(files[0], fmt::format("model-00001-of-{:05d}.safetensors", files.size()));
  expect_tensors(dir, files, f);
  const auto idx = nlohmann::json::parse(read_file(dir + "/model.safetensors.index.json"));
  uint64_t total = 0;
  for (const auto& d : f.data) total += d.size();
  EXPECT_EQ(idx["metadata"]["total_size"].get<uint64_t>(), total);
  ASSERT_EQ(idx["weight_map"].size(), f.specs.size());
  for (const auto& [name, file] : idx["weight_map"].items()) {
    const SafetensorsFile st(dir + "/" + file.get<std::string>());
    EXPECT_NE(st.find(name), nullptr) << name << " not in " << file;
  }
  for (const std::string& file : files) {  // no shard over the limit unless it holds one tensor
    const SafetensorsFile st(dir + "/" + file);
    uint64_t n = 0;
    for (const StTensor& t : st.tensors()) n += t.tensor.nbytes;
    EXPECT_TRUE(n <= 64 || st.tensors().size() == 1) << file;
  }
}

TEST(SafetensorsWriter, NothingVisibleWithoutCommit) {
  const std::string dir = temp_dir();
  const Fixture f = fixture();
  {
    SafetensorsWriter w(dir, f.specs);
    w.write(f.specs[0].name, f.data[0].data(), f.data[0].size());
  }
  EXPECT_TRUE(fs::is_empty(dir));  // the temporary file went with the writer
}

TEST(AtomicDir, ReplacesAModelDirectoryWhole) {
  const std::string dest = temp_dir() + "/out";
  {
    AtomicDir d(dest);
    write_file(d.path() + "/config.json", "{\"v\": 1}");
    write_file(d.path() + "/old-only.txt", "x");
    EXPECT_FALSE(fs::exists(dest));
    d.commit();
  }
  {
    AtomicDir d(dest);
    write_file(d.path() + "/config.json", "{\"v\": 2}");
    EXPECT_EQ(read_file(dest + "/config.json"), "{\"v\": 1}");  // untouched until commit
    d.commit();
  }
  EXPECT_EQ(read_file(dest + "/config.json"), "{\"v\": 2}");
  EXPECT_FALSE(fs::exists(dest + "/old-only.txt"));
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(fs::path(dest).parent_path())) ++entries;
  EXPECT_EQ(entries, 1u);  // no temporary or old directory left beside it
}

TEST(AtomicDir, AbandonedLeavesNothing) {
  const std::string parent = temp_dir();
  {
    AtomicDir d(parent + "/out");
    write_file(d.path() + "/config.json", "{}");
  }
  EXPECT_TRUE(fs::is_empty(parent));
}

TEST(BadInputAtomicDir, RefusesAFileOrAForeignDirectory) {
  const std::string parent = temp_dir();
  write_file(parent + "/file", "x");
  try {
    AtomicDir d(parent + "/file");
    FAIL() << "accepted a file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not a directory"), std::string::npos) << e.what();
  }
  fs::create_directory(parent + "/home");
  write_file(parent + "/home/notes.txt", "precious");
  try {
    AtomicDir d(parent + "/home");
    FAIL() << "accepted a directory that holds no model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a model directory"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(parent + "/home/notes.txt"), "precious");
}
