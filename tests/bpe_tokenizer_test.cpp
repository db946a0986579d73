// BpeTokenizer (tokenizer.json, byte-level BPE) against Hugging Face tokenizers' own output in
// ../shared/reference/<model>/ (tokenizer_cases, the first 4096 ids and the token counts of both
// texts), round-trip properties, tokenizers' documented added-token rules, and bad input.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <utf8proc.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "lmq/error.h"
#include "lmq/formats/safetensors.h"
#include "lmq/mapped_file.h"
#include "lmq/tokenizer/bpe.h"
#include "lmq/tokenizer/utf8.h"
#include "test_support.h"

using namespace lmq;
using lmq::test::shared_path;
using json = nlohmann::json;

namespace {

struct Fixture {
  std::unique_ptr<BpeTokenizer> tok;
  json ref;
  std::unique_ptr<SafetensorsFile> tensors;
};

Fixture& fixture(const std::string& model) {
  static std::map<std::string, Fixture> all;
  auto it = all.find(model);
  if (it == all.end()) {
    Fixture f;
    f.tok = std::make_unique<BpeTokenizer>(BpeTokenizer::from_file(shared_path("models/" + model + "/tokenizer.json")));
    f.ref = json::parse(read_text_file(shared_path("reference/" + model + "/reference.json")));
    f.tensors = std::make_unique<SafetensorsFile>(shared_path("reference/" + model + "/reference.safetensors"));
    it = all.emplace(model, std::move(f)).first;
  }
  return it->second;
}

std::string streamed(const BpeTokenizer& tok, const std::vector<int>& ids) {
  Utf8Stream s;
  std::string out;
  for (const int id : ids) out += s.push(tok.token_bytes(id));
  return out + s.flush();
}

std::string nfc(const std::string& s) {
  utf8proc_uint8_t* p = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()), &p,
                              utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::string r = n >= 0 ? std::string(reinterpret_cast<const char*>(p), size_t(n)) : "(utf8proc failed)";
  std::free(p);
  return r;
}

class BpeReference : public ::testing::TestWithParam<std::string> {};

TEST_P(BpeReference, EveryTokenizerCaseGivesItsIdsAndDecodedText) {
  Fixture& f = fixture(GetParam());
  const json& cases = f.ref.at("tokenizer_cases");
  ASSERT_GE(cases.size(), 30u);
  for (const json& c : cases) {
    const std::string text = c.at("text");
    const std::vector<int> want = c.at("ids");
    const std::vector<int> ids = f.tok->encode(text);
    EXPECT_EQ(ids, want) << "text: " << text;
    EXPECT_EQ(f.tok->decode(want), c.at("decoded").get<std::string>()) << "text: " << text;
    EXPECT_EQ(streamed(*f.tok, want), c.at("decoded").get<std::string>()) << "text: " << text;
  }
}

// The window protocol encodes each whole file without special tokens.
TEST_P(BpeReference, WholeTextsGiveTheFirst4096IdsAndTheTokenCounts) {
  Fixture& f = fixture(GetParam());
  EXPECT_NE(f.ref.at("window_protocol").get<std::string>().find("without special tokens"), std::string::npos);
  for (auto [file, key] : {std::pair{"wikitext-2-test", "wikitext_2_test"}, {"docs-valid", "docs_valid"}}) {
    const json& info = f.ref.at("texts").at(file);
    const std::string text = read_text_file(shared_path("text/" + info.at("file").get<std::string>()));
    const std::vector<int> ids = f.tok->encode(text, false);
    EXPECT_EQ(ids.size(), info.at("n_text_tokens").get<size_t>()) << file;
    const StTensor* want = f.tensors->find(std::string(key) + ".first_ids");
    ASSERT_NE(want, nullptr);
    ASSERT_EQ(want->tensor.shape, std::vector<int64_t>{4096});
    const auto* w = reinterpret_cast<const int32_t*>(want->tensor.data);
    ASSERT_GE(ids.size(), 4096u);
    for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(ids[i], w[i]) << file << " token " << i;
    // Both texts are NFC and the tokenizer is lossless: the ids give the file back.
    EXPECT_TRUE(f.tok->decode(ids) == text) << file;
  }
}

