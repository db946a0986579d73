#include "lmq/formats/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "lmq/error.h"
#include "lmq/formats/ggml_blocks.h"

namespace lmq {
namespace {

// Buffered writer over a file descriptor.
class Out {
 public:
  Out(int fd, std::string path) : fd_(fd), path_(std::move(path)) { buf_.reserve(1 << 20); }
  void bytes(const void* p, size_t n) {
    const auto* c = static_cast<const char*>(p);
    if (n >= (1u << 20)) {
      flush();
      raw(c, n);
      return;
    }
    if (buf_.size() + n > (1u << 20)) flush();
    buf_.append(c, n);
  }
  template <typename T>
  void put(T v) { bytes(&v, sizeof(T)); }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void zeros(size_t n) {
    static const char z[64] = {};
    while (n) {
      const size_t k = std::min<size_t>(n, sizeof z);
      bytes(z, k);
      n -= k;
    }
  }
  uint64_t pos() const { return written_ + buf_.size(); }
  void flush() {
    raw(buf_.data(), buf_.size());
    buf_.clear();
  }

 private:
  void raw(const char* p, size_t n) {
    while (n) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("{}: write failed: {}", path_, std::strerror(errno));
      }
      p += w;
      n -= size_t(w);
      written_ += uint64_t(w);
    }
  }
  int fd_;
  std::string path_;
  std::string buf_;
  uint64_t written_ = 0;
};

void write_value(Out& o, const GgufValue& v) {
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
    case GgufType::STRING: o.str(std::get<std::string>(v.v)); break;
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
  for (auto& [k, v] : kv_)
    if (k == key) {
      v = std::move(value);
      return;
    }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, Format format,
                            const uint8_t* data, uint64_t nbytes) {
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
  const uint64_t want = checked_mul(numel / uint64_t(ggml_block_size(format)), ggml_block_bytes(format), "GGUF tensor size");
  if (want != nbytes) fail("{}: tensor '{}' has {} bytes, its shape and format need {}", dest_, name, nbytes, want);
  for (const Entry& e : tensors_)
    if (e.name == name) fail("{}: duplicate tensor name '{}'", dest_, name);
  tensors_.push_back({name, shape, format, data, nbytes});
}

void GgufWriter::finish() {
  if (finished_) fail("{}: GgufWriter::finish called twice", dest_);
  finished_ = true;
  std::string tmpl = dest_ + ".tmp-XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) fail("{}: cannot create a temporary file beside it: {}", dest_, std::strerror(errno));
  try {
    Out o(fd, tmpl);
    o.bytes("GGUF", 4);
    o.put<uint32_t>(3);
    o.put<uint64_t>(tensors_.size());
    o.put<uint64_t>(kv_.size());
    for (const auto& [k, v] : kv_) {
      o.str(k);
      o.put<uint32_t>(uint32_t(v.type));
      write_value(o, v);
    }
    uint64_t off = 0;
    for (const Entry& e : tensors_) {
      o.str(e.name);
      o.put<uint32_t>(uint32_t(e.shape.size()));
      for (auto it = e.shape.rbegin(); it != e.shape.rend(); ++it) o.put<uint64_t>(uint64_t(*it));
      o.put<uint32_t>(format_to_ggml_type(e.format));
      o.put<uint64_t>(off);
      off += e.nbytes + pad_to(e.nbytes, alignment_);
    }
    o.zeros(pad_to(o.pos(), alignment_));
    for (const Entry& e : tensors_) {
      o.bytes(e.data, e.nbytes);
      o.zeros(pad_to(e.nbytes, alignment_));
    }
    o.flush();
    if (::fsync(fd) != 0) fail("{}: fsync failed: {}", tmpl, std::strerror(errno));
    if (::close(fd) != 0) {
      ::unlink(tmpl.c_str());
      fail("{}: close failed: {}", tmpl, std::strerror(errno));
    }
  } catch (...) {
    ::close(fd);
    ::unlink(tmpl.c_str());
    throw;
  }
  if (::rename(tmpl.c_str(), dest_.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmpl.c_str());
    fail("{}: cannot rename the finished file into place: {}", dest_, std::strerror(e));
  }
  // Make the rename durable too.
  std::filesystem::path dir = std::filesystem::path(dest_).parent_path();
  if (dir.empty()) dir = std::filesystem::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace lmq
