// SafetensorsFile and ModelConfig on hostile bytes: every one is an lmq::Error naming the file,
// never a crash, a huge allocation or a wrap-around. Suites BadInputSafetensors / BadInputConfig
// (ctest label bad-input).
#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "lmq/error.h"
#include "lmq/formats/safetensors.h"
#include "lmq/kernels/matmul.h"
#include "lmq/model/config.h"
#include "test_support.h"

using namespace lmq;
using json = nlohmann::json;
using lmq::test::temp_dir;
using lmq::test::write_file;

namespace {

std::string u64le(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}

// A file: 8-byte length, the header text as given, then data_bytes zero bytes.
std::string st_file(const std::string& header, size_t data_bytes = 0) {
  const std::string p = temp_dir() + "/t.safetensors";
  write_file(p, u64le(header.size()) + header + std::string(data_bytes, '\0'));
  return p;
}

// Opens path and returns the error message ("" if it opened).
std::string open_error(const std::string& path) {
  try {
    SafetensorsFile f(path);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

// The file must be rejected with a message naming it and containing every needle.
void expect_rejected(const std::string& path, std::initializer_list<std::string> needles) {
  const std::string msg = open_error(path);
  ASSERT_NE(msg, "") << "accepted";
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
}

std::string one_tensor(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"w": {"dtype": ")" + dtype + R"(", "shape": )" + shape + R"(, "data_offsets": )" + offsets + "}}";
}

}  // namespace

TEST(BadInputSafetensors, AWellFormedFileOpens) {
  const std::string p = st_file(R"({"__metadata__": {"a": "b"}, "w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},
                                   "e": {"dtype": "F32", "shape": [4, 0], "data_offsets": [12, 12]}})", 12);
  SafetensorsFile f(p);
  ASSERT_EQ(f.tensors().size(), 2u);
  ASSERT_NE(f.find("w"), nullptr);
  EXPECT_EQ(f.find("w")->tensor.rows(), 2);
  EXPECT_EQ(f.find("w")->tensor.cols(), 3);
  EXPECT_EQ(f.find("e")->tensor.rows(), 4);  // an empty tensor has rows; no division by its zero width
  EXPECT_EQ(f.find("e")->tensor.cols(), 0);
  dequantize_rows(f.find("e")->tensor, 0, 4, nullptr);  // nothing to write: must not touch out (UBSan)
  EXPECT_EQ(f.metadata().at("a"), "b");
}

TEST(BadInputSafetensors, EmptyFile) {
  const std::string p = temp_dir() + "/t.safetensors";
  write_file(p, "");
  expect_rejected(p, {"truncated"});
}

TEST(BadInputSafetensors, ShorterThanTheLength) {
  const std::string p = temp_dir() + "/t.safetensors";
  write_file(p, std::string("\x10\0\0", 3));
  expect_rejected(p, {"truncated"});
}

TEST(BadInputSafetensors, HeaderLength2To63) {
  const std::string p = temp_dir() + "/t.safetensors";
  write_file(p, u64le(uint64_t(1) << 63) + "{}");
  expect_rejected(p, {"header length"});
}

TEST(BadInputSafetensors, HeaderLengthMax) {
  const std::string p = temp_dir() + "/t.safetensors";
  write_file(p, u64le(std::numeric_limits<uint64_t>::max()) + "{}");
  expect_rejected(p, {"header length"});
}

TEST(BadInputSafetensors, HeaderLengthZero) {
  const std::string p = temp_dir() + "/t.safetensors";
  write_file(p, u64le(0) + "{}");
  expect_rejected(p, {"JSON"});
}

TEST(BadInputSafetensors, HeaderNotJson) { expect_rejected(st_file("{\"w\": [1, 2"), {"JSON"}); }

TEST(BadInputSafetensors, HeaderNotAnObject) { expect_rejected(st_file("[1, 2, 3]"), {"object"}); }

TEST(BadInputSafetensors, HeaderWithNulBytes) { expect_rejected(st_file(std::string("{\0}", 3)), {"JSON"}); }

TEST(BadInputSafetensors, TensorEntryNotAnObject) { expect_rejected(st_file(R"({"w": 5})"), {"'w'"}); }

TEST(BadInputSafetensors, MissingField) {
  expect_rejected(st_file(R"({"w": {"dtype": "F32", "shape": [1]}})"), {"'w'", "data_offsets"});
}

TEST(BadInputSafetensors, DtypeNotAString) {
  expect_rejected(st_file(R"({"w": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}})", 4), {"'w'", "dtype"});
}

TEST(BadInputSafetensors, UnknownDtype) { expect_rejected(st_file(one_tensor("F8_E9", "[1]", "[0, 1]"), 1), {"F8_E9"}); }

