// The per-format functions of ggml's storage types (codecs/ggml_blocks.cpp) that the traits
// table (codecs/format_traits.h) points at. Internal to codecs/: everyone else goes through
// the table or the ggml_* entry points of codecs/ggml_blocks.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lmq/codecs/ggml_blocks.h"
#include "lmq/codecs/iquant_blocks.h"
#include "lmq/half.h"

// The row codecs that dominate RTN export and the float paths (ggml_blocks.cpp's q_* / dq_*)
// are compiled twice, for AVX-512 machines (x86-64-v4) and for the baseline; the loader picks
// one per CPU (GCC's target_clones, an ifunc). That file is built without FMA contraction
// (CMakeLists.txt), so both clones round exactly as llama.cpp's reference code does and
// write the same bytes. flatten pulls the fits they call (make_qx_quants, …) into each clone.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LMQ_ROW_CODEC __attribute__((target_clones("arch=x86-64-v4", "default"), flatten))
#else
#define LMQ_ROW_CODEC
#endif

namespace lmq::ggml {

// A block's f16 field at any byte offset (file data is not aligned for uint16_t).
inline float h2f(const uint8_t* p) { return f16_to_f32(u16_at(p)); }
inline void f2h(uint8_t* p, float f) {
  uint16_t h = f32_to_f16(f);
  std::memcpy(p, &h, 2);
}

// llama.cpp's GROUP_MAX_EPS: a (sub-)block whose largest magnitude is below it is stored as zeros.
constexpr float kGroupMaxEps = 1e-15f;

// llama.cpp's nearest_int: round to nearest, ties to even, via the 1.5·2^23 trick (exact for
// |v| <= 2^22; out of range it returns the same garbage the reference does, never UB).
inline int nearest_int(float v) {
  const float t = v + 12582912.f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// nb blocks (for the floats: nb values) into y.
void dq_f32(const uint8_t* src, float* y, int64_t nb);
void dq_f16(const uint8_t* src, float* y, int64_t nb);
void dq_bf16(const uint8_t* src, float* y, int64_t nb);
void dq_q8_0(const uint8_t* src, float* y, int64_t nb);
void dq_q4_0(const uint8_t* src, float* y, int64_t nb);
void dq_q4_1(const uint8_t* src, float* y, int64_t nb);
void dq_q5_0(const uint8_t* src, float* y, int64_t nb);
void dq_q5_1(const uint8_t* src, float* y, int64_t nb);
void dq_q2_K(const uint8_t* src, float* y, int64_t nb);
void dq_q3_K(const uint8_t* src, float* y, int64_t nb);
void dq_q4_K(const uint8_t* src, float* y, int64_t nb);
void dq_q5_K(const uint8_t* src, float* y, int64_t nb);
void dq_q6_K(const uint8_t* src, float* y, int64_t nb);
// the i-quants (codecs/iquant_blocks.h; src/codecs/iquant_blocks.cpp)
void dq_iq4_nl(const uint8_t* src, float* y, int64_t nb);
void dq_iq4_xs(const uint8_t* src, float* y, int64_t nb);
void dq_iq2_xxs(const uint8_t* src, float* y, int64_t nb);
void dq_iq2_xs(const uint8_t* src, float* y, int64_t nb);
void dq_iq2_s(const uint8_t* src, float* y, int64_t nb);
void dq_iq3_xxs(const uint8_t* src, float* y, int64_t nb);
void dq_iq3_s(const uint8_t* src, float* y, int64_t nb);
void dq_iq1_s(const uint8_t* src, float* y, int64_t nb);
void dq_iq1_m(const uint8_t* src, float* y, int64_t nb);
void q_iq4_nl(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_iq4_xs(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_iq3_s(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_iq2_xs(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_iq2_s(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_iq3_xxs(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_iq2_xxs(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_iq1_s(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_iq1_m(const float* x, uint8_t* out, int64_t nb, const float* imp);
// The i-quant quantizers' error weights over n values (x², or with importance llama.cpp's
// imp · sqrt(σ² + x²), x² again where the importance is all zero) and that σ² over n values.
void iq_weights(const float* x, const float* imp, float sigma2, int n, float* w);
float iq_sigma2(const float* x, int n);

// One block into the LMQ_INT layout that holds its values (codecs/ggml_repack.h): its codes at
// `codes` (bitstream of the layout's width) and its block_size / 32 scales at `scales`; false
// if the block's scale is NaN or Inf.
bool rp_q8_0(const uint8_t* b, uint8_t* codes, uint8_t* scales);
bool rp_q4_0(const uint8_t* b, uint8_t* codes, uint8_t* scales);
bool rp_iq4_nl(const uint8_t* b, uint8_t* codes, uint8_t* scales);
bool rp_iq4_xs(const uint8_t* b, uint8_t* codes, uint8_t* scales);

// nb blocks of x into out: the reference quantizer, or the importance-weighted one (imp non-null).
// The K-quants' scale searches for 8 (16) sub-blocks of n <= 32 values at once, x and L
// sub-block-major: the same results as make_qkx2_quants (make_qx_quants, make_q3_quants)
// called on each sub-block (ggml_fit_lanes.cpp).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* qw);
void make_qkx2_quants_x8(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* scales,
                         float* the_mins, float rmin, float rdelta, int nstep, bool use_mad);
void make_qx_quants_x16(int n, int nmax, const float* x, int8_t* L, const float* qw, float* scales);
float make_q3_quants(int n, int nmax, const float* x, int8_t* L);
void make_q3_quants_x16(int n, int nmax, const float* x, int8_t* L, float* scales);
void q_q8_0(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_q4_0(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_q4_1(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_q5_0(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_q5_1(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_q2_K(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_q3_K(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_q4_K(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_q5_K(const float* x, uint8_t* out, int64_t nb, const float* imp);
void q_q6_K(const float* x, uint8_t* out, int64_t nb, const float* imp);

// Q3_K's 16 signed 6-bit scales (−32..31) out of / into its 12 scale bytes.
void q3_scales(const uint8_t* scales, int* sc);
void pack_q3_scales(const int* sc, uint8_t* scales);
// Every code of one block (ggml_block_size(f) values x) set to its grid's nearest value.
void set_nearest_codes(Format f, const float* x, uint8_t* block);
// The weighted fits' last step for Q2_K / Q3_K (src/codecs/kquant_refine.cpp): one block's
// scales (and mins) and codes refined in place to a lower error Σ imp_i (x_i − value_i)² (the
// importance itself, not the fit's imp·sqrt(σ² + x²): with diag(H) it is the output error's
// diagonal, with importance 1 plain squared error), by coordinate descent over the stored
// integers and f16 super-scales; never a higher error than the fit it starts from.
void refine_q2_K(const float* x, const float* imp, uint8_t* block);
void refine_q3_K(const float* x, const float* imp, uint8_t* block);

// One block's sub-block grids, and its codes replaced (ggml_block_grids / ggml_block_set_codes).
void grids_q8_0(const uint8_t* b, GgmlGrid* g);
void grids_q4_0(const uint8_t* b, GgmlGrid* g);
void grids_q4_1(const uint8_t* b, GgmlGrid* g);
void grids_q5_0(const uint8_t* b, GgmlGrid* g);
void grids_q5_1(const uint8_t* b, GgmlGrid* g);
void grids_q2_K(const uint8_t* b, GgmlGrid* g);
void grids_q3_K(const uint8_t* b, GgmlGrid* g);
void grids_q4_K(const uint8_t* b, GgmlGrid* g);
void grids_q5_K(const uint8_t* b, GgmlGrid* g);
void grids_q6_K(const uint8_t* b, GgmlGrid* g);
void grids_iq4_nl(const uint8_t* b, GgmlGrid* g);
void grids_iq4_xs(const uint8_t* b, GgmlGrid* g);
void codes_q8_0(uint8_t* b, const uint8_t* L);
void codes_q4_0(uint8_t* b, const uint8_t* L);
void codes_q4_1(uint8_t* b, const uint8_t* L);
void codes_q5_0(uint8_t* b, const uint8_t* L);
void codes_q5_1(uint8_t* b, const uint8_t* L);
void codes_q2_K(uint8_t* b, const uint8_t* L);
void codes_q3_K(uint8_t* b, const uint8_t* L);
void codes_q4_K(uint8_t* b, const uint8_t* L);
void codes_q5_K(uint8_t* b, const uint8_t* L);
void codes_q6_K(uint8_t* b, const uint8_t* L);
void codes_iq4_nl(uint8_t* b, const uint8_t* L);
void codes_iq4_xs(uint8_t* b, const uint8_t* L);

}  // namespace lmq::ggml
