// Logits of our loader + model against Hugging Face transformers on the same
// checkpoint directories (tests/reference/hf_logits.py). Skips with a message
// when no Python with torch, safetensors and transformers is found.
#include <cstdlib>
#include <fstream>

#include "model/model_helpers.h"

using namespace lawcat;
using namespace lawcat::test;

TEST_CASE("llama: logits match Hugging Face transformers", "[model][python]") {
  std::string tried;
  const std::string py = find_transformers_python(tried);
  if (py.empty()) LAWCAT_SKIP("no Python with torch + safetensors + transformers (tried " << tried << ")");

  struct Case {
    bool tied;
    int shards;
    std::string rope;
  };
  const std::vector<Case> cases = {{false, 1, "llama3"}, {true, 2, "llama3"}, {false, 1, "linear"}, {true, 1, "none"}};
  auto root = scratch_dir("hf_reference");
  std::vector<std::filesystem::path> dirs;
  std::vector<std::vector<std::vector<int64_t>>> all_ids;
  std::string cmd = shell_quote(py) + " " + shell_quote(std::string(LAWCAT_SOURCE_DIR) + "/tests/reference/hf_logits.py") +
                    " " + shell_quote((root / "hf.safetensors").string());
  for (size_t i = 0; i < cases.size(); ++i) {
    auto cfg = tiny_config(cases[i].tied);
    cfg.rope_scaling.type = cases[i].rope;
    if (cases[i].rope == "linear") cfg.rope_scaling.factor = 2.0;
    if (cases[i].rope == "none") cfg.rope_scaling = io::RopeScaling{};
    auto dir = root / ("m" + std::to_string(i));
    write_tiny_model(dir, cfg, cases[i].shards, 100 + i);
    std::vector<std::vector<int64_t>> ids = {random_ids(50, 97, 10 + i), random_ids(50, 97, 20 + i)};
    std::ofstream(dir / "ids.json") << nlohmann::json(ids).dump();
    dirs.push_back(dir);
    all_ids.push_back(ids);
    cmd += " " + shell_quote(dir.string());
  }
  const int rc = lawcat::test::run_logged(cmd, (root / "log.txt").string());
  if (rc != 0) {
    std::string log;
    std::ifstream in(root / "log.txt");
    log.assign(std::istreambuf_iterator<char>(in), {});
    FAIL("hf_logits.py failed (rc " << rc << "):\n" << log);
  }
  io::SafetensorsFile hf(root / "hf.safetensors");
  for (size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i, cases[i].tied, cases[i].shards, cases[i].rope);
    auto m = model::load_llama(dirs[i], at::kCPU, at::kFloat);
    at::NoGradGuard g;
    std::vector<at::Tensor> rows;
    for (auto& r : all_ids[i]) rows.push_back(at::tensor(r, at::kLong));
    at::Tensor ours = m->forward(at::stack(rows));
    at::Tensor ref = hf.load("logits." + std::to_string(i));
    REQUIRE(ours.sizes() == ref.sizes());
    CAPTURE(rel_rms(ours, ref), max_abs(ours, ref));
    CHECK(rel_rms(ours, ref) < 1e-5);
    CHECK(max_abs(ours, ref) < 1e-4);
  }
}
