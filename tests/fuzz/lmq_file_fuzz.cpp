// lmq's quantized file: the safetensors container, lmq.* metadata, the lmq.tensors table
// (formats, shapes, integer parameters, byte counts), then binding the weights to the config.
#include "fuzz_support.h"
#include "lmq/model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lmq::fuzz::as_file(data, size);
  try {
    auto parts = lmq::load_lmq_parts(path);
    volatile uint8_t sink = 0;
    for (const auto& t : parts.tensors) sink = sink ^ lmq::fuzz::touch(t.data, t.nbytes);
    auto m = lmq::Model::from_parts(std::move(parts));
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, path);
  }
  return 0;
}
