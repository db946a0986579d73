// tokenizer.json → BpeTokenizer::Impl. Every component is checked here, so encode() meets only
// well-formed tables; what lmq does not implement is refused by name (docs/tokenizers.md).
#include <utf8proc.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "bpe_internal.h"
#include "lmq/error.h"
#include "lmq/mapped_file.h"
#include "lmq/tokenizer/utf8.h"

namespace lmq {

namespace {

using json = nlohmann::json;
using namespace bpe;

constexpr int kMaxNesting = 16;  // Sequence in Sequence ...: real files nest one level
constexpr size_t kMaxSteps = 64;  // normalizers or pre-tokenizers in all (encode recurses per step)
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string utf8_of(char32_t c) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(utf8proc_int32_t(c), buf);
  return std::string(reinterpret_cast<const char*>(buf), size_t(n));
}

// The bytes a string of byte-level characters stands for; nothing if one of its characters is
// not a byte-level character.
std::optional<std::string> byte_level_decode(std::string_view s) {
  const auto& table = byte_level_table();
  std::string out;
  for (size_t i = 0; i < s.size();) {
    utf8proc_int32_t c = 0;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                    utf8proc_ssize_t(s.size() - i), &c);
    const auto it = n > 0 ? table.byte_of.find(char32_t(c)) : table.byte_of.end();
    if (it == table.byte_of.end()) return std::nullopt;
    out += char(it->second);
    i += size_t(n);
  }
  return out;
}

// What tokenizers' ByteLevel decoder makes of a token's string: the bytes its characters stand
// for, or the string itself when one of them is not a byte-level character (an added token).
std::string byte_level_bytes(std::string_view s) { return byte_level_decode(s).value_or(std::string(s)); }

class Loader {
 public:
  explicit Loader(BpeTokenizer::Impl& t) : t_(t) {}

  void load(const json& root) {
    if (const json* v = get(root, "version"); v && (!v->is_string() || *v != "1.0"))
      bad("version", "{} is not a tokenizer.json version lmq knows (1.0)", v->dump());
    const json* model = get(root, "model");
    if (!model) bad("model", "missing");
    load_model(*model);
    if (const json* n = get(root, "normalizer")) load_normalizer(*n, "normalizer", 0);
    if (const json* a = get(root, "added_tokens")) load_added(*a);
    const json* pre = get(root, "pre_tokenizer");
    if (!pre) bad("pre_tokenizer", "missing: a byte-level BPE needs the ByteLevel pre-tokenizer");
    load_pre(*pre, "pre_tokenizer", 0);
    check_pre();
    if (const json* p = get(root, "post_processor")) load_post(*p, "post_processor", 0);
    load_decoder(get(root, "decoder"));
    build_tables();
  }

