// The packed layouts of the quantized checkpoints that the GPU tool-chains write and vLLM /
// transformers load (AutoGPTQ/GPTQModel "gptq", AutoAWQ "gemm", llm-compressor's
// compressed-tensors), as pure functions between them and lmq's view of a quantized linear.
// No file I/O and no model: the safetensors reader/writer and the config blocks live elsewhere.
//
// lmq's view (the same as codecs/int_format.h, unpacked): a linear weight W [out, in] (rows =
// output channels, cols = input features) is stored as unsigned codes u[o·in + i] in
// [0, 2^b − 1], and per group one scale s and one zero point z (the unsigned code of 0.0; a
// symmetric group has z = 2^(b−1)), each array [out, groups] row-major. Value (o, i) is
// s·(u − z) (quant::dequant_code) with s, z those of the group of input i. Groups cover
// consecutive inputs unless a g_idx says otherwise (act-order; see below).
//
// Every packed array is int32 (stored little-endian by safetensors). All three formats pack
// b-bit fields LSB-first into 32-bit words: field k of a packed run sits at bits [k·b, (k+1)·b)
// of the run's bitstream, and stream bit t is bit t mod 32 of word t / 32. For b = 2/4/8 that is
// 32/b fields per word, field j of a word at bits [j·b, (j+1)·b). For b = 3, 32 fields fill three
// words exactly and a field may straddle two words (AutoGPTQ's 3-bit pack: ten fields, then one
// split over the word boundary, and so on). Unused high bits of a run's last word are zero.
//
// GPTQ (AutoGPTQ / GPTQModel, quant_method "gptq"), bits 2/3/4/8, in·b and out·b multiples of 32:
//   qweight int32 [in·b/32, out]  column o is one run: the codes of output o over the inputs,
//                                  input i in field i (packed along the inputs).
//   qzeros  int32 [groups, out·b/32]  row g is one run: the zero points of group g over the
//                                  outputs, output o in field o (packed along the outputs).
//                                  checkpoint_format "gptq" (v1) stores z − 1 (so only z ≥ 1 is
//                                  storable: symmetric z = 2^(b−1) stores 2^(b−1) − 1);
//                                  "gptq_v2" stores z itself.
//   scales  fp16 [groups, out]     (the transpose of lmq's [out, groups]).
//   g_idx   int32 [in]              the group of each input; i / group_size unless act-order.
//   group_size −1 means one group (per output channel): groups = 1.
//
// AWQ (AutoAWQ, quant_method "awq", version "gemm"), bits 4 only, out a multiple of 8:
//   qweight int32 [in, out/8]      row i packs the codes of input i over the outputs: word w
//                                  holds outputs 8w..8w+7, nibble j (bits 4j..4j+3) holding
//                                  output 8w + kAwqOrder[j], kAwqOrder = {0,2,4,6,1,3,5,7}.
//   qzeros  int32 [groups, out/8]  raw zero points z, same nibble order.
//   scales  fp16 [groups, out].    Groups are always consecutive inputs (no g_idx).
//
// compressed-tensors "pack-quantized" (weight-only intB), bits 2/4/8 here:
//   The format quantizes to signed q in [−2^(b−1), 2^(b−1) − 1] with a signed zero point zq
//   (0 when symmetric), value s·(q − zq), and packs q + 2^(b−1), zq + 2^(b−1). Those are exactly
//   lmq's u and z, so the packed fields are lmq's codes and zero points unchanged.
//   weight_packed      int32 [out, ceil(in·b/32)]  row o is one run over the inputs (packed
//                       along dim 1); the tail of a row's last word is zero padding.
//   weight_scale       [out, groups] in the model's float dtype (lmq's order, no transpose).
//   weight_zero_point  int32 [ceil(out·b/32), groups]  asymmetric only: column g is one run over
//                       the outputs (packed along dim 0).
//   weight_shape       int [2] = {out, in};  weight_g_idx int32 [in] with act-order.
//   Older compressed-tensors releases put 32/b fields per word (no straddling); for b = 2/4/8
//   that is the same bitstream, which is why 3-bit pack-quantized is refused here.
// compressed-tensors "int-quantized" (W8A8): weight int8 [out, in] holds q = u − 128 as
//   two's-complement bytes, weight_scale [out, 1], symmetric (z = 128).
//
// Act-order: a g_idx that is not i / group_size (GPTQ desc_act, compressed-tensors
// weight_g_idx). lmq's layout needs each group's inputs consecutive, so the reader sorts the
// inputs by group (stably) and stores the weight over the permuted inputs; the forward pass
// then feeds x[perm[j]] to permuted input j (vLLM's Marlin does the same).
//
// Functions taking shapes from a file throw lmq::Error (naming `what`) when the shapes and bits
// do not fit the format; the values they unpack are returned as stored (the caller checks a
// v1 zero point of 2^b, which no b-bit code can hold).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace lmq::hf {

