// GGUF --scheme names are llama-quantize's file types (quant/gguf_recipe.h): lmq's recipe chooses,
// tensor by tensor, the ggml type llama-quantize (llama.cpp b4748) chose
//  - in every llama.cpp-made file of ../shared/gguf (read with lmq's GGUF header reader, which
//    also lists the i-quant types lmq cannot read, so they compare by type id), and
//  - in every quantization of tests/data/llamacpp-recipes.json: llama-quantize's output for every
//    file type name, with and without an importance matrix, of the shared models and of two
//    synthetic shapes (an 80-layer GQA llama: the 70B rule; a 22-layer qwen2), recorded by
//    scripts/check-llamacpp-recipe.sh (LMQ_LLAMACPP_RECIPES names another such file);
// plus the pure spelling (llama-quantize --pure), the CLI's refusals and the --target-bpw
// candidates from the format table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include <fmt/format.h>

#include "lmq/calib/mixed.h"
#include "lmq/codecs/format_traits.h"
#include "lmq/codecs/iquant_lattice.h"
#include "lmq/error.h"
#include "lmq/formats/gguf.h"
#include "lmq/model/model.h"
#include "lmq/quant/gguf_export.h"
#include "test_support.h"

using namespace lmq;
using namespace lmq::test;
using json = nlohmann::json;

namespace {

const Model& model(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Model>> cache;
  auto& m = cache[name];
  if (!m) m = Model::load(shared_path("models/" + name));
  return *m;
}

// lmq's recipe for `model` under `scheme`, by GGUF name: the ggml type's label.
std::map<std::string, std::string> recipe_labels(const Model& m, const std::string& scheme, bool imatrix) {
  GgufExportOptions o;
  o.scheme = parse_gguf_scheme(scheme);
  o.imatrix = imatrix;
  std::map<std::string, std::string> r;
  for (const auto& [hf, e] : gguf_recipe(m, o)) r[e.gguf_name] = ggml_type_label(e.type.type);
  return r;
}

// Compares a file's tensor types with lmq's recipe; returns the number of tensors compared.
int expect_same_types(const std::string& what, const std::map<std::string, std::string>& file,
                      const std::map<std::string, std::string>& ours) {
  int n = 0, bad = 0;
  for (const auto& [name, type] : file) {
    const auto it = ours.find(name);
    // tensors lmq writes besides the checkpoint's (rope_freqs) are F32 in both
    const std::string mine = it == ours.end() ? (name == "rope_freqs.weight" ? "F32" : "(missing)") : it->second;
    if (mine != type && ++bad <= 5) ADD_FAILURE() << what << ": " << name << " llama.cpp " << type << ", lmq " << mine;
    ++n;
  }
  for (const auto& [name, type] : ours)
    if (!file.count(name)) ADD_FAILURE() << what << ": " << name << " only in lmq's recipe";
  EXPECT_EQ(bad, 0) << what;
  return n;
}

}  // namespace

// Every llama.cpp-made fixture: same type for every tensor; general.file_type the same number.
TEST(GgufRecipe, MatchesLlamaCppFixtures) {
  const std::string index = shared_path("gguf/llamacpp.json");
  if (!std::filesystem::exists(index)) GTEST_SKIP() << "missing " << index;
  const json fx = json::parse(std::ifstream(index))["fixtures"];
  int files = 0;
  for (const auto& [file, f] : fx.items()) {
    const std::string path = shared_path("gguf/" + file), name = f["model"];
    if (!std::filesystem::exists(path) || !std::filesystem::exists(shared_path("models/" + name))) continue;
    const GgufHeader h = read_gguf_header(path);
    std::map<std::string, std::string> types;
    for (const GgufTensorInfo& t : h.tensors) types[t.name] = ggml_type_label(t.type_id);
    // llama-quantize records its importance matrix in the file (quantize.imatrix.*)
    const bool imatrix = h.metadata.count("quantize.imatrix.entries_count") > 0;
    std::string scheme = f["type"];
    for (char& c : scheme) c = char(std::tolower(static_cast<unsigned char>(c)));
    const int n = expect_same_types(file, types, recipe_labels(model(name), scheme, imatrix));
    EXPECT_EQ(std::get<uint64_t>(h.metadata.at("general.file_type").v), parse_gguf_scheme(scheme).ftype.ftype) << file;
    std::printf("%-28s %s%s: %d tensors, every type as llama.cpp chose it\n", file.c_str(), scheme.c_str(),
                imatrix ? " (imatrix)" : "", n);
    ++files;
  }
  EXPECT_GE(files, 9);
}