 private:
  template <typename... A>
  [[noreturn]] void bad(const std::string& where, fmt::format_string<A...> f, A&&... a) {
    fail("{}: {}: {}", t_.origin, where, fmt::format(f, std::forward<A>(a)...));
  }
  // A key's value, or null when it is absent or JSON null.
  static const json* get(const json& obj, const char* key) {
    const auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  bool flag(const json& obj, const char* key, bool dflt, const std::string& where) {
    const json* v = get(obj, key);
    if (!v) return dflt;
    if (!v->is_boolean()) bad(where, "'{}' must be true or false", key);
    return v->get<bool>();
  }
  const std::string& str(const json& v, const std::string& where) {
    if (!v.is_string()) bad(where, "expected a string, found {}", v.type_name());
    return v.get_ref<const std::string&>();
  }
  const json& array(const json& obj, const char* key, const std::string& where) {
    const json* v = get(obj, key);
    if (!v || !v->is_array()) bad(where, "'{}' must be a list", key);
    return *v;
  }
  std::string type_of(const json& obj, const std::string& where, int depth) {
    if (depth > kMaxNesting) bad(where, "nested more than {} levels deep", kMaxNesting);
    if (!obj.is_object()) bad(where, "expected an object, found {}", obj.type_name());
    const json* t = get(obj, "type");
    if (!t) bad(where, "missing 'type'");
    return str(*t, where + ".type");
  }
  int vocab_id(const std::string& piece) const {
    const auto it = t_.ids.find(piece);
    return it == t_.ids.end() ? -1 : it->second;
  }
  static std::string at(const std::string& where, size_t i) { return where + "[" + std::to_string(i) + "]"; }

  void load_model(const json& m);
  void load_vocab(const json& vocab);
  void load_merges(const json& merges);
  void load_normalizer(const json& n, const std::string& where, int depth);
  void load_added(const json& list);
  void load_pre(const json& p, const std::string& where, int depth);
  void check_pre();
  void load_post(const json& p, const std::string& where, int depth);
  void load_template(const json& p, const std::string& where);
  void load_decoder(const json* d);
  void build_tables();

  BpeTokenizer::Impl& t_;
  int model_size_ = 0;
};

void Loader::load_model(const json& m) {
  if (!m.is_object()) bad("model", "expected an object, found {}", m.type_name());
  const json* vocab = get(m, "vocab");
  if (const json* type = get(m, "type")) {
    const std::string& ty = str(*type, "model.type");
    if (ty == "WordPiece" || ty == "Unigram" || ty == "WordLevel")
      bad("model", "type {} is not supported (lmq reads byte-level BPE tokenizer.json files)", ty);
    if (ty != "BPE") bad("model", "unknown type '{}'", ty);
  } else if (vocab && vocab->is_array()) {
    bad("model", "a Unigram model (no type, a list vocabulary) is not supported");
  }
  if (const json* d = get(m, "dropout"); d && !(d->is_number() && d->get<double>() == 0.0))
    bad("model", "dropout {} (random merges) is not supported", d->dump());
  if (flag(m, "byte_fallback", false, "model"))
    bad("model", "byte_fallback (<0xNN> byte tokens of a SentencePiece-style BPE) is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* v = get(m, key); v && !(v->is_string() && v->get_ref<const std::string&>().empty()))
      bad("model", "{} {} is not supported", key, v->dump());
  if (!vocab || !vocab->is_object()) bad("model.vocab", "missing or not an object of token → id");
  load_vocab(*vocab);
  const json* merges = get(m, "merges");
  if (!merges || !merges->is_array()) bad("model.merges", "missing or not a list");
  load_merges(*merges);
  t_.model.ignore_merges = flag(m, "ignore_merges", false, "model");
  t_.model.fuse_unk = flag(m, "fuse_unk", false, "model");
  if (const json* unk = get(m, "unk_token")) {
    t_.model.unk_id = vocab_id(str(*unk, "model.unk_token"));
    if (t_.model.unk_id < 0) bad("model.unk_token", "'{}' is not in the vocabulary", unk->get<std::string>());
  }
}

// The ids must be 0..n-1, each once (tokenizers numbers added tokens from n on).
void Loader::load_vocab(const json& vocab) {
  const size_t n = vocab.size();
  if (n == 0) bad("model.vocab", "empty");
  if (n > (size_t(1) << 24)) bad("model.vocab", "{} entries is more than lmq accepts", n);
  t_.pieces.assign(n, {});
  std::vector<bool> seen(n);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const json& v = it.value();
    const int64_t id = v.is_number_integer() ? v.get<int64_t>() : -1;
    if (id < 0 || uint64_t(id) >= n)
      bad("model.vocab", "'{}' has id {}: the ids of {} entries must be 0..{}", it.key(), v.dump(), n, n - 1);
    if (seen[size_t(id)]) bad("model.vocab", "id {} is given to two entries", id);
    seen[size_t(id)] = true;
    t_.pieces[size_t(id)] = it.key();
    t_.ids.emplace(it.key(), int(id));
  }
  model_size_ = int(n);
}

void Loader::load_merges(const json& merges) {
  int rank = 0;
  std::string a, b;
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_string()) {
      const std::string& line = m.get_ref<const std::string&>();
      if (line.rfind("#version", 0) == 0) continue;  // a merges.txt header, skipped as tokenizers does
      const size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
        bad(at("model.merges", i), "\"{}\" is not two tokens separated by one space", line);
      a = line.substr(0, sp), b = line.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>(), b = m[1].get<std::string>();
    } else {
      bad(at("model.merges", i), "expected \"a b\" or [\"a\", \"b\"], found {}", m.dump());
    }
    const int ia = vocab_id(a), ib = vocab_id(b), iab = vocab_id(a + b);
    for (const auto& [tok, id] : {std::pair{a, ia}, {b, ib}, {a + b, iab}})
      if (id < 0) bad(at("model.merges", i), "'{}' is not in the vocabulary", tok);
    t_.model.merges.insert_or_assign(uint64_t(uint32_t(ia)) << 32 | uint32_t(ib), std::pair{rank++, iab});
  }
}

