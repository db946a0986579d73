// The chart helper (lmq/eval/chart.h): text metrics, axes, the Pareto frontier, label placement
// and its overlap report, the zero band; the sweep's chart and table built on it; reading other
// tools' reference figures (shared/gguf/llamacpp.json and lmq's own shape). The charts of real
// sweeps, in a real browser, are in chart_e2e_test.cpp.
#include "lmq/eval/chart.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "lmq/chart_check/chart_check.h"
#include "lmq/error.h"
#include "lmq/eval/reference_points.h"
#include "lmq/eval/sweep_chart.h"
#include "test_support.h"

namespace lmq {
namespace {

using namespace chart;
using test::shared_path;

// ---------------------------------------------------------------- metrics
TEST(ChartMetrics, WidthsAreDejaVuSansAdvances) {
  // Chromium 156 (Debian bookworm, fonts-dejavu-core 2.37) measured these with
  // getComputedTextLength() on SVG text in DejaVu Sans with kerning and ligatures off, as the
  // charts draw it (it rounds advances to 1/64 px). Pairs that kern (AV, To) and ligatures (fi)
  // would come out narrower with them on; non-ASCII from the table (Δ, →, ★).
  EXPECT_NEAR(text_width("int4:g128:asym:mse", 11), 113.359375, 0.05);
  EXPECT_NEAR(text_width("What each bit costs: lmq-llama-25m on docs-valid.txt", 15), 402.109375, 0.05);
  EXPECT_NEAR(text_width("AVAWAY To Ty fi fl ffi", 11), 116.515625, 0.05);
  EXPECT_NEAR(text_width("0 (lossless) 1e-4 0.001 \u0394 \u2192 \u2605", 12), 176.65625, 0.05);
  // A code point the font lacks counts as a whole em (never narrower than what a browser draws).
  EXPECT_DOUBLE_EQ(text_width("\xe4\xb8\xad", 10), 10);  // U+4E2D
  EXPECT_DOUBLE_EQ(text_width("", 10), 0);
}

TEST(ChartMetrics, TextBoxFollowsTheAnchor) {
  const double w = text_width("abc", 12);
  const Box s = text_box("abc", 100, 50, 12, Anchor::Start), m = text_box("abc", 100, 50, 12, Anchor::Middle),
            e = text_box("abc", 100, 50, 12, Anchor::End);
  EXPECT_DOUBLE_EQ(s.x0, 100);
  EXPECT_DOUBLE_EQ(m.x0, 100 - w / 2);
  EXPECT_DOUBLE_EQ(e.x1, 100);
  EXPECT_NEAR(s.y0, 50 - 12 * 1901.0 / 2048, 1e-9);
  EXPECT_NEAR(s.y1, 50 + 12 * 483.0 / 2048, 1e-9);
}

TEST(ChartMetrics, SegmentHitsBox) {
  const Box b{10, 10, 20, 20};
  EXPECT_TRUE(segment_hits_box({0, 0, 30, 30}, b));
  EXPECT_TRUE(segment_hits_box({15, 15, 16, 16}, b));  // inside
  EXPECT_FALSE(segment_hits_box({0, 0, 30, 5}, b));
  EXPECT_FALSE(segment_hits_box({0, 10, 30, 10}, b));  // along an edge
  EXPECT_FALSE(segment_hits_box({21, 0, 21, 30}, b));
}

// ---------------------------------------------------------------- axes
TEST(ChartAxis, FitsTheDataWithASmallMargin) {
  const Axis a = fit_axis("bpw", {5.134, 6.08, 8.045}, false, 0.05);
  EXPECT_NEAR(a.lo, 5.134 - 0.05 * 2.911, 1e-9);
  EXPECT_NEAR(a.hi, 8.045 + 0.05 * 2.911, 1e-9);
  const Axis l = fit_axis("kld", {0, 1.5e-4, 0.62}, true, 0.05);  // 0 has no place on a log axis
  const double decades = std::log10(0.62 / 1.5e-4);
  EXPECT_NEAR(std::log10(l.lo), std::log10(1.5e-4) - 0.05 * decades, 1e-9);
  EXPECT_NEAR(std::log10(l.hi), std::log10(0.62) + 0.05 * decades, 1e-9);
  const Axis one = fit_axis("x", {3}, false);
  EXPECT_LT(one.lo, 3);
  EXPECT_GT(one.hi, 3);
}

std::vector<std::string> labels_of(const std::vector<Tick>& t) {
  std::vector<std::string> s;
  for (const Tick& x : t) s.push_back(x.label);
  return s;
}

TEST(ChartAxis, LogTicksAreReadableDecimals) {
  EXPECT_EQ(labels_of(axis_ticks({"", 0.9e-4, 0.75, true})), (std::vector<std::string>{"1e-4", "0.001", "0.01", "0.1"}));
  // Under four decades: 2 and 5 between the powers of ten.
  EXPECT_EQ(labels_of(axis_ticks({"", 1.2e-4, 0.75, true})),
            (std::vector<std::string>{"2e-4", "5e-4", "0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2",
                                      "0.5"}));
  EXPECT_EQ(labels_of(axis_ticks({"", 3e-7, 2e-3, true})), (std::vector<std::string>{"1e-6", "1e-5", "1e-4", "0.001"}));
  EXPECT_EQ(labels_of(axis_ticks({"", 30, 1100, true})), (std::vector<std::string>{"50", "100", "200", "500", "1000"}));
}

TEST(ChartAxis, LinearTicksUseNiceSteps) {
  EXPECT_EQ(labels_of(axis_ticks({"", 4.98, 8.2, false})),
            (std::vector<std::string>{"5.0", "5.5", "6.0", "6.5", "7.0", "7.5", "8.0"}));
  EXPECT_EQ(labels_of(axis_ticks({"", 0, 1000, false})),
            (std::vector<std::string>{"0", "200", "400", "600", "800", "1000"}));
}

// ---------------------------------------------------------------- Pareto frontier
bool beats(std::pair<double, double> a, std::pair<double, double> b) {
  return a.first <= b.first && a.second <= b.second && (a.first < b.first || a.second < b.second);
}

RC_GTEST_PROP(ChartPareto, FrontierIsExactlyTheUnbeaten, ()) {
  const int n = *rc::gen::inRange(0, 40);
  std::vector<std::pair<double, double>> xy;
  for (int i = 0; i < n; ++i)  // small integer grids make ties and duplicates common
    xy.push_back({double(*rc::gen::inRange(0, 8)), double(*rc::gen::inRange(0, 8))});
  const std::vector<bool> f = pareto_front(xy);
  RC_ASSERT(f.size() == xy.size());
  for (size_t i = 0; i < xy.size(); ++i) {
    if (f[i]) {
      for (const auto& o : xy) RC_ASSERT(!beats(o, xy[i]));
    } else {  // beaten, and then by a point of the frontier itself
      bool by_front = false;
      for (size_t j = 0; j < xy.size(); ++j) by_front = by_front || (f[j] && beats(xy[j], xy[i]));
      RC_ASSERT(by_front);
    }
  }
  // Along the frontier, more x buys strictly less y.
  std::vector<std::pair<double, double>> fr;
  for (size_t i = 0; i < xy.size(); ++i)
    if (f[i]) fr.push_back(xy[i]);
  std::sort(fr.begin(), fr.end());
  fr.erase(std::unique(fr.begin(), fr.end()), fr.end());
  for (size_t i = 1; i < fr.size(); ++i) RC_ASSERT(fr[i].first > fr[i - 1].first && fr[i].second < fr[i - 1].second);
}

// ---------------------------------------------------------------- label placement
// Independent of the placer: each label's box from its text and baseline, then what is wrong:
// {i, i} for a label over a marker or outside its area, {i, j} for two labels over each other.
std::vector<std::pair<size_t, size_t>> unclear(const LabelLayout& l, const std::vector<LabelRequest>& req,
                                               const std::vector<Box>& obstacles) {
  std::vector<Box> boxes;
  for (const PlacedLabel& p : l.labels) boxes.push_back(text_box(p.text, p.x, p.y, 11));
  std::vector<std::pair<size_t, size_t>> bad;
  for (size_t i = 0; i < boxes.size(); ++i) {
    bool ok = req[i].area.contains(boxes[i]);
    for (const Box& o : obstacles) ok = ok && !boxes[i].intersects(o);
    if (!ok) bad.push_back({i, i});
    for (size_t j = i + 1; j < boxes.size(); ++j)
      if (boxes[i].intersects(boxes[j])) bad.push_back({i, j});
  }
  return bad;
}

// Every problem is in the report: the label itself, or one of the two labels over each other.
bool reported(const LabelLayout& l, std::pair<size_t, size_t> bad) {
  auto named = [&](size_t i) {
    const std::string quoted = "'" + l.labels[i].text + "'";
    return std::any_of(l.overlaps.begin(), l.overlaps.end(),
                       [&](const std::string& o) { return o.find(quoted) != std::string::npos; });
  };
  return named(bad.first) || named(bad.second);
}

struct Scene {
  std::vector<LabelRequest> req;
  std::vector<Box> markers;
  void add(double x, double y, const std::string& text, const std::string& fallback, const Box& area) {
    LabelRequest r;
    r.x = x, r.y = y, r.text = text, r.fallback = fallback, r.area = area, r.radius = 4.5;
    req.push_back(r);
    markers.push_back({x - 4.5, y - 4.5, x + 4.5, y + 4.5});
  }
};

TEST(ChartLayout, CrowdedClusterPlacesEveryLabelClear) {
  // The int4 cluster of the default sweep: six schemes within 25 px of each other.
  const Box area{80, 50, 700, 410};
  Scene s;
  const char* names[] = {"int4:channel:sym",  "int4:g128:sym", "int4:g128:asym", "int4:g128:asym:mse",
                         "int4:g32:asym:mse", "int4:g64:asym", "int3:g128:asym", "int3:g128:asym:mse"};
  const double xy[][2] = {{300, 200}, {305, 210}, {307, 216}, {307, 221},
                          {330, 232}, {318, 214}, {250, 150}, {250, 166}};
  for (int i = 0; i < 8; ++i) s.add(xy[i][0], xy[i][1], names[i], std::to_string(i + 1), area);
  const LabelLayout l = place_labels(s.req, s.markers);
  EXPECT_TRUE(l.overlaps.empty()) << l.overlaps.front();
  EXPECT_TRUE(unclear(l, s.req, s.markers).empty());
  for (const PlacedLabel& p : l.labels) EXPECT_FALSE(p.fallback) << p.text;  // room enough for full names
}

TEST(ChartLayout, IdenticalPointsStillGetClearLabels) {
  const Box area{0, 0, 600, 400};
  Scene s;
  for (int i = 0; i < 6; ++i) s.add(300, 200, "int2:g64:asym:" + std::to_string(i), std::to_string(i + 1), area);
  const LabelLayout l = place_labels(s.req, s.markers);
  EXPECT_TRUE(l.overlaps.empty());
  EXPECT_TRUE(unclear(l, s.req, s.markers).empty());
}

TEST(ChartLayout, UnplaceableLabelsAreReported) {
  // Thirty labels in a box 80 × 40 px: most cannot be placed, and the report must say so.
  const Box area{0, 0, 80, 40};
  Scene s;
  for (int i = 0; i < 30; ++i)
    s.add(10 + (i % 6) * 12, 8 + (i / 6) * 6, "label-" + std::to_string(i), std::to_string(i), area);
  const LabelLayout l = place_labels(s.req, s.markers);
  const auto bad = unclear(l, s.req, s.markers);
  ASSERT_FALSE(bad.empty());
  ASSERT_FALSE(l.overlaps.empty());
  for (const auto& b : bad)
    EXPECT_TRUE(reported(l, b)) << "'" << l.labels[b.first].text << "' / '" << l.labels[b.second].text
                                << "' overlap, unreported";
}

RC_GTEST_PROP(ChartLayout, EveryOverlapIsReported, ()) {
  const double w = *rc::gen::inRange(60, 700), h = *rc::gen::inRange(30, 400);
  const Box area{20, 30, 20 + w, 30 + h};
  Scene s;
  const int n = *rc::gen::inRange(1, 25);
  for (int i = 0; i < n; ++i) {
    const double x = area.x0 + *rc::gen::inRange(0, int(w)), y = area.y0 + *rc::gen::inRange(0, int(h));
    const int len = *rc::gen::inRange(1, 20);
    s.add(x, y, std::string(size_t(len), char('a' + i % 26)) + std::to_string(i), std::to_string(i), area);
  }
  const LabelLayout l = place_labels(s.req, s.markers);
  RC_ASSERT(l.labels.size() == s.req.size());
  for (size_t i = 0; i < l.labels.size(); ++i)
    RC_LOG() << "point (" << s.req[i].x << "," << s.req[i].y << ") '" << l.labels[i].text << "' at (" << l.labels[i].x
             << "," << l.labels[i].y << ")\n";
  for (const std::string& o : l.overlaps) RC_LOG() << o << "\n";
  for (const auto& b : unclear(l, s.req, s.markers)) {
    RC_LOG() << "unclear: " << b.first << ", " << b.second << "\n";
    RC_ASSERT(reported(l, b));
  }
}

// ---------------------------------------------------------------- rendering
Point pt(double x, double y, int series, const std::string& label) {
  Point p;
  p.x = x, p.y = y, p.series = series, p.label = label;
  return p;
}

chart_check::Svg render_and_read(const Chart& c, std::vector<std::string>* overlaps = nullptr) {
  const Rendered r = render(c);
  if (overlaps) *overlaps = r.overlaps;
  const std::string path = test::temp_dir() + "/chart.svg";
  test::write_file(path, r.svg);
  return chart_check::read_svg(path);
}

const chart_check::ShapeItem* shape(const chart_check::Svg& s, const std::string& cls) {
  for (const auto& x : s.shapes)
    if (x.cls == cls) return &x;
  return nullptr;
}

TEST(ChartRender, ZeroIsDrawnInABandUnderTheLogAxisNotAtAMadeUpValue) {
  Panel p;
  p.id = "q";
  p.x = fit_axis("bpw", {5, 8}, false);
  p.y = fit_axis("kld", {0.001, 0.5}, true);
  p.series = {{"int", "#1f77b4"}, {"float", "#666666"}};
  p.points = {pt(5, 0.5, 0, "a"), pt(8, 0.001, 0, "b"), pt(6.5, 0, 1, "lossless")};
  Chart c;
  c.panels = {p};
  std::vector<std::string> over;
  const chart_check::Svg s = render_and_read(c, &over);
  EXPECT_TRUE(over.empty());
  EXPECT_TRUE(chart_check::overlaps(s).empty());
  const auto* band = shape(s, "zero-band");
  const auto* frame = shape(s, "frame");
  ASSERT_TRUE(band && frame);
  EXPECT_GT(band->box.y0, frame->box.y1);  // under the plot, not inside it
  const auto pts = s.points("q");
  ASSERT_EQ(pts.size(), 3u);
  const auto* zero = *std::find_if(pts.begin(), pts.end(), [](auto* m) { return m->label == "lossless"; });
  EXPECT_TRUE(band->box.grown(1).contains(zero->box));
  bool zero_label = false;
  for (const auto& t : s.texts) {
    zero_label = zero_label || t.text == "0 (lossless)";
    EXPECT_EQ(t.text.find("1e-"), std::string::npos) << "a tick below the data: " << t.text;
  }
  EXPECT_TRUE(zero_label);
}

TEST(ChartRender, OffAxisPointsSitOnTheEdge) {
  Panel p;
  p.id = "q";
  p.x = {"bpw", 5, 8, false};
  p.y = {"kld", 0.001, 1, true};
  p.series = {{"s", "#333"}};
  p.points = {pt(16, 0.01, 0, "far right"), pt(6, 0.1, 0, "inside")};
  Chart c;
  c.panels = {p};
  const chart_check::Svg s = render_and_read(c);
  const auto* frame = shape(s, "frame");
  const auto* chevron = shape(s, "off-axis");
  ASSERT_TRUE(frame && chevron);
  const auto pts = s.points("q");
  ASSERT_EQ(pts.size(), 2u);
  EXPECT_NEAR((pts[0]->box.x0 + pts[0]->box.x1) / 2, frame->box.x1, 1.0);
  EXPECT_GT(chevron->box.x0, frame->box.x1);
}

// ---------------------------------------------------------------- the sweep's chart and table
SweepRow row(const std::string& scheme, double bpw, double kld, double tg = 0, double tg_a8 = 0) {
  SweepRow r;
  r.scheme = scheme, r.bpw = bpw, r.kld_mean = kld, r.decode_tok_s = tg, r.decode_a8_tok_s = tg_a8;
  return r;
}

SweepResult synthetic_sweep() {
  SweepResult r;
  r.base_path = "/x/lmq-llama-25m", r.text = "/y/docs-valid.txt", r.ctx = 512, r.windows = 4;
  r.rows = {row("f16", 16.004, 1.07e-8, 96.7),
            row("int8:channel:sym:minmax:s=f16", 8.045, 1.6e-4, 141.8, 932.4),
            row("int6:channel:sym:minmax:s=f16", 7.033, 1.85e-3, 34.2),
            row("int4:channel:sym:minmax:s=f16", 6.021, 0.0363, 285.6, 784.6),
            row("int4:g128:asym:minmax:s=f16", 6.083, 0.0192, 249.1, 749.1),
            row("int4:g128:asym:mse:s=f16", 6.083, 0.0175, 229.5, 745.5),
            row("int3:g128:asym:minmax:s=f16", 5.573, 0.1009, 54.1),
            row("bf16", 16.004, 0, 90.0)};
  return r;
}

TEST(SweepChart, FrontierInTableJsonAndChart) {
  const SweepResult r = synthetic_sweep();
  // f16 and bf16 tie on bpw and bf16's 0 beats f16's 1e-8; int4:g128:asym loses to its :mse twin
  // (same size, higher KLD); int4:channel:sym is the smallest int4, so nothing beats it.
  EXPECT_EQ(sweep_frontier(r), (std::vector<bool>{false, true, true, true, false, true, true, true}));
  const std::string table = sweep_table(r);
  EXPECT_NE(table.find("* int8:channel:sym:minmax:s=f16"), std::string::npos) << table;
  EXPECT_NE(table.find("  int4:g128:asym:minmax:s=f16"), std::string::npos) << table;
  const auto j = nlohmann::json::parse(sweep_json(r));
  EXPECT_EQ(j["rows"][5]["pareto"], true);
  EXPECT_EQ(j["rows"][4]["pareto"], false);
  EXPECT_EQ(j["protocol"], "lmq");

  const chart::Rendered c = sweep_chart(r);
  EXPECT_TRUE(c.overlaps.empty()) << c.overlaps.front();
  const std::string path = test::temp_dir() + "/sweep.svg";
  test::write_file(path, c.svg);
  const chart_check::Svg s = chart_check::read_svg(path);
  EXPECT_TRUE(chart_check::overlaps(s).empty());
  EXPECT_EQ(s.points("quality").size(), r.rows.size());
  // speed: the 6 quantized rows with float activations, 4 with A8; f16 and bf16 lie beyond the
  // bpw axis and become levels across the panel
  EXPECT_EQ(s.points("speed").size(), 10u);
  int hlines = 0, frontier = 0;
  for (const auto& x : s.shapes) {
    hlines += x.cls == "hline" && x.group == "speed";
    frontier += x.cls == "series-line" && x.name == "Pareto frontier (lmq schemes)";
  }
  EXPECT_EQ(hlines, 2);
  EXPECT_EQ(frontier, 1);
  // the lossless rows: in the band, labelled with their value, explained in a note
  std::string all;
  for (const auto& t : s.texts) all += t.text + "\n";
  EXPECT_NE(all.find("f16 (16.00 bpw, KLD 1.1e-8)"), std::string::npos) << all;
  EXPECT_NE(all.find("bf16 (16.00 bpw, KLD 0)"), std::string::npos) << all;
  EXPECT_NE(all.find("≈ 0 (< 1e-6)"), std::string::npos) << all;
}

// ---------------------------------------------------------------- reference figures
Measurement llamacpp_100() { return {"lmq-llama-25m", "docs-valid.txt", "llamacpp", 512, 100}; }

TEST(ReferencePoints, ReadsLlamaCppFiguresForTheSweepsModel) {
  const ReferenceSet r = load_reference(shared_path("gguf/llamacpp.json"), llamacpp_100());
  EXPECT_EQ(r.tool.rfind("llama.cpp", 0), 0u) << r.tool;
  auto find = [&](const std::string& label) {
    const auto it = std::find_if(r.points.begin(), r.points.end(), [&](auto& p) { return p.label == label; });
    return it == r.points.end() ? nullptr : &*it;
  };
  // the two fixtures of lmq-llama-25m, and the other types measured the same way, each once
  ASSERT_TRUE(find("Q8_0") && find("Q4_0") && find("Q6_K") && find("Q2_K"));
  EXPECT_DOUBLE_EQ(find("Q8_0")->bpw, 8.51);
  EXPECT_DOUBLE_EQ(find("Q8_0")->kld_mean, 0.000209);
  EXPECT_DOUBLE_EQ(find("Q4_0")->kld_mean, 0.01542);
  EXPECT_EQ(r.points.size(), 8u);
  // none of the other models' figures
  EXPECT_EQ(find("Q4_K_M")->bpw, 7.02);  // lmq-llama-25m's, not lmq-qwen2-21m's 5.35
  EXPECT_EQ(find("IQ2_XS"), nullptr);
  EXPECT_EQ(model_name("../shared/models/lmq-llama-25m/"), "lmq-llama-25m");
  EXPECT_EQ(model_name("out/int4.lmq"), "int4");
}

TEST(ReferencePoints, ReadsLmqShape) {
  const std::string path = test::temp_dir() + "/ref.json";
  test::write_file(path, R"({"format": "lmq-reference/1", "tool": "llama.cpp b4748", "model": "lmq-llama-25m",
    "protocol": "llamacpp", "ctx": 512, "text": "docs-valid.txt", "windows": 100,
    "points": [{"label": "Q5_K_M", "bpw": 7.27, "kld_mean": 0.00221}, {"label": "same", "bpw": 16, "kld_mean": 0}]})");
  const ReferenceSet r = load_reference(path, llamacpp_100());
  EXPECT_EQ(r.tool, "llama.cpp b4748");
  ASSERT_EQ(r.points.size(), 2u);
  EXPECT_EQ(r.points[0].label, "Q5_K_M");
  EXPECT_DOUBLE_EQ(r.points[0].kld_mean, 0.00221);
}

void expect_refused(const std::string& path, const Measurement& m, const std::vector<std::string>& needles) {
  try {
    load_reference(path, m);
    ADD_FAILURE() << path << " was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos);
    EXPECT_EQ(what.rfind(path, 0), 0u) << what;
    for (const auto& n : needles) EXPECT_NE(what.find(n), std::string::npos) << "'" << n << "' not in: " << what;
  }
}

TEST(BadInputReference, OtherProtocolTextOrWindowsAreRefused) {
  const std::string llamacpp = shared_path("gguf/llamacpp.json");
  Measurement m = llamacpp_100();
  m.protocol = "lmq";
  expect_refused(llamacpp, m, {"llamacpp protocol", "--protocol llamacpp"});
  m = llamacpp_100();
  m.windows = 16;
  expect_refused(llamacpp, m, {"100 windows", "16"});
  m = llamacpp_100();
  m.text = "wikitext-2-test.txt";
  expect_refused(llamacpp, m, {"docs-valid.txt", "wikitext-2-test.txt"});
  m = llamacpp_100();
  m.ctx = 256;
  expect_refused(llamacpp, m, {"512", "256"});
  m = llamacpp_100();
  m.model = "lmq-qwen3-8m";
  expect_refused(llamacpp, m, {"no figures", "lmq-qwen3-8m"});
}

TEST(BadInputReference, MalformedFilesAreRefused) {
  const std::string dir = test::temp_dir();
  const Measurement m = llamacpp_100();
  auto refused = [&](const std::string& name, const std::string& body, const std::vector<std::string>& needles) {
    test::write_file(dir + "/" + name, body);
    expect_refused(dir + "/" + name, m, needles);
  };
  refused("cut.json", R"({"format": "lmq-reference/1", "points": [)", {"not valid JSON"});
  refused("array.json", "[1, 2]", {"not a JSON object"});
  refused("neither.json", R"({"points": []})", {"neither"});
  refused("format.json", R"({"format": "lmq-reference/9"})", {"unknown 'format'"});
  const std::string head = R"({"format": "lmq-reference/1", "protocol": "llamacpp", "ctx": 512,
    "text": "docs-valid.txt", "windows": 100, )";
  refused("nopoints.json", head + R"("tool": "t"})", {"'points'"});
  refused("nolabel.json", head + R"("points": [{"bpw": 4, "kld_mean": 0.1}]})", {"points[0]", "'label'"});
  refused("negbpw.json", head + R"("points": [{"label": "a", "bpw": -4, "kld_mean": 0.1}]})", {"bpw"});
  refused("strkld.json", head + R"("points": [{"label": "a", "bpw": 4, "kld_mean": "0.1"}]})", {"kld_mean"});
  refused("nankld.json", head + R"("points": [{"label": "a", "bpw": 4, "kld_mean": -1}]})", {"kld_mean"});
  refused("empty.json", head + R"("points": []})", {"no figures"});
  refused("ctx.json", R"({"format": "lmq-reference/1", "protocol": "llamacpp", "ctx": "512"})", {"'ctx'"});
  refused("proto.json", R"({"protocol": "perplexity.py -c 512", "fixtures": {}})", {"llama-perplexity"});
  refused("noc.json", R"({"protocol": "llama-perplexity -f x.txt: scored", "fixtures": {}})", {"-c N"});
  refused("fixture.json", R"({"protocol": "llama-perplexity -f docs-valid.txt -c 512 --chunks 100: x",
    "fixtures": {"a.gguf": {"model": "lmq-llama-25m", "text": "docs-valid.txt", "chunks": 100, "bpw": 4}}})",
          {"fixture 'a.gguf'", "'kld_mean'"});
}

