// Integer linear layers on llama.cpp's blocks read in place: the weight's bytes are the file's
// (mmapped) blocks, never repacked or dequantized to float; activations are int8 with one scale
// s_x[a] and one code sum Σq_x[a] per block a of 32 values (quantize_activations with
// block = sum_group = 32, kernels/act_quant.h). Layouts: codecs/ggml_blocks.h, codecs/iquant_blocks.h.
//
// Weights: Q8_0, Q4_0, Q4_0_X16 and Q8_0_X16 (also N a multiple of 16) and IQ4_NL (K a multiple
// of 32), Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q4_K_X16 and Q6_K_X16 (also N a multiple of 16), IQ4_XS and
// the lattice i-quants IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S and IQ1_M (K a multiple of 256); 2-D. For
// output o and token t, with q the weight codes and all sums integer (exact):
//   Q8_0, Q4_0 (blocks of 32; x = d·(q − c), c = 0 for Q8_0's int8 q, 8 for Q4_0's nibbles):
//   over the blocks a of row o, in increasing a, the activation block a is the weight's block a:
//     i[a]  = Σ_{k∈a} (q[k] − c)·q_x[k]
//     f[a] = s_x[a] · (d · float(i[a]))
//   The X16 layouts Q4_0_X16, Q8_0_X16, Q4_K_X16, Q6_K_X16 (Q4_0, Q8_0, Q4_K, Q6_K with 16 rows
//   interleaved in memory, codecs/ggml_interleave.h): the stored format's, block for block (the
//   same values, sums and order; only where the bytes sit differs)
//   IQ4_NL (blocks of 32 as Q4_0's; x = d·kv[q], kv the 16 int8 levels kIq4nlValues,
//   codecs/iquant_blocks.h), block by block as Q8_0:
//     i[a]  = Σ_{k∈a} kv[q[k]]·q_x[k]
//     f[a] = s_x[a] · (d · float(i[a]))
//   The K-quants, IQ4_XS and the lattice i-quants: over the super-blocks b (256 values) of row o,
//   in increasing b, the activation
//   blocks a = 8b + j (j = 0..7):
//   Q4_K, Q5_K (sub-block j = values 32j..32j+31 of the super-block; x = d·sc[j]·q − dmin·m[j]):
//     i[a]  = Σ_{k∈a} q[k]·q_x[k]
//     ds = d·float(sc[j]),  dm = dmin·float(m[j])                     (both exact in f32)
//     f[a] = s_x[a] · (float(i[a])·ds − float(Σq_x[a])·dm)
//   Q6_K, Q3_K (sub-blocks 2j and 2j+1 of 16 values; x = d·sc[s]·(q − c), c = 32 for Q6_K, 4
//   for Q3_K):
//     i[a]  = sc[2j]·Σ_{k∈2j}(q[k] − c)·q_x[k] + sc[2j+1]·Σ_{k∈2j+1}(q[k] − c)·q_x[k]
//     f[a] = s_x[a] · (d · float(i[a]))
//   Q2_K (sub-blocks 2j and 2j+1 of 16 values; x = d·sc[s]·q − dmin·m[s]):
//     i[a]  = sc[2j]·Σ_{k∈2j} q[k]·q_x[k] + sc[2j+1]·Σ_{k∈2j+1} q[k]·q_x[k]
//     mi[a] = m[2j]·Σ_{k∈2j} q_x[k] + m[2j+1]·Σ_{k∈2j+1} q_x[k]
//     f[a] = s_x[a] · (d·float(i[a]) − dmin·float(mi[a]))
//   IQ4_XS (sub-block j = values 32j..32j+31 as IQ4_NL's; x = d·(ls[j] − 32)·kv[q], ls 6-bit):
//     i[a]  = (ls[j] − 32)·Σ_{k∈a} kv[q[k]]·q_x[k]
//     f[a] = s_x[a] · (d · float(i[a]))
//   The lattice i-quants (x = D·sc[s]·w; w = grid byte · sign, the grid entry and the signs
//   those the block's indices pick; sc[s] = 2·s4 + 1 the odd multiplier of the 4-bit scale s4 of
//   16 values: IQ2_XS, IQ2_S keep one per 16 values, the others one per 32 that serves both
//   halves; D = d·c, c = 1/8 for IQ2_*, 1/4 for IQ3_XXS, 1 for IQ3_S, a power of two: exact;
//   IQ1_S, IQ1_M: w = 8·g ± 1 for the grid's g ∈ {−1, 0, 1} and delta ±1/8, sc from 3-bit
//   scales (IQ1_M one per 16 values, IQ1_S per 32), c = 1/8):
//     i[a]  = sc[2j]·Σ_{k∈2j} w[k]·q_x[k] + sc[2j+1]·Σ_{k∈2j+1} w[k]·q_x[k]
//     f[a] = s_x[a] · (D · float(i[a]))
//   (llama.cpp's own dot products keep the same integer sums and scale by d·c in float.)
// every product and difference rounded to f32 in the order written (no FMA), then, as the
// LMQ_INT kernels do (kernels/int_matmul.h):
//   slot[j] = Σ f[a] over the a with a mod 8 = j, added in increasing a from 0.0f  (8 slots)
//   y[t,o] = ((slot0 + slot4) + (slot2 + slot6)) + ((slot1 + slot5) + (slot3 + slot7))  (+ bias)
// d, dmin are the blocks' f16 fields; sc, m the sub-block scales: 6-bit (Q4_K, Q5_K), int8
// (Q6_K), 6-bit − 32 (Q3_K), 4-bit (Q2_K). The sums cannot overflow int32 (|i[a]| ≤ 2·128·16·32·127
// < 2^24, so float(i) is exact; Q8_0's ≤ 32·128·127; IQ4_XS's ≤ 32·32·127·128 < 2^24; the
// lattice ones' ≤ 31·32·62·127 < 2^23, |w| ≤ 43 for IQ2_*, 62 for IQ3_XXS, 15 for IQ3_S, 9 for IQ1_*).
// Kernels: the scalar specification, an AVX-512 VNNI one (vpdpbusd on the codes as u8: Q8_0's
// q + 128, the IQ4 levels kv[q] + 128 looked up by vpshufb, the lattice ones' w + 64, with
// 128·Σq_x / 64·Σq_x taken off after) and an AVX2 one for every format but the lattice i-quants
// (vpmaddubsw + vpmaddwd, no int16 pair saturating: the bounds in ggml_matmul_avx2.cpp; Q8_0 and
// the IQ4 levels by |w| × sign(w)·q_x, which needs the q_x in [−127, 127] that
// quantize_activations writes), both equal to it bit for bit; Auto picks VNNI where the CPU has
// it, else AVX2 (the lattice i-quants and the X16 layouts, which a loader makes only where VNNI
// is: the scalar one), else the scalar one. The VNNI kernel works
// on tiles of 4 output rows × up to 4 tokens (the X16 layouts: groups of 16 rows, one vpdpbusd
// lane per row, no reduction across lanes), so prefill reads each weight tile once per 4 tokens
// and decode streams the weight once; the AVX2 one on 1 row × up to 4 tokens, a row's 8 slots in
// one float vector. Threads
// split the output rows (OpenMP); results do not depend on the thread count. A block whose d or dmin is NaN/Inf is the
// loader's to refuse (ggml_nonfinite_blocks, codecs/ggml_repack.h): the kernels compute with it.
// Which formats these kernels take is the traits table's ggml_matmul (codecs/format_traits.h).
#pragma once
#include <cstdint>
#include <span>