void Loader::load_normalizer(const json& n, const std::string& where, int depth) {
  const std::string type = type_of(n, where, depth);
  static const std::pair<const char*, int> kForms[] = {
      {"NFC", UTF8PROC_STABLE | UTF8PROC_COMPOSE},
      {"NFD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE},
      {"NFKC", UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT},
      {"NFKD", UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT},
  };
  if (t_.normalizer.utf8proc_options.size() >= kMaxSteps) bad(where, "more than {} normalizers", kMaxSteps);
  for (const auto& [name, options] : kForms)
    if (type == name) return t_.normalizer.utf8proc_options.push_back(options);
  if (type != "Sequence")
    bad(where, "type {} is not supported (lmq reads NFC, NFD, NFKC, NFKD and Sequence)", type);
  const json& list = array(n, "normalizers", where);
  for (size_t i = 0; i < list.size(); ++i) load_normalizer(list[i], at(where + ".normalizers", i), depth + 1);
}

// tokenizers numbers the added tokens itself: the vocabulary's id for a string it has, else the
// next id after the vocabulary. A file whose ids differ would encode differently here and there.
void Loader::load_added(const json& list) {
  if (!list.is_array()) bad("added_tokens", "expected a list, found {}", list.type_name());
  int next_id = model_size_;
  bpe::StrMap<int> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = at("added_tokens", i);
    const json& a = list[i];
    if (!a.is_object()) bad(where, "expected an object, found {}", a.type_name());
    AddedToken tok;
    const json* content = get(a, "content");
    if (!content) bad(where, "missing 'content'");
    tok.content = str(*content, where + ".content");
    if (tok.content.empty()) bad(where, "empty content");
    if (!seen.emplace(tok.content, int(i)).second) bad(where, "'{}' is already added_tokens[{}]", tok.content, seen[tok.content]);
    const json* id = get(a, "id");
    if (!id || !id->is_number_integer()) bad(where, "missing or non-integer 'id'");
    const int in_vocab = vocab_id(tok.content);
    tok.id = in_vocab >= 0 ? in_vocab : next_id++;
    if (id->get<int64_t>() != tok.id)
      bad(where, "'{}' has id {}, outside the vocabulary's numbering (tokenizers gives it id {})", tok.content,
          id->dump(), tok.id);
    tok.single_word = flag(a, "single_word", false, where);
    tok.lstrip = flag(a, "lstrip", false, where);
    tok.rstrip = flag(a, "rstrip", false, where);
    tok.normalized = flag(a, "normalized", true, where);
    tok.special = flag(a, "special", false, where);
    t_.added.push_back(std::move(tok));
  }
  t_.pieces.resize(size_t(next_id));
  // The matchers point into t_.added, which no longer grows.
  bpe::StrMap<int> patterns;
  for (const AddedToken& tok : t_.added) {
    if (!tok.normalized) {
      t_.raw_added.add(tok.content, &tok);
      continue;
    }
    std::string pattern = t_.normalizer.active() ? t_.normalizer.apply(tok.content) : tok.content;
    if (pattern.empty()) bad("added_tokens", "'{}' normalizes to nothing", tok.content);
    if (!patterns.emplace(pattern, tok.id).second)
      bad("added_tokens", "'{}' normalizes to the same text as token {}", tok.content, patterns[pattern]);
    t_.normalized_added.add(std::move(pattern), &tok);
  }
}

