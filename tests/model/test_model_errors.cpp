// Bad checkpoints give errors that name the file / tensor / key and say
// expected vs got.
#include <fstream>

#include "io/llama2c_checkpoint.h"
#include "model/device.h"
#include "model/model_helpers.h"
#include "util/fs.h"

using namespace lawcat;
using namespace lawcat::test;
namespace sfs = std::filesystem;

namespace {
std::vector<std::pair<std::string, at::Tensor>> read_all(const sfs::path& dir) {
  io::WeightSet ws(dir);
  std::vector<std::pair<std::string, at::Tensor>> t;
  for (const auto& n : ws.names()) t.emplace_back(n, ws.load(n));
  return t;
}
}  // namespace

TEST_CASE("llama errors: missing tensors are all listed", "[model][errors]") {
  auto dir = scratch_dir("err_missing");
  write_tiny_model(dir, tiny_config(false), 1, 1);
  auto t = read_all(dir);
  std::vector<std::pair<std::string, at::Tensor>> kept;
  for (auto& [n, x] : t)
    if (n != "model.layers.1.mlp.up_proj.weight" && n != "lm_head.weight") kept.emplace_back(n, x);
  io::save_weight_set(dir, kept);
  require_error<CheckpointError>([&] { model::load_llama(dir); },
                                 {dir.string(), "2 problems", "missing tensor model.layers.1.mlp.up_proj.weight",
                                  "expected shape [112, 64]", "missing tensor lm_head.weight"});
}

TEST_CASE("llama errors: wrong shape names tensor, file, expected and got", "[model][errors]") {
  auto dir = scratch_dir("err_shape");
  write_tiny_model(dir, tiny_config(true), 2, 2);
  auto t = read_all(dir);
  for (auto& [n, x] : t)
    if (n == "model.layers.0.self_attn.k_proj.weight") x = at::zeros({64, 64});
  io::save_weight_set(dir, t, 2);
  require_error<CheckpointError>([&] { model::load_llama(dir); },
                                 {"tensor model.layers.0.self_attn.k_proj.weight in " + (dir / "model-0000").string(),
                                  "expected shape [32, 64], got [64, 64]"});
}

TEST_CASE("llama errors: extra tensors are only a warning", "[model][errors]") {
  auto dir = scratch_dir("err_extra");
  write_tiny_model(dir, tiny_config(true), 1, 3);
  auto t = read_all(dir);
  t.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", at::ones({8}));
  io::save_weight_set(dir, t);
  auto m = model::load_llama(dir);
  CHECK(m->num_layers() == 2);
}

TEST_CASE("llama errors: config problems name the file and key", "[model][errors]") {
  auto dir = scratch_dir("err_config");
  write_tiny_model(dir, tiny_config(false), 1, 4);
  auto j = nlohmann::json::parse(fs::read_text(dir / "config.json"));
  j.erase("hidden_size");
  fs::atomic_write_text(dir / "config.json", j.dump());
  require_error<CheckpointError>([&] { model::load_llama(dir); }, {"config.json", "hidden_size"});

  sfs::remove(dir / "config.json");
  require_error<CheckpointError>([&] { model::load_llama(dir); }, {"missing", "config.json"});
  require_error<CheckpointError>([&] { model::load_llama(dir / "nope"); }, {"nope", "does not exist"});
  // Weights absent altogether.
  auto dir2 = scratch_dir("err_noweights");
  io::save_llama_config(dir2 / "config.json", tiny_config(false));
  require_error<CheckpointError>([&] { model::load_llama(dir2); }, {dir2.string()});
}

TEST_CASE("llama errors: bad dtype and device strings", "[model][errors]") {
  require_error<ConfigError>([] { model::parse_dtype("float8"); }, {"float8"});
  require_error<ConfigError>([] { model::parse_device("tpu"); }, {"tpu"});
}
