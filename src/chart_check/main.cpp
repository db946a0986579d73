// lmq_chart_check: checks a chart as a reader gets it (scripts/check-chart.sh runs it on the
// main job's lmq-sweep/sweep.svg and its headless-Chromium screenshot).
//   lmq_chart_check [--points GROUP=N] FILE.svg [FILE.png]
//     FILE.svg well-formed, no two text boxes (from DejaVu Sans's metrics) intersecting, no text
//     over a marker, N points in the group GROUP; FILE.png, when given, the size of the SVG and
//     not blank. Exit 0 when all hold, 1 with one line per problem.
//   lmq_chart_check --size FILE.svg
//     prints the SVG's size as W,H (for chromium --window-size).
//   lmq_chart_check --sweep DIR [--full]
//     DIR holds a complete sweep of lmq's default scheme set (or --full's): sweep.json/txt/svg,
//     one row per scheme with sane figures, each quantized file at its stated size.
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "lmq/chart_check/chart_check.h"
#include "lmq/error.h"
#include "lmq/eval/sweep.h"

namespace {

int check(const std::string& svg_path, const std::string& png_path, const std::vector<std::string>& expect) {
  using namespace lmq::chart_check;
  const Svg svg = read_svg(svg_path);
  std::vector<std::string> problems = overlaps(svg);
  std::string groups;
  for (const std::string& g : svg.groups) groups += (groups.empty() ? "" : ", ") + g;
  for (const std::string& e : expect) {
    const size_t eq = e.find('=');
    if (eq == std::string::npos) lmq::fail("--points {}: expected GROUP=N", e);
    const size_t want = std::stoul(e.substr(eq + 1)), got = svg.points(e.substr(0, eq)).size();
    if (got != want) problems.push_back(fmt::format("group '{}' has {} points, not {}", e.substr(0, eq), got, want));
  }
  fmt::print("{}: {:.0f}x{:.0f}, {} texts, {} markers, groups: {}\n", svg_path, svg.width, svg.height, svg.texts.size(),
             svg.markers.size(), groups);
  if (!png_path.empty()) {
    const PngStats p = read_png(png_path);
    const double drawn = double(p.non_white) / (double(p.width) * p.height);
    fmt::print("{}: {}x{}, {:.1f}% drawn, {} coloured pixels\n", png_path, p.width, p.height, 100 * drawn, p.colored);
    if (std::abs(p.width - svg.width) > 1 || std::abs(p.height - svg.height) > 1)
      problems.push_back(fmt::format("{}: {}x{}, not the SVG's size", png_path, p.width, p.height));
    if (drawn < 0.01 || p.colored < 200)
      problems.push_back(
          fmt::format("{}: blank or nearly so ({:.2f}% drawn, {} coloured pixels)", png_path, 100 * drawn, p.colored));
  }
  for (const std::string& p : problems) fmt::print(stderr, "lmq_chart_check: {}\n", p);
  if (problems.empty()) fmt::print("no overlaps\n");
  return problems.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> files, expect;
    bool size = false, sweep = false, full = false;
    for (int i = 1; i < argc; ++i) {
      if (!std::strcmp(argv[i], "--size"))
        size = true;
      else if (!std::strcmp(argv[i], "--sweep"))
        sweep = true;
      else if (!std::strcmp(argv[i], "--full"))
        full = true;
      else if (!std::strcmp(argv[i], "--points") && i + 1 < argc)
        expect.push_back(argv[++i]);
      else
        files.push_back(argv[i]);
    }
    if (files.empty() || files.size() > 2 || ((size || sweep) && files.size() != 1)) {
      fmt::print(stderr,
                 "usage: lmq_chart_check [--points GROUP=N] FILE.svg [FILE.png] | --size FILE.svg | --sweep DIR [--full]\n");
      return 1;
    }
    if (sweep) {
      const std::vector<std::string> want = lmq::default_sweep_schemes(full);
      const std::vector<std::string> problems = lmq::chart_check::sweep_problems(files[0], want);
      for (const std::string& p : problems) fmt::print(stderr, "lmq_chart_check: {}\n", p);
      if (problems.empty()) fmt::print("{}: complete, {} schemes\n", files[0], want.size());
      return problems.empty() ? 0 : 1;
    }
    if (size) {
      const auto svg = lmq::chart_check::read_svg(files[0]);
      fmt::print("{:.0f},{:.0f}\n", std::ceil(svg.width), std::ceil(svg.height));
      return 0;
    }
    return check(files[0], files.size() > 1 ? files[1] : "", expect);
  } catch (const std::exception& e) {
    fmt::print(stderr, "lmq_chart_check: error: {}\n", e.what());
    return 1;
  }
}
