// GGUF reader: llama.cpp's fixtures parse, dequantize and agree with each other; hostile or
// broken files are refused with one lmq::Error naming the file.
#include "lmq/formats/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "lmq/error.h"
#include "lmq/codecs/ggml_blocks.h"
#include "lmq/formats/gguf_writer.h"
#include "test_support.h"

using namespace lmq;
using lmq::test::shared_path;

namespace {

std::string fixture(const std::string& name) {
  return shared_path("gguf/" + name);
}

#define REQUIRE_FIXTURE(p) \
  if (!std::filesystem::exists(p)) GTEST_SKIP() << "missing fixture " << p

std::map<Format, int> count_types(const GgufFile& g) {
  std::map<Format, int> m;
  for (const Tensor& t : g.tensors()) m[t.format]++;
  return m;
}

std::vector<float> dequant(const Tensor& t) {
  std::vector<float> y(size_t(t.numel()));
  ggml_dequantize_row(t.format, t.data, y.data(), t.numel());
  return y;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

TEST(GgufFixtures, TensorTypeCounts) {
  struct Want {
    const char* file;
    std::map<Format, int> counts;
  };
  const Want wants[] = {
      {"lmq-llama-25m-Q8_0.gguf", {{Format::Q8_0, 57}, {Format::F32, 17}}},
      {"lmq-llama-25m-Q4_0.gguf", {{Format::Q4_0, 56}, {Format::Q8_0, 1}, {Format::F32, 17}}},
      {"lmq-qwen2-21m-Q4_K_M.gguf", {{Format::Q4_K, 39}, {Format::Q6_K, 5}, {Format::F32, 31}}},
      {"lmq-qwen2-21m-Q3_K_M.gguf",
       {{Format::Q3_K, 25}, {Format::Q4_K, 16}, {Format::Q5_K, 2}, {Format::Q6_K, 1}, {Format::F32, 31}}},
  };
  for (const Want& w : wants) {
    const std::string p = fixture(w.file);
    REQUIRE_FIXTURE(p);
    GgufFile g(p);
    EXPECT_EQ(g.version(), 3u) << w.file;
    EXPECT_EQ(count_types(g), w.counts) << w.file;
  }
}

TEST(GgufFixtures, Metadata) {
  const std::string p = fixture("lmq-llama-25m-Q8_0.gguf");
  REQUIRE_FIXTURE(p);
  GgufFile g(p);
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_GT(g.get_u32("llama.block_count"), 0u);
  EXPECT_EQ(g.get_f32("llama.rope.freq_base"), 10000.0f);
  const auto tokens = g.get_string_array("tokenizer.ggml.tokens");
  EXPECT_EQ(tokens.size(), 32000u);
  EXPECT_EQ(g.alignment(), 32u);
  // Wrong-type and missing keys are clear errors naming the file and key.
  try {
    g.get_u32("general.architecture");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("general.architecture"), std::string::npos);
  }
  EXPECT_THROW(g.get_string("no.such.key"), Error);
  EXPECT_THROW(g.get_string_array("llama.block_count"), Error);
  EXPECT_EQ(g.get_u32_or("no.such.key", 7), 7u);

  const std::string q = fixture("lmq-qwen2-21m-Q4_K_M.gguf");
  REQUIRE_FIXTURE(q);
  GgufFile h(q);
  EXPECT_EQ(h.get_string("general.architecture"), "qwen2");
  EXPECT_EQ(g.get_u32("llama.block_count"), 8u);
  EXPECT_EQ(h.get_u32("qwen2.block_count"), 6u);
  EXPECT_EQ(h.get_string_array("tokenizer.ggml.tokens").size(), 32000u);
  EXPECT_EQ(h.get_f32("qwen2.rope.freq_base"), 1000000.0f);
}

// Shapes are reversed to PyTorch order; every tensor dequantizes to finite values; tensor
// data tiles the data section exactly (each tensor padded to the alignment).
TEST(GgufFixtures, ShapesDequantizeAndSizesAddUp) {
  for (const char* f : {"lmq-llama-25m-Q8_0.gguf", "lmq-llama-25m-Q4_0.gguf", "lmq-qwen2-21m-Q4_K_M.gguf",
                        "lmq-qwen2-21m-Q3_K_M.gguf"}) {
    const std::string p = fixture(f);
    REQUIRE_FIXTURE(p);
    GgufFile g(p);
    uint64_t total = 0;
    for (size_t i = 0; i < g.tensors().size(); ++i) {
      const Tensor& t = g.tensors()[i];
      EXPECT_EQ(g.tensor_offset(i), total) << f << " " << t.name;
      total += align_up(t.nbytes, g.alignment());
      EXPECT_EQ(g.find(t.name), &t);
      const auto y = dequant(t);
      for (float v : y) ASSERT_TRUE(std::isfinite(v)) << f << " " << t.name;
    }
    EXPECT_EQ(g.data_offset() + total, std::filesystem::file_size(p)) << f;
    const Tensor* emb = g.find("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    ASSERT_EQ(emb->shape.size(), 2u);
    const std::string arch = g.get_string("general.architecture");
    EXPECT_EQ(emb->shape, (std::vector<int64_t>{32000, int64_t(g.get_u32(arch + ".embedding_length"))})) << f;
    EXPECT_EQ(g.find("no.such.tensor"), nullptr);
  }
}

namespace {

// Re-quantizes every tensor of type f with lmq's reference quantizer from its own
// dequantization and counts the blocks whose bytes differ from the file's.
//
// Why this should reproduce llama.cpp's bytes exactly: llama-quantize (no imatrix) writes
// quantize_row_q8_0_ref / q4_0_ref output. In such a block the element of largest magnitude
// got the extreme code (Q8_0: +-127; Q4_0: code 0, i.e. -8 steps) and the stored scale is
// dh = f16(d). Dequantized, that element is exactly 127*dh (resp. -8*dh), still the largest
// in magnitude, so re-quantizing recomputes d' = 127*dh/127 (resp. -8*dh/-8, exact), whose
// f16 rounding is dh again, and every x/d' lands within float rounding of its integer code,
// which the rounding (roundf resp. trunc(. + 8.5)) maps back to the same code. The one
// exception is a block whose d was non-zero but rounded to f16 zero (|d| < 2^-25); then the
// file keeps meaningless codes that no re-quantization can recover; such blocks are counted
// separately and must be the only mismatches.
struct Fixpoint {
  int64_t blocks = 0, mismatched = 0, zero_scale = 0;
};
Fixpoint requantize_fixpoint(const GgufFile& g, Format f) {
  Fixpoint r;
  const size_t bb = ggml_block_bytes(f);
  for (const Tensor& t : g.tensors()) {
    if (t.format != f) continue;
    const auto y = dequant(t);
    std::vector<uint8_t> q(size_t(t.nbytes));
    ggml_quantize_row(f, y.data(), q.data(), t.numel());
    for (uint64_t b = 0; b < t.nbytes / bb; ++b) {
      ++r.blocks;
      if (std::memcmp(q.data() + b * bb, t.data + b * bb, bb) == 0) continue;
      uint16_t d;
      std::memcpy(&d, t.data + b * bb, 2);
      if ((d & 0x7fff) == 0) ++r.zero_scale;
      else ++r.mismatched;
    }
  }
  return r;
}

}  // namespace

TEST(GgufFixtures, Q8_0QuantizerReproducesLlamaCppBytes) {
  const std::string p = fixture("lmq-llama-25m-Q8_0.gguf");
  REQUIRE_FIXTURE(p);
  GgufFile g(p);
  const Fixpoint r = requantize_fixpoint(g, Format::Q8_0);
  EXPECT_GT(r.blocks, 100000);
  EXPECT_EQ(r.mismatched, 0) << "of " << r.blocks << " blocks";
  std::printf("  %lld blocks, %lld with a scale flushed to f16 zero\n", (long long)r.blocks, (long long)r.zero_scale);
}

TEST(GgufFixtures, Q4_0QuantizerReproducesLlamaCppBytes) {
  const std::string p = fixture("lmq-llama-25m-Q4_0.gguf");
  REQUIRE_FIXTURE(p);
  GgufFile g(p);
  const Fixpoint r = requantize_fixpoint(g, Format::Q4_0);
  EXPECT_GT(r.blocks, 100000);
  EXPECT_EQ(r.mismatched, 0) << "of " << r.blocks << " blocks";
  // The tied embedding kept at Q8_0 in this file too.
  const Fixpoint r8 = requantize_fixpoint(g, Format::Q8_0);
  EXPECT_EQ(r8.mismatched, 0) << "of " << r8.blocks << " blocks";
}

namespace {
double rel_rms_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}
}  // namespace

// The K-quant dequantizers have no byte-exact oracle here, so they are checked against each
// other: the two qwen2 files quantize the same weights with different K-types (Q3_K vs Q4_K,
// Q5_K vs Q4_K, Q4_K vs Q6_K ...). A layout mistake in any of them (wrong nibble, scale or
// sign) makes the pair disagree wildly; correct dequantizers agree to within the coarser
// type's quantization noise. Same for the legacy Q4_0 vs Q8_0 of the llama files.
TEST(GgufFixtures, DifferentQuantizationsOfTheSameModelAgree) {
  struct Pair {
    const char* a;
    const char* b;
  };
  const Pair pairs[] = {
      {"lmq-qwen2-21m-Q3_K_M.gguf", "lmq-qwen2-21m-Q4_K_M.gguf"},
      {"lmq-llama-25m-Q4_0.gguf", "lmq-llama-25m-Q8_0.gguf"},
  };
  for (const Pair& pr : pairs) {
    const std::string pa = fixture(pr.a), pb = fixture(pr.b);
    REQUIRE_FIXTURE(pa);
    REQUIRE_FIXTURE(pb);
    GgufFile a(pa), b(pb);
    std::map<std::pair<Format, Format>, int> seen;
    double worst = 0;
    std::map<std::pair<Format, Format>, double> worst_by;
    for (const Tensor& ta : a.tensors()) {
      const Tensor* tb = b.find(ta.name);
      ASSERT_NE(tb, nullptr) << ta.name;
      ASSERT_EQ(ta.shape, tb->shape) << ta.name;
      if (ta.format == Format::F32 && tb->format == Format::F32) {
        EXPECT_EQ(std::memcmp(ta.data, tb->data, ta.nbytes), 0) << ta.name;
        continue;
      }
      seen[{ta.format, tb->format}]++;
      if (ta.format == tb->format) {
        // llama.cpp's quantizers are deterministic: same input, same type, same bytes.
        EXPECT_EQ(std::memcmp(ta.data, tb->data, ta.nbytes), 0) << ta.name;
        continue;
      }
      const double rel = rel_rms_diff(dequant(ta), dequant(*tb));
      worst = std::max(worst, rel);
      double& w = worst_by[{ta.format, tb->format}];
      w = std::max(w, rel);
      // Limits sit ~30% above what correct code gives (Q3_K ~0.17, Q4_K ~0.08 relative rms
      // error); a mis-decoded nibble, bit or scale gives ~1 or more.
      const bool has_q3 = ta.format == Format::Q3_K || tb->format == Format::Q3_K;
      const double limit = has_q3 ? 0.22 : ta.format == Format::Q4_0 ? 0.12 : 0.105;
      EXPECT_LT(rel, limit) << pr.a << " vs " << pr.b << " " << ta.name;
      EXPECT_GT(rel, 0.0) << ta.name;
    }
    for (auto& [k, w] : worst_by)
      std::printf("  %s vs %s: types %d vs %d: worst relative rms difference %.4f\n", pr.a, pr.b, int(k.first),
                  int(k.second), w);
    // Every K-type pairing the files offer was exercised.
    if (std::string(pr.a).find("qwen2") != std::string::npos) {
      EXPECT_GT((seen[{Format::Q3_K, Format::Q4_K}]), 0);
      EXPECT_GT((seen[{Format::Q5_K, Format::Q4_K}]), 0);
      EXPECT_GT((seen[{Format::Q4_K, Format::Q6_K}]), 0);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Hand-built files: a tiny little-endian byte builder.
namespace {

struct Bytes {
  std::string b;
  template <typename T>
  Bytes& put(T v) {
    char tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.append(tmp, sizeof(T));
    return *this;
  }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    b += s;
    return *this;
  }
  Bytes& pad(size_t a) {
    while (b.size() % a) b.push_back('\0');
    return *this;
  }
};

struct TInfo {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type;
  uint64_t offset;
};

// A GGUF file: header, the given raw KV bytes (n_kv entries), tensor infos, padding, data.
std::string make_gguf(const std::vector<TInfo>& tensors, const std::string& kvs, uint64_t n_kv,
                      uint64_t data_bytes, uint32_t version = 3, size_t align = 32) {
  Bytes g;
  g.b = "GGUF";
  g.u32(version).u64(tensors.size()).u64(n_kv);
  g.b += kvs;
  for (const TInfo& t : tensors) {
    g.str(t.name).u32(uint32_t(t.ne.size()));
    for (uint64_t d : t.ne) g.u64(d);
    g.u32(t.type).u64(t.offset);
  }
  g.pad(align);
  for (uint64_t i = 0; i < data_bytes; ++i) g.b.push_back(char(i * 7));
  return g.b;
}

std::string kv_string(const std::string& k, const std::string& v) {
  Bytes b;
  b.str(k).u32(8).str(v);
  return b.b;
}
std::string kv_u32(const std::string& k, uint32_t v) {
  Bytes b;
  b.str(k).u32(4).u32(v);
  return b.b;
}

// A valid little file: one 2x32 Q8_0 tensor and one 4-element F32 tensor.
std::string valid_file() {
  return make_gguf({{"w", {32, 2}, 8, 0}, {"n", {4}, 0, 96}}, kv_string("general.architecture", "llama"), 1, 112);
}

std::string write_temp(const std::string& bytes, const std::string& name = "t.gguf") {
  const std::string p = lmq::test::temp_dir() + "/" + name;
  lmq::test::write_file(p, bytes);
  return p;
}

// Opening `bytes` must throw lmq::Error whose one-line message names the file and contains `what`.
void expect_refused(const std::string& bytes, const std::string& what) {
  const std::string p = write_temp(bytes);
  try {
    GgufFile g(p);
    ADD_FAILURE() << "accepted a bad file; expected: " << what;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace

TEST(GgufReader, ValidHandBuiltFile) {
  const std::string p = write_temp(valid_file());
  GgufFile g(p);
  EXPECT_EQ(g.version(), 3u);
  ASSERT_EQ(g.tensors().size(), 2u);
  const Tensor* w = g.find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(w->format, Format::Q8_0);
  EXPECT_EQ(w->nbytes, 68u);
  const Tensor* n = g.find("n");
  EXPECT_EQ(n->shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(n->data - w->data, 96);
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  // Version 2 has the same layout.
  GgufFile g2(write_temp(make_gguf({{"w", {32}, 8, 0}}, "", 0, 34, 2)));
  EXPECT_EQ(g2.version(), 2u);
}

TEST(GgufReader, AllMetadataTypes) {
  Bytes kv;
  kv.str("u8").u32(0).put<uint8_t>(200);
  kv.str("i8").u32(1).put<int8_t>(-100);
  kv.str("u16").u32(2).put<uint16_t>(60000);
  kv.str("i16").u32(3).put<int16_t>(-30000);
  kv.str("u32").u32(4).u32(4000000000u);
  kv.str("i32").u32(5).put<int32_t>(-2000000000);
  kv.str("f32").u32(6).put<float>(1.5f);
  kv.str("bool").u32(7).put<uint8_t>(1);
  kv.str("str").u32(8).str("h\xc3\xa9llo");
  kv.str("u64").u32(10).u64(~uint64_t(0));
  kv.str("i64").u32(11).put<int64_t>(INT64_MIN);
  kv.str("f64").u32(12).put<double>(-0.125);
  kv.str("strs").u32(9).u32(8).u64(3).str("a").str("").str("ccc");
  // array of 2 arrays of int32: [[1,2],[3]]
  kv.str("nested").u32(9).u32(9).u64(2);
  kv.u32(5).u64(2).put<int32_t>(1).put<int32_t>(2);
  kv.u32(5).u64(1).put<int32_t>(3);
  kv.str("empty").u32(9).u32(6).u64(0);
  GgufFile g(write_temp(make_gguf({}, kv.b, 15, 0)));
  EXPECT_EQ(g.metadata().size(), 15u);
  EXPECT_EQ(g.get_u32("u8"), 200u);
  EXPECT_EQ(g.get_i64("i8"), -100);
  EXPECT_EQ(g.get_u32("u16"), 60000u);
  EXPECT_EQ(g.get_i64("i16"), -30000);
  EXPECT_EQ(g.get_u32("u32"), 4000000000u);
  EXPECT_EQ(g.get_i64("i32"), -2000000000);
  EXPECT_EQ(g.get_f32("f32"), 1.5f);
  EXPECT_TRUE(g.get_bool("bool"));
  EXPECT_EQ(g.get_string("str"), "h\xc3\xa9llo");
  EXPECT_EQ(g.get_u64("u64"), ~uint64_t(0));
  EXPECT_EQ(g.get_i64("i64"), INT64_MIN);
  EXPECT_EQ(g.get_f32("f64"), -0.125f);
  EXPECT_EQ(g.get_string_array("strs"), (std::vector<std::string>{"a", "", "ccc"}));
  const GgufValue& nested = g.get("nested");
  EXPECT_EQ(nested, GgufValue::array(GgufType::ARRAY, {GgufValue::array(GgufType::INT32, {GgufValue::i32(1), GgufValue::i32(2)}),
                                                       GgufValue::array(GgufType::INT32, {GgufValue::i32(3)})}));
  EXPECT_EQ(g.get("i8"), GgufValue::i8(-100));
  EXPECT_THROW(g.get_u32("i8"), Error);    // negative
  EXPECT_THROW(g.get_u32("u64"), Error);   // too large
  EXPECT_THROW(g.get_i64("u64"), Error);
  EXPECT_THROW(g.get_bool("u8"), Error);
  EXPECT_THROW(g.get_string_array("nested"), Error);
  EXPECT_THROW(g.get_f32("str"), Error);
}

TEST(GgufReader, EveryTruncationIsRefused) {
  const std::string full = valid_file();
  for (size_t n = 0; n < full.size(); ++n) {
    const std::string p = write_temp(full.substr(0, n));
    try {
      GgufFile g(p);
      ADD_FAILURE() << "accepted a file truncated to " << n << " of " << full.size() << " bytes";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
}

TEST(GgufReader, BadMagic) {
  std::string f = valid_file();
  f[3] = 'G';
  expect_refused(f, "not a GGUF file");
  expect_refused("", "not a GGUF file");
}

TEST(GgufReader, UnsupportedVersions) {
  expect_refused(make_gguf({}, "", 0, 0, 1), "version 1 is not supported");
  expect_refused(make_gguf({}, "", 0, 0, 99), "unsupported GGUF version 99");
  expect_refused(make_gguf({}, "", 0, 0, 0x03000000), "byte-swapped");
}

TEST(GgufReader, TensorDataOutOfBounds) {
  expect_refused(make_gguf({{"w", {32, 2}, 8, 0}}, "", 0, 67), "outside the 67-byte data section");
  expect_refused(make_gguf({{"w", {32, 2}, 8, 64}}, "", 0, 100), "tensor 'w'");
  expect_refused(make_gguf({{"w", {32}, 8, ~uint64_t(0) & ~uint64_t(31)}}, "", 0, 100), "outside");
}

TEST(GgufReader, OverlappingTensors) {
  expect_refused(make_gguf({{"a", {32, 2}, 8, 0}, {"b", {32}, 8, 64}}, "", 0, 128), "overlap");
}

TEST(GgufReader, OverflowingDims) {
  expect_refused(make_gguf({{"w", {32, uint64_t(1) << 40, uint64_t(1) << 40}, 8, 0}}, "", 0, 68), "overflows");
  expect_refused(make_gguf({{"w", {~uint64_t(0)}, 0, 0}}, "", 0, 68), "negative or too large");
  // Element count fits but the byte count does not.
  expect_refused(make_gguf({{"w", {uint64_t(1) << 31, uint64_t(1) << 31}, 1, 0}}, "", 0, 68), "outside");
  // ... or where the byte count itself overflows 64 bits (2^62 F32 values).
  expect_refused(make_gguf({{"w", {uint64_t(1) << 31, uint64_t(1) << 31}, 0, 0}}, "", 0, 68), "byte size overflows");
  expect_refused(make_gguf({{"w", {32, 1, 1, 1, 1}, 8, 0}}, "", 0, 68), "5 dimensions");
}

TEST(GgufReader, UnknownTensorType) {
  // TQ1_0 (34): a ternary type lmq does not read
  expect_refused(make_gguf({{"blk.0.w", {256}, 34, 0}}, "", 0, 256), "tensor 'blk.0.w': unsupported ggml tensor type id 34");
  expect_refused(make_gguf({{"w", {32}, 4, 0}}, "", 0, 256), "type id 4");  // removed Q4_2
}

TEST(GgufReader, RowNotWholeBlocks) {
  expect_refused(make_gguf({{"w", {48, 2}, 8, 0}}, "", 0, 256), "row length 48 is not a multiple");
}

TEST(GgufReader, DuplicateTensorNames) {
  expect_refused(make_gguf({{"w", {32}, 8, 0}, {"w", {32}, 8, 64}}, "", 0, 128), "duplicate tensor name 'w'");
}

TEST(GgufReader, DuplicateMetadataKey) {
  expect_refused(make_gguf({}, kv_u32("a", 1) + kv_u32("a", 2), 2, 0), "duplicate metadata key");
}

TEST(GgufReader, StringLongerThanFile) {
  Bytes kv;
  kv.u64(uint64_t(1) << 40);  // key length
  expect_refused(make_gguf({}, kv.b + "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 1, 0), "string length 1099511627776 exceeds");
  Bytes kv2;
  kv2.str("general.name").u32(8).u64(1000).b += "short";
  expect_refused(make_gguf({}, kv2.b, 1, 0), "metadata 'general.name': string length 1000 exceeds");
  Bytes kv3;
  kv3.str("tokens").u32(9).u32(8).u64(uint64_t(1) << 61);
  expect_refused(make_gguf({}, kv3.b, 1, 0), "cannot fit");
}

TEST(GgufReader, BadValueTypes) {
  Bytes kv;
  kv.str("x").u32(13).u32(0);
  expect_refused(make_gguf({}, kv.b, 1, 0), "unknown value type 13");
  Bytes kv2;
  kv2.str("b").u32(7).put<uint8_t>(2);
  expect_refused(make_gguf({}, kv2.b, 1, 0), "neither 0 nor 1");
  // Arrays nested deeper than the reader allows.
  Bytes kv3;
  kv3.str("deep").u32(9);
  for (int i = 0; i < 20; ++i) kv3.u32(9).u64(1);
  kv3.u32(0).u64(0);
  expect_refused(make_gguf({}, kv3.b, 1, 0), "nested");
}

TEST(GgufReader, Alignment) {
  // A custom power-of-two alignment is honoured: data starts at a multiple of it.
  {
    const std::string p = write_temp(make_gguf({{"w", {32}, 8, 0}}, kv_u32("general.alignment", 64), 1, 34, 3, 64));
    GgufFile g(p);
    EXPECT_EQ(g.alignment(), 64u);
    EXPECT_EQ(g.data_offset() % 64, 0u);
  }
  expect_refused(make_gguf({}, kv_u32("general.alignment", 0), 1, 0), "not a power of two");
  expect_refused(make_gguf({}, kv_u32("general.alignment", 48), 1, 0), "not a power of two");
  expect_refused(make_gguf({}, kv_u32("general.alignment", 1u << 31), 1, 0), "not a power of two");
  expect_refused(make_gguf({}, kv_string("general.alignment", "32"), 1, 0), "general.alignment has type string");
  // Misaligned tensor offset.
  expect_refused(make_gguf({{"w", {32}, 8, 16}}, "", 0, 128), "not a multiple of the alignment 32");
  expect_refused(make_gguf({{"w", {32}, 8, 32}}, kv_u32("general.alignment", 64), 1, 128, 3, 64),
                 "not a multiple of the alignment 64");
}

TEST(GgufReader, AbsurdCounts) {
  Bytes g;
  g.b = "GGUF";
  g.u32(3).u64(uint64_t(1) << 60).u64(0);
  expect_refused(g.b + std::string(64, '\0'), "tensor count 1152921504606846976 is larger than the file could hold");
  Bytes h;
  h.b = "GGUF";
  h.u32(3).u64(0).u64(~uint64_t(0));
  expect_refused(h.b + std::string(64, '\0'), "metadata count");
}

// ---------------------------------------------------------------------------------------
// Writer

TEST(GgufWriter, RoundTripsMetadataAndTensors) {
  const std::string dir = lmq::test::temp_dir();
  const std::string dest = dir + "/out.gguf";
  lmq::test::write_file(dest, "old contents");  // replaced atomically, not truncated first
  std::vector<float> f32 = {1.0f, -2.0f, 3.5f, 0.25f};
  std::vector<float> src(64 * 3);
  for (size_t i = 0; i < src.size(); ++i) src[i] = std::sin(float(i));
  std::vector<uint8_t> q8(size_t(ggml_row_bytes(Format::Q8_0, 64)) * 3);
  ggml_quantize_row(Format::Q8_0, src.data(), q8.data(), int64_t(src.size()));
  std::vector<uint8_t> k6(210, 0x5a);
  for (uint64_t align : {32u, 64u}) {
    GgufWriter w(dest, align);
    w.set("general.architecture", GgufValue::str("llama"));
    w.set("llama.block_count", GgufValue::u32(8));
    w.set("x.f64", GgufValue::f64(0.1));
    w.set("x.i8", GgufValue::i8(-3));
    w.set("tokenizer.ggml.tokens", GgufValue::string_array({"<unk>", "<s>", "hello"}));
    w.set("x.nested", GgufValue::array(GgufType::ARRAY, {GgufValue::array(GgufType::FLOAT32, {GgufValue::f32(1.5f)})}));
    w.set("llama.block_count", GgufValue::u32(9));  // replaces
    w.add_tensor("norm", {4}, Format::F32, reinterpret_cast<const uint8_t*>(f32.data()), 16);
    w.add_tensor("w", {3, 64}, Format::Q8_0, q8.data(), q8.size());
    w.add_tensor("k", {1, 256}, Format::Q6_K, k6.data(), k6.size());
    EXPECT_THROW(w.add_tensor("w", {1, 32}, Format::Q8_0, q8.data(), 34), Error);    // duplicate
    EXPECT_THROW(w.add_tensor("z", {1, 48}, Format::Q8_0, q8.data(), 34), Error);    // partial block
    EXPECT_THROW(w.add_tensor("z", {1, 32}, Format::Q8_0, q8.data(), 35), Error);    // wrong size
    w.finish();

    GgufFile g(dest);
    EXPECT_EQ(g.alignment(), align);
    EXPECT_EQ(g.get_string("general.architecture"), "llama");
    EXPECT_EQ(g.get_u32("llama.block_count"), 9u);
    EXPECT_EQ(g.get("x.f64"), GgufValue::f64(0.1));
    EXPECT_EQ(g.get("x.i8"), GgufValue::i8(-3));
    EXPECT_EQ(g.get_string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"<unk>", "<s>", "hello"}));
    EXPECT_EQ(g.get("x.nested"),
              GgufValue::array(GgufType::ARRAY, {GgufValue::array(GgufType::FLOAT32, {GgufValue::f32(1.5f)})}));
    ASSERT_EQ(g.tensors().size(), 3u);
    const Tensor* w8 = g.find("w");
    ASSERT_NE(w8, nullptr);
    EXPECT_EQ(w8->shape, (std::vector<int64_t>{3, 64}));
    EXPECT_EQ(w8->format, Format::Q8_0);
    ASSERT_EQ(w8->nbytes, q8.size());
    EXPECT_EQ(std::memcmp(w8->data, q8.data(), q8.size()), 0);
    EXPECT_EQ(std::memcmp(g.find("norm")->data, f32.data(), 16), 0);
    EXPECT_EQ(std::memcmp(g.find("k")->data, k6.data(), 210), 0);
    EXPECT_EQ(g.find("k")->shape, (std::vector<int64_t>{1, 256}));
  }
  // No temporary files left behind.
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) n += e.path().filename() != "out.gguf";
  EXPECT_EQ(n, 0);
}

TEST(GgufWriter, RewritesAFixtureIdentically) {
  const std::string p = fixture("lmq-qwen2-21m-Q3_K_M.gguf");
  REQUIRE_FIXTURE(p);
  GgufFile g(p);
  const std::string dest = lmq::test::temp_dir() + "/copy.gguf";
  GgufWriter w(dest, g.alignment());
  for (const auto& [k, v] : g.metadata()) w.set(k, v);
  for (const Tensor& t : g.tensors()) w.add_tensor(t);
  w.finish();
  GgufFile c(dest);
  EXPECT_EQ(c.metadata(), g.metadata());
  ASSERT_EQ(c.tensors().size(), g.tensors().size());
  for (size_t i = 0; i < g.tensors().size(); ++i) {
    const Tensor &a = g.tensors()[i], &b = c.tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(a.format, b.format);
    ASSERT_EQ(a.nbytes, b.nbytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << a.name;
  }
  EXPECT_EQ(std::filesystem::file_size(dest), std::filesystem::file_size(p));
}

TEST(GgufWriter, UnwritableDestinationIsAClearError) {
  const std::string dest = lmq::test::temp_dir() + "/no-such-dir/out.gguf";
  GgufWriter w(dest);
  try {
    w.finish();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dest), std::string::npos);
  }
  EXPECT_THROW(GgufWriter(dest, 48), Error);
}
