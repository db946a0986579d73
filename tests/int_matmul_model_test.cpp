// The packed widths end to end: lmq-llama-25m quantized at 3 and 6 bits (and 2 and 5) runs its
// linears on the integer kernels with --act-quant dynamic, and its logits stay close to the same
// file's float-activation path (int_path_check.h: KLD, top-1, and that the two differ at all).
#include <gtest/gtest.h>

#include <string>

#include "int_path_check.h"
#include "lmq/kernels/int_matmul.h"
#include "test_support.h"

namespace {

TEST(IntMatmulModel, PackedWidthsNearFloatPath) {
  const std::string model = lmq::test::shared_path("models/lmq-llama-25m"), dir = lmq::test::temp_dir();
  for (const std::string scheme : {"int3:g64:asym", "int6:channel:sym", "int2:g32:asym:mse", "int5:g64:asym"}) {
    const std::string out = dir + "/" + scheme.substr(0, 4) + ".lmq";
    const auto q = lmq::test::run_lmq({"quantize", model, "-o", out, "--scheme", scheme, "-t", "2"});
    ASSERT_EQ(q.exit_code, 0) << scheme << ": " << q.err;
    auto m = lmq::Model::load(out);
    for (const auto& layer : m->layers())  // every linear takes the integer path
      for (const lmq::Tensor* w : {layer.wq, layer.wk, layer.wv, layer.wo, layer.w_gate, layer.w_up, layer.w_down})
        ASSERT_TRUE(lmq::int_matmul_supported(*w)) << scheme << " " << w->name;
    lmq::test::expect_int_path_close_to_float(out, "lmq-llama-25m " + scheme,
                                              lmq::RunOptions{.act_quant = lmq::ActQuant::DynamicAbsmax});
  }
}

}  // namespace
