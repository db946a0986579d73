// A SentencePiece model's bytes (tokenizer.model, or lmq's lmq.tokenizer tensor) → Tokenizer.
#include "fuzz_support.h"
#include "lmq/model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name = "tokenizer.model";
  try {
    auto tok = lmq::Tokenizer::from_bytes(std::string(reinterpret_cast<const char*>(data), size), name);
    const auto ids = tok.encode("Hello, wörld! 12\xff");
    (void)tok.decode(ids);
    for (int id = 0; id < tok.vocab_size() && id < 64; ++id) (void)tok.token_type(id);
  } catch (const lmq::Error& e) {
    if (std::string_view(e.what()).rfind("tokenizer: ", 0) == 0) return 0;  // encode/decode errors name the tokenizer
    lmq::fuzz::expect_clean_error(e, name);
  }
  return 0;
}