// llama-quantize's choices for every file type name, recorded by scripts/check-llamacpp-recipe.sh:
// the recipe over each recorded model's hyperparameters and tensor shapes (the synthetic 80-layer
// llama and 22-layer qwen2 included), and through lmq's own model where it is in ../shared.
TEST(GgufRecipe, MatchesLlamaQuantizeForEveryFtype) {
  const char* env = std::getenv("LMQ_LLAMACPP_RECIPES");
  const std::string path = env ? env : std::string(LMQ_SOURCE_DIR) + "/tests/data/llamacpp-recipes.json";
  const json j = json::parse(std::ifstream(path));
  std::map<std::string, int> runs, via_model;
  int tensors = 0;
  for (const json& c : j["cases"]) {
    const std::string name = c["model"], ft = c["ftype"];
    const bool imatrix = c["imatrix"];
    const json& m = j["models"][name];
    std::vector<RecipeTensor> ts;
    for (const json& t : m["tensors"])
      ts.push_back({t[0].get<std::string>(), int(t[1].size()), t[1][0].get<int64_t>()});
    const json& h = m["hparams"];
    const RecipeHparams hp{h["arch"].get<std::string>(), h["n_layer"].get<int>(), h["n_head"].get<int>(),
                           h["n_head_kv"].get<int>(), 0};
    std::istringstream types(c["types"].get<std::string>());
    std::map<std::string, std::string> file;
    for (const RecipeTensor& t : ts) types >> file[t.name];
    const LlamaFtype* f = find_llama_ftype(ft);
    ASSERT_NE(f, nullptr) << ft;
    const std::vector<RecipeType> r = llama_recipe(*f, false, imatrix, hp, ts);
    std::map<std::string, std::string> ours;
    for (size_t i = 0; i < ts.size(); ++i) ours[ts[i].name] = ggml_type_label(r[i].type);
    const std::string what = fmt::format("{} {}{}", name, ft, imatrix ? " imatrix" : "");
    tensors += expect_same_types(what, file, ours);
    ++runs[name];
    if (std::filesystem::exists(shared_path("models/" + name))) {
      expect_same_types(what + " (lmq's model)", file, recipe_labels(model(name), ft, imatrix));
      ++via_model[name];
    }
  }
  for (const auto& [m, n] : runs)
    std::printf("%-16s %d llama-quantize runs, every tensor's type matched (%d also through lmq's model)\n", m.c_str(), n,
                via_model[m]);
  std::printf("%zu runs, %d tensors\n", j["cases"].size(), tensors);
  EXPECT_GE(j["cases"].size(), 250u);
  EXPECT_GE(runs.size(), 5u);
}

// Named cases of the rules, on the shared models, that the data above exercises: the tied
// embedding takes the output rule; Q2_K's attn_v depends on GQA; i-quant token embeddings.
TEST(GgufRecipe, RulesOnSharedModels) {
  if (!std::filesystem::exists(shared_path("models/lmq-llama3-9m"))) GTEST_SKIP() << "missing model";
  const auto q2 = recipe_labels(model("lmq-qwen2-21m"), "q2_k", false);  // 4 heads / 2 kv: GQA 2
  EXPECT_EQ(q2.at("blk.0.attn_v.weight"), "Q3_K");
  EXPECT_EQ(q2.at("blk.0.ffn_down.weight"), "Q3_K");
  EXPECT_EQ(q2.at("blk.0.attn_output.weight"), "Q3_K");
  EXPECT_EQ(q2.at("blk.0.attn_q.weight"), "Q2_K");
  EXPECT_EQ(q2.at("output.weight"), "Q6_K");
  const auto l3 = recipe_labels(model("lmq-llama3-9m"), "q2_k", false);  // 4 heads / 1 kv: GQA 4
  EXPECT_EQ(l3.at("blk.0.attn_v.weight"), "Q4_K");
  EXPECT_EQ(recipe_labels(model("lmq-llama3-9m"), "iq2_xs", true).at("token_embd.weight"), "Q5_K");  // tied: output rule
  const auto iq = recipe_labels(model("lmq-qwen2-21m"), "iq2_xs", true);
  EXPECT_EQ(iq.at("token_embd.weight"), "Q2_K");
  EXPECT_EQ(iq.at("output.weight"), "Q5_K");
  EXPECT_EQ(iq.at("blk.1.ffn_up.weight"), "IQ2_XS");
  // pure: one type everywhere, output and embedding included; the fallback where rows need it
  for (const auto& [n, t] : recipe_labels(model("lmq-qwen2-21m"), "pure-q2_k", false)) {
    const bool matrix = n.find("norm") == std::string::npos && n.find(".bias") == std::string::npos;
    EXPECT_EQ(t, matrix ? "Q2_K" : "F32") << n;
  }
  const auto p = recipe_labels(model("lmq-llama-25m"), "pure-q4_k_m", false);  // 384-wide rows
  EXPECT_EQ(p.at("token_embd.weight"), "Q5_0");
  EXPECT_EQ(p.at("blk.0.attn_v.weight"), "Q5_0");
  EXPECT_EQ(parse_gguf_scheme("pure-q4_k_m").ftype.ftype, 15u);
  // 384-wide rows: b4748 falls back from Q3_K to IQ4_NL, and lmq stores IQ4_NL
  GgufExportOptions o;
  o.scheme = parse_gguf_scheme("q3_k_m");
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  const RecipeType r = gguf_recipe(model("lmq-llama-25m"), o).at(q).type;
  EXPECT_EQ(r.chosen, uint32_t(ggml_type::Q3_K));
  EXPECT_EQ(r.type, uint32_t(ggml_type::IQ4_NL));
  const QuantPlan plan = plan_gguf_targets(model("lmq-llama-25m"), o);
  EXPECT_EQ(plan.target(q)->format, Format::IQ4_NL);
  EXPECT_EQ(plan.target(q)->note, "fallback from q3_K (row of 384)");
  EXPECT_EQ(parse_gguf_scheme("Q4_K").ftype.ftype, 15u);  // llama-quantize's alias of Q4_K_M
}

