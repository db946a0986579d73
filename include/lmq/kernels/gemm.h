// C = A · B in float32 for row-major operands whose B rows run along C's columns: the two
// products of attention with the KV cache laid out for them (model/kv_cache.h), scores =
// Q · Kᵀ (B = the keys transposed, a row per head dimension) and out = P · V (B = the values,
// a row per position). Each C element sums its K products in increasing k with one float FMA
// chain, so results do not depend on threads or blocking. Highway, runtime-dispatched.
//
// Unlike a dot-product tile (matmul.h), no horizontal sums: a register tile of 4 rows × up to 4
// vectors of columns takes a broadcast of A[r][k] times a row of B per k, which suits K = 64
// (a head) as well as K = thousands (positions).
#pragma once
#include <cstdint>

namespace lmq {

// C[i·ldc + j] = Σ_{k<K} A[i·lda + k] · B[k·ldb + j] for i < M, j < N.
void gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
              int64_t ldc);

}  // namespace lmq
