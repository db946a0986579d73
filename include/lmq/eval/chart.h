// SVG charts whose text never collides silently. Every text box comes from DejaVu Sans's advance
// widths (the family the SVG names first; Debian's fonts-dejavu-core), so the layout knows how wide
// a label is before a browser draws it. A greedy placer puts each point's label at the first free
// candidate position around it (then farther away with a leader line), falls back to a short label
// (a number, listed in a legend beside the chart), and reports whatever it still could not place
// clear of everything. Knows nothing of quantization: it takes panels of (x, y, label, series) points.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmq::chart {

// ---------------------------------------------------------------- text metrics
inline constexpr const char* kFontFamily = "'DejaVu Sans', sans-serif";
// The text cell above and below the baseline, as a fraction of the font size (hhea ascender/descender).
double font_ascent();
double font_descent();
// Sum of advance widths at `size` px; a code point DejaVu Sans lacks counts as one em (wider than
// any it has, so a box is never too small).
double text_width(std::string_view utf8, double size);

struct Box {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // pixels, y down
  // True when the interiors overlap (touching edges do not).
  bool intersects(const Box& o) const { return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1; }
  bool contains(const Box& o) const { return o.x0 >= x0 && o.x1 <= x1 && o.y0 >= y0 && o.y1 <= y1; }
  Box grown(double d) const { return {x0 - d, y0 - d, x1 + d, y1 + d}; }
};
enum class Anchor { Start, Middle, End };
// The cell of a text drawn with its baseline at y and the given anchor at x.
Box text_box(std::string_view utf8, double x, double y, double size, Anchor anchor = Anchor::Start);

struct Segment {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};
bool segment_hits_box(const Segment& s, const Box& b);

// ---------------------------------------------------------------- data helpers
// true for each point that no other point beats: another beats it when it is no larger on both
// coordinates and smaller on one (both minimized). Identical points do not beat each other.
std::vector<bool> pareto_front(const std::vector<std::pair<double, double>>& xy);

struct Axis {
  std::string title;
  double lo = 0, hi = 1;
  bool log = false;
};
// [lo, hi] around the values with `margin` of their span on each side (of the log span on a log
// axis, where values ≤ 0 do not count); a single value gets a span of its own.
Axis fit_axis(std::string title, const std::vector<double>& values, bool log, double margin = 0.05);
// Linear: a step of 1, 2, 2.5 or 5 × 10^k giving 4–8 ticks, labelled with the decimals the step needs.
// Log: each power of ten in range ("0.001", "0.01", …; "1e-4", "2e-5", … below 0.001), with 2 and 5 between
// them when fewer than four powers fit.
struct Tick {
  double value;
  std::string label;
};
std::vector<Tick> axis_ticks(const Axis& a);

// ---------------------------------------------------------------- label placement
struct LabelRequest {
  double x = 0, y = 0;   // the point, pixels
  double radius = 4;     // its marker's: candidates start just outside it
  std::string text;      // the label
  std::string fallback;  // a shorter one (e.g. a number) for when `text` fits nowhere; may be empty
  double size = 11;
  Box area;          // the label must lie inside
  int priority = 0;  // higher places first
};
struct PlacedLabel {
  std::string text;     // what is drawn: the request's text or its fallback
  double x = 0, y = 0;  // start of the baseline (anchor start)
  Box box;
  bool fallback = false;
  bool leader = false;  // far from its point: a line joins them
  Segment leader_line;
};
struct LabelLayout {
  std::vector<PlacedLabel> labels;    // one per request, in request order
  std::vector<std::string> overlaps;  // each label that could be placed only over something: should be empty
};
// Places the labels clear of one another, of `obstacles` (markers, fixed text), of each other's
// leader lines and inside their areas; candidates that cross `soft` segments (the chart's lines)
// are taken only when no other fits. A label that fits nowhere, even as its fallback, is drawn at
// its first candidate and listed in `overlaps`.
LabelLayout place_labels(const std::vector<LabelRequest>& requests, const std::vector<Box>& obstacles,
                         const std::vector<Segment>& soft = {});

// ---------------------------------------------------------------- charts
enum class Marker { Circle, Square, Diamond };
struct Series {
  std::string name, color;
  Marker marker = Marker::Circle;
};
struct Point {
  double x = 0, y = 0;
  int series = 0;
  std::string label;       // drawn beside the point when it fits
  std::string fallback;    // drawn instead when it does not (a number), and listed "fallback  label" in the legend
  std::string tooltip;     // the <title> a browser shows on hover
  bool emphasize = false;  // outlined and labelled first (e.g. the frontier)
};
struct Line {
  std::string name, color;                    // name: its legend entry (none if empty)
  std::vector<std::pair<double, double>> xy;  // data coordinates, drawn in this order
  bool dashed = false;
};
struct HLine {  // a level across the plot, e.g. a baseline
  double y = 0;
  std::string label, color;
};
struct Panel {
  std::string id;     // the SVG group's id
  std::string title;  // above the plot
  Axis x, y;
  double height = 360;  // of the plot area, pixels
  std::vector<Series> series;
  std::vector<Point> points;
  std::vector<Line> lines;
  std::vector<HLine> hlines;
  // On a log y axis, points with y ≤ 0 (or below zero_below) are drawn in a band under the plot,
  // labelled zero_label, instead of at a made-up small value or on an axis stretched down to them.
  std::string zero_label = "0 (lossless)";
  double zero_below = 0;
};
struct Chart {
  std::string title;
  std::vector<Panel> panels;       // stacked, same width; each x value outside its axis sits on the edge
  std::vector<std::string> notes;  // under the chart, wrapped to its width
  double plot_width = 620;
};
struct Rendered {
  std::string svg;
  std::vector<std::string> overlaps;  // from the label placement: should be empty
};
Rendered render(const Chart& chart);

}  // namespace lmq::chart
