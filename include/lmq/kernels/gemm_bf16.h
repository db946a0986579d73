// y = x · Wᵀ with x and W rounded to bfloat16 and the products summed in float32: calibration's
// forward passes (calib/block_runner.h, --calib-precision bf16), where the linears are the bulk
// of the work and a bf16 dot product (AVX-512 BF16's vdpbf16ps) does twice the multiply-adds of
// a float FMA per instruction. Weights are packed once per block (PackedBf16); each call
// rounds its x to bf16 and runs in the calling thread (callers run one window per thread).
//
// The arithmetic, identical on every path and for every M (so results depend on neither the
// row blocking nor the threads): inputs are rounded to nearest even, subnormals flushed to zero
// (what vdpbf16ps does with them anyway); K is split into blocks of kGemmBf16KBlock pairs
// (k, k+1) (an odd K pads its last pair with a zero); within a block s = 0, then per pair
// s += x[k+1]·w[k+1], s += x[k]·w[k] (the product of two bf16 is exact in float, so each step
// rounds once, as the instruction's fused steps do); the blocks' sums add into y in order,
// and the bias last.
// The portable path (CPUs without AVX-512 BF16) follows the same steps in plain C++ and gives
// the same bits (tested against the instruction), except where a product or a partial sum
// falls below float's normal range (~1e-38: the instruction flushes those to zero).
#pragma once
#include <cstdint>
#include <memory>

namespace lmq {

inline constexpr int64_t kGemmBf16KBlock = 256;  // pairs of k per block (512 values)

// W [rows × cols] in bf16, in the kernel's layout: panels of 16 rows; in panel p, for each pair
// j of columns, 16 32-bit words, word i = (w[16p+i][2j] low half, w[16p+i][2j+1] high half).
// Rows past `rows` (the last panel's padding) and the odd column's partner are zero.
class PackedBf16 {
 public:
  static constexpr int kPanel = 16;
  PackedBf16() = default;
  PackedBf16(int64_t rows, int64_t cols);  // all zero; fill with set_rows
  static PackedBf16 from_f32(const float* w, int64_t rows, int64_t cols);

  // Rows [r0, r0 + n) from n × cols floats (rounded) or bf16 values (kept, subnormals flushed).
  void set_rows(int64_t r0, int64_t n, const float* w);
  void set_rows(int64_t r0, int64_t n, const uint16_t* w);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t pairs() const { return (cols_ + 1) / 2; }
  int64_t panels() const { return (rows_ + kPanel - 1) / kPanel; }
  const uint32_t* panel(int64_t p) const { return data_ + p * pairs() * kPanel; }
  float at(int64_t r, int64_t k) const;  // the stored value of w[r][k], as float
  size_t bytes() const { return size_t(panels() * pairs()) * kPanel * 4; }

 private:
  uint32_t* word(int64_t r, int64_t j) { return data_ + ((r / kPanel) * pairs() + j) * kPanel + r % kPanel; }
  struct Free {
    void operator()(uint32_t* p) const;
  };
  int64_t rows_ = 0, cols_ = 0;
  std::unique_ptr<uint32_t[], Free> own_;
  uint32_t* data_ = nullptr;  // 64-byte aligned, inside own_
};

// x's float → bf16 rounding here (nearest even, subnormals to zero, NaN stays NaN).
uint16_t gemm_bf16_round(float f);

// y[m·N + n] = Σ_k bf16(x[m·K + k]) · w[n][k] (+ bias[n]) for m < M, n < N (N = w.rows(),
// K = w.cols()): x M × K and y M × N row-major. In the calling thread.
void gemm_bf16(const float* x, int64_t M, const PackedBf16& w, float* y, const float* bias = nullptr);

// Which code runs gemm_bf16: Auto is AVX-512 BF16 where the CPU has it, else Portable.
enum class GemmBf16Path { Auto, Portable };
void gemm_bf16(const float* x, int64_t M, const PackedBf16& w, float* y, const float* bias, GemmBf16Path path);
bool have_avx512_bf16();

}  // namespace lmq
