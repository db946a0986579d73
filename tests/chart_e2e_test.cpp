// Charts of real sweeps of lmq-llama-25m, read back and rendered in headless Chromium (Debian's
// chromium and fonts-dejavu-core): no two text boxes intersect, by the font metrics and by the
// browser's own layout; one point per scheme, the frontier, the speed panel, reference points in
// the legend; the browser's text boxes where the metrics put them; a screenshot that is not blank.
// Without chromium these tests fail (CI installs it); LMQ_NO_BROWSER=1 skips the browser parts only.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmq/chart_check/chart_check.h"
#include "lmq/eval/chart.h"
#include "lmq/eval/sweep.h"
#include "test_support.h"

namespace lmq {
namespace {

namespace fs = std::filesystem;
using chart::Box;
using test::shared_path;

bool no_browser() {
  const char* e = std::getenv("LMQ_NO_BROWSER");
  return e && std::string(e) == "1";
}

std::string chromium() {
  if (const char* e = std::getenv("LMQ_CHROMIUM"); e && *e) return e;
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (fs::exists(p)) return p;
  return "";
}

constexpr const char* kMissing =
    "needs Debian's chromium and fonts-dejavu-core (apt-get install chromium fonts-dejavu-core; LMQ_CHROMIUM=path "
    "for another binary); LMQ_NO_BROWSER=1 skips the browser checks";

// chromium --headless with a profile of its own (tests run in parallel) and a time limit.
test::RunResult run_chromium(const std::vector<std::string>& args) {
  std::vector<std::string> a = {"120",
                                chromium(),
                                "--headless",
                                "--no-sandbox",
                                "--disable-gpu",
                                "--hide-scrollbars",
                                "--user-data-dir=" + test::temp_dir()};
  a.insert(a.end(), args.begin(), args.end());
  return test::run_program("timeout", a);
}

std::string unescape(std::string s) {
  for (const auto& [from, to] : {std::pair{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&amp;", "&"}})
    for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += std::string(to).size())
      s.replace(p, std::string(from).size(), to);
  return s;
}

// Every <text>'s box as Chromium lays it out (getBoundingClientRect, rotations included), in
// document order: the SVG inline in a page whose script writes them out, read by --dump-dom.
std::vector<chart_check::TextItem> browser_boxes(const std::string& svg_path) {
  const std::string page = test::temp_dir() + "/boxes.html";
  test::write_file(page, "<!DOCTYPE html><html><body style=\"margin:0\">" + test::read_file(svg_path) +
                             "<pre id=\"lmq-boxes\"></pre><script>\n"
                             "const rows = [];\n"
                             "for (const t of document.querySelectorAll('svg text')) {\n"
                             "  const r = t.getBoundingClientRect();\n"
                             "  rows.push([r.left, r.top, r.right, r.bottom].map(v => v.toFixed(3)).join(' ') + "
                             "'\\t' + t.textContent);\n"
                             "}\n"
                             "document.getElementById('lmq-boxes').textContent = rows.join('\\n');\n"
                             "</script></body></html>\n");
  const test::RunResult r = run_chromium({"--dump-dom", "file://" + fs::absolute(page).string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const size_t a = r.out.find("<pre id=\"lmq-boxes\">"), b = r.out.find("</pre>", a);
  if (a == std::string::npos || b == std::string::npos) {
    ADD_FAILURE() << "no boxes in chromium's DOM: " << r.out.substr(0, 500);
    return {};
  }
  std::istringstream in(r.out.substr(a + 20, b - a - 20));
  std::vector<chart_check::TextItem> boxes;
  for (std::string line; std::getline(in, line);) {
    chart_check::TextItem t;
    std::istringstream ls(line.substr(0, line.find('\t')));
    ls >> t.box.x0 >> t.box.y0 >> t.box.x1 >> t.box.y1;
    t.text = unescape(line.substr(line.find('\t') + 1));
    boxes.push_back(t);
  }
  return boxes;
}

// Chromium's layout: each text where the DejaVu Sans metrics put it, none over another; its
// screenshot the SVG's size and drawn (axes, labels and coloured markers), not blank.
void check_in_browser(const std::string& svg_path) {
  ASSERT_TRUE(fs::exists("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")) << kMissing;
  const chart_check::Svg svg = chart_check::read_svg(svg_path);
  const std::vector<chart_check::TextItem> seen = browser_boxes(svg_path);
  ASSERT_EQ(seen.size(), svg.texts.size());
  for (size_t i = 0; i < seen.size(); ++i) {
    const Box& b = seen[i].box;
    const Box& m = svg.texts[i].box;
    EXPECT_EQ(seen[i].text, svg.texts[i].text);
    const double slack = 1.0 + 0.003 * (m.x1 - m.x0);
    EXPECT_TRUE(std::abs(b.x0 - m.x0) <= slack && std::abs(b.x1 - m.x1) <= slack && std::abs(b.y0 - m.y0) <= slack &&
                std::abs(b.y1 - m.y1) <= slack)
        << "'" << seen[i].text << "': chromium (" << b.x0 << "," << b.y0 << ")-(" << b.x1 << "," << b.y1
        << "), metrics (" << m.x0 << "," << m.y0 << ")-(" << m.x1 << "," << m.y1 << ")";
    for (size_t j = 0; j < i; ++j)
      EXPECT_FALSE(b.grown(-0.25).intersects(seen[j].box.grown(-0.25)))
          << "chromium draws '" << seen[i].text << "' over '" << seen[j].text << "'";
  }
  const std::string png = fs::path(svg_path).replace_extension(".png").string();
  const test::RunResult r =
      run_chromium({"--screenshot=" + png, fmt::format("--window-size={:.0f},{:.0f}", svg.width, svg.height),
                    "file://" + fs::absolute(svg_path).string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const chart_check::PngStats p = chart_check::read_png(png);
  EXPECT_EQ(p.width, int(svg.width));
  EXPECT_EQ(p.height, int(svg.height));
  const double drawn = double(p.non_white) / (double(p.width) * p.height);
  EXPECT_GT(drawn, 0.02) << "a blank screenshot";
  EXPECT_LT(drawn, 0.5) << "not the chart on white";
  EXPECT_GT(p.colored, 1000) << "no coloured markers";
}

// The sweep's files: the SVG reads cleanly with one point per scheme and the frontier line; the
// table's * and the JSON's "pareto" mark the same rows, the rows nothing else beats.
chart_check::Svg check_sweep_dir(const std::string& dir, size_t schemes) {
  const chart_check::Svg svg = chart_check::read_svg(dir + "/sweep.svg");
  const std::vector<std::string> o = chart_check::overlaps(svg);
  EXPECT_TRUE(o.empty()) << o.size() << " overlaps, first: " << o.front();
  size_t own = 0;
  for (const auto* p : svg.points("quality")) own += p->series.find("test figures") == std::string::npos;
  EXPECT_EQ(own, schemes);
  EXPECT_TRUE(std::any_of(svg.shapes.begin(), svg.shapes.end(), [](const auto& s) {
    return s.cls == "series-line" && s.name == "Pareto frontier (lmq schemes)";
  }));
  const auto j = nlohmann::json::parse(test::read_file(dir + "/sweep.json"));
  const auto& rows = j["rows"];
  EXPECT_EQ(rows.size(), schemes);
  const std::string table = test::read_file(dir + "/sweep.txt");
  for (const auto& x : rows) {
    bool beaten = false;
    for (const auto& y : rows)
      beaten = beaten || (y["bpw"] <= x["bpw"] && y["kld_mean"] <= x["kld_mean"] &&
                          (y["bpw"] < x["bpw"] || y["kld_mean"] < x["kld_mean"]));
    EXPECT_EQ(x["pareto"].get<bool>(), !beaten) << x["scheme"];
    const std::string mark = (beaten ? "  " : "* ") + x["scheme"].get<std::string>() + " ";
    EXPECT_NE(table.find("\n" + mark), std::string::npos) << mark << "\n" << table;
  }
  return svg;
}

TEST(ChartEndToEnd, SmallSweepWithSpeedAndReference) {
  const std::string dir = test::temp_dir() + "/sweep", ref = test::temp_dir() + "/ref.json";
  // Hand-written figures in lmq's reference shape, stated for the sweep's own text and protocol.
  test::write_file(ref, R"({"format": "lmq-reference/1", "tool": "hand-written test figures",
    "model": "lmq-llama-25m", "protocol": "lmq", "ctx": 512, "text": "docs-valid.txt", "windows": 2,
    "points": [{"label": "ref-a", "bpw": 6.5, "kld_mean": 0.01}, {"label": "ref-b", "bpw": 5.3, "kld_mean": 0.2}]})");
  const auto r = test::run_lmq({"sweep", shared_path("models/lmq-llama-25m"), "--text",
                                shared_path("text/docs-valid.txt"), "--windows", "2", "--schemes",
                                "f16,int8:channel:sym,int4:g128:asym,int4:g128:asym:mse,int3:g128:asym", "--out-dir",
                                dir, "--reference", ref});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  const chart_check::Svg svg = check_sweep_dir(dir, 5);
  // the reference: two diamonds, named in the legend and in a note
  size_t refs = 0;
  for (const auto* p : svg.points("quality")) refs += p->series == "hand-written test figures";
  EXPECT_EQ(refs, 2u);
  EXPECT_TRUE(std::any_of(svg.texts.begin(), svg.texts.end(),
                          [](const auto& t) { return t.text == "hand-written test figures"; }));
  // speed: float activations and A8 for the four quantized schemes (every LMQ_INT width runs on
  // the integer kernels); f16 (16 bpw, beyond the axis) a level across the panel
  EXPECT_EQ(svg.points("speed").size(), 8u);
  EXPECT_EQ(std::count_if(svg.shapes.begin(), svg.shapes.end(),
                          [](const auto& s) { return s.cls == "hline" && s.group == "speed"; }),
            1);
  if (no_browser()) GTEST_SKIP() << "LMQ_NO_BROWSER=1: the SVG checks passed, the browser checks are skipped";
  ASSERT_FALSE(chromium().empty()) << kMissing;
  check_in_browser(dir + "/sweep.svg");
}

// The default scheme list, as the main job runs it (fewer windows, no speed runs, to stay within a
// minute): its crowded clusters (int4 ×5, int3 ×3, int2 ×3) read cleanly.
TEST(ChartEndToEnd, DefaultSweepReadsCleanly) {
  const std::string dir = test::temp_dir() + "/sweep";
  const auto r = test::run_lmq({"sweep", shared_path("models/lmq-llama-25m"), "--text",
                                shared_path("text/docs-valid.txt"), "--windows", "2", "--no-bench", "--out-dir", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  check_sweep_dir(dir, 15);
  // What CI checks of the main job's folder (lmq_chart_check --sweep): complete here, and a lost
  // row or a broken figure is found.
  const std::vector<std::string> want = default_sweep_schemes(false);
  const std::vector<std::string> none = chart_check::sweep_problems(dir, want);
  EXPECT_TRUE(none.empty()) << none.front();
  auto j = nlohmann::json::parse(test::read_file(dir + "/sweep.json"));
  j["rows"].erase(j["rows"].begin());
  j["rows"][0]["ppl"] = nullptr;
  test::write_file(dir + "/sweep.json", j.dump());
  EXPECT_EQ(chart_check::sweep_problems(dir, want).size(), 3u);  // the row, the figure, the count
  if (no_browser()) GTEST_SKIP() << "LMQ_NO_BROWSER=1: the SVG checks passed, the browser checks are skipped";
  ASSERT_FALSE(chromium().empty()) << kMissing;
  check_in_browser(dir + "/sweep.svg");
}

}  // namespace
}  // namespace lmq
