// BpeTokenizer's encode/decode: the tokenizers pipeline over the components of bpe_internal.h.
#include "lmq/tokenizer/bpe.h"

#include <algorithm>

#include "bpe_internal.h"
#include "lmq/error.h"
#include "lmq/tokenizer/utf8.h"

namespace lmq {

namespace {

using bpe::PreStep;
using bpe::SplitBehavior;

// A piece of a split and whether the split drops it.
struct Part {
  size_t begin, end;
  bool flag;
};

// tokenizers' NormalizedString::split: the matches and the text between them, flagged as matches,
// then merged or dropped as the behaviour says (the same folds as tokenizers, empty matches
// included, since they decide what merges with what).
void apply_behavior(std::vector<Part>& parts, SplitBehavior behavior) {
  std::vector<Part> acc;
  bool previous = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (Part& p : parts) p.flag = false;
      return;
    case SplitBehavior::Removed:
      return;
    case SplitBehavior::Contiguous:
    case SplitBehavior::MergedWithPrevious:
      for (const Part& p : parts) {
        const bool join = behavior == SplitBehavior::Contiguous ? p.flag == previous : p.flag && !previous;
        if (join && !acc.empty()) acc.back().end = p.end;
        else acc.push_back({p.begin, p.end, false});
        previous = p.flag;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->flag && !previous && !acc.empty()) acc.back().begin = it->begin;
        else acc.push_back({it->begin, it->end, false});
        previous = it->flag;
      }
      std::reverse(acc.begin(), acc.end());
      break;
  }
  parts.swap(acc);
}

class Encoder {
 public:
  Encoder(const BpeTokenizer::Impl& t, std::vector<int>& ids) : t_(t), ids_(ids), parts_(t.pre_steps.size()) {}

  // Pre-tokenizer step k on one piece, then the rest of the steps on what it gives, then the
  // model on each final pre-token. Empty pieces are dropped (tokenizers filters them).
  void run(std::string_view piece, size_t k) {
    if (piece.empty()) return;
    if (k == t_.pre_steps.size()) return t_.model.encode_word(piece, ids_);
    const PreStep& s = t_.pre_steps[k];
    if (s.kind == PreStep::Kind::Split) return split(piece, s, k);
    // ByteLevel: the prefix space goes on every piece that reaches it without one.
    std::string prefixed;
    if (s.add_prefix_space && piece.front() != ' ') {
      prefixed.reserve(piece.size() + 1);
      prefixed.push_back(' ');
      prefixed.append(piece);
      piece = prefixed;
    }
    if (s.regex) return split(piece, s, k);
    run(piece, k + 1);
  }

 private:
  void split(std::string_view piece, const PreStep& s, size_t k) {
    std::vector<Part>& parts = parts_[k];
    parts.clear();
    matches_.clear();
    s.regex->find_all(piece, matches_);
    size_t prev = 0;
    for (const auto& [b, e] : matches_) {
      if (prev != b) parts.push_back({prev, b, s.invert});
      parts.push_back({b, e, !s.invert});
      prev = e;
    }
    if (prev != piece.size()) parts.push_back({prev, piece.size(), s.invert});
    apply_behavior(parts, s.kind == PreStep::Kind::ByteLevel ? SplitBehavior::Isolated : s.behavior);
    for (const Part& p : parts)
      if (!p.flag) run(piece.substr(p.begin, p.end - p.begin), k + 1);
  }

  const BpeTokenizer::Impl& t_;
  std::vector<int>& ids_;
  std::vector<std::vector<Part>> parts_;  // one per step (a step recurses into the next)
  std::vector<std::pair<size_t, size_t>> matches_;
};

// Cuts the added tokens out of `text`; the text between them goes to `rest`.
template <typename F>
void split_added(const bpe::AddedMatcher& m, std::string_view text, std::vector<int>& ids, F&& rest) {
  if (m.empty()) return rest(text);
  std::vector<bpe::AddedMatcher::Segment> segs;
  m.split(text, segs);
  for (const auto& s : segs) {
    if (s.id >= 0) ids.push_back(s.id);
    else rest(text.substr(s.begin, s.end - s.begin));
  }
}

}  // namespace

std::vector<int> BpeTokenizer::encode(std::string_view text, bool add_special) const {
  const Impl& t = *impl_;
  std::string repaired;
  if (!utf8_valid(text)) text = repaired = utf8_lossy(text);
  std::vector<int> ids;
  ids.reserve(text.size() / 3 + 8);
  if (add_special) ids.insert(ids.end(), t.prefix.begin(), t.prefix.end());
  Encoder enc(t, ids);
  split_added(t.raw_added, text, ids, [&](std::string_view raw) {
    std::string normalized;
    if (t.normalizer.active()) raw = normalized = t.normalizer.apply(raw);
    split_added(t.normalized_added, raw, ids, [&](std::string_view piece) { enc.run(piece, 0); });
  });
  if (add_special) ids.insert(ids.end(), t.suffix.begin(), t.suffix.end());
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int>& ids) const {
  std::string bytes;
  for (const int id : ids) bytes += token_bytes(id);
  return utf8_lossy(bytes);
}

const std::string& BpeTokenizer::token_bytes(int id) const {
  if (id < 0 || id >= vocab_size()) fail("tokenizer: token id {} is outside the vocabulary (0..{})", id, vocab_size() - 1);
  return impl_->bytes[size_t(id)];
}

const std::string& BpeTokenizer::piece(int id) const {
  (void)token_bytes(id);  // the range check
  return impl_->pieces[size_t(id)];
}

int BpeTokenizer::token_type(int id) const {
  (void)token_bytes(id);
  return impl_->types[size_t(id)];
}

int BpeTokenizer::vocab_size() const { return int(impl_->pieces.size()); }

std::optional<int> BpeTokenizer::token_id(std::string_view piece) const {
  const auto it = impl_->ids.find(piece);
  if (it == impl_->ids.end()) return std::nullopt;
  return it->second;
}

const std::vector<int>& BpeTokenizer::prefix_ids() const { return impl_->prefix; }
const std::vector<int>& BpeTokenizer::suffix_ids() const { return impl_->suffix; }
const std::string& BpeTokenizer::origin() const { return impl_->origin; }

}  // namespace lmq
