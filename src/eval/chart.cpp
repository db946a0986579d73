#include "lmq/eval/chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <random>

#include "eval/dejavu_sans_widths.h"

namespace lmq::chart {

// ---------------------------------------------------------------- text metrics
double font_ascent() { return dejavu::kAscender / dejavu::kUnitsPerEm; }
double font_descent() { return dejavu::kDescender / dejavu::kUnitsPerEm; }

namespace {

// Next code point of UTF-8 text; a malformed byte is one code point the font lacks.
char32_t next_code_point(std::string_view s, size_t& i) {
  const auto b = static_cast<unsigned char>(s[i++]);
  if (b < 0x80) return b;
  const int extra = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : -1;
  if (extra < 0 || i + size_t(extra) > s.size()) return 0xFFFD;
  char32_t c = b & (0x3F >> extra);
  for (int k = 0; k < extra; ++k) {
    const auto t = static_cast<unsigned char>(s[i]);
    if ((t & 0xC0) != 0x80) return 0xFFFD;
    c = (c << 6) | (t & 0x3F);
    ++i;
  }
  return c;
}

uint16_t advance(char32_t c) {
  const auto& t = dejavu::kAdvances;
  const auto it =
      std::lower_bound(t.begin(), t.end(), c, [](const dejavu::Advance& a, char32_t v) { return a.code < v; });
  return it != t.end() && it->code == c ? it->width : dejavu::kMaxWidth;
}

}  // namespace

double text_width(std::string_view utf8, double size) {
  double units = 0;
  for (size_t i = 0; i < utf8.size();) units += advance(next_code_point(utf8, i));
  return units / dejavu::kUnitsPerEm * size;
}

Box text_box(std::string_view utf8, double x, double y, double size, Anchor anchor) {
  const double w = text_width(utf8, size);
  const double x0 = anchor == Anchor::Start ? x : anchor == Anchor::Middle ? x - w / 2 : x - w;
  return {x0, y - font_ascent() * size, x0 + w, y + font_descent() * size};
}

bool segment_hits_box(const Segment& s, const Box& b) {
  // Liang–Barsky clipping against the open box.
  double t0 = 0, t1 = 1;
  const double dx = s.x1 - s.x0, dy = s.y1 - s.y0;
  const double p[4] = {-dx, dx, -dy, dy};
  const double q[4] = {s.x0 - b.x0, b.x1 - s.x0, s.y0 - b.y0, b.y1 - s.y0};
  for (int k = 0; k < 4; ++k) {
    if (p[k] == 0) {
      if (q[k] <= 0) return false;
      continue;
    }
    const double t = q[k] / p[k];
    if (p[k] < 0)
      t0 = std::max(t0, t);
    else
      t1 = std::min(t1, t);
    if (t0 >= t1) return false;
  }
  return true;
}

// ---------------------------------------------------------------- data helpers
std::vector<bool> pareto_front(const std::vector<std::pair<double, double>>& xy) {
  std::vector<bool> front(xy.size(), true);
  for (size_t i = 0; i < xy.size(); ++i)
    for (size_t j = 0; j < xy.size() && front[i]; ++j) {
      const auto [xi, yi] = xy[i];
      const auto [xj, yj] = xy[j];
      if (xj <= xi && yj <= yi && (xj < xi || yj < yi)) front[i] = false;
    }
  return front;
}

Axis fit_axis(std::string title, const std::vector<double>& values, bool log, double margin) {
  std::vector<double> v;
  for (double x : values)
    if (std::isfinite(x) && (!log || x > 0)) v.push_back(log ? std::log10(x) : x);
  Axis a{std::move(title), log ? 1e-4 : 0.0, 1.0, log};
  if (v.empty()) return a;
  double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
  if (hi - lo < 1e-9) {  // one value: a span of one decade, or of 10% (at least 1) around it
    const double half = log ? 0.5 : std::max(0.05 * std::abs(lo), 0.5);
    lo -= half, hi += half;
  } else {
    const double m = margin * (hi - lo);
    lo -= m, hi += m;
  }
  a.lo = log ? std::pow(10.0, lo) : lo;
  a.hi = log ? std::pow(10.0, hi) : hi;
  return a;
}

namespace {

std::string decimal_label(double v, int decimals) {
  std::string s = fmt::format("{:.{}f}", v, std::max(0, decimals));
  if (s.find_first_not_of("-0.") == std::string::npos) s = decimals > 0 ? fmt::format("{:.{}f}", 0.0, decimals) : "0";
  return s;
}

std::vector<Tick> linear_ticks(const Axis& a) {
  const double span = a.hi - a.lo;
  const double mag = std::pow(10.0, std::floor(std::log10(span / 6)));
  std::vector<Tick> t;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    const double step = m * mag;
    const double k0 = std::ceil(a.lo / step - 1e-9), k1 = std::floor(a.hi / step + 1e-9);
    if (k1 - k0 + 1 > 8) continue;
    const int decimals = int(std::max(0.0, -std::floor(std::log10(step) + 1e-9))) + (m == 2.5 ? 1 : 0);
    for (double k = k0; k <= k1; k += 1) t.push_back({k * step, decimal_label(k * step, decimals)});
    break;
  }
  return t;
}

std::string log_label(double v) {
  const int e = int(std::floor(std::log10(v) + 1e-9));
  if (v >= 1e-3 && v < 1e5) return decimal_label(v, std::max(0, -e));
  return fmt::format("{}e{}", int(std::lround(v / std::pow(10.0, e))), e);
}

std::vector<Tick> log_ticks(const Axis& a) {
  const double l0 = std::log10(a.lo), l1 = std::log10(a.hi);
  std::vector<Tick> t;
  const bool fine = std::floor(l1 + 1e-9) - std::ceil(l0 - 1e-9) + 1 < 4;
  for (int e = int(std::floor(l0)); e <= int(std::ceil(l1)); ++e)
    for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
      const double v = m * std::pow(10.0, e);
      if (v >= a.lo * (1 - 1e-9) && v <= a.hi * (1 + 1e-9)) t.push_back({v, log_label(v)});
    }
  if (t.size() < 2) t = {{a.lo, fmt::format("{:.2g}", a.lo)}, {a.hi, fmt::format("{:.2g}", a.hi)}};
  return t;
}

}  // namespace