void Loader::load_pre(const json& p, const std::string& where, int depth) {
  const std::string type = type_of(p, where, depth);
  if (type == "Sequence") {
    const json& list = array(p, "pretokenizers", where);
    for (size_t i = 0; i < list.size(); ++i) load_pre(list[i], at(where + ".pretokenizers", i), depth + 1);
    return;
  }
  if (t_.pre_steps.size() >= kMaxSteps) bad(where, "more than {} pre-tokenizers", kMaxSteps);
  PreStep step;
  if (type == "ByteLevel") {
    step.kind = PreStep::Kind::ByteLevel;
    step.add_prefix_space = flag(p, "add_prefix_space", true, where);
    if (flag(p, "use_regex", true, where)) {
      t_.regexes.push_back(std::make_unique<Regex>(kGpt2Pattern, false, t_.origin + ": " + where + " (ByteLevel)"));
      step.regex = t_.regexes.back().get();
      step.pattern = kGpt2Pattern;
    }
  } else if (type == "Split") {
    const json* pattern = get(p, "pattern");
    const json* re = pattern && pattern->is_object() ? get(*pattern, "Regex") : nullptr;
    const json* lit = pattern && pattern->is_object() ? get(*pattern, "String") : nullptr;
    if (!re && !lit) bad(where, "Split needs a pattern {{\"Regex\": ...}} or {{\"String\": ...}}");
    const std::string& text = str(re ? *re : *lit, where + ".pattern");
    t_.regexes.push_back(std::make_unique<Regex>(text, !re, t_.origin + ": " + where + " (Split)"));
    step.regex = t_.regexes.back().get();
    step.pattern = text;
    step.literal = !re;
    const json* behavior = get(p, "behavior");
    if (!behavior) bad(where, "Split needs a behavior");
    static const std::pair<const char*, SplitBehavior> kBehaviors[] = {
        {"Removed", SplitBehavior::Removed},
        {"Isolated", SplitBehavior::Isolated},
        {"MergedWithPrevious", SplitBehavior::MergedWithPrevious},
        {"MergedWithNext", SplitBehavior::MergedWithNext},
        {"Contiguous", SplitBehavior::Contiguous},
    };
    const std::string& b = str(*behavior, where + ".behavior");
    const auto* it = std::find_if(std::begin(kBehaviors), std::end(kBehaviors), [&](const auto& k) { return b == k.first; });
    if (it == std::end(kBehaviors)) bad(where, "unknown Split behavior '{}'", b);
    step.behavior = it->second;
    step.invert = flag(p, "invert", false, where);
  } else if (type == "Metaspace") {
    bad(where, "Metaspace (a SentencePiece-style BPE) is not supported from tokenizer.json; lmq reads such "
               "tokenizers from their tokenizer.model");
  } else {
    bad(where, "type {} is not supported (lmq reads Split, ByteLevel and Sequence)", type);
  }
  t_.pre_steps.push_back(step);
}

// The model works on raw bytes, so the ByteLevel mapping must be the last step.
void Loader::check_pre() {
  const auto& s = t_.pre_steps;
  const auto n = std::count_if(s.begin(), s.end(), [](const PreStep& p) { return p.kind == PreStep::Kind::ByteLevel; });
  if (n == 0) bad("pre_tokenizer", "no ByteLevel step: only byte-level BPE is supported from tokenizer.json");
  if (n > 1 || s.back().kind != PreStep::Kind::ByteLevel)
    bad("pre_tokenizer", "ByteLevel must be the last step, and only one (lmq does not support other orders)");
}

void Loader::load_post(const json& p, const std::string& where, int depth) {
  const std::string type = type_of(p, where, depth);
  if (type == "ByteLevel") return;  // it only trims offsets
  if (type == "TemplateProcessing") return load_template(p, where);
  if (type != "Sequence") bad(where, "type {} is not supported (lmq reads TemplateProcessing, ByteLevel, Sequence)", type);
  const json& list = array(p, "processors", where);
  for (size_t i = 0; i < list.size(); ++i) load_post(list[i], at(where + ".processors", i), depth + 1);
}

