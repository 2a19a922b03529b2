// io/safetensors WeightSet: single file and sharded checkpoints (HF layout),
// lookups across shards, shape-checked loads, and the errors for broken dirs.
#include <nlohmann/json.hpp>

#include "io/io_helpers.h"
#include "io/safetensors.h"
#include "util/fs.h"

using namespace lawcat;
using namespace lawcat::io;
using lawcat::test::bit_equal;
namespace sfs = std::filesystem;

namespace {
void check_all(const WeightSet& ws, const test::NamedTensors& tensors) {
  REQUIRE(ws.names().size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    CAPTURE(name);
    REQUIRE(ws.contains(name));
    CHECK(ws.info(name).shape == t.sizes().vec());
    CHECK(bit_equal(ws.load(name), t));
    CHECK(bit_equal(ws.load_checked(name, t.sizes().vec()), t));
  }
}
int count_files(const sfs::path& dir) {
  int n = 0;
  for (auto& e : sfs::directory_iterator(dir)) (void)e, ++n;
  return n;
}
}  // namespace

TEST_CASE("WeightSet: single model.safetensors round trip", "[io]") {
  auto dir = test::scratch_dir("ws_single");
  auto tensors = test::tiny_llama(1);
  save_weight_set(dir, tensors);
  CHECK(sfs::exists(dir / "model.safetensors"));
  CHECK(count_files(dir) == 1);
  WeightSet ws(dir);
  CHECK(ws.dir() == dir);
  check_all(ws, tensors);
  CHECK(ws.file("model.norm.weight").metadata().at("format") == "pt");
  // A path to the .safetensors file itself works too.
  check_all(WeightSet(dir / "model.safetensors"), tensors);
}

TEST_CASE("WeightSet: 3 shards + index.json round trip", "[io]") {
  auto dir = test::scratch_dir("ws_sharded");
  auto tensors = test::tiny_llama(2);
  save_weight_set(dir, tensors, 3, {{"note", "lawcat test"}});
  const char* shards[] = {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                          "model-00003-of-00003.safetensors"};
  uint64_t total = 0;
  for (const auto& [name, t] : tensors) total += t.numel() * t.element_size();
  auto index = nlohmann::json::parse(fs::read_text(dir / "model.safetensors.index.json"));
  CHECK(index["metadata"]["total_size"].get<uint64_t>() == total);
  CHECK(index["weight_map"].size() == tensors.size());
  std::map<std::string, int> per_shard;
  for (auto& [name, file] : index["weight_map"].items()) per_shard[file.get<std::string>()]++;
  for (const char* s : shards) {
    CAPTURE(s);
    CHECK(sfs::exists(dir / s));
    CHECK(per_shard[s] > 0);
    SafetensorsFile f(dir / s);
    CHECK(f.metadata().at("note") == "lawcat test");
    CHECK(f.metadata().at("format") == "pt");
  }
  CHECK(count_files(dir) == 4);
  // Tensors keep their order: shard numbers never decrease along the input.
  std::string last;
  for (const auto& [name, t] : tensors) {
    std::string s = index["weight_map"][name].get<std::string>();
    CHECK(s >= last);
    last = s;
  }
  WeightSet ws(dir);
  check_all(ws, tensors);
  CHECK(ws.file("lm_head.weight").path().filename() == "model-00003-of-00003.safetensors");

  // Saving again with another layout leaves no stale files behind.
  save_weight_set(dir, tensors, 2);
  CHECK(count_files(dir) == 3);
  CHECK(!sfs::exists(dir / shards[2]));
  check_all(WeightSet(dir), tensors);
  save_weight_set(dir, tensors, 1);
  CHECK(count_files(dir) == 1);
  check_all(WeightSet(dir), tensors);
  save_weight_set(dir, tensors, static_cast<int>(tensors.size()));  // one tensor per shard
  check_all(WeightSet(dir), tensors);
  CHECK(!sfs::exists(dir / "model.safetensors"));
}