TEST(BadInputReference, SweepRefusesBeforeAnyWork) {
  // The sweep's own protocol (lmq) against llama.cpp's figures: one line, exit 1, and not one
  // quantized file written (the check comes before the minutes of work).
  const std::string out = test::temp_dir() + "/sweep";
  const auto r =
      test::run_lmq({"sweep", shared_path("models/lmq-llama-25m"), "--text", shared_path("text/docs-valid.txt"),
                     "--windows", "4", "--out-dir", out, "--reference", shared_path("gguf/llamacpp.json")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("lmq: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("--protocol llamacpp"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  const std::string bad = test::temp_dir() + "/bad.json";
  test::write_file(bad, "{\"fixtures\": ");
  const auto b = test::run_lmq({"sweep", shared_path("models/lmq-llama-25m"), "--text",
                                shared_path("text/docs-valid.txt"), "--out-dir", out, "--reference", bad});
  EXPECT_EQ(b.exit_code, 1);
  EXPECT_EQ(std::count(b.err.begin(), b.err.end(), '\n'), 1) << b.err;
  EXPECT_NE(b.err.find("bad.json: not valid JSON"), std::string::npos) << b.err;
  const auto p = test::run_lmq({"sweep", shared_path("models/lmq-llama-25m"), "--text",
                                shared_path("text/docs-valid.txt"), "--protocol", "perplexity"});
  EXPECT_EQ(p.exit_code, 1);
  EXPECT_NE(p.err.find("--protocol 'perplexity'"), std::string::npos) << p.err;
}

}  // namespace
}  // namespace lmq
