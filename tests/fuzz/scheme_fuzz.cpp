// Scheme strings (--scheme, --schemes), --override REGEX=SCHEME / REGEX=TYPE, --act-quant.
// Input: the bytes up to the first NUL go to every parser. An accepted scheme must print to a
// canonical form that parses back to the same scheme.
#include "fuzz_support.h"
#include "lmq/quant/gguf_export.h"
#include "lmq/kernels/act_quant.h"
#include "lmq/quant/quantize_model.h"
#include "lmq/quant/scheme.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  try {
    const auto sc = lmq::quant::parse_scheme(s);
    if (!(lmq::quant::parse_scheme(sc.to_string()) == sc)) std::abort();
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, "scheme");
  }
  try {
    (void)lmq::parse_override(s);
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, "--override");
  }
  try {
    (void)lmq::parse_gguf_override(s);
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, "--override");
  }
  try {
    (void)lmq::parse_act_quant(s);
  } catch (const lmq::Error& e) {
    lmq::fuzz::expect_clean_error(e, "act");
  }
  return 0;
}
