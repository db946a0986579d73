// GGUF tokenizer.ggml.* → the tokenizer lmq builds from it: a SentencePiece vocabulary ("llama")
// through model/spm_proto.cpp and libsentencepiece, a byte-level BPE ("gpt2") through
// tokenizer/gguf_vocab.cpp and BpeTokenizer.
#include "fuzz_support.h"
#include "lmq/formats/gguf.h"
#include "lmq/model/spm_proto.h"
#include "lmq/model/tokenizer.h"
#include "lmq/tokenizer/gguf_vocab.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lmq::fuzz::as_file(data, size);
  const char* text = "Hello, wörld! 12\xff <|begin_of_text|>  \n\n x";
  try {
    lmq::GgufFile f(path);
    if (f.has("tokenizer.ggml.model") && f.get("tokenizer.ggml.model").type == lmq::GgufType::STRING &&
        f.get_string("tokenizer.ggml.model") == "gpt2") {
      const lmq::BpeTokenizer tok = lmq::bpe_from_gguf(f);
      (void)tok.decode(tok.encode(text));
    } else {
      auto tok = lmq::Tokenizer::from_bytes(lmq::gguf_tokenizer_model(f), path);
      (void)tok.decode(tok.encode(text));
    }
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, path);
  }
  return 0;
}
