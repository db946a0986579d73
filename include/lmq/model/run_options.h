// What one run of a model may choose at run time, given to each Runner (no process-wide
// defaults: two runners in one process, e.g. a model and its float base, may differ).
#pragma once
#include <cstdint>

#include "lmq/kernels/act_quant.h"
#include "lmq/model/kv_cache.h"

namespace lmq {

struct RunOptions {
  // Dynamic int8 activations for LMQ_INT 8/4-bit weights (kernels/act_quant.h); None keeps the
  // float path, except in a file made with --activations int8:dynamic (then dynamic:absmax).
  ActQuant act_quant = ActQuant::None;
  int64_t act_block = 0;  // values per activation scale: 0 (one per token), 32 or 64
  KvType kv = KvType::F32;
  int threads = 0;  // OpenMP threads of the run's parallel regions; 0: the caller's setting
  // The run did not choose act_quant / act_block (the CLI without --act-quant): the model's
  // default applies instead. A GGUF file runs on dynamic int8 activations in blocks of 32 (what
  // llama.cpp's CPU backend does for its Q8_0/Q4_0 dot products; the integer kernels read its
  // blocks in place; Q8_0/Q4_0/IQ4 repacked at load without AVX-512 VNNI, model/load_gguf.cpp); other models keep the fields above.
  bool act_quant_from_model = false;
};

}  // namespace lmq
