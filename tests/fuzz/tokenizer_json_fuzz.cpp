// A tokenizer.json's text → BpeTokenizer (byte-level BPE), then encode, decode and the per-id
// tables. Beyond the rule that only a clean lmq::Error may escape: every id encode gives must be
// inside the vocabulary, and the streamed token bytes must give decode()'s text.
#include <cstdio>

#include "fuzz_support.h"
#include "lmq/tokenizer/bpe.h"
#include "lmq/tokenizer/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name = "tokenizer.json";
  static const char* const kTexts[] = {
      "Hello, w\xC3\xB6rld! 12345 \xFF<|endoftext|> I'll   go\r\n\ttabs",
      "<|begin_of_text|>caf\xC3\xA9 caf\x65\xCC\x81 \xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC <|im_start|>",
      "",
  };
  try {
    const auto tok = lmq::BpeTokenizer::from_json_text(std::string_view(reinterpret_cast<const char*>(data), size), name);
    for (const char* text : kTexts) {
      for (const bool special : {true, false}) {
        const std::vector<int> ids = tok.encode(text, special);
        lmq::Utf8Stream stream;
        std::string streamed;
        for (const int id : ids) {
          if (id < 0 || id >= tok.vocab_size()) {
            std::fprintf(stderr, "encode gave id %d outside the vocabulary (%d)\n", id, tok.vocab_size());
            std::abort();
          }
          streamed += stream.push(tok.token_bytes(id));
        }
        if (streamed + stream.flush() != tok.decode(ids)) {
          std::fprintf(stderr, "streamed token bytes differ from decode()\n");
          std::abort();
        }
      }
    }
    for (int id = 0; id < tok.vocab_size() && id < 64; ++id) (void)tok.token_type(id), (void)tok.piece(id);
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, name);
  }
  return 0;
}
