// llama.cpp's rope_freqs tensor: lmq's computation against the one llama.cpp's converter wrote
// into lmq-llama3-9m-Q8_0.gguf, bit for bit.
#include <gtest/gtest.h>

#include <cstring>

#include "lmq/formats/gguf.h"
#include "lmq/mapped_file.h"
#include "lmq/error.h"
#include "lmq/formats/gguf_writer.h"
#include "lmq/model/gguf_rope.h"
#include "lmq/model/model.h"
#include "test_support.h"

using namespace lmq;
using lmq::test::shared_path;

TEST(GgufRope, Llama3RopeFreqsAreTheConvertersBytes) {
  const GgufFile f(shared_path("gguf/lmq-llama3-9m-Q8_0.gguf"));
  const Tensor* t = f.find("rope_freqs.weight");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->format, Format::F32);
  ASSERT_EQ(t->shape, std::vector<int64_t>{32});
  const RopeParams p = RopeParams::from_config_text(read_text_file(shared_path("models/lmq-llama3-9m/config.json")), "config.json");
  const std::vector<float> got = llamacpp_rope_freqs(p, 64);
  ASSERT_EQ(got.size(), 32u);
  std::vector<float> want(32);
  std::memcpy(want.data(), t->data, 32 * sizeof(float));
  for (size_t i = 0; i < 32; ++i) EXPECT_EQ(got[i], want[i]) << i;
  // The three regimes are all present: unscaled high frequencies, factor 32, smoothed between.
  EXPECT_EQ(want.front(), 1.0f);
  EXPECT_EQ(want.back(), 32.0f);
}

namespace {

// The fixture rewritten with rope_freqs.weight replaced by `freqs` (every other tensor and key kept).
std::string with_rope_freqs(const std::vector<float>& freqs, const std::string& name) {
  const GgufFile f(shared_path("gguf/lmq-llama3-9m-Q8_0.gguf"));
  const std::string out = lmq::test::temp_dir() + "/" + name;
  GgufWriter w(out);
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  for (const Tensor& t : f.tensors())
    if (t.name == "rope_freqs.weight")
      w.add_tensor(t.name, {int64_t(freqs.size())}, Format::F32, reinterpret_cast<const uint8_t*>(freqs.data()),
                   freqs.size() * 4);
    else
      w.add_tensor(t);
  w.finish();
  return out;
}

}  // namespace

// llama.cpp divides each pair's frequency by its rope_freqs entry: the fixture's model reads
// them into the config as they are.
TEST(GgufRope, FixtureLoadsItsRopeFreqs) {
  const auto m = Model::load(shared_path("gguf/lmq-llama3-9m-Q8_0.gguf"));
  const GgufFile f(shared_path("gguf/lmq-llama3-9m-Q8_0.gguf"));
  const float* v = reinterpret_cast<const float*>(f.find("rope_freqs.weight")->data);
  EXPECT_EQ(m->config().rope_freq_factors, std::vector<float>(v, v + 32));
  EXPECT_EQ(m->tokenizer().kind(), TokenizerKind::Bpe);
  EXPECT_EQ(m->find("rope_freqs.weight"), nullptr);
}

TEST(BadInputGgufRope, RopeFreqsOfTheWrongSize) {
  const std::string p = with_rope_freqs(std::vector<float>(31, 1.0f), "short.gguf");
  try {
    Model::load(p);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find("rope_freqs.weight must be 32 F32 values"), std::string::npos) << msg;
  }
  const std::string z = with_rope_freqs(std::vector<float>(32, 0.0f), "zero.gguf");
  auto r = lmq::test::run_lmq({"eval", z, "--text", shared_path("text/docs-valid.txt"), "--windows", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("lmq: error: " + z + ": rope_freqs.weight holds 0"), std::string::npos) << r.err;
}
