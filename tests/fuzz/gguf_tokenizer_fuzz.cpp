// GGUF tokenizer.ggml.* → SentencePiece ModelProto (model/spm_proto.cpp) → libsentencepiece.
#include "fuzz_support.h"
#include "lmq/formats/gguf.h"
#include "lmq/model/spm_proto.h"
#include "lmq/model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lmq::fuzz::as_file(data, size);
  try {
    lmq::GgufFile f(path);
    auto tok = lmq::Tokenizer::from_bytes(lmq::gguf_tokenizer_model(f), path);
    const auto ids = tok.encode("Hello, wörld! 12\xff");
    (void)tok.decode(ids);
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, path);
  }
  return 0;
}