std::vector<Tick> axis_ticks(const Axis& a) { return a.log ? log_ticks(a) : linear_ticks(a); }

// ---------------------------------------------------------------- label placement
namespace {

constexpr double kPad = 1.5;  // kept free around every label, so the white halo of one never covers another

struct Candidate {
  Box box;
  bool leader = false;  // the box is far enough from the point to need a line to it
  Segment line;
};

// A box for the label of the point at (x, y); one farther than a few pixels from the marker gets a
// leader line from the marker's edge to the box's nearest point.
Candidate with_leader(const Box& b, double x, double y, double radius) {
  const double nx = std::clamp(x, b.x0, b.x1), ny = std::clamp(y, b.y0, b.y1);
  const double dist = std::hypot(nx - x, ny - y);
  if (dist <= radius + 7) return {b, false, {}};
  const double ux = (nx - x) / dist, uy = (ny - y) / dist;
  return {b, true, {x + ux * radius, y + uy * radius, nx, ny}};
}

// Around the point first (eight sides, then sliding along the right and left), then farther out in
// sixteen directions.
std::vector<Candidate> candidates(const LabelRequest& r, const std::string& text) {
  const double w = text_width(text, r.size), h = (font_ascent() + font_descent()) * r.size;
  const double g = r.radius + 2.5, d = g * std::numbers::sqrt2 / 2;
  const double x = r.x, y = r.y;
  std::vector<Box> b = {{x + g, y - h / 2, x + g + w, y + h / 2}, {x - g - w, y - h / 2, x - g, y + h / 2},
                        {x - w / 2, y - g - h, x + w / 2, y - g}, {x - w / 2, y + g, x + w / 2, y + g + h},
                        {x + d, y - d - h, x + d + w, y - d},     {x + d, y + d, x + d + w, y + d + h},
                        {x - d - w, y - d - h, x - d, y - d},     {x - d - w, y + d, x - d, y + d + h}};
  for (int k = 1; k <= 6; ++k)
    for (double s : {-1.0, 1.0}) {
      const double ym = y + s * k * h / 2;
      b.push_back({x + g, ym - h / 2, x + g + w, ym + h / 2});
      b.push_back({x - g - w, ym - h / 2, x - g, ym + h / 2});
    }
  // right and left first, then the directions between them
  static constexpr int kOrder[16] = {0, 8, 1, 15, 7, 9, 2, 14, 6, 10, 3, 13, 5, 11, 4, 12};
  for (double dist : {14.0, 26.0, 40.0, 58.0, 80.0})
    for (int k : kOrder) {
      const double a = k * std::numbers::pi / 8, cs = std::cos(a), sn = std::sin(a);
      const double px = x + cs * (g + dist), py = y + sn * (g + dist);
      const double x0 = cs > 0.3 ? px : cs < -0.3 ? px - w : px - w / 2;
      const double y0 = sn > 0.3 ? py : sn < -0.3 ? py - h : py - h / 2;
      b.push_back({x0, y0, x0 + w, y0 + h});
    }
  std::vector<Candidate> c;
  for (const Box& box : b) c.push_back(with_leader(box, x, y, r.radius));
  return c;
}

struct Placer {
  const std::vector<Box>& obstacles;
  const std::vector<Segment>& soft;
  std::vector<Box> boxes;        // placed labels, padded
  std::vector<Segment> leaders;  // placed leader lines

