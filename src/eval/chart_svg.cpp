// Drawing a Chart as SVG: panels stacked on the left, one legend column on the right, notes under
// them. Every text element names its size and anchor, so the boxes place_labels computes are the
// boxes a browser draws (the root names DejaVu Sans and turns kerning and ligatures off).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "lmq/eval/chart.h"

namespace lmq::chart {
namespace {

constexpr double kTick = 11, kLabel = 11, kAxisTitle = 12, kPanelTitle = 13, kTitle = 15, kNote = 11;
constexpr double kLegendLine = 17, kBandGap = 6;

std::string esc(std::string_view s) {
  std::string r;
  for (char c : s) {
    switch (c) {
      case '&':
        r += "&amp;";
        break;
      case '<':
        r += "&lt;";
        break;
      case '>':
        r += "&gt;";
        break;
      case '"':
        r += "&quot;";
        break;
      default:
        r += c;
    }
  }
  return r;
}

const char* anchor_name(Anchor a) { return a == Anchor::Start ? "start" : a == Anchor::Middle ? "middle" : "end"; }

// A baseline that centres a text's cell on y.
double centred_baseline(double y, double size) { return y + (font_ascent() - font_descent()) / 2 * size; }

std::string text_el(double x, double y, double size, Anchor a, std::string_view s, std::string_view attrs = {}) {
  return fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{}\" text-anchor=\"{}\"{}{}>{}</text>\n", x, y, size,
                     anchor_name(a), attrs.empty() ? "" : " ", attrs, esc(s));
}

double half_size(Marker m, bool emph) {
  return (m == Marker::Circle ? 4.5 : m == Marker::Square ? 4 : 5.5) + (emph ? 0.8 : 0);
}

Box marker_box(Marker m, double x, double y, bool emph) {
  const double h = half_size(m, emph);
  return {x - h, y - h, x + h, y + h};
}

std::string marker_el(Marker m, double x, double y, const std::string& color, bool emph, const std::string& attrs,
                      const std::string& tooltip) {
  const double h = half_size(m, false);
  const std::string style = fmt::format("fill=\"{}\"{}", color, emph ? " stroke=\"#111\" stroke-width=\"1.6\"" : "");
  const std::string inner = tooltip.empty() ? "" : fmt::format("<title>{}</title>", esc(tooltip));
  if (m == Marker::Circle)
    return fmt::format("<circle {} cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" {}>{}</circle>\n", attrs, x, y, h, style,
                       inner);
  if (m == Marker::Square)
    return fmt::format("<rect {} x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{}\" {}>{}</rect>\n", attrs, x - h,
                       y - h, 2 * h, 2 * h, style, inner);
  return fmt::format("<polygon {} points=\"{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}\" {}>{}</polygon>\n",
                     attrs, x, y - h, x + h, y, x, y + h, x - h, y, style, inner);
}

bool in_band(const Panel& p, double y) { return p.y.log && (y <= 0 || y < p.zero_below); }

// The zero band's height: its points sit on its middle line (several may share one position), so
// their labels need rows above and below it: one row for one point, three for two or three, five
// for more.
double band_height(const Panel& p) {
  const auto n = std::count_if(p.points.begin(), p.points.end(), [&](const Point& q) { return in_band(p, q.y); });
  return n == 0 ? 0 : 6 + 17 * double(n == 1 ? 1 : n <= 3 ? 3 : 5);
}
bool has_zero(const Panel& p) { return band_height(p) > 0; }

// Words into lines no wider than `width` at `size`.
std::vector<std::string> wrap(const std::string& s, double size, double width) {
  std::vector<std::string> lines;
  std::string line;
  size_t i = 0;
  while (i < s.size()) {
    const size_t sp = s.find(' ', i);
    const std::string word = s.substr(i, sp == std::string::npos ? std::string::npos : sp - i);
    i = sp == std::string::npos ? s.size() : sp + 1;
    const std::string next = line.empty() ? word : line + " " + word;
    if (!line.empty() && text_width(next, size) > width) {
      lines.push_back(line);
      line = word;
    } else {
      line = next;
    }
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

// One legend entry: a swatch (marker, line or none) and its text.
struct LegendEntry {
  enum Kind { MarkerSwatch, LineSwatch, Text } kind = Text;
  Marker marker = Marker::Circle;
  std::string color, text;
  bool dashed = false;
};

struct Legend {
  double x = 0, y = 0;  // y: the bottom so far
  double right = 0;
  std::string svg;

  void block(double top, const std::string& header, const std::vector<LegendEntry>& entries) {
    if (entries.empty()) return;
    y = std::max(top, y > 0 ? y + 12 : top);
    if (!header.empty()) add_text(x, header, "#333");
    for (const LegendEntry& e : entries) {
      const double cy = y + kLegendLine / 2;
      if (e.kind == LegendEntry::MarkerSwatch)
        svg += marker_el(e.marker, x + 6, cy, e.color, false, "class=\"swatch\"", "");
      if (e.kind == LegendEntry::LineSwatch)
        svg += fmt::format(
            "<line class=\"swatch-line\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" "
            "stroke=\"{}\" stroke-width=\"1.6\"{}/>\n",
            x - 2, cy, x + 14, cy, e.color, e.dashed ? " stroke-dasharray=\"5 3\"" : "");
      add_text(e.kind == LegendEntry::Text ? x : x + 20, e.text, e.kind == LegendEntry::Text ? e.color : "#222");
    }
  }

  void add_text(double tx, const std::string& s, const std::string& color) {
    svg += text_el(tx, centred_baseline(y + kLegendLine / 2, kLabel), kLabel, Anchor::Start, s,
                   fmt::format("fill=\"{}\"", color));
    right = std::max(right, tx + text_width(s, kLabel));
    y += kLegendLine;
  }
};

// Pixel geometry of one panel and its data → pixel mapping.
struct Frame {
  const Panel& p;
  double L, T, W, H;
  double band;  // the zero band's height, 0 without one

  double bottom() const { return T + H + (band > 0 ? kBandGap + band : 0); }
  Box plot() const { return {L, T, L + W, T + H}; }
  Box band_box() const { return {L, T + H + kBandGap, L + W, T + H + kBandGap + band}; }
  double px(double x) const { return L + std::clamp((x - p.x.lo) / (p.x.hi - p.x.lo), 0.0, 1.0) * W; }
  int side(double x) const { return x < p.x.lo ? -1 : x > p.x.hi ? 1 : 0; }  // off the axis to the left/right
  double py(double y) const {
    if (in_band(p, y)) return T + H + kBandGap + band / 2;
    const double f = p.y.log ? (std::log10(p.y.hi) - std::log10(y)) / (std::log10(p.y.hi) - std::log10(p.y.lo))
                             : (p.y.hi - y) / (p.y.hi - p.y.lo);
    return T + std::clamp(f, 0.0, 1.0) * H;
  }
};

class PanelRenderer {
 public:
  PanelRenderer(const Frame& f, std::string& svg) : f_(f), p_(f.p), svg_(svg) {}

  // Draws the panel; returns the labels that fell back to their short form ("N" → point label).
  std::vector<std::pair<std::string, const Point*>> draw(std::vector<std::string>& overlaps) {
    svg_ += fmt::format("<g id=\"{}\">\n", esc(p_.id));
    axes();
    std::string markers;  // drawn over the lines, placed before them: the lines' labels keep off them
    for (const Point& q : p_.points) point(q, markers);
    for (const HLine& h : p_.hlines) hline(h, overlaps);
    for (const Line& l : p_.lines) line(l);
    svg_ += markers;
    auto numbered = labels(overlaps);
    svg_ += "</g>\n";
    return numbered;
  }

 private:
  void axes() {
    const Box b = f_.plot();
    if (!p_.title.empty())
      svg_ += text_el(f_.L, f_.T - 8, kPanelTitle, Anchor::Start, p_.title, "class=\"panel-title\" fill=\"#222\"");
    for (const Tick& t : axis_ticks(p_.y)) {
      const double y = f_.py(t.value);
      svg_ += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e4e4e4\"/>\n", b.x0,
                          y, b.x1, y);
      svg_ += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#333\"/>\n", b.x0 - 5,
                          y, b.x0, y);
      svg_ += text_el(b.x0 - 7, centred_baseline(y, kTick), kTick, Anchor::End, t.label, "class=\"tick\"");
    }
    if (p_.y.log) minor_log_ticks();
    const double xb = f_.bottom();
    for (const Tick& t : axis_ticks(p_.x)) {
      const double x = f_.px(t.value);
      svg_ += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eeeeee\"/>\n", x,
                          b.y0, x, b.y1);
      svg_ += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#333\"/>\n", x, xb, x,
                          xb + 5);
      svg_ += text_el(x, xb + 18, kTick, Anchor::Middle, t.label, "class=\"tick\"");
    }
    svg_ += text_el(f_.L + f_.W / 2, xb + 36, kAxisTitle, Anchor::Middle, p_.x.title, "class=\"axis-title\"");
    y_title();
    svg_ += fmt::format(
        "<rect class=\"frame\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" "
        "stroke=\"#333\"/>\n",
        b.x0, b.y0, f_.W, f_.H);
    if (f_.band > 0) zero_band();
  }

  void y_title() {
    const double size =
        std::min(kAxisTitle, kAxisTitle * (f_.H - 4) / std::max(1.0, text_width(p_.y.title, kAxisTitle)));
    const double x = 8 + font_ascent() * size, y = f_.T + f_.H / 2;
    svg_ += fmt::format(
        "<text class=\"axis-title\" x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{:.2f}\" text-anchor=\"middle\" "
        "transform=\"rotate(-90 {:.1f} {:.1f})\">{}</text>\n",
        x, y, size, x, y, esc(p_.y.title));
  }

  void minor_log_ticks() {
    for (int e = int(std::floor(std::log10(p_.y.lo))); e <= int(std::ceil(std::log10(p_.y.hi))); ++e)
      for (int m = 2; m <= 9; ++m) {
        const double v = m * std::pow(10.0, e);
        if (v <= p_.y.lo || v >= p_.y.hi) continue;
        svg_ += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#333\"/>\n",
                            f_.L - 3, f_.py(v), f_.L, f_.py(v));
      }
  }

  void zero_band() {
    const Box z = f_.band_box();
    svg_ += fmt::format(
        "<rect class=\"zero-band\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"#f3f3f3\" stroke=\"#999\" stroke-dasharray=\"3 2\"/>\n",
        z.x0, z.y0, z.x1 - z.x0, z.y1 - z.y0);
    svg_ += text_el(z.x0 - 7, centred_baseline((z.y0 + z.y1) / 2, kTick), kTick, Anchor::End, p_.zero_label,
                    "class=\"tick\"");
  }

  // The line across the plot; its label just above or below it, at the right end, else the left,
  // else anywhere along it, clear of the markers and of the other lines' labels.
  void hline(const HLine& h, std::vector<std::string>& overlaps) {
    const double y = f_.py(h.y), x0 = f_.L, x1 = f_.L + f_.W;
    svg_ += fmt::format(
        "<line class=\"hline\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
        "stroke-dasharray=\"5 3\"/>\n",
        x0, y, x1, y, h.color);
    soft_.push_back({x0, y, x1, y});
    const double w = text_width(h.label, kLabel);
    std::vector<double> starts = {x1 - 4 - w, x0 + 4};
    for (double x = x1 - 24 - w; x > x0 + 4; x -= 20) starts.push_back(x);
    std::optional<Box> pick;
    for (const double base : {y - 4, y + 4 + font_ascent() * kLabel}) {
      for (const double x : starts) {
        const Box b = text_box(h.label, x, base, kLabel);
        const bool clear =
            f_.plot().grown(-1).contains(b) && std::none_of(obstacles_.begin(), obstacles_.end(),
                                                            [&](const Box& o) { return o.intersects(b.grown(1.5)); });
        if (clear) pick = b;
        if (pick) break;
      }
      if (pick) break;
    }
    if (!pick) {
      pick = text_box(h.label, starts.front(), y - 4, kLabel);
      overlaps.push_back(fmt::format("{}: the label '{}' of a line overlaps a marker or the frame", p_.id, h.label));
    }
    svg_ += text_el(pick->x0, pick->y0 + font_ascent() * kLabel, kLabel, Anchor::Start, h.label,
                    fmt::format("class=\"hline-label\" fill=\"{}\"", h.color));
    obstacles_.push_back(*pick);
  }

  void line(const Line& l) {
    if (l.xy.size() < 2) return;
    std::string pts;
    for (size_t i = 0; i < l.xy.size(); ++i) {
      const double x = f_.px(l.xy[i].first), y = f_.py(l.xy[i].second);
      pts += fmt::format("{}{:.1f},{:.1f}", i ? " " : "", x, y);
      if (i) soft_.push_back({f_.px(l.xy[i - 1].first), f_.py(l.xy[i - 1].second), x, y});
    }
    svg_ += fmt::format(
        "<polyline class=\"series-line\" data-name=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{}\" "
        "stroke-width=\"1.6\"{}/>\n",
        esc(l.name), pts, l.color, l.dashed ? " stroke-dasharray=\"5 3\"" : "");
  }

  void point(const Point& q, std::string& svg) {
    const Series& s = p_.series.at(size_t(q.series));
    const double x = f_.px(q.x), y = f_.py(q.y);
    svg += marker_el(s.marker, x, y, s.color, q.emphasize,
                     fmt::format("class=\"point\" data-series=\"{}\" data-label=\"{}\"", esc(s.name), esc(q.label)),
                     q.tooltip);
    obstacles_.push_back(marker_box(s.marker, x, y, q.emphasize));
    if (const int side = f_.side(q.x)) {  // off the axis: a chevron points to where it lies
      const double a = x + side * 7, b = x + side * 11;
      svg += fmt::format(
          "<polyline class=\"off-axis\" points=\"{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}\" fill=\"none\" "
          "stroke=\"{}\" stroke-width=\"1.6\"/>\n",
          a, y - 4, b, y, a, y + 4, s.color);
      obstacles_.push_back({std::min(a, b), y - 4, std::max(a, b), y + 4});
    }
    LabelRequest r;
    r.x = x, r.y = y, r.radius = half_size(s.marker, q.emphasize);
    r.text = q.label, r.fallback = q.fallback, r.size = kLabel, r.priority = q.emphasize ? 1 : 0;
    r.area = (in_band(p_, q.y) ? f_.band_box() : f_.plot()).grown(-1.5);
    requests_.push_back(r);
  }

  std::vector<std::pair<std::string, const Point*>> labels(std::vector<std::string>& overlaps) {
    const LabelLayout lay = place_labels(requests_, obstacles_, soft_);
    for (const std::string& o : lay.overlaps) overlaps.push_back(fmt::format("{}: {}", p_.id, o));
    std::vector<std::pair<std::string, const Point*>> numbered;
    for (size_t i = 0; i < lay.labels.size(); ++i) {
      const PlacedLabel& l = lay.labels[i];
      const Point& q = p_.points[i];
      const std::string& color = p_.series.at(size_t(q.series)).color;
      if (l.leader)
        svg_ += fmt::format(
            "<line class=\"leader\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#666\" "
            "stroke-width=\"1\"/>\n",
            l.leader_line.x0, l.leader_line.y0, l.leader_line.x1, l.leader_line.y1);
      svg_ += text_el(l.x, l.y, kLabel, Anchor::Start, l.text,
                      fmt::format("class=\"label\" fill=\"{}\" stroke=\"white\" stroke-width=\"3\" "
                                  "stroke-linejoin=\"round\" paint-order=\"stroke\"",
                                  color));
      if (l.fallback) numbered.push_back({l.text, &q});
    }
    return numbered;
  }

  const Frame& f_;
  const Panel& p_;
  std::string& svg_;
  std::vector<LabelRequest> requests_;
  std::vector<Box> obstacles_;
  std::vector<Segment> soft_;
};