// The single-sequence template: special tokens before and after $A (what a later processor of a
// Sequence adds goes around what the earlier ones added).
void Loader::load_template(const json& p, const std::string& where) {
  const json& single = array(p, "single", where);
  const json* specials = get(p, "special_tokens");
  std::vector<int> before, after;
  int sequences = 0;
  for (size_t i = 0; i < single.size(); ++i) {
    const std::string w = at(where + ".single", i);
    const json& piece = single[i];
    if (!piece.is_object() || piece.size() != 1) bad(w, "expected {{\"Sequence\": ...}} or {{\"SpecialToken\": ...}}");
    const json& body = piece.begin().value();
    const json* id = body.is_object() ? get(body, "id") : nullptr;
    if (!id) bad(w, "missing 'id'");
    const std::string& name = str(*id, w + ".id");
    if (piece.begin().key() == "Sequence") {
      if (name != "A") bad(w, "the single-sequence template refers to sequence {}", name);
      ++sequences;
      continue;
    }
    if (piece.begin().key() != "SpecialToken") bad(w, "unknown template piece '{}'", piece.begin().key());
    const json* tok = specials && specials->is_object() ? get(*specials, name.c_str()) : nullptr;
    if (!tok || !tok->is_object()) bad(w, "special token '{}' is not in special_tokens", name);
    const json& ids = array(*tok, "ids", where + ".special_tokens." + name);
    for (const json& v : ids) {
      const int64_t x = v.is_number_integer() ? v.get<int64_t>() : -1;
      if (x < 0 || x >= int64_t(t_.pieces.size()))
        bad(where + ".special_tokens." + name, "id {} is outside the vocabulary (0..{})", v.dump(), t_.pieces.size() - 1);
      (sequences ? after : before).push_back(int(x));
    }
  }
  if (sequences != 1) bad(where, "the single template must hold $A once (it holds it {} times)", sequences);
  t_.prefix.insert(t_.prefix.begin(), before.begin(), before.end());
  t_.suffix.insert(t_.suffix.end(), after.begin(), after.end());
}

void Loader::load_decoder(const json* d) {
  if (!d) bad("decoder", "missing: lmq decodes byte-level BPE with the ByteLevel decoder");
  const std::string type = type_of(*d, "decoder", 0);
  if (type != "ByteLevel") bad("decoder", "type {} is not supported (lmq reads ByteLevel)", type);
}

void Loader::build_tables() {
  const size_t n = t_.pieces.size();
  t_.types.assign(n, 1);
  for (const AddedToken& tok : t_.added) {
    t_.pieces[size_t(tok.id)] = tok.content;
    t_.types[size_t(tok.id)] = tok.special ? 3 : 4;
    t_.ids[tok.content] = tok.id;
  }
  t_.bytes.resize(n);
  for (size_t id = 0; id < n; ++id) t_.bytes[id] = byte_level_bytes(t_.pieces[id]);
  // The decoder reads a normalized added token in its normalized form (tokenizers'
  // simple_id_to_token).
  for (const AddedToken& tok : t_.added)
    if (tok.normalized && t_.normalizer.active())
      t_.bytes[size_t(tok.id)] = byte_level_bytes(t_.normalizer.apply(tok.content));
  const auto& table = byte_level_table();
  for (int b = 0; b < 256; ++b) t_.model.byte_id[size_t(b)] = vocab_id(utf8_of(table.char_of[size_t(b)]));
  for (int id = 0; id < model_size_; ++id) {
    if (auto raw = byte_level_decode(t_.pieces[size_t(id)])) t_.model.raw_vocab.emplace(std::move(*raw), id);
  }
}

}  // namespace

BpeTokenizer BpeTokenizer::from_json_text(std::string_view text, const std::string& origin) {
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", origin, e.what());
  }
  if (!root.is_object()) fail("{}: not a tokenizer.json (not a JSON object)", origin);
  auto impl = std::make_shared<Impl>();
  impl->origin = origin;
  try {
    Loader(*impl).load(root);
  } catch (const json::exception& e) {
    fail("{}: unexpected structure: {}", origin, e.what());
  }
  return BpeTokenizer(std::move(impl));
}

BpeTokenizer BpeTokenizer::from_file(const std::string& path) { return from_json_text(read_text_file(path), path); }

