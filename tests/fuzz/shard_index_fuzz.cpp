// model.safetensors.index.json: the weight_map naming the shards (never a path outside the folder).
#include "fuzz_support.h"
#include "lmq/model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name = "model.safetensors.index.json";
  try {
    for (const auto& shard : lmq::parse_shard_index(std::string(reinterpret_cast<const char*>(data), size), name))
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "..") std::abort();
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, name);
  }
  return 0;
}