TEST_CASE("WeightSet: missing tensor, wrong shape, bad shard count", "[io]") {
  auto dir = test::scratch_dir("ws_errors");
  auto tensors = test::tiny_llama(3);
  save_weight_set(dir, tensors);
  WeightSet ws(dir);
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { ws.load("model.layers.9.mlp.up_proj.weight"); }),
                   "tensor 'model.layers.9.mlp.up_proj.weight' not found in " + dir.string() +
                       " (looked in model.safetensors)");
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { ws.info("nope"); }), "'nope' not found");
  LAWCAT_CHECK_MSG(
      test::checkpoint_error_of([&] { ws.load_checked("model.norm.weight", {32}); }),
      "model.safetensors", "tensor 'model.norm.weight'", "expected shape [32], got [16]");
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] {
                     ws.load_checked("model.layers.0.self_attn.k_proj.weight", {16, 16});
                   }),
                   "expected shape [16, 16], got [8, 16]");
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { save_weight_set(dir / "x", tensors, 0); }),
                   "shard count must be >= 1");
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] {
                     save_weight_set(dir / "x", {{"a", at::zeros({1})}, {"b", at::zeros({1})}}, 3);
                   }),
                   "cannot split 2 tensors into 3");
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] {
                     save_weight_set(dir / "y", {{"a", at::zeros({1})}, {"a", at::zeros({1})}}, 2);
                   }),
                   "'a' given twice");
}

TEST_CASE("WeightSet: broken sharded checkpoints name the index and the shard", "[io]") {
  auto tensors = test::tiny_llama(4);
  SECTION("missing shard file") {
    auto dir = test::scratch_dir("ws_missing_shard");
    save_weight_set(dir, tensors, 3);
    sfs::remove(dir / "model-00002-of-00003.safetensors");
    LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { WeightSet ws(dir); }),
                     "model.safetensors.index.json", "shard 'model-00002-of-00003.safetensors'",
                     "not found in " + dir.string());
  }
  SECTION("tensor missing from the shard the index names") {
    auto dir = test::scratch_dir("ws_wrong_shard");
    save_weight_set(dir, tensors, 3);
    auto index = nlohmann::json::parse(fs::read_text(dir / "model.safetensors.index.json"));
    index["weight_map"]["lm_head.weight"] = "model-00001-of-00003.safetensors";
    fs::atomic_write_text(dir / "model.safetensors.index.json", index.dump());
    LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { WeightSet ws(dir); }),
                     "model.safetensors.index.json", "tensor 'lm_head.weight'",
                     "model-00001-of-00003.safetensors", "has no such tensor");
  }
  SECTION("not found lists the index") {
    auto dir = test::scratch_dir("ws_sharded_missing");
    save_weight_set(dir, tensors, 3);
    WeightSet ws(dir);
    LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { ws.load("x"); }),
                     "tensor 'x' not found in " + dir.string(),
                     "looked in model.safetensors.index.json and its 3 shards");
  }
  SECTION("bad index JSON / shape / names") {
    auto dir = test::scratch_dir("ws_bad_index");
    fs::atomic_write_text(dir / "model.safetensors.index.json", "{\"weight_map\": ");
    LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { WeightSet ws(dir); }),
                     "model.safetensors.index.json", "invalid JSON");
    fs::atomic_write_text(dir / "model.safetensors.index.json", "{\"metadata\": {}}");
    LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { WeightSet ws(dir); }),
                     "model.safetensors.index.json", "weight_map");
    fs::atomic_write_text(dir / "model.safetensors.index.json",
                          R"({"weight_map": {"w": "../../etc/passwd"}})");
    LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { WeightSet ws(dir); }),
                     "weight_map['w']", "not a file name inside");
    fs::atomic_write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"w": 3}})");
    LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { WeightSet ws(dir); }),
                     "weight_map['w'] must be a file name");
  }
  SECTION("no weights at all") {
    auto dir = test::scratch_dir("ws_empty_dir");
    LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { WeightSet ws(dir); }), dir.string(),
                     "no model.safetensors or model.safetensors.index.json");
    LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { WeightSet ws(dir / "nope"); }),
                     "nope: no such checkpoint directory");
  }
  SECTION("a corrupt shard names the shard") {
    auto dir = test::scratch_dir("ws_corrupt_shard");
    save_weight_set(dir, tensors, 3);
    auto p = dir / "model-00003-of-00003.safetensors";
    auto bytes = test::read_bytes(p);
    test::write_bytes(p, bytes.substr(0, bytes.size() - 4));
    LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { WeightSet ws(dir); }),
                     "model-00003-of-00003.safetensors", "extend past the data buffer");
  }
}