TEST(BadInputSafetensors, DimsOverflow64Bits) {
  const std::string big = std::to_string(uint64_t(1) << 40);
  expect_rejected(st_file(one_tensor("F32", "[" + big + ", " + big + "]", "[0, 4]"), 4), {"'w'", "overflow"});
}

TEST(BadInputSafetensors, ProductOverflowsOnlyWithDtypeSize) {  // 2^62 elements fit, ×4 bytes does not
  expect_rejected(st_file(one_tensor("F32", "[1099511627776, 4194304]", "[0, 4]"), 4), {"'w'", "overflow"});
}

TEST(BadInputSafetensors, AbsurdDim) {
  expect_rejected(st_file(one_tensor("F32", "[18446744073709551615]", "[0, 4]"), 4), {"'w'", "dim"});
}

TEST(BadInputSafetensors, NegativeDim) { expect_rejected(st_file(one_tensor("F32", "[-1]", "[0, 4]"), 4), {"'w'", "dim"}); }

TEST(BadInputSafetensors, FractionalDim) { expect_rejected(st_file(one_tensor("F32", "[1.5]", "[0, 4]"), 4), {"'w'", "dim"}); }

TEST(BadInputSafetensors, ShapeNotAnArray) { expect_rejected(st_file(one_tensor("F32", "4", "[0, 4]"), 4), {"'w'", "shape"}); }

TEST(BadInputSafetensors, TooManyDims) {
  expect_rejected(st_file(one_tensor("F32", "[1,1,1,1,1,1,1,1,1]", "[0, 4]"), 4), {"'w'", "shape"});
}

TEST(BadInputSafetensors, OffsetsNotIntegers) {
  expect_rejected(st_file(one_tensor("F32", "[1]", "[0.0, 4.0]"), 4), {"'w'", "data_offsets"});
  expect_rejected(st_file(one_tensor("F32", "[1]", R"(["0", "4"])"), 4), {"'w'", "data_offsets"});
  expect_rejected(st_file(one_tensor("F32", "[1]", "[-4, 0]"), 4), {"'w'", "data_offsets"});
  expect_rejected(st_file(one_tensor("F32", "[1]", "[0, 4, 8]"), 4), {"'w'", "data_offsets"});
  expect_rejected(st_file(one_tensor("F32", "[1]", "{}"), 4), {"'w'", "data_offsets"});
}

TEST(BadInputSafetensors, OffsetsHuge) {
  expect_rejected(st_file(one_tensor("F32", "[1]", "[18446744073709551612, 18446744073709551615]"), 4),
                  {"'w'", "data_offsets"});
  expect_rejected(st_file(one_tensor("F32", "[1]", "[0, 18446744073709551616]"), 4), {"'w'", "data_offsets"});
}

TEST(BadInputSafetensors, OffsetsReversed) { expect_rejected(st_file(one_tensor("F32", "[0]", "[4, 0]"), 4), {"'w'"}); }

TEST(BadInputSafetensors, OffsetsPastTheEnd) {
  expect_rejected(st_file(one_tensor("F32", "[2]", "[0, 8]"), 4), {"'w'", "outside", "truncated"});
}

TEST(BadInputSafetensors, ShapeDisagreesWithLength) {
  expect_rejected(st_file(one_tensor("F32", "[2]", "[0, 4]"), 8), {"'w'", "bytes"});
}

TEST(BadInputSafetensors, Overlap) {
  expect_rejected(st_file(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                              "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", 16),
                  {"overlap", "'a'", "'b'"});
  // An overlap hidden behind a wide earlier span.
  expect_rejected(st_file(R"({"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]},
                              "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
                              "c": {"dtype": "F32", "shape": [1], "data_offsets": [16, 20]}})", 32),
                  {"overlap"});
}