namespace {

// The single-sequence TemplateProcessing that puts `prefix` and `suffix` around the text.
json template_of(const BpeParts& p) {
  json single = json::array(), specials = json::object();
  auto special = [&](int id) {
    const std::string name = id >= 0 && size_t(id) < p.tokens.size() ? p.tokens[size_t(id)] : std::to_string(id);
    single.push_back({{"SpecialToken", {{"id", name}, {"type_id", 0}}}});
    specials[name] = {{"id", name}, {"ids", {id}}, {"tokens", {name}}};
  };
  for (const int id : p.prefix) special(id);
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  for (const int id : p.suffix) special(id);
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", json::array()}, {"special_tokens", specials}};
}

// The tokenizer.json a BpeParts stands for. The vocabulary of the BPE model ends after its last
// ordinary token; added tokens (control, user-defined) past it exist only as added tokens, as in
// tokenizers' files, and those inside it are in both.
json json_of_parts(const BpeParts& p) {
  if (p.tokens.empty()) fail("{}: the vocabulary is empty", p.origin);
  if (p.token_types.size() != p.tokens.size())
    fail("{}: {} token types for {} tokens", p.origin, p.token_types.size(), p.tokens.size());
  const size_t n = p.tokens.size();
  for (size_t id = 0; id < n; ++id)
    if (!utf8_valid(p.tokens[id])) fail("{}: token {} is not valid UTF-8", p.origin, id);
  auto added_type = [&](size_t id) { return p.token_types[id] == 3 || p.token_types[id] == 4; };
  size_t model_size = n;
  while (model_size > 0 && added_type(model_size - 1)) --model_size;
  json vocab = json::object();
  for (size_t id = 0; id < model_size; ++id)
    if (!vocab.emplace(p.tokens[id], id).second)
      fail("{}: token {} ('{}') is also token {}", p.origin, id, p.tokens[id], vocab[p.tokens[id]].get<size_t>());
  json added = json::array();
  for (size_t id = 0; id < n; ++id)
    if (added_type(id))
      added.push_back({{"id", id}, {"content", p.tokens[id]}, {"special", p.token_types[id] == 3}, {"normalized", false}});
  json steps = json::array();
  for (const std::string& re : p.split_regexes)
    steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}});
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}});
  json model = {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", p.merges}, {"ignore_merges", p.ignore_merges}};
  return {{"version", "1.0"},
          {"model", std::move(model)},
          {"added_tokens", std::move(added)},
          {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", std::move(steps)}}},
          {"post_processor", template_of(p)},
          {"decoder", {{"type", "ByteLevel"}}}};
}

}  // namespace

BpeTokenizer BpeTokenizer::from_parts(const BpeParts& p) {
  const json root = json_of_parts(p);
  auto impl = std::make_shared<Impl>();
  impl->origin = p.origin;
  try {
    Loader(*impl).load(root);
  } catch (const json::exception& e) {
    fail("{}: unexpected structure: {}", p.origin, e.what());
  }
  return BpeTokenizer(std::move(impl));
}

std::string BpeTokenizer::json_of(const BpeParts& p) {
  from_parts(p);  // checked as it will be read
  return json_of_parts(p).dump();
}

std::vector<std::string> BpeTokenizer::merges() const {
  std::vector<std::pair<int, uint64_t>> by_rank;
  for (const auto& [pair, merged] : impl_->model.merges) by_rank.emplace_back(merged.first, pair);
  std::sort(by_rank.begin(), by_rank.end());
  std::vector<std::string> out;
  out.reserve(by_rank.size());
  for (const auto& [rank, pair] : by_rank)
    out.push_back(impl_->pieces[size_t(pair >> 32)] + " " + impl_->pieces[size_t(uint32_t(pair))]);
  return out;
}

bool BpeTokenizer::ignore_merges() const { return impl_->model.ignore_merges; }

std::optional<std::vector<std::string>> BpeTokenizer::split_regexes() const {
  std::vector<std::string> out;
  for (const PreStep& s : impl_->pre_steps) {
    if (s.kind == PreStep::Kind::ByteLevel) {
      if (s.add_prefix_space) return std::nullopt;
      if (s.regex) out.push_back(s.pattern);
    } else {
      if (s.literal || s.invert || s.behavior != SplitBehavior::Isolated) return std::nullopt;
      out.push_back(s.pattern);
    }
  }
  return out;
}

}  // namespace lmq
