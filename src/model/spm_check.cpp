// Checks a serialized SentencePiece ModelProto's precompiled character maps before
// libsentencepiece sees them (see spm_proto.h for why). The layout being checked:
//
//   ModelProto       3: NormalizerSpec, 5: NormalizerSpec (the denormalizer)
//   NormalizerSpec   2: precompiled_charsmap (bytes)
//   charsmap         <uint32 LE trie size T> <T bytes: darts-clone double array> <NUL-terminated strings>
//   darts unit (u32) bit 31 leaf/value unit; bits 0-7 label; bit 8 has_leaf;
//                    offset = (u >> 10) << ((u & (1 << 9)) >> 6); value = u & 0x7FFFFFFF
//
// darts-clone's commonPrefixSearch walks from unit 0: base = pos ^ offset(unit), next pos =
// base ^ byte, stops when the unit's label differs; a unit with has_leaf yields the value stored
// at units[base], an index into the strings. libsentencepiece trusts all of it: a base out of the
// array, a value past the strings, a cycle, or more than 32 results along one path (the fixed
// result array in Normalizer::NormalizePrefix) would read out of bounds.
#include <algorithm>
#include <string_view>
#include <vector>

#include "lmq/error.h"
#include "lmq/model/spm_proto.h"
#include "proto_wire.h"

namespace lmq {

namespace {

uint32_t unit_at(std::string_view trie, size_t i) {
  const auto* p = reinterpret_cast<const uint8_t*>(trie.data()) + 4 * i;
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint64_t unit_offset(uint32_t u) { return uint64_t(u >> 10) << ((u & (1u << 9)) >> 6); }
bool unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }
uint32_t unit_label(uint32_t u) { return u & 0x800000FFu; }

constexpr int kMaxResultsPerPath = 32;  // sentencepiece's Normalizer::kMaxTrieResultsSize

// Walks every node reachable from the root: bases inside the array, leaf values inside the
// strings, no cycles, at most kMaxResultsPerPath leaves on any path. Returns the problem or "".
std::string check_trie(std::string_view trie, size_t strings_size) {
  const size_t n = trie.size() / 4;
  if (n == 0) return "its trie is empty";
  std::string why;
  auto base_of = [&](size_t pos) {
    const uint64_t base = uint64_t(pos) ^ unit_offset(unit_at(trie, pos));
    if ((base | 0xFF) >= n) why = fmt::format("trie unit {} points past the {}-unit array", pos, n);
    return base;
  };
  // Iterative depth-first search (a hostile trie may be deep); most_below[pos] = the most
  // leaves on a path that starts below pos.
  enum : uint8_t { kNew, kOpen, kDone };
  std::vector<uint8_t> state(n, kNew);
  std::vector<int> most_below(n, 0);
  struct Frame {
    size_t pos;
    uint64_t base;
    uint32_t next_byte;
  };
  auto leaves_through = [&](size_t child) { return most_below[child] + int(unit_has_leaf(unit_at(trie, child))); };
  std::vector<Frame> stack{{0, base_of(0), 0}};
  if (!why.empty()) return why;
  state[0] = kOpen;
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next_byte == 256) {  // all children seen: report to the parent
      const size_t done = f.pos;
      state[done] = kDone;
      stack.pop_back();
      if (!stack.empty()) {
        int& best = most_below[stack.back().pos];
        best = std::max(best, leaves_through(done));
        if (best > kMaxResultsPerPath)
          return fmt::format("its trie has more than {} matches along one path", kMaxResultsPerPath);
      }
      continue;
    }
    const uint32_t c = f.next_byte++;
    const size_t child = size_t(f.base ^ c);
    const uint32_t u = unit_at(trie, child);
    if (unit_label(u) != c) continue;  // no edge for byte c
    if (state[child] == kOpen) return "its trie has a cycle";
    if (state[child] == kDone) {
      most_below[f.pos] = std::max(most_below[f.pos], leaves_through(child));
      continue;
    }
    const uint64_t base = base_of(child);
    if (!why.empty()) return why;
    const uint32_t value = unit_at(trie, base) & 0x7FFFFFFFu;
    if (unit_has_leaf(u) && value >= strings_size)
      return fmt::format("trie unit {} names byte {} of a {}-byte string table", child, value, strings_size);
    state[child] = kOpen;
    stack.push_back({child, base, 0});  // invalidates f
  }
  return "";
}

std::string check_charsmap(std::string_view blob) {
  if (blob.size() <= 4) return fmt::format("it is {} bytes", blob.size());
  const uint32_t trie_size = unit_at(blob, 0);
  if (trie_size > blob.size() - 4)
    return fmt::format("its trie of {} bytes overruns the {}-byte map", trie_size, blob.size());
  const std::string_view strings = blob.substr(4 + trie_size);
  if (!strings.empty() && strings.back() != '\0') return "its string table does not end in NUL";
  return check_trie(blob.substr(4, trie_size), strings.size());
}

}  // namespace

// A malformed message ends the walk: libsentencepiece's own parser refuses it.
void check_spm_model_bytes(std::string_view bytes, const std::string& origin) {
  proto::Reader model{bytes};
  uint64_t model_field = 0, spec_field = 0;
  std::string_view spec, charsmap;
  while (model.next(&model_field, &spec)) {
    if (model_field != 3 && model_field != 5) continue;
    proto::Reader normalizer{spec};
    while (normalizer.next(&spec_field, &charsmap)) {
      if (spec_field != 2 || charsmap.empty()) continue;
      const std::string why = check_charsmap(charsmap);
      if (!why.empty())
        fail("{}: the SentencePiece {} precompiled_charsmap is corrupt: {}", origin,
             model_field == 3 ? "normalizer's" : "denormalizer's", why);
    }
  }
}

}  // namespace lmq
