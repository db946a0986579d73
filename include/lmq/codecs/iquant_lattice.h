// One super-block of a lattice i-quant (IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS, IQ2_XXS, IQ1_M, IQ1_S; layouts in
// codecs/iquant_blocks.h) quantized a few values at a time, for a method that changes the
// values still to come after each choice (GPTQ's error feedback, calib/gguf_target.h):
//
//   fit_scales  the super-scale d and the 4-bit sub-block scales, by the same search as
//               ggml_quantize_row (it also sets every group's codes, which choose() replaces);
//   choose      the grid entries and signs of the next `unit()` values against the sub-block's
//               scale as stored: exhaustive search of the grid under the caller's weights, the
//               format's sign-parity rule applied (IQ2_*, IQ3_XXS: 8 values share 7 stored sign
//               bits and an implied even parity, so the unit is 8; IQ3_S stores all 8 sign bits,
//               so its unit is one 4-value grid point; the IQ1s' grid is signed, unit 8, and
//               IQ1_S keeps the delta sign fit_scales chose for each sub-block). The values returned are the dequantizer's
//               own output for the codes chosen, bit for bit;
//   pack        the block's bytes, exactly as ggml_dequantize_row reads them.
#pragma once
#include <cstdint>

#include "lmq/tensor.h"

namespace lmq::ggml {

// A quantized lattice super-block before packing.
struct LatticeCodes {
  float d = 0;              // super-scale as stored (f16-rounded)
  uint8_t scale[16] = {};   // code per sub-block (8 of 32 values, or 16 of 16), 0..max_code()
  uint16_t idx[64] = {};    // grid entry per grid point (4 or 8 values); IQ1_*: bit 11 the delta's sign
  uint8_t signs[32] = {};   // per 8 values, bit j set: value j negative
};

class LatticeSuperBlock {
 public:
  static bool supports(Format f);
  explicit LatticeSuperBlock(Format f);  // throws lmq::Error for other formats
  int unit() const;  // values chosen together: 4 (IQ3_S) or 8
  // x: QK_K values; imp: QK_K importances (null: plain squared error), as ggml_quantize_row.
  void fit_scales(const float* x, const float* imp);
  // Values [o, o + unit()) of the super-block (o a multiple of unit()): targets x, weights w > 0
  // (unit() values each); y receives what the stored codes dequantize to.
  void choose(int o, const float* x, const float* w, float* y);
  int sub() const;  // values per sub-block scale: 32, or 16 (IQ2_XS, IQ2_S, IQ1_M)
  int max_code() const;  // sub-block codes 0..max_code(): 15, or 7 (IQ1_*)
  // Sub-block ib's scale code refitted (d kept) to its current targets x (sub() values) under
  // weights w: the code now stored, or one of the three around the scale fitted to x, whichever
  // searches to the least weighted error (IQ1_S: with the delta sign it searched best under, the
  // sub-block's codes set to that search's).
  void refit_sub(int ib, const float* x, const float* w);
  void pack(uint8_t* out) const;  // ggml_block_bytes(f) bytes
  const LatticeCodes& codes() const { return c_; }
  // Each value's grid magnitude with its sign, G: the value is d·(1 + 2·scale[sub])·G, as the
  // dequantizer computes it up to float rounding (QK_K values, from the codes chosen so far).
  void signed_grid(double* G) const;
  // A super-scale and sub-block codes (QK_K / sub() of them, 0..15) to quantize against: choose()
  // then searches under them, grid entries and signs untouched until chosen again.
  void set_scales(float d, const uint8_t* scale);

 private:
  Format f_;
  LatticeCodes c_;
};

// The scales of one row of K values (K / QK_K super-blocks in `blocks`) refitted with their grid
// entries and signs fixed, lowering the quadratic error (w − ŵ)ᵀH(w − ŵ) (H: K × K, symmetric
// positive semi-definite, e.g. GPTQ's Hessian of the row's inputs): `passes` sweeps of
// coordinate descent over the super-blocks, each sub-block's code the best of all (16, or 8), then
// the f16 super-scale by least squares. A change is kept only where the error falls, so it never
// rises (as ggml_refit_row_scales for Q2_K/Q3_K, codecs/ggml_blocks.h).
void lattice_refit_row_scales(const float* w, int64_t K, const float* H, LatticeSuperBlock* blocks, int passes = 2);

}  // namespace lmq::ggml
