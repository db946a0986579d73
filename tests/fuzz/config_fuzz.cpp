// config.json → ModelConfig: every accepted config must give sane derived sizes and survive
// its own round trip through to_hf_json() (what lmq's file stores). The same text's
// quantization_config (GPTQ / AWQ / compressed-tensors, model/hf_quant.h) is parsed too.
#include "fuzz_support.h"
#include "lmq/model/config.h"
#include "lmq/model/hf_quant.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name = "config.json";
  try {
    if (const auto q = lmq::parse_quantization_config(std::string(reinterpret_cast<const char*>(data), size), name)) {
      // What a reader relies on: bits the format allows, a group size of -1 or a positive count.
      if (q->bits < 2 || q->bits > 8 || (q->group_size != -1 && q->group_size <= 0)) std::abort();
    }
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, name);
  }
  try {
    const auto c = lmq::ModelConfig::from_hf_json(std::string(reinterpret_cast<const char*>(data), size), name);
    if (c.q_dim() <= 0 || c.kv_dim() <= 0) std::abort();
    const auto back = lmq::ModelConfig::from_hf_json(c.to_hf_json(), "round trip");
    if (back.hidden != c.hidden || back.n_layers != c.n_layers || back.q_dim() != c.q_dim() ||
        back.kv_dim() != c.kv_dim() || back.vocab != c.vocab || back.tied_embeddings != c.tied_embeddings)
      std::abort();
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, name);
  }
  return 0;
}