  // 0: clear, 1: crosses only soft lines or another leader, 2: overlaps something
  int conflict(const LabelRequest& r, const Candidate& c) const {
    if (!r.area.contains(c.box)) return 2;
    const Box padded = c.box.grown(kPad);
    for (const Box& b : boxes)
      if (padded.intersects(b)) return 2;
    for (const Box& b : obstacles)
      if (padded.intersects(b)) return 2;
    for (const Segment& s : leaders)
      if (segment_hits_box(s, padded)) return 2;
    int level = 0;
    if (c.leader) {
      for (const Box& b : boxes)
        if (segment_hits_box(c.line, b)) return 2;
      for (const Box& b : obstacles)  // the own marker holds the line's start
        if (!(b.x0 <= c.line.x0 && c.line.x0 <= b.x1 && b.y0 <= c.line.y0 && c.line.y0 <= b.y1) &&
            segment_hits_box(c.line, b))
          return 2;
      for (const Segment& s : leaders)
        if (crosses(s, c.line)) level = 1;
    }
    for (const Segment& s : soft)
      if (segment_hits_box(s, c.box)) level = 1;
    return level;
  }

  static bool crosses(const Segment& a, const Segment& b) {
    auto side = [](const Segment& s, double x, double y) {
      return (s.x1 - s.x0) * (y - s.y0) - (s.y1 - s.y0) * (x - s.x0);
    };
    return side(a, b.x0, b.y0) * side(a, b.x1, b.y1) < 0 && side(b, a.x0, a.y0) * side(b, a.x1, a.y1) < 0;
  }