// ---- the one bitstream of all three formats ------------------------------------------------
// Packs n values (low b bits of each, b in 1..8) into ceil(n·b/32) words as one run.
void pack_run(const uint32_t* v, int64_t n, int bits, uint32_t* words);
void unpack_run(const uint32_t* words, int64_t n, int bits, uint32_t* v);
int64_t run_words(int64_t n, int bits);  // ceil(n·b / 32)

// ---- GPTQ -----------------------------------------------------------------------------------
enum class GptqVersion { V1, V2 };  // checkpoint_format "gptq" / "gptq_v2"
bool gptq_bits_allowed(int bits);    // 2, 3, 4, 8

struct GptqShapes {
  std::array<int64_t, 2> qweight, qzeros, scales;
  int64_t g_idx = 0;
};
// Throws (naming `what`) for bits not in 2/3/4/8, or in·b / out·b not multiples of 32, or
// groups < 1.
GptqShapes gptq_shapes(int64_t out, int64_t in, int bits, int64_t groups, const std::string& what);

// codes [out, in] (lmq) <-> qweight [in·b/32, out].
std::vector<int32_t> gptq_pack_qweight(const uint8_t* codes, int64_t out, int64_t in, int bits);
void gptq_unpack_qweight(const int32_t* qweight, int64_t out, int64_t in, int bits, uint8_t* codes);
// zeros [out, groups] (lmq) <-> qzeros [groups, out·b/32]. Packing v1 throws (naming `what`) when
// a zero point is 0, which v1 cannot store; unpacking v1 returns stored + 1 (up to 2^b).
std::vector<int32_t> gptq_pack_qzeros(const int32_t* zeros, int64_t out, int64_t groups, int bits, GptqVersion v,
                                      const std::string& what);
void gptq_unpack_qzeros(const int32_t* qzeros, int64_t out, int64_t groups, int bits, GptqVersion v,
                        int32_t* zeros);

// ---- AWQ (gemm) ------------------------------------------------------------------------------
inline constexpr std::array<int, 8> kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7};
// Throws (naming `what`) unless bits == 4 and out is a multiple of 8.
void awq_check(int64_t out, int bits, const std::string& what);
// codes [out, in] <-> qweight [in, out/8].
std::vector<int32_t> awq_pack_qweight(const uint8_t* codes, int64_t out, int64_t in);
void awq_unpack_qweight(const int32_t* qweight, int64_t out, int64_t in, uint8_t* codes);
// zeros [out, groups] <-> qzeros [groups, out/8].
std::vector<int32_t> awq_pack_qzeros(const int32_t* zeros, int64_t out, int64_t groups);
void awq_unpack_qzeros(const int32_t* qzeros, int64_t out, int64_t groups, int32_t* zeros);

// ---- compressed-tensors ----------------------------------------------------------------------
bool ct_pack_bits_allowed(int bits);  // 2, 4, 8
// codes [out, in] <-> weight_packed [out, ceil(in·b/32)].
std::vector<int32_t> ct_pack_weight(const uint8_t* codes, int64_t out, int64_t in, int bits);
void ct_unpack_weight(const int32_t* packed, int64_t out, int64_t in, int bits, uint8_t* codes);
int64_t ct_weight_words(int64_t in, int bits);  // ceil(in·b/32)
// zeros [out, groups] <-> weight_zero_point [ceil(out·b/32), groups].
std::vector<int32_t> ct_pack_zero_point(const int32_t* zeros, int64_t out, int64_t groups, int bits);
void ct_unpack_zero_point(const int32_t* packed, int64_t out, int64_t groups, int bits, int32_t* zeros);
// int-quantized int8: unsigned 8-bit codes <-> the signed bytes q = u − 128.
void ct_codes_to_int8(const uint8_t* codes, int64_t n, int8_t* q);
void ct_int8_to_codes(const int8_t* q, int64_t n, uint8_t* codes);

// ---- scales and g_idx -------------------------------------------------------------------------
// [a, b] row-major -> [b, a] row-major (GPTQ/AWQ scales [groups, out] <-> lmq's [out, groups]).
std::vector<float> transpose(const float* m, int64_t a, int64_t b);
// The g_idx of consecutive groups: i / group_size (all 0 for group_size <= 0).
std::vector<int32_t> sequential_g_idx(int64_t in, int64_t group_size);
// Throws (naming `what`) when a value lies outside [0, groups).
void check_g_idx(const int32_t* g_idx, int64_t in, int64_t groups, const std::string& what);
// The input permutation that makes the groups consecutive: empty when g_idx is already
// i / group_size; else perm with inputs stably sorted by group (permuted input j is original
// input perm[j]). Throws (naming `what`) when a group does not hold exactly group_size inputs
// (the last one: the remainder), since lmq's layout could not hold it then.
std::vector<int32_t> act_order_perm(const int32_t* g_idx, int64_t in, int64_t group_size, const std::string& what);
// out[j] = in[perm[j]] for each of `rows` rows of `cols` values.
void permute_columns(const uint8_t* m, int64_t rows, int64_t cols, const int32_t* perm, uint8_t* out);

}  // namespace lmq::hf