std::vector<LegendEntry> panel_legend(const Panel& p) {
  std::vector<LegendEntry> e;
  for (size_t s = 0; s < p.series.size(); ++s)
    if (std::any_of(p.points.begin(), p.points.end(), [&](const Point& q) { return q.series == int(s); }))
      e.push_back({LegendEntry::MarkerSwatch, p.series[s].marker, p.series[s].color, p.series[s].name});
  for (const Line& l : p.lines)
    if (!l.name.empty() && l.xy.size() >= 2)
      e.push_back({LegendEntry::LineSwatch, Marker::Circle, l.color, l.name, l.dashed});
  return e;
}

double left_margin(const Chart& c) {
  double w = 0;
  for (const Panel& p : c.panels) {
    for (const Tick& t : axis_ticks(p.y)) w = std::max(w, text_width(t.label, kTick));
    if (has_zero(p)) w = std::max(w, text_width(p.zero_label, kTick));
  }
  return 8 + (font_ascent() + font_descent()) * kAxisTitle + 10 + w + 7;
}

// Numbered entries in the order of their numbers ("2" before "10").
std::vector<LegendEntry> numbered_legend(std::vector<std::pair<std::string, const Point*>> n,
                                         const std::vector<const Panel*>& owner) {
  std::map<std::pair<size_t, std::string>, LegendEntry> sorted;
  for (size_t i = 0; i < n.size(); ++i) {
    const Series& s = owner[i]->series.at(size_t(n[i].second->series));
    sorted[{n[i].first.size(), n[i].first}] = {LegendEntry::Text, Marker::Circle, s.color,
                                               fmt::format("{}  {}", n[i].first, n[i].second->label)};
  }
  std::vector<LegendEntry> e;
  for (auto& [k, v] : sorted) e.push_back(v);
  return e;
}

}  // namespace

