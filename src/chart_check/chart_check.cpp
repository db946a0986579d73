#include "lmq/chart_check/chart_check.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <png.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numbers>
#include <regex>

#include "lmq/error.h"
#include "lmq/quant/scheme.h"

namespace lmq::chart_check {
namespace {

using chart::Box;

std::string attr(const xmlNode* n, const char* name) {
  xmlChar* v = xmlGetProp(n, reinterpret_cast<const xmlChar*>(name));
  if (!v) return "";
  std::string s(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return s;
}

// The attribute on the element or its nearest ancestor that has it (SVG's inheritance).
std::string inherited(const xmlNode* n, const char* name) {
  for (; n && n->type == XML_ELEMENT_NODE; n = n->parent)
    if (std::string v = attr(n, name); !v.empty()) return v;
  return "";
}

std::string name_of(const xmlNode* n) { return reinterpret_cast<const char*>(n->name); }

std::string content(const xmlNode* n) {
  xmlChar* raw = xmlNodeGetContent(n);
  std::string s = raw ? reinterpret_cast<const char*>(raw) : "";
  xmlFree(raw);
  return s;
}

struct Reader {
  std::string path;

  double number(const std::string& s, const xmlNode* n, const char* what) const {
    std::string t = s;
    if (t.size() > 2 && t.compare(t.size() - 2, 2, "px") == 0) t.resize(t.size() - 2);
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end != '\0' || !std::isfinite(v))
      fail("{}: line {}: <{}> {}=\"{}\" is not a number", path, n->line, name_of(n), what, s);
    return v;
  }
  double num_attr(const xmlNode* n, const char* name) const { return number(attr(n, name), n, name); }

  std::vector<double> numbers(const std::string& list, const xmlNode* n) const {
    std::vector<double> v;
    std::string cur;
    for (char c : list + " ") {
      if (c == ' ' || c == ',') {
        if (!cur.empty()) v.push_back(number(cur, n, "points"));
        cur.clear();
      } else {
        cur += c;
      }
    }
    return v;
  }

  Box text_box(const xmlNode* n, const std::string& text) const {
    const std::string size = inherited(n, "font-size");
    const std::string anchor = inherited(n, "text-anchor");
    const chart::Anchor a = anchor == "middle" ? chart::Anchor::Middle
                            : anchor == "end"  ? chart::Anchor::End
                                               : chart::Anchor::Start;
    const double px = number(size.empty() ? "16" : size, n, "font-size");  // 16: a browser's default
    const Box b = chart::text_box(text, num_attr(n, "x"), num_attr(n, "y"), px, a);
    return rotated(b, attr(n, "transform"), n);
  }

  // rotate(a) or rotate(a cx cy): the rotated box's bounds.
  Box rotated(const Box& b, const std::string& t, const xmlNode* n) const {
    if (t.empty()) return b;
    static const std::regex re(R"(^\s*rotate\(\s*([-+.\deE]+)(?:[\s,]+([-+.\deE]+)[\s,]+([-+.\deE]+))?\s*\)\s*$)");
    std::smatch m;
    if (!std::regex_match(t, m, re))
      fail("{}: line {}: transform \"{}\": only rotate() is understood", path, n->line, t);
    const double a = number(m[1], n, "transform") * std::numbers::pi / 180;
    const double cx = m[2].matched ? number(m[2], n, "transform") : 0,
                 cy = m[3].matched ? number(m[3], n, "transform") : 0;
    Box r{1e300, 1e300, -1e300, -1e300};
    for (const auto& [x, y] : {std::pair{b.x0, b.y0}, {b.x1, b.y0}, {b.x0, b.y1}, {b.x1, b.y1}}) {
      const double rx = cx + (x - cx) * std::cos(a) - (y - cy) * std::sin(a);
      const double ry = cy + (x - cx) * std::sin(a) + (y - cy) * std::cos(a);
      r = {std::min(r.x0, rx), std::min(r.y0, ry), std::max(r.x1, rx), std::max(r.y1, ry)};
    }
    return r;
  }

  // The bounds of a shape, stroke included; false for an element without geometry here.
  bool shape_box(const xmlNode* n, Box& b) const {
    const std::string e = name_of(n);
    if (e == "circle") {
      const double x = num_attr(n, "cx"), y = num_attr(n, "cy"), r = num_attr(n, "r");
      b = {x - r, y - r, x + r, y + r};
    } else if (e == "rect") {
      if (attr(n, "x").empty()) return false;  // the background (width="100%")
      const double x = num_attr(n, "x"), y = num_attr(n, "y");
      b = {x, y, x + num_attr(n, "width"), y + num_attr(n, "height")};
    } else if (e == "polygon" || e == "polyline" || e == "line") {
      std::vector<double> v =
          e == "line" ? std::vector<double>{num_attr(n, "x1"), num_attr(n, "y1"), num_attr(n, "x2"), num_attr(n, "y2")}
                      : numbers(attr(n, "points"), n);
      if (v.size() < 2 || v.size() % 2) fail("{}: line {}: <{}> has an odd list of coordinates", path, n->line, e);
      b = {1e300, 1e300, -1e300, -1e300};
      for (size_t i = 0; i < v.size(); i += 2)
        b = {std::min(b.x0, v[i]), std::min(b.y0, v[i + 1]), std::max(b.x1, v[i]), std::max(b.y1, v[i + 1])};
    } else {
      return false;
    }
    const std::string stroke = attr(n, "stroke"), sw = attr(n, "stroke-width");
    if (!stroke.empty() && stroke != "none") b = b.grown((sw.empty() ? 1 : number(sw, n, "stroke-width")) / 2);
    return true;
  }

  void walk(const xmlNode* n, const std::string& group, Svg& out) const {
    for (; n; n = n->next) {
      if (n->type != XML_ELEMENT_NODE) continue;
      const std::string e = name_of(n), cls = attr(n, "class");
      if (e == "g") {
        if (!attr(n, "transform").empty()) fail("{}: line {}: a transform on a group is not understood", path, n->line);
        const std::string id = attr(n, "id");
        out.groups.push_back(id);
        walk(n->children, id, out);
        continue;
      }
      if (e == "text") {
        const std::string text = content(n);
        out.texts.push_back({text, cls, group, text_box(n, text)});
        continue;
      }
      Box b;
      if (!cls.empty() && shape_box(n, b)) {
        ShapeItem s{e, cls, group, attr(n, "data-label"), attr(n, "data-series"), attr(n, "data-name"), b};
        ((cls == "point" || cls == "swatch") ? out.markers : out.shapes).push_back(s);
      }
    }
  }
};

std::string describe(const TextItem& t) {
  return fmt::format("'{}' ({:.1f},{:.1f})-({:.1f},{:.1f})", t.text, t.box.x0, t.box.y0, t.box.x1, t.box.y1);
}

}  // namespace

std::vector<const ShapeItem*> Svg::points(const std::string& group) const {
  std::vector<const ShapeItem*> p;
  for (const ShapeItem& m : markers)
    if (m.cls == "point" && m.group == group) p.push_back(&m);
  return p;
}

Svg read_svg(const std::string& path) {
  std::unique_ptr<xmlDoc, void (*)(xmlDoc*)> doc(
      xmlReadFile(path.c_str(), nullptr, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING), xmlFreeDoc);
  if (!doc) {
    const xmlError* e = xmlGetLastError();
    fail("{}: not well-formed XML: {}", path, e && e->message ? std::string(e->message) : "unreadable");
  }
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (!root || name_of(root) != "svg") fail("{}: the root element is not <svg>", path);
  Reader r{path};
  Svg s;
  s.width = r.num_attr(root, "width");
  s.height = r.num_attr(root, "height");
  r.walk(root->children, "", s);
  return s;
}

std::vector<std::string> overlaps(const Svg& svg) {
  std::vector<std::string> o;
  for (size_t i = 0; i < svg.texts.size(); ++i) {
    for (size_t j = i + 1; j < svg.texts.size(); ++j)
      if (svg.texts[i].box.intersects(svg.texts[j].box))
        o.push_back(fmt::format("text {} overlaps text {}", describe(svg.texts[i]), describe(svg.texts[j])));
    for (const ShapeItem& m : svg.markers)
      if (svg.texts[i].box.intersects(m.box))
        o.push_back(fmt::format("text {} overlaps the {} of '{}' at ({:.1f},{:.1f})", describe(svg.texts[i]), m.cls,
                                m.label, (m.box.x0 + m.box.x1) / 2, (m.box.y0 + m.box.y1) / 2));
  }
  return o;
}

PngStats read_png(const std::string& path) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str())) fail("{}: not a readable PNG: {}", path, img.message);
  img.format = PNG_FORMAT_RGBA;
  std::vector<uint8_t> px(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, px.data(), 0, nullptr)) {
    const std::string msg = img.message;
    png_image_free(&img);
    fail("{}: not a readable PNG: {}", path, msg);
  }
  PngStats s;
  s.width = int(img.width), s.height = int(img.height);
  for (size_t i = 0; i + 3 < px.size(); i += 4) {
    const int r = px[i], g = px[i + 1], b = px[i + 2], a = px[i + 3];
    if (a < 16) continue;
    if (std::min({r, g, b}) < 245) ++s.non_white;
    if (std::max({r, g, b}) - std::min({r, g, b}) > 60) ++s.colored;
  }
  return s;
}

