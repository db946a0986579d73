// GGUF reader: header, metadata values (nested arrays), tensor infos, alignment, offsets; the
// block decoders on the tensors' bytes (every ggml block type, the i-quants' grid and sign
// indices included); then the model loader's use of the metadata (config, tensor names,
// tokenizer).
#include <vector>

#include "fuzz_support.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/formats/gguf.h"
#include "lmq/model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lmq::fuzz::as_file(data, size);
  try {
    lmq::GgufFile f(path);
    volatile uint8_t sink = 0;
    std::vector<float> y;
    for (const auto& t : f.tensors()) {
      sink = sink ^ lmq::fuzz::touch(t.data, t.nbytes);
      // small quantized tensors only (the seeds' are one block): any byte pattern must decode
      if (!lmq::format_traits(t.format).quantized || t.numel() > (1 << 16)) continue;
      y.resize(size_t(t.numel()));
      lmq::dequantize_rows(t, 0, t.rows(), y.data());
      sink = sink ^ uint8_t(y.empty() ? 0 : y[0] != 0);
    }
    auto m = lmq::Model::from_parts(lmq::load_gguf_parts(path));
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, path);
  }
  return 0;
}