// Whether BOS is added comes from the post-processor: the reference's encoding of "" shows it.
TEST_P(BpeReference, BosComesFromTheTemplate) {
  Fixture& f = fixture(GetParam());
  for (const json& c : f.ref.at("tokenizer_cases"))
    if (c.at("text") == "") {
      const std::vector<int> ids = c.at("ids");
      EXPECT_EQ(f.tok->prefix_ids(), ids);
      EXPECT_EQ(f.tok->adds_bos(), !ids.empty());
      if (!ids.empty()) {
        EXPECT_EQ(f.tok->token_type(ids[0]), 3);
      }
    }
  EXPECT_TRUE(f.tok->suffix_ids().empty());
}

INSTANTIATE_TEST_SUITE_P(Models, BpeReference, ::testing::Values("lmq-qwen3-8m", "lmq-llama3-9m"),
                         [](const auto& info) { return info.param == "lmq-qwen3-8m" ? "Qwen3" : "Llama3"; });

// ../shared/README.md: 16003 tokens for the Qwen3 tokenizer, Llama-3's 16376 + 8 specials.
TEST(BpeTokenizer, VocabularyAndTokenTypes) {
  const BpeTokenizer& q = *fixture("lmq-qwen3-8m").tok;
  EXPECT_EQ(q.vocab_size(), 16003);
  EXPECT_EQ(q.piece(16000), "<|endoftext|>");
  EXPECT_EQ(q.token_type(16002), 3);
  EXPECT_EQ(q.token_type(100), 1);
  EXPECT_EQ(q.token_id("<|im_start|>"), 16001);
  EXPECT_FALSE(q.adds_bos());
  const BpeTokenizer& l = *fixture("lmq-llama3-9m").tok;
  EXPECT_EQ(l.vocab_size(), 16384);
  EXPECT_EQ(l.bos_id(), 16376);
  EXPECT_EQ(l.piece(l.token_id("Ġthe").value()), "Ġthe");
  EXPECT_EQ(l.token_bytes(l.token_id("Ġthe").value()), " the");
  EXPECT_THROW((void)l.decode({16384}), Error);
  EXPECT_THROW((void)l.decode({-1}), Error);
}

// Unicode's example of maximal subparts (The Unicode Standard, §3.9, Table 3-8).
TEST(Utf8Lossy, ReplacesMaximalSubparts) {
  EXPECT_EQ(utf8_lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd");
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // a surrogate
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), "\uFFFD");              // a cut emoji
  EXPECT_EQ(utf8_lossy("\xC0\xAF"), "\uFFFD\uFFFD");            // overlong
  EXPECT_FALSE(utf8_valid("\xF4\x90\x80\x80"));                 // past U+10FFFF
  EXPECT_TRUE(utf8_valid("\xF4\x8F\xBF\xBF"));
  Utf8Stream s;
  EXPECT_EQ(s.push("a\xF0\x9F"), "a");
  EXPECT_EQ(s.push("\x98\x80"), "\U0001F600");
  EXPECT_EQ(s.push("\xE2\x82"), "");
  EXPECT_EQ(s.flush(), "\uFFFD");
}

// Random text from a mix of scripts, marks, emoji, whitespace and the specials' characters.
rc::Gen<std::string> unicode_text() {
  static const std::vector<char32_t> kPool = {
      'a', 'Z', ' ', ' ', '\n', '\r', '\t', '\'', 's', '1', '9', '.', '<', '|', '>', '_', 0xA0, 0x85, 0xE9,
      0x301, 0x308, 0x3B1, 0x416, 0x5D0, 0x627, 0x915, 0x93F, 0x3042, 0x4E2D, 0xAC00, 0x1100, 0x1161, 0x200B,
      0x2028, 0x3000, 0xFB01, 0x1F600, 0x1F1E9, 0x10FFFF, 0xFFFD, 0x0};
  return rc::gen::map(rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(0, kPool.size())),
                      [](const std::vector<size_t>& picks) {
                        std::string s;
                        utf8proc_uint8_t buf[4];
                        for (size_t i : picks) s.append(reinterpret_cast<char*>(buf), size_t(utf8proc_encode_char(utf8proc_int32_t(kPool[i]), buf)));
                        return s;
                      });
}

