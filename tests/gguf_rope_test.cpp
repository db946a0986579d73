// llama.cpp's rope_freqs tensor: lmq's computation against the one llama.cpp's converter wrote
// into lmq-llama3-9m-Q8_0.gguf, bit for bit.
#include <gtest/gtest.h>

#include <cstring>

#include "lmq/formats/gguf.h"
#include "lmq/mapped_file.h"
#include "lmq/model/gguf_rope.h"
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
