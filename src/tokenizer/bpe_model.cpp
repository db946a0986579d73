// The BPE model: one pre-token's bytes → ids by applying the merges in rank order.
#include <algorithm>

#include "bpe_internal.h"

namespace lmq::bpe {

namespace {

constexpr size_t kCacheMaxWordBytes = 256;  // as tokenizers: long words are not cached
constexpr size_t kCacheMaxWords = 1 << 16;

struct Symbol {
  int id;
  int prev, next;  // neighbours in the word, -1 at the ends
  int len;         // bytes covered; 0 once merged into the symbol on its left
};

struct Merge {
  int rank, pos, new_id;
  // The heap's top is the lowest rank, then the leftmost position.
  bool operator<(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

uint64_t pair_key(int a, int b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }

}  // namespace

void BpeModel::encode_word(std::string_view bytes, std::vector<int>& ids) const {
  if (bytes.empty()) return;
  if (ignore_merges) {
    if (const auto it = raw_vocab.find(bytes); it != raw_vocab.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  const bool cacheable = bytes.size() < kCacheMaxWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (const auto it = cache_.find(bytes); it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = ids.size();
  merge_word(bytes, ids);
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() < kCacheMaxWords) cache_.emplace(std::string(bytes), std::vector<int>(ids.begin() + long(first), ids.end()));
  }
}

// tokenizers' Word::merge_all: a heap of candidate merges ordered by rank then position; an
// entry whose pair has changed since it was queued is dropped when popped (recognised, as in
// tokenizers, by the pair now at its position no longer merging into the queued id).
void BpeModel::merge_word(std::string_view bytes, std::vector<int>& ids) const {
  thread_local std::vector<Symbol> sym;
  thread_local std::vector<Merge> heap;
  sym.clear();
  heap.clear();
  auto add = [&](int id, int len) {
    const int n = int(sym.size());
    if (n > 0) sym.back().next = n;
    sym.push_back({id, n - 1, -1, len});
  };
  // Bytes whose character is not in the vocabulary become the unknown token (consecutive ones
  // fused into one if fuse_unk), or vanish when there is none, as in tokenizers.
  int unk_len = 0;
  for (const char c : bytes) {
    const int id = byte_id[static_cast<uint8_t>(c)];
    if (id >= 0) {
      if (unk_len) add(unk_id, unk_len), unk_len = 0;
      add(id, 1);
    } else if (unk_id >= 0) {
      if (unk_len && !fuse_unk) add(unk_id, unk_len), unk_len = 0;
      ++unk_len;
    }
  }
  if (unk_len) add(unk_id, unk_len);

  auto queue = [&](int pos) {
    const int next = sym[size_t(pos)].next;
    if (next < 0) return;
    if (const auto it = merges.find(pair_key(sym[size_t(pos)].id, sym[size_t(next)].id)); it != merges.end()) {
      heap.push_back({it->second.first, pos, it->second.second});
      std::push_heap(heap.begin(), heap.end());
    }
  };
  for (int i = 0; i + 1 < int(sym.size()); ++i) queue(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Merge top = heap.back();
    heap.pop_back();
    Symbol& s = sym[size_t(top.pos)];
    if (s.len == 0 || s.next < 0) continue;
    Symbol& right = sym[size_t(s.next)];
    const auto it = merges.find(pair_key(s.id, right.id));
    if (it == merges.end() || it->second.second != top.new_id) continue;  // stale entry
    s.id = top.new_id;
    s.len += right.len;
    right.len = 0;
    s.next = right.next;
    if (s.next >= 0) sym[size_t(s.next)].prev = top.pos;
    if (s.prev >= 0) queue(s.prev);
    queue(top.pos);
  }
  for (const Symbol& s : sym)
    if (s.len) ids.push_back(s.id);
}

}  // namespace lmq::bpe
