// Byte-level BPE vocabularies in GGUF (tokenizer/gguf_vocab.h): llama.cpp's own
// lmq-llama3-9m-Q8_0.gguf read as a tokenizer against Hugging Face tokenizers' reference ids
// (../shared/reference), tokenizer.ggml.pre chosen from tokenizer.json regexes, the written
// vocabulary against the one llama.cpp's converter wrote, and bad vocabularies.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lmq/error.h"
#include "lmq/formats/gguf.h"
#include "lmq/formats/gguf_writer.h"
#include "lmq/formats/safetensors.h"
#include "lmq/mapped_file.h"
#include "lmq/tokenizer/gguf_vocab.h"
#include "test_support.h"

using namespace lmq;
using lmq::test::shared_path;
using json = nlohmann::json;

namespace {

const std::string kFixture = "gguf/lmq-llama3-9m-Q8_0.gguf";

const BpeTokenizer& gguf_llama3() {
  static const BpeTokenizer tok = bpe_from_gguf(GgufFile(shared_path(kFixture)));
  return tok;
}

const json& reference(const std::string& model) {
  static std::map<std::string, json> refs;
  auto it = refs.find(model);
  if (it == refs.end())
    it = refs.emplace(model, json::parse(read_text_file(shared_path("reference/" + model + "/reference.json")))).first;
  return it->second;
}

// The tokenizer.ggml.* keys of a file, as a writer input.
std::vector<std::pair<std::string, GgufValue>> vocab_keys(const GgufFile& f) {
  std::vector<std::pair<std::string, GgufValue>> kv;
  for (const auto& [k, v] : f.metadata())
    if (k.rfind("tokenizer.ggml.", 0) == 0) kv.emplace_back(k, v);
  return kv;
}

std::string write_vocab(const std::vector<std::pair<std::string, GgufValue>>& kv, const std::string& name = "v.gguf") {
  const std::string path = lmq::test::temp_dir() + "/" + name;
  GgufWriter w(path);
  w.set("general.architecture", GgufValue::str("llama"));
  for (const auto& [k, v] : kv) w.set(k, v);
  w.finish();
  return path;
}

GgufValue& value(std::vector<std::pair<std::string, GgufValue>>& kv, const std::string& key) {
  for (auto& [k, v] : kv)
    if (k == key) return v;
  kv.emplace_back(key, GgufValue{});
  return kv.back().second;
}

}  // namespace

// llama.cpp's file holds no regex: "llama-bpe" must map to the one Llama-3 was trained with.
TEST(GgufBpe, Llama3VocabularyEncodesTheTextsAsTheReference) {
  const BpeTokenizer& tok = gguf_llama3();
  const json& ref = reference("lmq-llama3-9m");
  SafetensorsFile tensors(shared_path("reference/lmq-llama3-9m/reference.safetensors"));
  for (auto [file, key] : {std::pair{"wikitext-2-test", "wikitext_2_test"}, {"docs-valid", "docs_valid"}}) {
    const json& info = ref.at("texts").at(file);
    const std::string text = read_text_file(shared_path("text/" + info.at("file").get<std::string>()));
    const std::vector<int> ids = tok.encode(text, false);
    EXPECT_EQ(ids.size(), info.at("n_text_tokens").get<size_t>()) << file;
    const StTensor* want = tensors.find(std::string(key) + ".first_ids");
    ASSERT_NE(want, nullptr);
    const auto* w = reinterpret_cast<const int32_t*>(want->tensor.data);
    ASSERT_GE(ids.size(), 4096u);
    for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(ids[i], w[i]) << file << " token " << i;
    EXPECT_TRUE(tok.decode(ids) == text) << file;
  }
}

TEST(GgufBpe, Llama3VocabularyMatchesTheTokenizerJsonOnEveryCase) {
  const BpeTokenizer& tok = gguf_llama3();
  const BpeTokenizer hf = BpeTokenizer::from_file(shared_path("models/lmq-llama3-9m/tokenizer.json"));
  EXPECT_EQ(tok.vocab_size(), hf.vocab_size());
  EXPECT_EQ(tok.prefix_ids(), hf.prefix_ids());  // llama-bpe adds BOS, as the template does
  const json& cases = reference("lmq-llama3-9m").at("tokenizer_cases");
  ASSERT_GE(cases.size(), 30u);
  for (const json& c : cases) {
    const std::string text = c.at("text");
    const std::vector<int> want = c.at("ids");
    EXPECT_EQ(tok.encode(text), want) << "text: " << text;
    EXPECT_EQ(hf.encode(text), want) << "text: " << text;
    EXPECT_EQ(tok.decode(want), c.at("decoded").get<std::string>()) << "text: " << text;
  }
  for (int id = 0; id < tok.vocab_size(); ++id) ASSERT_EQ(tok.token_type(id), hf.token_type(id)) << id;
}

