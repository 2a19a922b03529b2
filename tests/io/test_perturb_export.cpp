// scripts/perturb_export.py (docs/results/NOTES.md's gate-shift and feature-sharpening
// diagnostics): the Python edit read back by our own safetensors reader. Only the chosen
// layers' and heads' tensors change, by exactly the asked amount; everything else stays
// bit-equal; bad requests fail naming the problem. Skips without a Python with torch +
// safetensors.
#include <cstdlib>

#include "io/io_helpers.h"
#include "io/safetensors.h"

using namespace lawcat;
using namespace lawcat::io;
using lawcat::test::bit_equal;
using lawcat::test::shell_quote;
namespace sfs = std::filesystem;

namespace {

// A 2-layer LAWCAT export's attention tensors (feature maps [heads, head_dim, f], gate biases)
// beside an ordinary weight.
test::NamedTensors tiny_lawcat_export() {
  test::NamedTensors t;
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
    // exports keep the LAWCAT tensors in fp32 or in the export dtype (bf16): both kept as they are
    t.emplace_back(p + "feature_map", at::randn({3, 4, 2}, l == 0 ? at::kFloat : at::kBFloat16));
    t.emplace_back(p + "gate_up.bias", at::randn({6}, at::kFloat));
    t.emplace_back(p + "q_proj.weight", at::randn({12, 12}).to(at::kBFloat16));
  }
  return t;
}

int run(const std::string& py, const std::string& args, const sfs::path& log) {
  return lawcat::test::run_logged(
      shell_quote(py) + " " + shell_quote(std::string(LAWCAT_SOURCE_DIR) + "/scripts/perturb_export.py") + " " + args,
      log.string());
}

}  // namespace

TEST_CASE("perturb_export.py: scales one head's feature map and shifts gate biases, nothing else", "[io][python]") {
  std::string tried;
  const std::string py = test::find_python(tried);
  if (py.empty()) LAWCAT_SKIP("no Python with torch + safetensors (tried " << tried << ")");
  const sfs::path dir = test::scratch_dir("perturb_export");
  const test::NamedTensors before = tiny_lawcat_export();
  sfs::create_directories(dir / "src");
  save_safetensors(dir / "src/model.safetensors", before);
  test::write_bytes(dir / "src/config.json", "{\"model_type\": \"llama\"}");

  const std::string args = shell_quote((dir / "src").string()) + " " + shell_quote((dir / "dst").string()) +
                           " --feature-scale 6 --layers 1 --heads 0,2 --gate-shift 0.5";
  REQUIRE(run(py, args, dir / "log.txt") == 0);
  CHECK(sfs::exists(dir / "dst/config.json"));  // the rest of the export is copied
  SafetensorsFile after(dir / "dst/model.safetensors");
  for (const auto& [name, t] : before) {
    CAPTURE(name);
    const at::Tensor a = after.load(name);
    CHECK(a.scalar_type() == t.scalar_type());
    if (name == "model.layers.1.self_attn.feature_map") {  // bf16: x6 is exact only up to rounding
      for (int h = 0; h < 3; ++h) {
        const double s = (h == 1) ? 1.0 : 6.0;  // heads 0 and 2 only
        CHECK(at::allclose(a[h].to(at::kFloat), (t[h] * s).to(at::kFloat), 1e-2, 0));
      }
      CHECK(bit_equal(a[1], t[1]));
    } else if (name.find("gate_up.bias") != std::string::npos && name.find("layers.1.") != std::string::npos) {
      CHECK(at::allclose(a, t + 0.5, 1e-6, 1e-6));  // --layers applies to the gate shift too
    } else {
      CHECK(bit_equal(a, t));  // layer 0, the projection, untouched
    }
  }

  // A head the feature map does not have, and an export without LAWCAT tensors, name the problem.
  CHECK(run(py, shell_quote((dir / "src").string()) + " " + shell_quote((dir / "bad").string()) +
                    " --feature-scale 2 --heads 5", dir / "bad.txt") != 0);
  CHECK(test::has(test::read_bytes(dir / "bad.txt"), "the feature map has 3 heads"));
  CHECK_FALSE(sfs::exists(dir / "bad/model.safetensors"));
  CHECK(run(py, shell_quote((dir / "src").string()) + " " + shell_quote((dir / "none").string()), dir / "none.txt") != 0);
  CHECK(test::has(test::read_bytes(dir / "none.txt"), "nothing to do"));
}

TEST_CASE("perturb_export.py: edits a training checkpoint (trainable.safetensors) the same way", "[io][python]") {
  std::string tried;
  const std::string py = test::find_python(tried);
  if (py.empty()) LAWCAT_SKIP("no Python with torch + safetensors (tried " << tried << ")");
  const sfs::path dir = test::scratch_dir("perturb_checkpoint");
  // A distill checkpoint holds only the LAWCAT tensors, in fp32 (what `--stage lora` loads).
  test::NamedTensors before;
  for (const auto& [name, t] : tiny_lawcat_export())
    if (name.find("q_proj") == std::string::npos) before.emplace_back(name, t.to(at::kFloat));
  sfs::create_directories(dir / "best");
  save_safetensors(dir / "best/trainable.safetensors", before);
  test::write_bytes(dir / "best/state.json", "{\"best_val\": 1.0}");   // belong to the unedited weights
  test::write_bytes(dir / "best/optimizer.safetensors", "not read");

  REQUIRE(run(py, shell_quote((dir / "best").string()) + " " + shell_quote((dir / "edited").string()) +
                      " --feature-scale 3 --layers 0 --heads 1", dir / "log.txt") == 0);
  CHECK_FALSE(sfs::exists(dir / "edited/model.safetensors"));  // same file name as the source
  CHECK_FALSE(sfs::exists(dir / "edited/state.json"));         // the optimizer state and best loss are not copied
  CHECK_FALSE(sfs::exists(dir / "edited/optimizer.safetensors"));
  SafetensorsFile after(dir / "edited/trainable.safetensors");
  for (const auto& [name, t] : before) {
    CAPTURE(name);
    const at::Tensor a = after.load(name);
    if (name == "model.layers.0.self_attn.feature_map") {
      CHECK(bit_equal(a[1], t[1] * 3));
      CHECK(bit_equal(a[0], t[0]));
      CHECK(bit_equal(a[2], t[2]));
    } else {
      CHECK(bit_equal(a, t));
    }
  }
  // A directory with neither file names both.
  sfs::create_directories(dir / "empty");
  CHECK(run(py, shell_quote((dir / "empty").string()) + " " + shell_quote((dir / "out").string()) + " --feature-scale 2",
            dir / "empty.txt") != 0);
  CHECK(test::has(test::read_bytes(dir / "empty.txt"), "neither model.safetensors"));
  // Both files: refused rather than editing one of them silently.
  save_safetensors(dir / "best/model.safetensors", before);
  CHECK(run(py, shell_quote((dir / "best").string()) + " " + shell_quote((dir / "both").string()) + " --feature-scale 2",
            dir / "both.txt") != 0);
  CHECK(test::has(test::read_bytes(dir / "both.txt"), "has both"));
}