std::vector<std::string> sweep_problems(const std::string& dir, const std::vector<std::string>& expected) {
  namespace fs = std::filesystem;
  std::vector<std::string> problems;
  for (const char* f : {"sweep.json", "sweep.txt", "sweep.svg"})
    if (!fs::is_regular_file(fs::path(dir) / f) || fs::file_size(fs::path(dir) / f) == 0)
      problems.push_back(fmt::format("{}/{}: missing or empty", dir, f));
  if (!problems.empty()) return problems;
  std::ifstream in(fs::path(dir) / "sweep.json");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("rows") || !j["rows"].is_array())
    return {fmt::format("{}/sweep.json: not a sweep's JSON", dir)};
  std::map<std::string, nlohmann::json> rows;
  for (const auto& r : j["rows"])
    if (r.contains("scheme") && r["scheme"].is_string()) rows[r["scheme"].get<std::string>()] = r;
  auto number = [](const nlohmann::json& r, const char* k) {
    return r.contains(k) && r[k].is_number() ? r[k].get<double>() : std::nan("");
  };
  for (const std::string& want : expected) {
    const std::string name = quant::parse_scheme(want).to_string();
    const auto it = rows.find(name);
    if (it == rows.end()) {
      problems.push_back(fmt::format("{}/sweep.json: no row for scheme {}", dir, name));
      continue;
    }
    const nlohmann::json& r = it->second;
    const double bpw = number(r, "bpw"), ppl = number(r, "ppl"), kld = number(r, "kld_mean"),
                 top1 = number(r, "top1_agreement"), bytes = number(r, "file_bytes");
    if (!(bpw > 0 && bpw <= 33 && ppl > 1 && std::isfinite(ppl) && kld >= 0 && std::isfinite(kld) && top1 >= 0 &&
          top1 <= 1))
      problems.push_back(fmt::format("{}/sweep.json: scheme {}: figures missing or out of range "
                                     "(bpw {}, ppl {}, kld_mean {}, top1 {})",
                                     dir, name, bpw, ppl, kld, top1));
    std::string file = r.contains("file") && r["file"].is_string() ? r["file"].get<std::string>() : "";
    if (!file.empty() && !fs::exists(file)) file = (fs::path(dir) / fs::path(file).filename()).string();  // moved
    std::error_code ec;
    const uint64_t size = fs::file_size(file, ec);
    if (file.empty() || ec || double(size) != bytes)
      problems.push_back(fmt::format("{}/sweep.json: scheme {}: file '{}' missing or not {} bytes", dir, name, file,
                                     bytes));
  }
  if (rows.size() != expected.size())
    problems.push_back(fmt::format("{}/sweep.json: {} rows, {} schemes expected", dir, rows.size(), expected.size()));
  return problems;
}

}  // namespace lmq::chart_check
