// matmul over every float storage format equals a plain double-precision product (within float
// rounding), for odd shapes, tails and batch sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "lmq/half.h"
#include "lmq/kernels/matmul.h"

using namespace lmq;

TEST(Matmul, FloatFormatsMatchDoubleReference) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto [N, K, T] : {std::tuple{37, 53, 1}, {64, 384, 5}, {33, 17, 9}, {130, 256, 4}}) {
    std::vector<float> w(size_t(N) * K), x(size_t(T) * K);
    for (auto& v : w) v = bf16_to_f32(f32_to_bf16(nd(rng)));  // exact in all three formats
    for (auto& v : x) v = nd(rng);
    std::vector<uint16_t> wb(w.size()), wh(w.size());
    for (size_t i = 0; i < w.size(); ++i) wb[i] = f32_to_bf16(w[i]), wh[i] = f32_to_f16(w[i]);
    for (Format f : {Format::F32, Format::BF16, Format::F16}) {
      Tensor t;
      t.name = "w";
      t.shape = {N, K};
      t.format = f;
      t.data = f == Format::F32 ? reinterpret_cast<const uint8_t*>(w.data())
               : f == Format::BF16 ? reinterpret_cast<const uint8_t*>(wb.data())
                                   : reinterpret_cast<const uint8_t*>(wh.data());
      t.nbytes = w.size() * (f == Format::F32 ? 4 : 2);
      std::vector<float> y(size_t(T) * N);
      matmul(t, x.data(), T, y.data());
      for (int tt = 0; tt < T; ++tt)
        for (int o = 0; o < N; ++o) {
          double ref = 0, mag = 0;
          for (int k = 0; k < K; ++k) {
            ref += double(w[size_t(o) * K + k]) * x[size_t(tt) * K + k];
            mag += std::fabs(double(w[size_t(o) * K + k]) * x[size_t(tt) * K + k]);
          }
          ASSERT_NEAR(y[size_t(tt) * N + o], ref, 1e-6 * mag + 1e-6)
              << format_name(f) << " N=" << N << " K=" << K << " t=" << tt << " o=" << o;
        }
    }
  }
}