TEST(GgufBpe, PreNamesAsLlamaCpp) {
  for (const char* name : {"default", "llama-bpe", "llama3", "llama-v3", "qwen2", "deepseek-r1-qwen", "gpt-2", "smollm"})
    EXPECT_NE(find_llamacpp_pre(name), nullptr) << name;
  EXPECT_EQ(find_llamacpp_pre("llama3"), find_llamacpp_pre("llama-bpe"));
  EXPECT_EQ(find_llamacpp_pre("no-such-pre"), nullptr);
  EXPECT_TRUE(find_llamacpp_pre("llama-bpe")->ignore_merges);
  EXPECT_TRUE(find_llamacpp_pre("llama-bpe")->add_bos);
  EXPECT_FALSE(find_llamacpp_pre("qwen2")->add_bos);
  EXPECT_EQ(find_llamacpp_pre("default")->regexes.size(), 4u);
  EXPECT_EQ(find_llamacpp_pre("smollm")->regexes.size(), 2u);
}

// The written name comes from the regex tokenizer.json holds.
TEST(GgufBpe, PreChosenByTheTokenizerJsonRegex) {
  const BpeTokenizer llama = BpeTokenizer::from_file(shared_path("models/lmq-llama3-9m/tokenizer.json"));
  const BpeTokenizer qwen = BpeTokenizer::from_file(shared_path("models/lmq-qwen3-8m/tokenizer.json"));
  ASSERT_TRUE(llama.split_regexes() && qwen.split_regexes());
  EXPECT_EQ(llamacpp_pre_of_regexes(*llama.split_regexes())->name, "llama-bpe");
  EXPECT_EQ(llamacpp_pre_of_regexes(*qwen.split_regexes())->name, "qwen2");
  // GPT-2: no Split, ByteLevel's own regex.
  json gpt2 = json::parse(read_text_file(shared_path("models/lmq-llama3-9m/tokenizer.json")));
  gpt2["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  const BpeTokenizer g = BpeTokenizer::from_json_text(gpt2.dump(), "gpt2.json");
  EXPECT_EQ(llamacpp_pre_of_regexes(*g.split_regexes())->name, "gpt-2");
  EXPECT_TRUE(gguf_bpe_vocab(g, g.vocab_size(), -1, -1).warning.empty());
  // A regex llama.cpp does not know: warned by name, written as "default".
  json odd = gpt2;
  odd["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers",
                           {{{"type", "Split"}, {"pattern", {{"Regex", "\\p{L}+|\\s+"}}}, {"behavior", "Isolated"}},
                            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  const BpeTokenizer o = BpeTokenizer::from_json_text(odd.dump(), "odd.json");
  const GgufBpeVocab v = gguf_bpe_vocab(o, o.vocab_size(), -1, -1);
  EXPECT_NE(v.warning.find("'\\p{L}+|\\s+' matches none of llama.cpp's"), std::string::npos) << v.warning;
  EXPECT_EQ(std::get<std::string>(v.metadata.at(1).second.v), "default");
  // add_prefix_space has no llama.cpp equivalent.
  gpt2["pre_tokenizer"]["add_prefix_space"] = true;
  const BpeTokenizer p = BpeTokenizer::from_json_text(gpt2.dump(), "prefix.json");
  EXPECT_FALSE(p.split_regexes().has_value());
  EXPECT_NE(gguf_bpe_vocab(p, p.vocab_size(), -1, -1).warning.find("not a list of regex splits"), std::string::npos);
}

// What lmq writes for the tokenizer.json is what llama.cpp's converter wrote for it.
TEST(GgufBpe, WrittenVocabularyEqualsLlamaCppConverters) {
  const GgufFile fixture(shared_path(kFixture));
  const BpeTokenizer hf = BpeTokenizer::from_file(shared_path("models/lmq-llama3-9m/tokenizer.json"));
  const GgufBpeVocab v = gguf_bpe_vocab(hf, 16384, 16376, 16377);
  EXPECT_TRUE(v.warning.empty()) << v.warning;
  for (const auto& [key, value] : v.metadata) {
    if (key == "tokenizer.ggml.add_bos_token" || key == "tokenizer.ggml.add_eos_token") continue;  // absent there
    ASSERT_TRUE(fixture.has(key)) << key;
    const GgufValue& want = fixture.get(key);
    if (key == "tokenizer.ggml.token_type") {  // same numbers, the type of the array may differ
      const auto& a = std::get<std::vector<GgufValue>>(value.v);
      const auto& b = std::get<std::vector<GgufValue>>(want.v);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(std::get<int64_t>(a[i].v), std::get<int64_t>(b[i].v)) << i;
    } else {
      EXPECT_TRUE(value == want) << key;
    }
  }
  // llama.cpp's defaults for llama-bpe (add BOS, no EOS) are what lmq writes explicitly.
  EXPECT_TRUE(std::get<bool>(v.metadata.at(7).second.v));
  // Read back: the same tokenizer.
  const BpeTokenizer back = bpe_from_gguf(GgufFile(write_vocab(v.metadata)));
  for (const json& c : reference("lmq-llama3-9m").at("tokenizer_cases"))
    EXPECT_EQ(back.encode(c.at("text").get<std::string>()), c.at("ids").get<std::vector<int>>());
}

// Qwen3's vocabulary through GGUF ("qwen2", no BOS, padding rows): encodes as the reference
// wherever the text is already NFC (llama.cpp does not normalize).
TEST(GgufBpe, Qwen3VocabularyRoundTrips) {
  const BpeTokenizer hf = BpeTokenizer::from_file(shared_path("models/lmq-qwen3-8m/tokenizer.json"));
  const GgufBpeVocab v = gguf_bpe_vocab(hf, hf.vocab_size() + 5, -1, 0);
  EXPECT_TRUE(v.warning.empty()) << v.warning;
  const BpeTokenizer back = bpe_from_gguf(GgufFile(write_vocab(v.metadata)));
  EXPECT_EQ(back.vocab_size(), hf.vocab_size() + 5);
  EXPECT_EQ(back.piece(hf.vocab_size() + 2), "[PAD" + std::to_string(hf.vocab_size() + 2) + "]");
  EXPECT_FALSE(back.adds_bos());
  EXPECT_EQ(back.merges(), hf.merges());
  size_t checked = 0;
  for (const json& c : reference("lmq-qwen3-8m").at("tokenizer_cases")) {
    const std::string text = c.at("text");
    if (hf.encode(text) != back.encode(text)) {
      // Only a text NFC changes may differ.
      EXPECT_NE(hf.decode(hf.encode(text)), text) << text;
      continue;
    }
    EXPECT_EQ(back.encode(text), c.at("ids").get<std::vector<int>>()) << text;
    ++checked;
  }
  EXPECT_GE(checked, 25u);
}

namespace {

void expect_vocab_error(std::vector<std::pair<std::string, GgufValue>> kv, const std::string& problem) {
  const std::string path = write_vocab(kv, "bad.gguf");
  try {
    bpe_from_gguf(GgufFile(path));
    ADD_FAILURE() << "no error for: " << problem;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(problem), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

std::vector<std::pair<std::string, GgufValue>> fixture_vocab() { return vocab_keys(GgufFile(shared_path(kFixture))); }

}  // namespace

TEST(BadInputGgufBpe, UnknownPreTokenizer) {
  auto kv = fixture_vocab();
  value(kv, "tokenizer.ggml.pre") = GgufValue::str("no-such-pre");
  expect_vocab_error(kv, "tokenizer.ggml.pre 'no-such-pre' is not a pre-tokenizer lmq knows");
}

TEST(BadInputGgufBpe, MergeNamingAnUnknownToken) {
  auto kv = fixture_vocab();
  auto& merges = std::get<std::vector<GgufValue>>(value(kv, "tokenizer.ggml.merges").v);
  merges[3] = GgufValue::str("Ġ zzzzqqq");
  expect_vocab_error(kv, "'zzzzqqq' is not in the vocabulary");
  merges[3] = GgufValue::str("nospace");
  expect_vocab_error(kv, "is not two tokens separated by one space");
}

TEST(BadInputGgufBpe, TokenTypeOfTheWrongLength) {
  auto kv = fixture_vocab();
  std::get<std::vector<GgufValue>>(value(kv, "tokenizer.ggml.token_type").v).pop_back();
  expect_vocab_error(kv, "tokenizer.ggml.token_type has 16383 entries for 16384 tokens");
  auto kv2 = fixture_vocab();
  std::get<std::vector<GgufValue>>(value(kv2, "tokenizer.ggml.token_type").v)[5] = GgufValue::i32(9);
  expect_vocab_error(kv2, "token 5 has unknown token type 9");
}

TEST(BadInputGgufBpe, IdsAndMissingKeys) {
  auto kv = fixture_vocab();
  value(kv, "tokenizer.ggml.bos_token_id") = GgufValue::u32(99999);
  expect_vocab_error(kv, "bos_token_id = 99999 is outside the vocabulary");
  auto kv2 = fixture_vocab();
  std::erase_if(kv2, [](const auto& p) { return p.first == "tokenizer.ggml.merges"; });
  expect_vocab_error(kv2, "tokenizer.ggml.merges is missing");
  auto kv3 = fixture_vocab();
  auto& tokens = std::get<std::vector<GgufValue>>(value(kv3, "tokenizer.ggml.tokens").v);
  tokens[7] = tokens[6];
  expect_vocab_error(kv3, "token 7 ('");
}

// The equivalent tokenizer.json (what lmq's file stores for a GGUF BPE) reads back as the same
// tokenizer, BOS template included.
TEST(GgufBpe, EquivalentTokenizerJsonIsTheSameTokenizer) {
  const GgufFile f(shared_path(kFixture));
  const BpeTokenizer again = BpeTokenizer::from_json_text(BpeTokenizer::json_of(bpe_parts_from_gguf(f)), "again.json");
  const BpeTokenizer& tok = gguf_llama3();
  EXPECT_EQ(again.prefix_ids(), tok.prefix_ids());
  EXPECT_EQ(again.merges(), tok.merges());
  for (const json& c : reference("lmq-llama3-9m").at("tokenizer_cases"))
    EXPECT_EQ(again.encode(c.at("text").get<std::string>()), c.at("ids").get<std::vector<int>>());
}