RC_GTEST_PROP(BpeProperties, Llama3RoundTripsValidUtf8, ()) {
  const BpeTokenizer& tok = *fixture("lmq-llama3-9m").tok;
  const std::string text = *unicode_text();
  const std::vector<int> ids = tok.encode(text, false);
  RC_ASSERT(tok.decode(ids) == text);
  RC_ASSERT(streamed(tok, ids) == text);
}

// Qwen3's normalizer is NFC: the round trip gives the text's NFC form (utf8proc's, computed here).
RC_GTEST_PROP(BpeProperties, Qwen3RoundTripsToNfc, ()) {
  const BpeTokenizer& tok = *fixture("lmq-qwen3-8m").tok;
  const std::string text = *unicode_text();
  const std::vector<int> ids = tok.encode(text, false);
  RC_ASSERT(tok.decode(ids) == nfc(text));
  RC_ASSERT(streamed(tok, ids) == nfc(text));
}

RC_GTEST_PROP(BpeProperties, RandomBytesReadAsLossyUtf8, ()) {
  const BpeTokenizer& tok = *fixture("lmq-llama3-9m").tok;
  const std::string bytes = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
  const std::vector<int> ids = tok.encode(bytes, true);
  RC_ASSERT(!ids.empty() && ids[0] == tok.bos_id());
  const std::vector<int> text_ids(ids.begin() + 1, ids.end());
  RC_ASSERT(tok.decode(text_ids) == utf8_lossy(bytes));
  RC_ASSERT(streamed(tok, text_ids) == utf8_lossy(bytes));
}

// A tokenizer.json whose vocabulary is the 256 byte-level characters with id = byte, no merges,
// plus the given added tokens: what the added-token rules cut out shows directly in the ids.
json byte_vocab_tokenizer(const json& added, bool add_prefix_space = false) {
  json vocab = json::object();
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    utf8proc_uint8_t buf[4];
    const auto n = utf8proc_encode_char(printable ? b : next++, buf);
    vocab[std::string(reinterpret_cast<char*>(buf), size_t(n))] = b;
  }
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"use_regex", false}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
}

json added(const std::string& content, int id, bool special, std::map<std::string, bool> opts = {}) {
  json a = {{"id", id}, {"content", content}, {"special", special}, {"normalized", !special}};
  for (const auto& [k, v] : opts) a[k] = v;
  return a;
}

std::vector<int> bytes_of(const std::string& s) {
  std::vector<int> r;
  for (const char c : s) r.push_back(uint8_t(c));
  return r;
}
std::vector<int> cat(std::initializer_list<std::vector<int>> parts) {
  std::vector<int> r;
  for (const auto& p : parts) r.insert(r.end(), p.begin(), p.end());
  return r;
}

// tokenizers' added_vocabulary.rs test options_use_cases (lower-cased text, as its normalizer did).
TEST(BpeAddedTokens, LstripRstripSingleWordAsTokenizers) {
  const json j = byte_vocab_tokenizer(json::array({added("my", 256, false, {{"lstrip", true}, {"rstrip", true}}),
                                                   added("name", 257, false), added("ony", 258, false, {{"single_word", true}}),
                                                   added("[CLS]", 259, true), added("[SEP]", 260, true)}));
  const BpeTokenizer tok = BpeTokenizer::from_json_text(j.dump(), "test.json");
  EXPECT_EQ(tok.encode("[CLS] my name is anthony [SEP]"), cat({{259, 256, 257}, bytes_of(" is anthony "), {260}}));
  EXPECT_EQ(tok.token_type(256), 4);
  EXPECT_EQ(tok.token_type(259), 3);
  EXPECT_EQ(tok.decode({259, 256}), "[CLS]my");
}

