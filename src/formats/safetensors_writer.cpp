#include "lmq/formats/safetensors_writer.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <set>

#include "lmq/error.h"
#include "lmq/formats/atomic_file.h"

namespace lmq {

uint64_t StTensorSpec::nbytes() const {
  uint64_t n = st_dtype_size(dtype);
  for (int64_t d : shape) {
    LMQ_CHECK(d >= 0, "tensor '{}': negative dimension", name);
    n *= uint64_t(d);
  }
  return n;
}

struct SafetensorsWriter::Shard {
  std::string file;
  size_t first = 0, count = 0;  // its tensors: specs_[first .. first + count)
  uint64_t data_bytes = 0;
  std::unique_ptr<AtomicFile> out;
};

SafetensorsWriter::SafetensorsWriter(std::string dir, std::vector<StTensorSpec> specs, uint64_t shard_bytes,
                                     std::map<std::string, std::string> metadata)
    : dir_(std::move(dir)), specs_(std::move(specs)), metadata_(std::move(metadata)) {
  std::set<std::string> names;
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (!names.insert(specs_[i].name).second) fail("{}: tensor '{}' named twice", dir_, specs_[i].name);
    const uint64_t n = specs_[i].nbytes();
    // a new shard when this tensor would push a non-empty one over the limit
    if (shards_.empty() || (shards_.back().count > 0 && shards_.back().data_bytes + n > shard_bytes))
      shards_.push_back(Shard{"", i, 0, 0, nullptr});
    shards_.back().count++;
    shards_.back().data_bytes += n;
    total_ += n;
  }
  if (shards_.empty()) shards_.push_back(Shard{});
  for (size_t s = 0; s < shards_.size(); ++s)
    shards_[s].file = shards_.size() == 1 ? "model.safetensors"
                                          : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards_.size());
  open_shard(0);
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::open_shard(size_t s) {
  Shard& sh = shards_[s];
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  uint64_t off = 0;
  for (size_t i = sh.first; i < sh.first + sh.count; ++i) {
    const StTensorSpec& t = specs_[i];
    const uint64_t n = t.nbytes();
    h[t.name] = {{"dtype", std::string(st_dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // the data section starts 8-aligned
  sh.out = std::make_unique<AtomicFile>(dir_ + "/" + sh.file);
  sh.out->put<uint64_t>(header.size());  // little-endian hosts only, as everywhere in lmq
  sh.out->write(header.data(), header.size());
}

void SafetensorsWriter::write(const std::string& name, const void* data, size_t n) {
  LMQ_CHECK(next_ < specs_.size() && specs_[next_].name == name, "safetensors: tensor '{}' out of order", name);
  LMQ_CHECK(n == specs_[next_].nbytes(), "safetensors: tensor '{}' has {} bytes, planned {}", name, n,
            specs_[next_].nbytes());
  Shard& sh = shards_[shard_];
  sh.out->write(data, n);
  ++next_;
  if (next_ == sh.first + sh.count && shard_ + 1 < shards_.size()) open_shard(++shard_);
}

void SafetensorsWriter::commit() {
  LMQ_CHECK(next_ == specs_.size(), "safetensors: {} of {} tensors written", next_, specs_.size());
  for (Shard& sh : shards_) sh.out->commit();
  if (shards_.size() == 1) return;
  nlohmann::ordered_json idx;
  idx["metadata"] = {{"total_size", total_}};
  nlohmann::ordered_json map = nlohmann::ordered_json::object();
  for (const Shard& sh : shards_)
    for (size_t i = sh.first; i < sh.first + sh.count; ++i) map[specs_[i].name] = sh.file;
  idx["weight_map"] = map;
  const std::string text = idx.dump(2) + "\n";
  AtomicFile f(dir_ + "/model.safetensors.index.json");
  f.write(text.data(), text.size());
  f.commit();
}

std::vector<std::string> SafetensorsWriter::files() const {
  std::vector<std::string> v;
  for (const Shard& sh : shards_) v.push_back(sh.file);
  return v;
}

}  // namespace lmq
