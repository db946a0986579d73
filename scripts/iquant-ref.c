// Reference figures for tests/iquant_test.cpp, computed by llama.cpp's own dequantizers
// (ggml_get_type_traits(type)->to_float of libggml-base, llama.cpp b4748), not by lmq:
//  1. per i-quant type, 4 blocks of pseudo-random bytes (the LCG below, as the test makes them)
//     with every block's f16 scale set to 0x2e66 (IQ1_M: the top nibbles of its scale words):
//     FNV-1a 64 of the dequantized floats' bits;
//  2. per GGUF file given, FNV-1a 64 of all its i-quant tensors dequantized, in file order;
//  3. IQ4_NL and IQ4_XS written by ggml_quantize_chunk (what llama-quantize calls) from the
//     pseudo-random rows of quant_input() below, without and with an importance: FNV-1a 64 of
//     the bytes.
// Build and run (the values printed are the ones the test holds):
//   gcc -O1 -I/work/llama.cpp-src/ggml/include scripts/iquant-ref.c -L/work/llama.cpp-build/bin
//       -lggml-base -o /tmp/iquant-ref    (one line)
//   LD_LIBRARY_PATH=/work/llama.cpp-build/bin /tmp/iquant-ref ../shared/gguf/lmq-llama3-9m-IQ*.gguf
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

static uint64_t fnv(uint64_t h, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    memcpy(&b, &y[i], 4);
    for (int k = 0; k < 4; ++k) h = (h ^ ((b >> 8 * k) & 0xff)) * 1099511628211ull;
  }
  return h;
}

static uint64_t fnv_bytes(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// 4 rows of 512: values in (-s, s) with s varying by row, one 64-value run of zeros (row 1),
// one outlier per row; importance in [0.01, 1.01). Exact in float (integers times powers of 2).
enum { QROWS = 4, QCOLS = 512 };
static void quant_input(float* x, float* imp) {
  uint64_t r = 12345;
  for (int i = 0; i < QROWS * QCOLS; ++i) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    const int32_t u = (int32_t)(r >> 40) - (1 << 23);  // -2^23 .. 2^23-1
    x[i] = (float)u * 0x1p-23f * (float)(1 + i / QCOLS) * 0.03125f;
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    imp[i] = 0.01f + (float)(r >> 40) * 0x1p-24f;
  }
  for (int i = 0; i < 64; ++i) x[QCOLS + 64 + i] = 0;
  for (int row = 0; row < QROWS; ++row) x[row * QCOLS + 37 * (row + 1)] = 0.75f * (float)(row + 1);
}

static int is_iquant(enum ggml_type t) {
  return t == GGML_TYPE_IQ4_NL || t == GGML_TYPE_IQ4_XS || t == GGML_TYPE_IQ2_XXS || t == GGML_TYPE_IQ2_XS ||
         t == GGML_TYPE_IQ2_S || t == GGML_TYPE_IQ3_XXS || t == GGML_TYPE_IQ3_S || t == GGML_TYPE_IQ1_S ||
         t == GGML_TYPE_IQ1_M;
}

int main(int argc, char** argv) {
  // ggml_init fills ggml's f16 -> f32 table, which GGML_FP16_TO_FP32 reads on x86
  struct ggml_init_params ip = {.mem_size = 1024, .mem_buffer = NULL, .no_alloc = true};
  struct ggml_context* ctx = ggml_init(ip);
  const enum ggml_type types[] = {GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS,  GGML_TYPE_IQ2_XXS, GGML_TYPE_IQ2_XS,
                                  GGML_TYPE_IQ2_S,  GGML_TYPE_IQ3_XXS, GGML_TYPE_IQ3_S, GGML_TYPE_IQ1_S,
                                  GGML_TYPE_IQ1_M};
  for (int t = 0; t < 9; ++t) {
    const struct ggml_type_traits* tr = ggml_get_type_traits(types[t]);
    const int64_t nb = 4, bs = tr->blck_size, bb = (int64_t)tr->type_size;
    uint8_t* q = malloc(nb * bb);
    float* y = malloc(nb * bs * sizeof(float));
    uint64_t x = 0x9e3779b97f4a7c15ull + (uint64_t)t;
    for (int64_t i = 0; i < nb * bb; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      q[i] = (uint8_t)(x >> 56);
    }
    for (int64_t b = 0; b < nb; ++b) {
      if (types[t] != GGML_TYPE_IQ1_M) {
        q[b * bb] = 0x66, q[b * bb + 1] = 0x2e;
        continue;
      }
      for (int k = 0; k < 4; ++k) {  // scales at 48: nibble k of d at the top of uint16 k
        uint8_t* hi = q + b * bb + 48 + 2 * k + 1;
        *hi = (uint8_t)((*hi & 0x0f) | ((0x2e66 >> 4 * k) & 15) << 4);
      }
    }
    tr->to_float(q, y, nb * bs);
    printf("random %-8s fnv 0x%016llx  y0..3 %.9g %.9g %.9g %.9g\n", tr->type_name,
           (unsigned long long)fnv(1469598103934665603ull, y, nb * bs), y[0], y[1], y[2], y[3]);
    free(q), free(y);
  }
  {
    float* x = malloc(QROWS * QCOLS * sizeof(float));
    float* imp = malloc(QROWS * QCOLS * sizeof(float));
    quant_input(x, imp);
    const enum ggml_type qt[] = {GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS};
    for (int t = 0; t < 2; ++t)
      for (int w = 0; w < 2; ++w) {
        const size_t bytes = ggml_row_size(qt[t], QCOLS) * QROWS;
        uint8_t* q = malloc(bytes);
        // the importance is per column (llama-quantize passes one imatrix row for every row)
        ggml_quantize_chunk(qt[t], x, q, 0, QROWS, QCOLS, w ? imp : NULL);
        printf("quantize %-6s %s fnv 0x%016llx\n", ggml_type_name(qt[t]), w ? "imatrix" : "plain  ",
               (unsigned long long)fnv_bytes(1469598103934665603ull, q, bytes));
        free(q);
      }
    free(x), free(imp);
  }
  for (int a = 1; a < argc; ++a) {
    struct gguf_init_params p = {.no_alloc = true, .ctx = NULL};
    struct gguf_context* g = gguf_init_from_file(argv[a], p);
    FILE* f = fopen(argv[a], "rb");
    uint64_t h = 1469598103934665603ull;
    int n = 0;
    for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
      const enum ggml_type t = gguf_get_tensor_type(g, i);
      if (!is_iquant(t)) continue;
      const size_t sz = gguf_get_tensor_size(g, i);
      const int64_t count = (int64_t)(sz / ggml_type_size(t)) * ggml_blck_size(t);
      uint8_t* q = malloc(sz);
      float* y = malloc(count * sizeof(float));
      fseek(f, (long)(gguf_get_data_offset(g) + gguf_get_tensor_offset(g, i)), SEEK_SET);
      if (fread(q, 1, sz, f) != sz) return 1;
      ggml_get_type_traits(t)->to_float(q, y, count);
      h = fnv(h, y, count);
      ++n;
      free(q), free(y);
    }
    printf("file %s: %d i-quant tensors, fnv 0x%016llx\n", argv[a], n, (unsigned long long)h);
    fclose(f);
    gguf_free(g);
  }
  ggml_free(ctx);
  return 0;
}