TEST(BadInputSafetensors, DuplicateKeys) {
  expect_rejected(st_file(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                              "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8),
                  {"duplicate", "'w'"});
}

TEST(BadInputSafetensors, BadMetadata) {
  expect_rejected(st_file(R"({"__metadata__": [1]})"), {"__metadata__"});
  expect_rejected(st_file(R"({"__metadata__": {"k": 1}})"), {"__metadata__", "'k'"});
}

TEST(BadInputSafetensors, DeeplyNestedHeader) {  // must not overflow the stack
  expect_rejected(st_file(std::string(100000, '[') + std::string(100000, ']')), {"object"});
}

// The spec lets the header be any length, so tensor bytes may sit at odd addresses of the map:
// loads must not assume alignment (UBSan's alignment check watches this under the asan preset).
TEST(BadInputSafetensors, MisalignedTensorDataReadsRight) {
  const float w32[6] = {1.5f, -2.f, 0.25f, 3.f, -0.5f, 4.f};
  const uint16_t w16[6] = {0x3fc0, 0xc000, 0x3e80, 0x4040, 0xbf00, 0x4080};  // the same values in BF16
  std::string data(1, '\0');  // one byte first: everything after it is odd
  data.append(reinterpret_cast<const char*>(w32), sizeof w32);
  data.append(reinterpret_cast<const char*>(w16), sizeof w16);
  std::string header = R"({"f": {"dtype": "F32", "shape": [2, 3], "data_offsets": [1, 25]},
                           "b": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [25, 37]}})";
  if ((8 + header.size()) % 2 != 0) header += ' ';  // padding is allowed: an even data start, odd tensors
  const std::string p = temp_dir() + "/t.safetensors";
  write_file(p, u64le(header.size()) + header + data);
  SafetensorsFile f(p);
  const float x[3] = {1.f, 2.f, 3.f};
  for (const char* name : {"f", "b"}) {
    const Tensor& t = f.find(name)->tensor;
    ASSERT_NE(reinterpret_cast<uintptr_t>(t.data) % 2, 0u) << name;
    float rows[6];
    dequantize_rows(t, 0, 2, rows);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(rows[i], w32[i]) << name << " " << i;
    float y[2];
    matmul(t, x, 1, y);
    EXPECT_FLOAT_EQ(y[0], 1.5f - 4.f + 0.75f) << name;
    EXPECT_FLOAT_EQ(y[1], 3.f - 1.f + 12.f) << name;
  }
}

TEST(BadInputSafetensors, NotARegularFile) { expect_rejected(temp_dir(), {"regular file"}); }

// ------------------------------------------------------------------------------------ config

namespace {
json good_config() {
  return json::parse(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100,
                        "max_position_embeddings": 64})");
}
std::string config_error(const json& j) {
  try {
    ModelConfig::from_hf_json(j.dump(), "cfg/config.json");
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}
void expect_config_rejected(const json& j, std::initializer_list<std::string> needles) {
  const std::string msg = config_error(j);
  ASSERT_NE(msg, "") << "accepted: " << j.dump();
  EXPECT_EQ(msg.rfind("cfg/config.json: ", 0), 0u) << msg;
  for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
}
}  // namespace

TEST(BadInputConfig, AGoodConfigLoads) { EXPECT_EQ(config_error(good_config()), ""); }

TEST(BadInputConfig, KeyOfTheWrongType) {
  for (const char* key : {"hidden_size", "num_hidden_layers", "vocab_size", "max_position_embeddings"}) {
    json j = good_config();
    j[key] = "64";
    expect_config_rejected(j, {key});
    j[key] = 64.5;
    expect_config_rejected(j, {key});
    j[key] = -64;
    expect_config_rejected(j, {key});
    j[key] = 0;
    expect_config_rejected(j, {key});
    j[key] = uint64_t(1) << 63;
    expect_config_rejected(j, {key});
  }
}

// lmq's own RoPE keys (an lmq file of a GGUF source): wrong types and bad divisors are refused.
TEST(BadInputConfig, LmqRopeKeys) {
  json j = good_config();
  j["lmq_rope_interleaved"] = "yes";
  expect_config_rejected(j, {"lmq_rope_interleaved"});
  j = good_config();
  for (const json& bad : {json("1"), json::array({1.0, -2.0}), json::array({1.0, "x"}), json::array({0.0})}) {
    j["lmq_rope_freq_factors"] = bad;
    expect_config_rejected(j, {"lmq_rope_freq_factors"});
  }
}

TEST(BadInputConfig, TokenIds) {
  for (const json& v : {json("1"), json::array({"x"}), json::array({1.5}), json(-1), json(100), json(1e30),
                        json::array({uint64_t(1) << 40}), json(uint64_t(1) << 40)}) {
    json j = good_config();
    j["eos_token_id"] = v;
    expect_config_rejected(j, {"eos"});
  }
  json j = good_config();
  j["eos_token_id"] = json::array({2, 3});  // a list is fine: the first one
  EXPECT_EQ(config_error(j), "");
}

TEST(BadInputConfig, NumbersOfTheWrongType) {
  json j = good_config();
  j["rms_norm_eps"] = "small";
  expect_config_rejected(j, {"rms_norm_eps"});
  j = good_config();
  j["rms_norm_eps"] = -1;
  expect_config_rejected(j, {"rms_norm_eps"});
  j = good_config();
  j["rope_parameters"] = {{"rope_theta", "big"}};
  expect_config_rejected(j, {"rope_theta"});
}

TEST(BadInputConfig, HeadsDisagree) {
  json j = good_config();
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 3;
  expect_config_rejected(j, {"num_attention_heads", "num_key_value_heads"});
  j = good_config();
  j["num_attention_heads"] = 128;  // hidden / heads = 0
  j["num_key_value_heads"] = 128;
  expect_config_rejected(j, {"head_dim"});
}

TEST(BadInputConfig, NotJson) {
  try {
    ModelConfig::from_hf_json("{", "cfg/config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cfg/config.json: not valid JSON"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}