Rendered render(const Chart& c) {
  Rendered out;
  const double L = left_margin(c), W = c.plot_width;
  std::string body;
  Legend legend;
  legend.x = L + W + 30;
  std::vector<std::pair<std::string, const Point*>> numbered;
  std::vector<const Panel*> owner;
  double y = c.title.empty() ? 8 : 34, first_top = 0;
  for (const Panel& p : c.panels) {
    const Frame f{p, L, y + (p.title.empty() ? 10 : 28), W, p.height, band_height(p)};
    if (first_top == 0) first_top = f.T;
    for (auto& n : PanelRenderer(f, body).draw(out.overlaps)) {
      numbered.push_back(n);
      owner.push_back(&p);
    }
    legend.block(f.T, "", panel_legend(p));
    y = f.bottom() + 48;
  }
  legend.block(first_top, numbered.empty() ? "" : "Numbered points", numbered_legend(numbered, owner));
  double right = std::max(legend.right, L + W + 12);
  if (!c.title.empty()) right = std::max(right, 12 + text_width(c.title, kTitle));
  std::string notes;
  double ny = std::max(y + 10, legend.y + 24);
  for (const std::string& n : c.notes)
    for (const std::string& l : wrap(n, kNote, right - 12)) {
      notes += text_el(12, ny, kNote, Anchor::Start, l, "class=\"note\" fill=\"#444\"");
      ny += 15;
    }
  const double width = std::ceil(right + 12), height = std::ceil(ny + 4);
  out.svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" font-family=\"{}\" "
      "font-size=\"12\">\n<style>text {{ font-kerning: none; font-variant-ligatures: none; }}</style>\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      width, height, width, height, kFontFamily);
  if (!c.title.empty()) out.svg += text_el(12, 22, kTitle, Anchor::Start, c.title, "class=\"title\" fill=\"#111\"");
  out.svg += body + legend.svg + notes + "</svg>\n";
  return out;
}

}  // namespace lmq::chart