// tokenizers' test_single_word_is_correct and test_single_word_is_unicode_correct.
TEST(BpeAddedTokens, SingleWordBoundaries) {
  const json j = byte_vocab_tokenizer(json::array({added("<mask>", 256, false, {{"single_word", true}})}));
  const BpeTokenizer tok = BpeTokenizer::from_json_text(j.dump(), "test.json");
  EXPECT_EQ(tok.encode("<mask> my name <mask> a<mask> <mask>ony <mask>"),
            cat({{256}, bytes_of(" my name "), {256}, bytes_of(" a<mask> <mask>ony "), {256}}));
  EXPECT_EQ(tok.encode("<mask>, <mask>- \u25CC\u0330<mask>"),
            cat({{256}, bytes_of(", "), {256}, bytes_of("- \u25CC\u0330<mask>")}));
}

// Leftmost-longest: of two added tokens starting at one place the longer wins.
TEST(BpeAddedTokens, LongestMatchAndPrefixSpace) {
  const json j = byte_vocab_tokenizer(json::array({added("<a>", 256, true), added("<a><b>", 257, true)}), true);
  const BpeTokenizer tok = BpeTokenizer::from_json_text(j.dump(), "test.json");
  // ByteLevel's add_prefix_space puts a space before every piece that lacks one.
  EXPECT_EQ(tok.encode("x<a><b>y<a>"), cat({bytes_of(" x"), {257}, bytes_of(" y"), {256}}));
}

// tokenizers' split.rs test `basic`: an inverted word regex (so the spaces are the delimiters)
// under each behaviour. With ignore_merges every expected piece is one vocabulary entry, so the
// ids show where the pre-tokenizer cut.
TEST(BpeSplit, BehaviorsAndInvertAsTokenizers) {
  const std::map<std::string, std::vector<std::string>> want = {
      {"Removed", {"How", "are", "you", "doing", "?"}},
      {"Isolated", {"How", " ", "are", " ", "you", " ", "doing", "?"}},
      {"MergedWithPrevious", {"How ", "are ", "you ", "doing", "?"}},
      {"MergedWithNext", {"How", " are", " you", " doing", "?"}},
      {"Contiguous", {"How", " ", "are", " ", "you", " ", "doing?"}},
  };
  for (const auto& [behavior, pieces] : want) {
    json j = byte_vocab_tokenizer(json::array());
    j["model"]["ignore_merges"] = true;
    std::vector<int> ids;
    for (const std::string& p : pieces) {
      std::string key = p;
      for (size_t i; (i = key.find(' ')) != std::string::npos;) key.replace(i, 1, "\u0120");
      key = json::parse("\"" + key + "\"").get<std::string>();  // the byte-level spelling (Ġ for space)
      if (!j["model"]["vocab"].contains(key)) j["model"]["vocab"][key] = int(j["model"]["vocab"].size());
      ids.push_back(j["model"]["vocab"][key]);
    }
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers",
                           {{{"type", "Split"}, {"pattern", {{"Regex", "\\w+|[^\\w\\s]+"}}}, {"behavior", behavior}, {"invert", true}},
                            j["pre_tokenizer"]}}};
    const BpeTokenizer tok = BpeTokenizer::from_json_text(j.dump(), "test.json");
    EXPECT_EQ(tok.encode("How are you doing?"), ids) << behavior;
  }
}

// tokenizers' byte_level.rs tests: GPT-2's regex (use_regex) with and without add_prefix_space.
// Every expected piece is one vocabulary entry under ignore_merges, so the ids show the splits.
TEST(BpeByteLevel, Gpt2RegexAndPrefixSpaceAsTokenizers) {
  const std::vector<std::string> sentence = {"Hello", "Ġmy", "Ġfriend", ",", "Ġhow", "Ġis", "Ġyour", "Ġday", "Ġgoing", "?"};
  std::vector<std::string> prefixed = sentence;
  prefixed[0] = "ĠHello";
  const struct {
    bool prefix_space;
    std::string text;
    std::vector<std::string> pieces;
  } cases[] = {
      {false, "Hello my friend, how is your day going?", sentence},
      {true, "Hello my friend, how is your day going?", prefixed},
      {true, " Hello my friend, how is your day going?", prefixed},
      {false, "Hello there\nHello there", {"Hello", "Ġthere", "Ċ", "Hello", "Ġthere"}},
      {false, "Hello there       dear", {"Hello", "Ġthere", "ĠĠĠĠĠĠ", "Ġdear"}},
  };
  for (const auto& c : cases) {
    json j = byte_vocab_tokenizer(json::array(), c.prefix_space);
    j["pre_tokenizer"]["use_regex"] = true;
    j["model"]["ignore_merges"] = true;
    std::vector<int> ids;
    for (const std::string& p : c.pieces) {
      if (!j["model"]["vocab"].contains(p)) j["model"]["vocab"][p] = int(j["model"]["vocab"].size());
      ids.push_back(j["model"]["vocab"][p]);
    }
    const BpeTokenizer tok = BpeTokenizer::from_json_text(j.dump(), "test.json");
    EXPECT_EQ(tok.encode(c.text), ids) << c.text;
  }
}

