// Checking a chart as a reader gets it: the SVG read back with libxml2 (so it is well-formed XML,
// as a browser needs), every text's box computed from the same DejaVu Sans metrics the layout
// uses, and the pairs of texts, or texts and markers, that intersect; the browser's screenshot
// (PNG, read with libpng) measured for how much of it is drawn. Used by tests/chart_test.cpp and
// by lmq_chart_check (scripts/check-chart.sh).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lmq/eval/chart.h"

namespace lmq::chart_check {

struct TextItem {
  std::string text, cls, group;  // group: the id of the nearest enclosing <g>
  chart::Box box;
};
struct ShapeItem {
  std::string element, cls, group;
  std::string label, series, name;  // data-label, data-series, data-name
  chart::Box box;
};
struct Svg {
  double width = 0, height = 0;
  std::vector<TextItem> texts;
  std::vector<ShapeItem> markers;   // circles, rects and polygons of class "point" or "swatch"
  std::vector<ShapeItem> shapes;    // every other element with a class (frames, bands, lines)
  std::vector<std::string> groups;  // ids of the <g> elements

  std::vector<const ShapeItem*> points(const std::string& group) const;
};

// Fails (lmq::Error) when the file is not well-formed XML, is not an SVG, or uses what the box
// computation does not know (a transform other than rotate(±90 x y) on a text, one on a group).
Svg read_svg(const std::string& path);

// Every pair of texts whose boxes intersect, and every text over a marker; empty when the chart
// reads cleanly.
std::vector<std::string> overlaps(const Svg& svg);

struct PngStats {
  int width = 0, height = 0;
  int64_t non_white = 0;  // pixels with any channel below 245
  int64_t colored = 0;    // pixels whose channels differ by more than 60 (the markers' colours)
};
PngStats read_png(const std::string& path);

// The problems of a sweep's output folder (empty when complete): sweep.json, sweep.txt and
// sweep.svg present, one row per scheme of `expected` (scheme strings as `lmq sweep` takes them),
// each with finite, sane figures and its quantized file on disk at the size the row states.
std::vector<std::string> sweep_problems(const std::string& dir, const std::vector<std::string>& expected);

}  // namespace lmq::chart_check
