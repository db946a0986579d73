// lmq's calibrated methods into llama.cpp's block formats (`lmq quantize --format gguf
// --method rtn|mse|awmse|gptq|awq|awq+gptq`): the method chooses the codes and scales, the bytes are ggml's
// exact block layout (codecs/ggml_blocks.h), so llama.cpp and lmq read the result unchanged.
//
//   rtn    llama.cpp's reference quantizers (byte-identical to llama-quantize without imatrix);
//   mse    the scale fits weighted by w_i = sqrt(σ² + x_i²) alone (importance 1);
//   awmse  the same with importance E[x_j²] of the input column from calibration (llama.cpp's
//          imatrix weighting; lmq's search, see ggml_quantize_row);
//   gptq   GPTQ (calib/gptq.h) over each linear of the decoder blocks, sequentially through the
//          quantized blocks as for lmq's own schemes. Columns are processed in GPTQ's order; at
//          the first column of every ggml block (32 values, or a 256-value K-quant super-block
//          with its 16/32-value sub-blocks) the block's scales and mins are fitted by the
//          format's own quantizer to the current, error-updated weights of that row (weighted
//          by diag(H) with `hessian_fit`, like an imatrix); each column is then rounded to the
//          nearest value of its sub-block's grid and the error fed back. With act-order the
//          blocks are fitted up front (static groups). The lattice i-quants (IQ3_S, IQ3_XXS,
//          IQ2_XS, IQ2_XXS, IQ2_S, IQ1_M, IQ1_S: codebooks, no grid per sub-block) go through
//          codecs/iquant_lattice.h instead: the super-block's scales are fitted at its first
//          column, each sub-block's 4-bit scale refitted at its own, and at the first column of
//          every unit (a 4-value grid point, or the 8 values that share a sign parity) the unit's
//          grid entries and signs are found by exhaustive search for its current weights under
//          the weights 1/U_jj² (GPTQ's cost of an error in column j); act-order orders runs of 8
//          columns. What is stored dequantizes to exactly the values the error feedback assumed.
//          With GptqOptions::refit = N (`--refit N`; Q2_K, Q3_K and the lattice i-quants), N
//          joint rounds follow: the scales (4/6-bit integers and f16 super-scales) are refitted
//          to GPTQ's codes in the row's full output error (w − ŵ)ᵀH(w − ŵ) (ggml_refit_row_scales;
//          lattice_refit_row_scales with the grid entries and signs fixed), then a GPTQ sweep
//          under those scales picks new codes;
//          each row keeps the round of lowest output error, so it is never worse than the first
//          sweep. (With hessian_fit the block fits themselves end in a descent over the stored
//          integers, Σ diag(H)_j (x_j − value_j)², see codecs/ggml_blocks.h.)
//   awq    AWQ (calib/awq.h), sequential like gptq: each group's α is scored with llama.cpp's
//          reference quantizer of the linears' planned types, the scales are folded into the
//          norms (stored F32, as llama.cpp keeps them), v_proj and up_proj, and each scaled
//          linear gets the activation-weighted fit with E[(x/s)²] (awmse on the scaled weights);
//   awq+gptq  the same scaling, then GPTQ as above on the scaled weights with H' = D⁻¹HD⁻¹.
// The per-linear loop is calib::prepare_calibrated's (calib/pipeline.h) for both sinks: a
// linear whose plan target is a ggml block type goes through the two functions here. The folded
// float tensors come back as the plan's values; export_gguf writes them in place of the
// checkpoint's (GgufExportOptions::plan).
#pragma once
#include <cstdint>

#include "lmq/calib/gptq.h"
#include "lmq/tensor.h"

namespace lmq::calib {

// GPTQ of w [rows × K] into ggml format f (K a whole number of f's blocks). out: rows ×
// ggml_row_bytes(f, K). assumed (optional, rows × K): the dequantized values GPTQ's error
// feedback used. Returns the weight error of what was stored.
quant::QuantStats gptq_quantize_ggml(const float* w, int64_t rows, int64_t K, const float* H, Format f,
                                     const GptqOptions& o, bool hessian_fit, uint8_t* out, float* assumed = nullptr);

// rows × K values of w into ggml format f (bytes: rows × ggml_row_bytes) by llama.cpp's reference
// quantizer, or with `importance` (K values) lmq's weighted fit, and back to floats (back).
void ggml_round_trip(Format f, const float* w, int64_t rows, int64_t K, const float* importance, uint8_t* bytes,
                     float* back);

}  // namespace lmq::calib