// A tiny vocabulary with merges in both spellings, where rank order matters.
TEST(BpeModel, MergesApplyInRankOrderInBothSpellings) {
  for (const bool legacy : {false, true}) {
    json j = byte_vocab_tokenizer(json::array());
    auto& vocab = j["model"]["vocab"];
    vocab["ab"] = 256, vocab["bc"] = 257, vocab["abc"] = 258, vocab["bcd"] = 259;
    // Ranks: "b c" first, then "a b", "bc d", "a bc": "abcd" → a + bcd (bc merges first, then bcd).
    const std::vector<std::pair<std::string, std::string>> merges = {{"b", "c"}, {"a", "b"}, {"bc", "d"}, {"a", "bc"}};
    for (const auto& [a, b] : merges)
      j["model"]["merges"].push_back(legacy ? json(a + " " + b) : json::array({a, b}));
    const BpeTokenizer tok = BpeTokenizer::from_json_text(j.dump(), "test.json");
    EXPECT_EQ(tok.encode("abcd"), (std::vector<int>{'a', 259}));
    EXPECT_EQ(tok.encode("abc"), (std::vector<int>{258}));
    EXPECT_EQ(tok.encode("abab"), (std::vector<int>{256, 256}));
  }
}

// ---- Bad input: each a clear lmq::Error naming the file and the component ----

json real_json(const std::string& model = "lmq-llama3-9m") {
  return json::parse(read_text_file(shared_path("models/" + model + "/tokenizer.json")));
}

