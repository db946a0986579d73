#include "lmq/formats/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "lmq/error.h"
#include "lmq/formats/atomic_file.h"
#include "lmq/codecs/ggml_blocks.h"

namespace lmq {
namespace {

void write_str(AtomicFile& o, const std::string& s) {
  o.put<uint64_t>(s.size());
  o.write(s.data(), s.size());
}

void write_value(AtomicFile& o, const GgufValue& v) {
  switch (v.type) {
    case GgufType::UINT8: o.put<uint8_t>(uint8_t(std::get<uint64_t>(v.v))); break;
    case GgufType::INT8: o.put<int8_t>(int8_t(std::get<int64_t>(v.v))); break;
    case GgufType::UINT16: o.put<uint16_t>(uint16_t(std::get<uint64_t>(v.v))); break;
    case GgufType::INT16: o.put<int16_t>(int16_t(std::get<int64_t>(v.v))); break;
    case GgufType::UINT32: o.put<uint32_t>(uint32_t(std::get<uint64_t>(v.v))); break;
    case GgufType::INT32: o.put<int32_t>(int32_t(std::get<int64_t>(v.v))); break;
    case GgufType::UINT64: o.put<uint64_t>(std::get<uint64_t>(v.v)); break;
    case GgufType::INT64: o.put<int64_t>(std::get<int64_t>(v.v)); break;
    case GgufType::FLOAT32: o.put<float>(float(std::get<double>(v.v))); break;
    case GgufType::FLOAT64: o.put<double>(std::get<double>(v.v)); break;
    case GgufType::BOOL: o.put<uint8_t>(std::get<bool>(v.v) ? 1 : 0); break;
    case GgufType::STRING: write_str(o, std::get<std::string>(v.v)); break;
    case GgufType::ARRAY: {
      const auto& e = std::get<std::vector<GgufValue>>(v.v);
      o.put<uint32_t>(uint32_t(v.elem_type));
      o.put<uint64_t>(e.size());
      for (const auto& x : e) {
        if (x.type != v.elem_type) fail("GGUF array of {} holds a {} element", gguf_type_name(v.elem_type), gguf_type_name(x.type));
        write_value(o, x);
      }
      break;
    }
  }
}

uint64_t pad_to(uint64_t x, uint64_t a) { return (a - x % a) % a; }

}  // namespace

GgufWriter::GgufWriter(std::string dest, uint64_t alignment) : dest_(std::move(dest)), alignment_(alignment) {
  if (alignment_ == 0 || !std::has_single_bit(alignment_) || alignment_ > (uint64_t(1) << 30))
    fail("{}: GGUF alignment {} is not a power of two up to 2^30", dest_, alignment_);
  if (alignment_ != 32) set("general.alignment", GgufValue::u32(uint32_t(alignment_)));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  if (out_ || finished_) fail("{}: metadata '{}' set after the header was written", dest_, key);
  for (auto& [k, v] : kv_)
    if (k == key) {
      v = std::move(value);
      return;
    }
  kv_.emplace_back(key, std::move(value));
}

GgufWriter::~GgufWriter() = default;

uint64_t GgufWriter::check_tensor(const std::string& name, const std::vector<int64_t>& shape, Format format) {
  if (out_) fail("{}: tensor '{}' added after tensor data started", dest_, name);
  if (shape.size() > 4) fail("{}: tensor '{}' has {} dimensions (GGUF allows 4)", dest_, name, shape.size());
  format_to_ggml_type(format);  // throws for formats GGUF cannot hold
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) fail("{}: tensor '{}' has a negative dimension", dest_, name);
    numel = checked_mul(numel, uint64_t(d), "GGUF tensor size");
  }
  const int64_t row = shape.empty() ? 1 : shape.back();
  if (row % ggml_block_size(format) != 0)
    fail("{}: tensor '{}': row length {} is not a whole number of blocks", dest_, name, row);
  for (const Entry& e : tensors_)
    if (e.name == name) fail("{}: duplicate tensor name '{}'", dest_, name);
  return checked_mul(numel / uint64_t(ggml_block_size(format)), ggml_block_bytes(format), "GGUF tensor size");
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, Format format,
                            const uint8_t* data, uint64_t nbytes) {
  if (streamed_) fail("{}: add_tensor after plan_tensor (buffered and streamed modes do not mix)", dest_);
  const uint64_t want = check_tensor(name, shape, format);
  if (want != nbytes) fail("{}: tensor '{}' has {} bytes, its shape and format need {}", dest_, name, nbytes, want);
  tensors_.push_back({name, shape, format, data, nbytes});
}

void GgufWriter::plan_tensor(const std::string& name, const std::vector<int64_t>& shape, Format format) {
  if (!streamed_ && !tensors_.empty()) fail("{}: plan_tensor after add_tensor (modes do not mix)", dest_);
  streamed_ = true;
  const uint64_t nbytes = check_tensor(name, shape, format);
  tensors_.push_back({name, shape, format, nullptr, nbytes});
}

void GgufWriter::write_header() {
  out_ = std::make_unique<AtomicFile>(dest_);
  AtomicFile& o = *out_;
  o.write("GGUF", 4);
  o.put<uint32_t>(3);
  o.put<uint64_t>(tensors_.size());
  o.put<uint64_t>(kv_.size());
  for (const auto& [k, v] : kv_) {
    write_str(o, k);
    o.put<uint32_t>(uint32_t(v.type));
    write_value(o, v);
  }
  uint64_t off = 0;
  for (const Entry& e : tensors_) {
    write_str(o, e.name);
    o.put<uint32_t>(uint32_t(e.shape.size()));
    for (auto it = e.shape.rbegin(); it != e.shape.rend(); ++it) o.put<uint64_t>(uint64_t(*it));
    o.put<uint32_t>(format_to_ggml_type(e.format));
    o.put<uint64_t>(off);
    off += e.nbytes + pad_to(e.nbytes, alignment_);
  }
  o.zeros(pad_to(o.pos(), alignment_));
}

void GgufWriter::write_tensor(const std::string& name, const uint8_t* data, uint64_t nbytes) {
  if (!streamed_) fail("{}: write_tensor without plan_tensor", dest_);
  if (finished_) fail("{}: write_tensor after finish", dest_);
  if (next_ >= tensors_.size()) fail("{}: write_tensor('{}'): every planned tensor is already written", dest_, name);
  const Entry& e = tensors_[next_];
  if (e.name != name) fail("{}: write_tensor('{}') out of order: '{}' is next", dest_, name, e.name);
  if (e.nbytes != nbytes) fail("{}: tensor '{}' has {} bytes, its shape and format need {}", dest_, name, nbytes, e.nbytes);
  if (!out_) write_header();
  out_->write(data, nbytes);
  out_->zeros(pad_to(nbytes, alignment_));
  ++next_;
}

void GgufWriter::finish() {
  if (finished_) fail("{}: GgufWriter::finish called twice", dest_);
  finished_ = true;
  if (streamed_) {
    if (next_ != tensors_.size())
      fail("{}: {} of {} planned tensors were written", dest_, next_, tensors_.size());
    if (!out_) write_header();  // (no tensors at all)
    out_->commit();
    return;
  }
  write_header();
  for (const Entry& e : tensors_) {
    out_->write(e.data, e.nbytes);
    out_->zeros(pad_to(e.nbytes, alignment_));
  }
  out_->commit();
}

}  // namespace lmq
