// SentencePiece precompiled_charsmaps: genuine ones load and normalize; corrupt ones are refused
// with one error naming the file before libsentencepiece reads its trie unchecked
// (model/spm_check.cpp). Suite named BadInput* so the sanitizer build runs it too.
#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>

#include <map>
#include <string>

#include "charsmap_builder.h"
#include "lmq/error.h"
#include "lmq/model/spm_proto.h"
#include "lmq/model/tokenizer.h"

using lmq::test::CharsmapBuilder;
using Rules = std::map<std::string, std::string>;

namespace {

// A byte-level-free BPE vocabulary of single characters, with the given charsmap.
std::string model_with(const std::string& charsmap) {
  lmq::SpmModelSpec spec;
  spec.pieces = {{"<unk>", 0, lmq::SpmType::Unknown}, {"<s>", 0, lmq::SpmType::Control},
                 {"</s>", 0, lmq::SpmType::Control}};
  for (const char* p : {"\xe2\x96\x81", "A", "a", "B", "b"}) spec.pieces.push_back({p, -1.f, lmq::SpmType::Normal});
  spec.precompiled_charsmap = charsmap;
  return lmq::serialize_spm_model(spec);
}

std::string load_error(const std::string& model_bytes) {
  try {
    lmq::Tokenizer::from_bytes(model_bytes, "dir/tokenizer.model");
  } catch (const lmq::Error& e) {
    return e.what();
  }
  return "";
}

void expect_refused(const std::string& charsmap, const std::string& problem) {
  SCOPED_TRACE(problem);
  const std::string err = load_error(model_with(charsmap));
  EXPECT_EQ(err.rfind("dir/tokenizer.model: the SentencePiece normalizer's precompiled_charsmap is corrupt: ", 0), 0u)
      << err;
  EXPECT_NE(err.find(problem), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
}

}  // namespace

TEST(BadInputCharsmap, AHandBuiltMapLoadsAndNormalizes) {
  const auto plain = lmq::Tokenizer::from_bytes(model_with(""), "plain");
  const auto mapped = lmq::Tokenizer::from_bytes(model_with(CharsmapBuilder(Rules{{"a", "A"}, {"bb", "B"}}).bytes()), "mapped");
  EXPECT_NE(plain.encode("a"), plain.encode("A"));
  EXPECT_EQ(mapped.encode("a"), mapped.encode("A"));   // the rule applies: the map is in use
  EXPECT_EQ(mapped.encode("bb"), mapped.encode("B"));  // a two-byte key
  EXPECT_EQ(mapped.encode("b"), plain.encode("b"));    // a prefix of a key alone is no match
}

TEST(BadInputCharsmap, ThirtyTwoMatchesAlongOnePathLoadThirtyThreeDoNot) {
  // libsentencepiece keeps at most 32 prefix matches in a fixed array and reads all it counts.
  auto rules = [](int n) {
    std::map<std::string, std::string> r;
    std::string key;
    for (int k = 1; k <= n; ++k) r.emplace(key += 'a', std::string(1, 'A'));
    return r;
  };
  const auto tok = lmq::Tokenizer::from_bytes(model_with(CharsmapBuilder(rules(32)).bytes()), "32");
  EXPECT_EQ(tok.encode(std::string(40, 'a')), tok.encode("AA"));  // the longest rule, 32, then 8
  expect_refused(CharsmapBuilder(rules(33)).bytes(), "more than 32 matches along one path");
}

TEST(BadInputCharsmap, CorruptTriesAreRefused) {
  {
    CharsmapBuilder b(Rules{{"a", "A"}});
    b.set_offset(0, 1u << 20);  // the root's children beyond the array
    expect_refused(b.bytes(), "trie unit 0 points past the");
  }
  {
    CharsmapBuilder b(Rules{{"ab", "A"}});
    b.set_offset(b.position("ab"), b.position("ab") ^ 'b');  // "ab"'s child for 'b' is itself
    expect_refused(b.bytes(), "cycle");
  }
  {
    CharsmapBuilder b(Rules{{"a", "A"}});
    b.strings().assign(1, 'A');  // the replacement's NUL cut off
    expect_refused(b.bytes(), "does not end in NUL");
  }
  {
    CharsmapBuilder b(Rules{{"a", "A"}, {"b", "BB"}});
    b.strings().resize(2);  // "A\0": the second rule's string is gone
    expect_refused(b.bytes(), "of a 2-byte string table");
  }
  {
    std::string bytes = CharsmapBuilder(Rules{{"a", "A"}}).bytes();
    bytes[0] = char(uint8_t(bytes[0]) + 8);  // the trie's size now runs past the map
    expect_refused(bytes, "overruns");
  }
  expect_refused(std::string("\x01\x00\x00\x00", 4), "it is 4 bytes");
  expect_refused(std::string("\x04\x00\x00\x00\x00\x00\x00\x00\x00", 9), "points past the 1-unit array");
}

TEST(BadInputCharsmap, AMapLibsentencepiecesTrainerBuiltLoads) {
  // nmt_nfkc: the default normalization of models trained with sentencepiece (T5, ALBERT…).
  struct Lines : sentencepiece::SentenceIterator {
    std::vector<std::string> lines = {"the quick brown fox jumps over the lazy dog",
                                      "ＡＢＣ full width letters and ① circled digits",
                                      "another line of plain text for the trainer"};
    size_t i = 0;
    bool done() const override { return i >= lines.size(); }
    void Next() override { ++i; }
    const std::string& value() const override { return lines[i]; }
    sentencepiece::util::Status status() const override { return {}; }
  } lines;
  std::string model;
  const auto st = sentencepiece::SentencePieceTrainer::Train(
      "--model_type=bpe --vocab_size=60 --hard_vocab_limit=false --normalization_rule_name=nmt_nfkc "
      "--minloglevel=2",
      &lines, &model);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_GT(model.size(), 100000u);  // the NFKC map is in it
  const auto tok = lmq::Tokenizer::from_bytes(model, "trained");
  EXPECT_EQ(tok.encode("ＡＢＣ"), tok.encode("ABC"));  // NFKC folds full-width letters
  EXPECT_EQ(tok.encode("①"), tok.encode("1"));
}
