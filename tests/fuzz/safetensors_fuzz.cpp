// safetensors header: length, JSON, dtypes, shapes, data_offsets against the file size.
#include "fuzz_support.h"
#include "lmq/formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lmq::fuzz::as_file(data, size);
  try {
    lmq::SafetensorsFile f(path);
    volatile uint8_t sink = 0;
    for (const auto& t : f.tensors()) {
      if (t.tensor.nbytes != t.tensor.numel() * int64_t(lmq::st_dtype_size(t.dtype))) std::abort();
      sink = sink ^ lmq::fuzz::touch(t.tensor.data, t.tensor.nbytes);
    }
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, path);
  }
  return 0;
}
