// gemm_f32 (lmq/kernels/gemm.h), compiled for every x86 target Highway knows (AVX-512, AVX2,
// SSE4, scalar); the best one is chosen at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/gemm.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>

#include "lmq/kernels/gemm.h"

HWY_BEFORE_NAMESPACE();
namespace lmq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// MR rows of C × NV vectors of columns, over all K: per k, NV loads of B's row k and a
// broadcast of A[r][k] per row feed MR·NV FMAs.
template <int MR, int NV>
HWY_INLINE void Block(int64_t K, const float* HWY_RESTRICT A, int64_t lda, const float* HWY_RESTRICT B, int64_t ldb,
                      float* HWY_RESTRICT C, int64_t ldc) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  hn::Vec<decltype(d)> acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = hn::Zero(d);
  for (int64_t k = 0; k < K; ++k) {
    hn::Vec<decltype(d)> b[NV];
    for (int v = 0; v < NV; ++v) b[v] = hn::LoadU(d, B + k * ldb + v * L);
    for (int r = 0; r < MR; ++r) {
      const auto a = hn::Set(d, A[r * lda + k]);
      for (int v = 0; v < NV; ++v) acc[r][v] = hn::MulAdd(a, b[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) hn::StoreU(acc[r][v], d, C + r * ldc + v * L);
}

// MR rows of C, every column: blocks of 4 vectors, then 1–3, then single columns.
template <int MR>
HWY_INLINE void Rows(int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                     int64_t ldc) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  int64_t j = 0;
  for (; j + 4 * L <= N; j += 4 * L) Block<MR, 4>(K, A, lda, B + j, ldb, C + j, ldc);
  const int64_t nv = (N - j) / L;
  if (nv == 3) Block<MR, 3>(K, A, lda, B + j, ldb, C + j, ldc);
  if (nv == 2) Block<MR, 2>(K, A, lda, B + j, ldb, C + j, ldc);
  if (nv == 1) Block<MR, 1>(K, A, lda, B + j, ldb, C + j, ldc);
  for (j += nv * L; j < N; ++j)  // columns short of a vector (a head_dim that is not a multiple of L)
    for (int r = 0; r < MR; ++r) {
      float s = 0.f;
      for (int64_t k = 0; k < K; ++k) s = std::fma(A[r * lda + k], B[k * ldb + j], s);
      C[r * ldc + j] = s;
    }
}

// Column panels of 4 vectors, each swept by every block of 4 rows: the panel of B (K × 4L;
// 16 KB for a 64-dimension head on AVX-512) stays in L1 while A's rows stream by.
void GemmF32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
             int64_t ldc) {
  const hn::ScalableTag<float> d;
  const int64_t P = 4 * int64_t(hn::Lanes(d));
  for (int64_t j = 0; j < N; j += P) {
    const int64_t n = N - j < P ? N - j : P;
    int64_t i = 0;
    for (; i + 4 <= M; i += 4) Rows<4>(n, K, A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc);
    if (M - i == 3) Rows<3>(n, K, A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc);
    if (M - i == 2) Rows<2>(n, K, A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc);
    if (M - i == 1) Rows<1>(n, K, A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace lmq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lmq {
HWY_EXPORT(GemmF32);
void gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
              int64_t ldc) {
  HWY_DYNAMIC_DISPATCH(GemmF32)(M, N, K, A, lda, B, ldb, C, ldc);
}
}  // namespace lmq
#endif
