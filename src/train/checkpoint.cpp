#include "train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "io/safetensors.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/log.h"

namespace lawcat::train {
namespace stdfs = std::filesystem;

std::string step_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

void save_checkpoint_dir(const stdfs::path& dir, const CheckpointFiles& files) {
  const stdfs::path parent = dir.parent_path();
  const stdfs::path tmp = parent / (".tmp-" + dir.filename().string() + "-" + std::to_string(::getpid()));
  std::error_code ec;
  try {
    stdfs::create_directories(parent);
    fs::remove_tree(tmp, ec);
    stdfs::create_directories(tmp);
    io::save_safetensors(tmp / "trainable.safetensors", files.trainable);
    io::save_safetensors(tmp / "optimizer.safetensors", files.optimizer);
    fs::atomic_write_text(tmp / "config.yaml", files.config_yaml);
    fs::atomic_write_text(tmp / "state.json", files.state.dump(2) + "\n");  // last: marks it complete
    fs::sync_dir(tmp);
  } catch (const std::exception& e) {
    fs::remove_tree(tmp, ec);
    throw CheckpointError("could not save checkpoint " + dir.string() + ": " + describe_exception(e) +
                          " (the previous checkpoints are intact)");
  }
  // Into place. Replacing an existing directory (best/): swap the two atomically
  // (renameat2 RENAME_EXCHANGE), else move the old one aside first.
  if (stdfs::exists(dir)) {
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
      fs::sync_dir(parent);
      fs::remove_tree(tmp, ec);  // now holds the old one
      return;
    }
    const stdfs::path old = parent / (".old-" + dir.filename().string() + "-" + std::to_string(::getpid()));
    fs::remove_tree(old, ec);
    stdfs::rename(dir, old);
    stdfs::rename(tmp, dir);
    fs::sync_dir(parent);
    fs::remove_tree(old, ec);
    return;
  }
  stdfs::rename(tmp, dir);
  fs::sync_dir(parent);
}

CheckpointFiles load_checkpoint_dir(const stdfs::path& dir) {
  CheckpointFiles f;
  for (const char* name : {"trainable.safetensors", "optimizer.safetensors", "state.json", "config.yaml"})
    LAWCAT_CHECK(stdfs::exists(dir / name), CheckpointError,
                 dir.string() << ": incomplete checkpoint (no " << name << ")");
  {
    io::SafetensorsFile t(dir / "trainable.safetensors");
    for (const auto& [name, info] : t.tensors()) f.trainable.emplace_back(name, t.load(name));
    io::SafetensorsFile o(dir / "optimizer.safetensors");
    for (const auto& [name, info] : o.tensors()) f.optimizer.emplace_back(name, o.load(name));
  }
  try {
    f.state = nlohmann::json::parse(fs::read_text(dir / "state.json"));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError((dir / "state.json").string() + ": not valid JSON: " + e.what());
  }
  f.config_yaml = fs::read_text(dir / "config.yaml");
  return f;
}

std::vector<stdfs::path> list_checkpoints(const stdfs::path& root) {
  std::vector<stdfs::path> out;
  std::error_code ec;
  if (!stdfs::is_directory(root, ec)) return out;
  for (const auto& e : stdfs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step-", 0) == 0 && stdfs::exists(e.path() / "state.json")) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());  // zero-padded: lexical = numeric
  return out;
}

void prune_checkpoints(const stdfs::path& root, int64_t keep) {
  auto all = list_checkpoints(root);
  std::error_code ec;
  for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(keep, 1)) < all.size(); ++i) fs::remove_tree(all[i], ec);
  for (const auto& e : stdfs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    const bool ours = n.find("-" + std::to_string(::getpid())) != std::string::npos;
    if ((n.rfind(".tmp-", 0) == 0 || n.rfind(".old-", 0) == 0) && !ours) fs::remove_tree(e.path(), ec);
  }
}

at::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const at::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

}  // namespace lawcat::train