#include "lmq/kernels/act_quant.h"
#include "lmq/kernels/int_matmul.h"
#include "lmq/tensor.h"

namespace lmq {

// Whether w runs on these kernels with activation blocks of act_block values (only 32).
bool ggml_matmul_supported(const Tensor& w, int64_t act_block);

// Whether this CPU runs these kernels in SIMD (AVX-512 VNNI, or AVX2: in one process the AVX2
// tiles ran Q8_0/Q4_0/IQ4_NL/IQ4_XS 1.05-2.5x faster than the same weights repacked into LMQ_INT
// on its AVX2 kernel, docs/results.md); without it Auto runs the scalar specification, so a
// loader repacks the formats that repack exactly (Q8_0, Q4_0, IQ4_NL, IQ4_XS:
// codecs/ggml_repack.h) instead of reading them in place.
bool ggml_matmul_has_simd();

// Whether this CPU runs the X16 layouts (Q4_0 / Q8_0 / Q4_K / Q6_K with 16 rows interleaved,
// codecs/ggml_interleave.h) in SIMD (AVX-512 VNNI), so a loader should interleave those linears
// (elsewhere the specification would run them: they stay as stored).
bool ggml_matmul_takes_x16();

struct GgmlMatmulJob {
  const Tensor* w;
  float* y;  // T × w.rows()
  const float* bias = nullptr;
};
// Every job against the same xq (block = sum_group = 32, K = each weight's columns), in one
// parallel region; the same results as one call per job. Throws lmq::Error for an unsupported
// weight, mismatched activations, or a kernel this CPU lacks. Avx2 runs the specification for
// the lattice i-quants (the same results: no AVX2 tile there yet).
void ggml_matmul_q(std::span<const GgmlMatmulJob> jobs, const QuantizedActs& xq, IntKernel k = IntKernel::Auto);
void ggml_matmul_q(const Tensor& w, const QuantizedActs& xq, float* y, const float* bias = nullptr,
                   IntKernel k = IntKernel::Auto);

}  // namespace lmq
