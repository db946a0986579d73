// Builds a SentencePiece precompiled_charsmap by hand for tests and fuzz seeds: the layout
// model/spm_check.cpp documents (<uint32 trie bytes><darts-clone double array><strings>).
// Each trie node gets its own 256-unit block as its base, so positions never collide; units
// nothing uses hold bit 31 (a value unit), which no byte's label matches.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lmq::test {

class CharsmapBuilder {
 public:
  // rules: input bytes (no NUL) → replacement text. Longest match wins in libsentencepiece.
  explicit CharsmapBuilder(const std::map<std::string, std::string>& rules) {
    units_.assign(512, kUnused);
    set_offset(0, 256);  // the root sits at 0, its children in block 1
    std::map<std::string, size_t> node_at;  // key prefix → its unit position
    std::map<std::string, uint32_t> base_of{{"", 256}};
    for (const auto& [key, replacement] : rules) {
      for (size_t len = 1; len <= key.size(); ++len) {
        const std::string prefix = key.substr(0, len);
        if (node_at.count(prefix)) continue;
        const uint32_t pos = base_of.at(key.substr(0, len - 1)) ^ uint8_t(key[len - 1]);
        const uint32_t base = uint32_t(units_.size());
        units_.resize(units_.size() + 256, kUnused);
        units_[pos] = uint8_t(key[len - 1]);
        set_offset(pos, base);
        node_at[prefix] = pos;
        base_of[prefix] = base;
      }
      units_[node_at.at(key)] |= 1u << 8;  // has_leaf
      units_[base_of.at(key)] = 0x80000000u | uint32_t(strings_.size());
      strings_ += replacement;
      strings_.push_back('\0');
    }
    positions_ = node_at;
  }

  // Unit position of the node reached by `prefix` (0 = the root), for corrupting tests.
  uint32_t position(const std::string& prefix) const { return prefix.empty() ? 0 : uint32_t(positions_.at(prefix)); }
  // Makes the unit at pos send its children to `base` (any value: tests point it anywhere).
  void set_offset(uint32_t pos, uint32_t base) {
    const uint32_t offset = pos ^ base;  // < 2^21 here: stored unshifted (bit 9 clear)
    units_[pos] = (units_[pos] & 0x1FFu) | (offset << 10);
  }
  std::vector<uint32_t>& units() { return units_; }
  std::string& strings() { return strings_; }

  std::string bytes() const {
    std::string out;
    auto put32 = [&](uint32_t v) {
      for (int i = 0; i < 4; ++i) out.push_back(char(uint8_t(v >> (8 * i))));
    };
    put32(uint32_t(units_.size() * 4));
    for (uint32_t u : units_) put32(u);
    return out + strings_;
  }

 private:
  static constexpr uint32_t kUnused = 0x80000000u;
  std::vector<uint32_t> units_;
  std::string strings_;
  std::map<std::string, size_t> positions_;
};

}  // namespace lmq::test