  // What a forced label lies over, for the report.
  std::string describe(const LabelRequest& r, const Candidate& c) const {
    if (!r.area.contains(c.box)) return "the edge of its area";
    for (const Box& b : obstacles)
      if (c.box.grown(kPad).intersects(b)) return fmt::format("a marker or text at ({:.0f}, {:.0f})", b.x0, b.y0);
    return "another label";
  }
};

PlacedLabel make_label(const LabelRequest& r, const std::string& text, const Candidate& c, bool fallback) {
  PlacedLabel p;
  p.text = text;
  p.x = c.box.x0;
  p.y = c.box.y0 + font_ascent() * r.size;
  p.box = text_box(text, p.x, p.y, r.size);
  p.fallback = fallback;
  p.leader = c.leader;
  p.leader_line = c.line;
  return p;
}

// One greedy pass in the given order: each label at its first clear candidate, else its first
// candidate crossing only lines, else the same for its fallback, else forced and reported.
LabelLayout place_in_order(const std::vector<LabelRequest>& requests, const std::vector<size_t>& order,
                           const std::vector<Box>& obstacles, const std::vector<Segment>& soft) {
  LabelLayout out;
  out.labels.resize(requests.size());
  Placer pl{obstacles, soft, {}, {}};
  for (size_t i : order) {
    const LabelRequest& r = requests[i];
    std::vector<std::pair<std::string, bool>> texts = {{r.text, false}};
    if (!r.fallback.empty() && r.fallback != r.text) texts.push_back({r.fallback, true});
    bool done = false;
    for (const auto& [text, is_fallback] : texts) {
      const std::vector<Candidate> cands = candidates(r, text);
      for (int tolerated = 0; tolerated <= 1 && !done; ++tolerated)
        for (const Candidate& c : cands)
          if (pl.conflict(r, c) <= tolerated) {
            out.labels[i] = make_label(r, text, c, is_fallback);
            done = true;
            break;
          }
      if (done) break;
    }
    if (!done) {  // drawn anyway, and reported
      const auto& [text, is_fallback] = texts.back();
      const Candidate c = candidates(r, text).front();
      out.labels[i] = make_label(r, text, c, is_fallback);
      out.overlaps.push_back(
          fmt::format("label '{}' of the point at ({:.0f}, {:.0f}) overlaps {}", text, r.x, r.y, pl.describe(r, c)));
    }
    pl.boxes.push_back(out.labels[i].box.grown(kPad));
    if (out.labels[i].leader) pl.leaders.push_back(out.labels[i].leader_line);
  }
  return out;
}

// Lower is better: overlaps, then fallbacks, then leader lines and distance from the points.
double cost(const LabelLayout& l, const std::vector<LabelRequest>& req) {
  double c = 1e6 * double(l.overlaps.size());
  for (size_t i = 0; i < l.labels.size(); ++i) {
    const Box& b = l.labels[i].box;
    c += l.labels[i].fallback ? 1e3 : 0;
    c += l.labels[i].leader ? 20 : 0;
    c += std::hypot(std::clamp(req[i].x, b.x0, b.x1) - req[i].x, std::clamp(req[i].y, b.y0, b.y1) - req[i].y);
  }
  return c;
}

// Priority first, then the most crowded points (most neighbours within 50 px).
std::vector<size_t> crowded_first(const std::vector<LabelRequest>& req) {
  std::vector<int> crowd(req.size(), 0);
  for (size_t i = 0; i < req.size(); ++i)
    for (size_t j = 0; j < req.size(); ++j)
      if (i != j && std::hypot(req[i].x - req[j].x, req[i].y - req[j].y) < 50) ++crowd[i];
  std::vector<size_t> order(req.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return req[a].priority != req[b].priority ? req[a].priority > req[b].priority : crowd[a] > crowd[b];
  });
  return order;
}

}  // namespace

LabelLayout place_labels(const std::vector<LabelRequest>& requests, const std::vector<Box>& obstacles,
                         const std::vector<Segment>& soft) {
  // Greedy placement depends on the order: try the crowded-first order (higher priority first),
  // then shuffles of it, within each priority on even rounds and across them on odd ones, and keep
  // the cheapest layout. A fixed seed and a hand-written shuffle keep the chart the same on every
  // machine.
  const std::vector<size_t> first = crowded_first(requests);
  LabelLayout best = place_in_order(requests, first, obstacles, soft);
  double best_cost = cost(best, requests);
  std::mt19937 rng(12345);
  for (int round = 0; round < 80 && best_cost >= 1e3; ++round) {
    std::vector<size_t> order = first;
    for (size_t i = order.size(); i > 1; --i) {
      const size_t j = rng() % i;
      if (round % 2 || requests[order[i - 1]].priority == requests[order[j]].priority)
        std::swap(order[i - 1], order[j]);
    }
    LabelLayout l = place_in_order(requests, order, obstacles, soft);
    const double c = cost(l, requests);
    if (c < best_cost) best = std::move(l), best_cost = c;
  }
  return best;
}

}  // namespace lmq::chart
