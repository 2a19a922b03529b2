// io/safetensors against the reference implementation (huggingface/safetensors in
// Python): their reader reads our files, their writer re-writes them byte for
// byte the same, and our reader reads files they wrote. Skips with a message when
// no Python with torch + safetensors is found ($LAWCAT_PYTHON, the build's
// Python, ~/.cache/lawcat/venv/bin/python, python3).
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "io/io_helpers.h"
#include "io/safetensors.h"
#include "util/fs.h"

using namespace lawcat;
using namespace lawcat::io;
using lawcat::test::bit_equal;
using lawcat::test::find_python;
using lawcat::test::shell_quote;
namespace sfs = std::filesystem;

namespace {

const char* kScript = R"PY(
import json, os, sys, torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

ours, hf_copy, sharded_dir, merged, py_file, py_dir, meta_file = sys.argv[1:8]

# 0. Metadata written by us reads back through the reference reader.
with safe_open(meta_file, "pt") as f:
    assert f.metadata() == {"format": "pt", "source": "lawcat", "step": "7"}, f.metadata()

# 1. The reference reader reads our file; the reference writer re-writes it.
with safe_open(ours, "pt") as f:
    meta = f.metadata()
d = load_file(ours)
save_file(d, hf_copy, metadata=meta)

# 2. Our sharded checkpoint, read through its index, merged into one reference file.
index = json.load(open(os.path.join(sharded_dir, "model.safetensors.index.json")))
merged_d = {}
total = 0
for name, shard in index["weight_map"].items():
    with safe_open(os.path.join(sharded_dir, shard), "pt") as f:
        t = f.get_tensor(name)
    merged_d[name] = t
    total += t.numel() * t.element_size()
assert total == index["metadata"]["total_size"], (total, index["metadata"])
save_file(merged_d, merged, metadata=meta)

# 3. A file written by the reference writer, with each tensor's raw bytes beside it.
g = torch.Generator().manual_seed(1234)
t = {
    "model.embed_tokens.weight": torch.randn(64, 16, generator=g),
    "model.layers.0.self_attn.q_proj.weight": torch.randn(16, 16, generator=g).to(torch.bfloat16),
    "model.layers.0.mlp.up_proj.weight": torch.randn(24, 16, generator=g).to(torch.float16),
    "model.norm.weight": torch.randn(16, generator=g, dtype=torch.float64),
    "ids": torch.randint(-2**40, 2**40, (3, 5), generator=g, dtype=torch.int64),
    "i32": torch.randint(-2**30, 2**30, (4,), generator=g, dtype=torch.int32),
    "i16": torch.randint(-2**15, 2**15, (4,), generator=g, dtype=torch.int16),
    "i8": torch.randint(-128, 128, (5,), generator=g, dtype=torch.int8),
    "u8": torch.randint(0, 256, (6,), generator=g, dtype=torch.uint8),
    "mask": torch.randint(0, 2, (2, 3), generator=g).bool(),
    "scalar": torch.tensor(3.5),
    "empty": torch.zeros(0, 4),
    "nan": torch.tensor([float("nan"), -0.0, float("inf")]),
}
save_file(t, py_file, metadata={"format": "pt", "source": "python"})
names = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
         torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
         torch.uint8: "U8", torch.bool: "BOOL"}
manifest = {}
for i, (k, v) in enumerate(t.items()):
    raw = v.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    open(os.path.join(py_dir, f"{i}.bin"), "wb").write(raw)
    manifest[k] = {"dtype": names[v.dtype], "shape": list(v.shape), "file": f"{i}.bin"}
json.dump(manifest, open(os.path.join(py_dir, "manifest.json"), "w"))
print("python side ok")
)PY";

}  // namespace

TEST_CASE("interop with the reference safetensors implementation (Python)", "[io][python]") {
  std::string tried;
  const std::string py = find_python(tried);
  if (py.empty())
    LAWCAT_SKIP("no Python with torch + safetensors (tried " << tried
                << "); pip install safetensors to run this test");

  auto dir = test::scratch_dir("st_python");
  auto tensors = test::tiny_llama(11);
  // Default metadata ({"format": "pt"} alone): the reference writer keeps metadata
  // in a hash map, so with several keys its header's key order is not fixed.
  save_safetensors(dir / "ours.safetensors", tensors);
  save_weight_set(dir / "sharded", tensors, 3);
  save_safetensors(dir / "meta.safetensors", tensors, {{"source", "lawcat"}, {"step", "7"}});
  sfs::create_directories(dir / "py");
  fs::atomic_write_text(dir / "check.py", kScript);
  std::string cmd = shell_quote(py) + " " + shell_quote((dir / "check.py").string());
  for (const char* a : {"ours.safetensors", "hf_copy.safetensors", "sharded", "merged.safetensors",
                        "py.safetensors", "py", "meta.safetensors"})
    cmd += " " + shell_quote((dir / a).string());
  const int rc = lawcat::test::run_logged(cmd, (dir / "log.txt").string());
  INFO("python (" << py << ") output:\n" << fs::read_text(dir / "log.txt"));
  REQUIRE(rc == 0);

  {  // the reference writer produces our bytes exactly
    CHECK(test::read_bytes(dir / "hf_copy.safetensors") == test::read_bytes(dir / "ours.safetensors"));
    // Our sharded save, merged by the reference, equals our single-file save.
    CHECK(test::read_bytes(dir / "merged.safetensors") == test::read_bytes(dir / "ours.safetensors"));
    SafetensorsFile f(dir / "hf_copy.safetensors");
    CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}});
    for (const auto& [name, t] : tensors) {
      CAPTURE(name);
      CHECK(bit_equal(f.load(name), t));
    }
  }
  {  // our reader reads the reference writer's file
    SafetensorsFile f(dir / "py.safetensors");
    CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"source", "python"}});
    auto manifest = nlohmann::json::parse(fs::read_text(dir / "py" / "manifest.json"));
    REQUIRE(f.tensors().size() == manifest.size());
    for (auto& [name, m] : manifest.items()) {
      CAPTURE(name);
      REQUIRE(f.contains(name));
      const auto& ti = f.info(name);
      CHECK(ti.dtype == to_scalar_type(*parse_safetensors_dtype(m["dtype"].get<std::string>())));
      CHECK(ti.shape == m["shape"].get<std::vector<int64_t>>());
      auto raw = test::read_bytes(dir / "py" / m["file"].get<std::string>());
      auto t = f.load(name).contiguous();
      REQUIRE(static_cast<size_t>(t.nbytes()) == raw.size());
      CHECK((raw.empty() || std::memcmp(t.data_ptr(), raw.data(), raw.size()) == 0));
    }
  }
}