// Writes the text to a temporary tokenizer.json and expects loading it to fail with a message
// naming the file and holding `component` and `problem`.
void expect_load_error(const std::string& text, const std::string& component, const std::string& problem) {
  const std::string path = lmq::test::temp_dir() + "/tokenizer.json";
  lmq::test::write_file(path, text);
  try {
    (void)BpeTokenizer::from_file(path);
    ADD_FAILURE() << "loaded without error; expected " << component << ": " << problem;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(component), std::string::npos) << msg;
    EXPECT_NE(msg.find(problem), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(BadInputBpe, TruncatedJson) {
  const std::string text = read_text_file(shared_path("models/lmq-qwen3-8m/tokenizer.json"));
  expect_load_error(text.substr(0, text.size() / 2), "not valid JSON", "parse error");
  expect_load_error("", "not valid JSON", "");
}

TEST(BadInputBpe, NotJson) {
  expect_load_error("this is not json", "not valid JSON", "");
  expect_load_error("[1, 2, 3]", "not a tokenizer.json", "");
}

TEST(BadInputBpe, MergeNamingAnUnknownToken) {
  json j = real_json();
  j["model"]["merges"][5] = json::array({"Ġ", "nosuchtoken"});
  expect_load_error(j.dump(), "model.merges[5]", "'nosuchtoken' is not in the vocabulary");
  j = real_json();
  j["model"]["merges"][7] = "one two three";
  expect_load_error(j.dump(), "model.merges[7]", "not two tokens");
}

TEST(BadInputBpe, InvalidRegex) {
  json j = real_json();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(?i:'s|'t";
  expect_load_error(j.dump(), "pre_tokenizer.pretokenizers[0] (Split)", "invalid regex");
}

// A pattern with exponential backtracking ends in an error at encode time (PCRE2's match limit),
// in well under a second, instead of hanging.
TEST(BadInputBpe, CatastrophicRegexErrorsInsteadOfHanging) {
  json j = real_json();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(a|aa)+$|(x+x+)+y";
  const std::string path = lmq::test::temp_dir() + "/tokenizer.json";
  lmq::test::write_file(path, j.dump());
  const BpeTokenizer tok = BpeTokenizer::from_file(path);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    (void)tok.encode(std::string(200, 'x'));
    ADD_FAILURE() << "encoded without error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("catastrophic backtracking"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
}

TEST(BadInputBpe, AddedTokenIdOutsideTheVocabulary) {
  json j = real_json();
  j["added_tokens"][1]["id"] = 99999;
  expect_load_error(j.dump(), "added_tokens[1]", "id 99999, outside the vocabulary");
  j = real_json();
  j["added_tokens"][0]["id"] = -3;
  expect_load_error(j.dump(), "added_tokens[0]", "outside the vocabulary");
  j = real_json();
  j["post_processor"]["special_tokens"]["<|begin_of_text|>"]["ids"][0] = 20000;
  expect_load_error(j.dump(), "post_processor", "id 20000 is outside the vocabulary");
}

TEST(BadInputBpe, UnknownComponentTypes) {
  json j = real_json("lmq-qwen3-8m");
  j["normalizer"] = {{"type", "NoSuchNormalizer"}};
  expect_load_error(j.dump(), "normalizer", "type NoSuchNormalizer is not supported");
  j = real_json("lmq-qwen3-8m");
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Lowercase"}}}}};
  expect_load_error(j.dump(), "normalizer.normalizers[1]", "type Lowercase is not supported");
  j = real_json();
  j["pre_tokenizer"]["pretokenizers"][0] = {{"type", "Whitespace"}};
  expect_load_error(j.dump(), "pre_tokenizer.pretokenizers[0]", "type Whitespace is not supported");
  j = real_json();
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}};
  expect_load_error(j.dump(), "pre_tokenizer", "Metaspace");
  j = real_json();
  j["model"]["type"] = "WordPiece";
  expect_load_error(j.dump(), "model", "type WordPiece is not supported");
  j = real_json();
  j["model"]["type"] = "Unigram";
  expect_load_error(j.dump(), "model", "type Unigram is not supported");
  j = real_json();
  j["model"]["type"] = "Frobnicate";
  expect_load_error(j.dump(), "model", "unknown type 'Frobnicate'");
  j = real_json();
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  expect_load_error(j.dump(), "post_processor", "type RobertaProcessing is not supported");
  j = real_json();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_load_error(j.dump(), "decoder", "type WordPiece is not supported");
}

TEST(BadInputBpe, ByteFallbackIsRefused) {
  json j = real_json();
  j["model"]["byte_fallback"] = true;
  expect_load_error(j.dump(), "model", "byte_fallback");
}

TEST(BadInputBpe, MalformedStructure) {
  json j = real_json();
  j["model"]["vocab"]["Ġthe"] = "seven";
  expect_load_error(j.dump(), "model.vocab", "'Ġthe' has id \"seven\"");
  j = real_json();
  j["model"]["vocab"]["extra"] = 3;
  expect_load_error(j.dump(), "model.vocab", "id 3 is given to two entries");
  j = real_json();
  j["model"]["merges"] = 5;
  expect_load_error(j.dump(), "model.merges", "not a list");
  j = real_json();
  j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = "yes";
  expect_load_error(j.dump(), "pre_tokenizer.pretokenizers[1]", "'add_prefix_space' must be true or false");
  j = real_json();
  j["added_tokens"][2]["content"] = j["added_tokens"][0]["content"];
  expect_load_error(j.dump(), "added_tokens[2]", "is already added_tokens[0]");
  j = real_json();
  std::swap(j["pre_tokenizer"]["pretokenizers"][0], j["pre_tokenizer"]["pretokenizers"][1]);
  expect_load_error(j.dump(), "pre_tokenizer", "ByteLevel must be the last step");
  j = real_json();
  j["post_processor"]["single"] = json::array();
  expect_load_error(j.dump(), "post_processor", "must hold $A once");
}

}  // namespace
