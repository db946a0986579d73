// DejaVu Sans's advance widths (data, see dejavu_sans_widths.cpp), sorted by code point.
#pragma once
#include <array>
#include <cstdint>

namespace lmq::chart::dejavu {

struct Advance {
  char32_t code;
  uint16_t width;  // font units
};
inline constexpr double kUnitsPerEm = 2048, kAscender = 1901, kDescender = 483;
inline constexpr uint16_t kNotdefWidth = 1229;  // what the font draws for a code point it lacks
inline constexpr uint16_t kMaxWidth = 2048;     // the widest code point in the table
extern const std::array<Advance, 210> kAdvances;

}  // namespace lmq::chart::dejavu
