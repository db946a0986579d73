// The integer path of a file (by default a GGUF file's own: int8 activations in blocks of 32;
// Q8_0, Q4_0, IQ4, K-quants and lattice i-quants read in place where the CPU has AVX-512 VNNI,
// else Q8_0/Q4_0/IQ4 repacked; or the run options given, e.g. --act-quant dynamic on an lmq
// file) against its float path, teacher forcing one text: the logits move a little, the
// predictions hardly at all, and the two are not the same computation. And the two integer
// paths of Q8_0/Q4_0/IQ4 (read in place, repacked into LMQ_INT) against each other. And a real
// file with a NaN scale, refused at load for the integer kernels.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lmq/codecs/ggml_blocks.h"
#include "lmq/error.h"
#include "lmq/formats/gguf.h"
#include "lmq/model/forward.h"
#include "lmq/model/model.h"
#include "test_support.h"

namespace lmq::test {

inline std::vector<int> int_path_text_ids(const Model& m) {
  return m.tokenizer().encode_with_specials(
      "The kernel schedules threads on the available cores and keeps the caches warm for the next task.");
}

// Teacher-forced logits of ids (n × vocab) under the run options.
inline std::vector<float> int_path_logits(const Model& m, const std::vector<int>& ids, const RunOptions& ro) {
  const int n = int(ids.size());
  std::vector<float> l(size_t(n) * size_t(m.config().vocab));
  Runner(m, n, ro).forward(ids.data(), n, l.data(), true);
  return l;
}

struct LogitGap {
  double kld = 0, worst = 0;  // mean KL(a‖b) per token, max |a − b|
  int agree = 0;              // tokens whose top-1 agrees
};

inline LogitGap logit_gap(const std::vector<float>& la, const std::vector<float>& lb, int n, int V) {
  LogitGap g;
  for (int i = 0; i < n; ++i) {
    const float* a = la.data() + size_t(i) * V;
    const float* b = lb.data() + size_t(i) * V;
    const double ma = *std::max_element(a, a + V), mb = *std::max_element(b, b + V);
    double za = 0, zb = 0;
    for (int v = 0; v < V; ++v) za += std::exp(a[v] - ma), zb += std::exp(b[v] - mb);
    double k = 0;
    for (int v = 0; v < V; ++v) {
      const double pa = std::exp(a[v] - ma) / za;
      k += pa * ((a[v] - ma - std::log(za)) - (b[v] - mb - std::log(zb)));
      g.worst = std::max(g.worst, std::fabs(double(a[v]) - double(b[v])));
    }
    g.kld += k / n;
    g.agree += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b;
  }
  return g;
}

inline void expect_int_path_close_to_float(const std::string& p, const std::string& name,
                                           const RunOptions& int_path = RunOptions{.act_quant_from_model = true}) {
  auto m = Model::load(p);
  const std::vector<int> ids = int_path_text_ids(*m);
  const int n = int(ids.size()), V = m->config().vocab;
  const LogitGap g = logit_gap(int_path_logits(*m, ids, RunOptions{}), int_path_logits(*m, ids, int_path), n, V);
  std::printf("[int vs float] %s: mean KLD %.6f, max |Δlogit| %.4f, top-1 %d/%d\n", name.c_str(), g.kld, g.worst,
              g.agree, n);
  EXPECT_LT(g.kld, 0.002) << name;
  EXPECT_LT(g.worst, 0.5) << name;
  EXPECT_GE(g.agree, n - 2) << name;
  EXPECT_GT(g.worst, 0.0) << name << ": the two paths should not be the same computation";
}

// The d field of each format's block, where codecs/ggml_blocks.h puts it (not read from the
// traits table the counting reads).
inline size_t d_offset(Format f) {
  switch (f) {
    case Format::Q6_K: return offsetof(ggml::block_q6_K, d);
    case Format::Q3_K: return offsetof(ggml::block_q3_K, d);
    case Format::Q2_K: return offsetof(ggml::block_q2_K, d);
    default: return 0;  // Q8_0, Q4_0, Q4_K, Q5_K, IQ4_NL, IQ4_XS, the lattice i-quants: d first
  }
}

// A block's f16 d set to h: at d_offset, or (IQ1_M, codecs/iquant_blocks.h) nibble k of h in the
// top nibble of its scale word k (little-endian uint16s at byte 48).
inline void set_block_d(Format f, uint8_t* blk, uint16_t h) {
  if (f != Format::IQ1_M) return (void)std::memcpy(blk + d_offset(f), &h, 2);
  for (int k = 0; k < 4; ++k) blk[48 + 2 * k + 1] = uint8_t((blk[48 + 2 * k + 1] & 0x0f) | (h >> 4 * k & 15) << 4);
}

// A NaN scale in the second block of blk.0.attn_q.weight of a real file (Q4_K, Q4_0, Q8_0, IQ4_XS, the lattice i-quants):
// refused at load for the integer kernels, naming the tensor (the float path shows it as
// non-finite logits). bad_file (if given): the broken file's path, for further checks ("" where
// the test was skipped or stopped before writing it).
inline void expect_nan_scale_refused(const std::string& file, Format f, std::string* bad_file = nullptr) {
  const std::string src = shared_path("gguf/" + file);
  if (!std::filesystem::exists(src)) GTEST_SKIP() << src << " missing";
  std::string bytes = lmq::test::read_file(src);
  uint64_t at = 0;
  {
    GgufFile g(src);
    for (size_t i = 0; i < g.tensors().size(); ++i)
      if (g.tensors()[i].name == "blk.0.attn_q.weight") {
        ASSERT_EQ(g.tensors()[i].format, f) << file;
        at = g.data_offset() + g.tensor_offset(i);
      }
  }
  ASSERT_GT(at, 0u);
  const uint16_t nan = 0x7e00;
  std::memcpy(bytes.data() + at + ggml_block_bytes(f) + d_offset(f), &nan, 2);  // d of the second block
  const std::string dir = lmq::test::temp_dir(), bad = dir + "/nan.gguf";
  lmq::test::write_file(bad, bytes);
  if (bad_file) *bad_file = bad;
  auto r = lmq::test::run_lmq({"eval", bad, "--text", shared_path("text/docs-valid.txt"), "--windows", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.err.find("tensor 'blk.0.attn_q.weight': a non-finite (NaN/Inf) scale in 1 block(s)"), std::string::npos)
      << r.err;
  r = lmq::test::run_lmq(
      {"eval", bad, "--text", shared_path("text/docs-valid.txt"), "--windows", "1", "--act-quant", "none"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.err.find("non-finite logit"), std::string::npos) << r.err;
  // the loader refuses it whichever way the blocks reach the integer kernels (read in place, or
  // Q8_0 / Q4_0 / IQ4 repacked into LMQ_INT as on CPUs without AVX-512 VNNI, or Q4_0 / Q8_0 /
  // Q4_K / Q6_K interleaved into their X16 layouts where the CPU's choice is)
  for (const std::optional<bool> in_place : {std::optional<bool>(), std::optional<bool>(true), std::optional<bool>(false)}) {
    try {
      Model::load(bad, LoadOptions{.ggml_in_place = in_place});
      ADD_FAILURE() << file << ": loaded with a NaN scale, in_place " << in_place.value_or(-1);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tensor 'blk.0.attn_q.weight': a non-finite (NaN/Inf) scale in 1 block(s)"),
                std::string::npos)
          << e.what();
    }
  }
}

}  // namespace lmq::test