TEST(BadInputGgufScheme, RefusedWithOneLine) {
  const std::string m = shared_path("models/lmq-qwen2-21m");
  if (!std::filesystem::exists(m)) GTEST_SKIP() << "missing model";
  const std::string dir = temp_dir();
  const auto expect_error = [&](const std::string& scheme, const std::vector<std::string>& parts) {
    auto r = run_lmq({"quantize", m, "-o", dir + "/x.gguf", "--format", "gguf", "--scheme", scheme});
    EXPECT_EQ(r.exit_code, 1) << scheme;
    EXPECT_EQ(r.err.rfind("lmq: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    for (const auto& s : parts) EXPECT_NE(r.err.find(s), std::string::npos) << scheme << ": " << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
  };
  expect_error("q7_k", {"q7_k", "q4_k_m", "iq2_xs", "pure-"});
  expect_error("pure-q7_k", {"pure-q7_k"});
  expect_error("tq1_0", {"tq1_0", "ternary"});
}

// The pure spelling through the CLI: every 2-D weight in the one type (output included), and
// the file type of the name.
TEST(GgufRecipe, PureSchemeExport) {
  const std::string m = shared_path("models/lmq-qwen2-21m");
  if (!std::filesystem::exists(m)) GTEST_SKIP() << "missing model";
  const std::string out = temp_dir() + "/p.gguf";
  auto r = run_lmq({"quantize", m, "-o", out, "--format", "gguf", "--scheme", "pure-q4_k_m"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  GgufFile g(out);
  for (const Tensor& t : g.tensors()) EXPECT_EQ(t.format, t.shape.size() >= 2 ? Format::Q4_K : Format::F32) << t.name;
  EXPECT_EQ(g.get_u32("general.file_type"), 15u);
}

// --target-bpw's GGUF candidates: every quantized block type of the format table lmq writes
// with every method (a grid per sub-block, or a lattice i-quant that GPTQ writes through
// codecs/iquant_lattice.h), by the bits in the name (the order the allocation's ties and saved
// sensitivities rely on).
TEST(GgufRecipe, TargetBpwCandidatesFromFormatTable) {
  std::vector<std::string> labels;
  for (const auto& c : calib::gguf_mixed_candidates()) labels.push_back(c.label);
  size_t writable = 0;
  for (const FormatTraits& t : all_format_traits())
    writable += t.ggml && t.quantized && t.quantize_row && (t.set_codes || ggml::LatticeSuperBlock::supports(t.format));
  EXPECT_EQ(labels.size(), writable);
  const std::vector<std::string> expected = {"iq1_s", "iq1_m",   "q2_k",   "iq2_xxs", "iq2_xs", "iq2_s", "q3_k", "iq3_xxs",
                                             "iq3_s", "q4_0",    "q4_1",   "q4_k",  "iq4_nl", "iq4_xs",
                                             "q5_0",  "q5_1",    "q5_k",   "q6_k",  "q8_0"};
  EXPECT_EQ(labels, expected);
}

// The format table's llama_ftype column (a GGUF all of one type) agrees with the recipe's ftype
// table: that ftype starts every tensor from the format's own ggml type.
