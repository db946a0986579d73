// GGUF reader: header, metadata values (nested arrays), tensor infos, alignment, offsets; then
// the model loader's use of the metadata (config, tensor names, tokenizer).
#include "fuzz_support.h"
#include "lmq/formats/gguf.h"
#include "lmq/model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lmq::fuzz::as_file(data, size);
  try {
    lmq::GgufFile f(path);
    volatile uint8_t sink = 0;
    for (const auto& t : f.tensors()) sink = sink ^ lmq::fuzz::touch(t.data, t.nbytes);
    auto m = lmq::Model::from_parts(lmq::load_gguf_parts(path));
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, path);
  }
  return 0;
}
