// safetensors files over mmap, the atomic writer, and sharded weight sets.
// Header validation lives in safetensors_header.cpp (torch-free, fuzzed).
#include "io/safetensors.h"

#include <cstring>
#include <regex>
#include <set>
#include <sstream>

#include "util/error.h"
#include "util/format.h"
#include "util/fs.h"
#include "util/log.h"

namespace lawcat::io {
namespace sfs = std::filesystem;

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// A CPU tensor over the mapped bytes of `ti`, or an aligned copy (copied = true)
// when the bytes are not aligned to the element size.
at::Tensor map_tensor(const std::shared_ptr<fs::MappedFile>& map, const uint8_t* data,
                      const TensorInfo& ti, bool& copied) {
  const uint8_t* ptr = data + ti.begin;
  const auto opts = at::TensorOptions().dtype(ti.dtype).device(at::kCPU);
  const size_t nbytes = ti.end - ti.begin;
  const size_t esize = at::elementSize(ti.dtype);
  if (reinterpret_cast<uintptr_t>(ptr) % esize != 0) {
    auto t = at::empty(ti.shape, opts);
    if (nbytes) std::memcpy(t.data_ptr(), ptr, nbytes);
    copied = true;
    return t;
  }
  copied = false;
  auto keep = map;  // the tensor's deleter owns a reference to the mapping
  return at::from_blob(const_cast<uint8_t*>(ptr), ti.shape, [keep](void*) {}, opts);
}

bool is_shard_name(const std::string& filename) {
  static const std::regex re(R"(model-\d{5}-of-\d{5}\.safetensors)");
  return std::regex_match(filename, re);
}

std::string shard_name(int i, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", i + 1, n);
  return buf;
}

void remove_quietly(const sfs::path& p) {
  std::error_code ec;
  sfs::remove(p, ec);
  if (ec) log::warn("could not remove stale ", p.string(), ": ", ec.message());
}

}  // namespace

at::ScalarType to_scalar_type(SafetensorsDtype d) {
  switch (d) {
    case SafetensorsDtype::F64: return at::kDouble;
    case SafetensorsDtype::F32: return at::kFloat;
    case SafetensorsDtype::F16: return at::kHalf;
    case SafetensorsDtype::BF16: return at::kBFloat16;
    case SafetensorsDtype::I64: return at::kLong;
    case SafetensorsDtype::I32: return at::kInt;
    case SafetensorsDtype::I16: return at::kShort;
    case SafetensorsDtype::I8: return at::kChar;
    case SafetensorsDtype::U8: return at::kByte;
    case SafetensorsDtype::BOOL: return at::kBool;
  }
  return at::ScalarType::Undefined;
}

std::optional<SafetensorsDtype> to_safetensors_dtype(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return SafetensorsDtype::F64;
    case at::kFloat: return SafetensorsDtype::F32;
    case at::kHalf: return SafetensorsDtype::F16;
    case at::kBFloat16: return SafetensorsDtype::BF16;
    case at::kLong: return SafetensorsDtype::I64;
    case at::kInt: return SafetensorsDtype::I32;
    case at::kShort: return SafetensorsDtype::I16;
    case at::kChar: return SafetensorsDtype::I8;
    case at::kByte: return SafetensorsDtype::U8;
    case at::kBool: return SafetensorsDtype::BOOL;
    default: return std::nullopt;
  }
}

void parse_safetensors_header(const std::string& where, const char* json, size_t json_size,
                              uint64_t data_size, std::map<std::string, TensorInfo>& tensors,
                              std::map<std::string, std::string>& metadata) {
  auto h = parse_safetensors_header_json(where, json, json_size, data_size);
  tensors.clear();
  for (auto& [name, raw] : h.tensors)
    tensors.emplace(name, TensorInfo{name, to_scalar_type(raw.dtype), std::move(raw.shape),
                                     raw.begin, raw.end});
  metadata = std::move(h.metadata);
}

// ---- SafetensorsFile --------------------------------------------------------

SafetensorsFile::SafetensorsFile(const sfs::path& path)
    : map_(std::make_shared<fs::MappedFile>(path)) {
  auto h = parse_safetensors_file_bytes(path.string(), map_->data(), map_->size());
  data_ = map_->data() + h.data_start;
  for (auto& [name, raw] : h.tensors)
    tensors_.emplace(name, TensorInfo{name, to_scalar_type(raw.dtype), std::move(raw.shape),
                                      raw.begin, raw.end});
  metadata_ = std::move(h.metadata);
}

SafetensorsFile::~SafetensorsFile() = default;

const sfs::path& SafetensorsFile::path() const { return map_->path(); }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  LAWCAT_CHECK(it != tensors_.end(), CheckpointError,
               path().string() << ": tensor '" << name << "' not found (file has "
                               << tensors_.size() << " tensors)");
  return it->second;
}

at::Tensor SafetensorsFile::view(const std::string& name) const {
  bool copied = false;
  return map_tensor(map_, data_, info(name), copied);
}

at::Tensor SafetensorsFile::load(const std::string& name, at::Device device,
                                 at::ScalarType dtype) const {
  bool copied = false;
  at::Tensor v = map_tensor(map_, data_, info(name), copied);
  const at::ScalarType target = dtype == at::ScalarType::Undefined ? v.scalar_type() : dtype;
  if (device.is_cpu()) {
    // Converting copy straight out of the mapping (or the aligned copy, reused as is).
    return v.to(target, /*non_blocking=*/false, /*copy=*/!copied);
  }
  // Ship the file's bytes (usually the narrower type) and convert on the device.
  at::Tensor d = v.to(device, v.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
  return d.to(target);
}

// ---- writer -------------------------------------------------------------------

void save_safetensors(const sfs::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string where = path.string();
  std::vector<RawTensorToWrite> raw;
  raw.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    LAWCAT_CHECK(t.defined(), CheckpointError,
                 where << ": tensor '" << name << "' is undefined (nothing to write)");
    LAWCAT_CHECK(t.layout() == at::kStrided, CheckpointError,
                 where << ": tensor '" << name << "' has layout " << t.layout()
                       << "; only dense tensors can be written");
    auto dt = to_safetensors_dtype(t.scalar_type());
    LAWCAT_CHECK(dt.has_value(), CheckpointError,
                 where << ": tensor '" << name << "' has dtype " << t.scalar_type()
                       << ", which safetensors (as supported here: " << safetensors_dtype_list()
                       << ") cannot store");
    raw.push_back({name, *dt, t.sizes().vec()});
  }
  auto meta = metadata;
  meta.emplace("format", "pt");  // keeps a caller's own "format"
  std::vector<size_t> order;
  std::vector<uint64_t> offsets;
  const std::string header = build_safetensors_header(where, raw, meta, order, offsets);

  fs::atomic_write(path, [&](std::FILE* f) {
    if (std::fwrite(header.data(), 1, header.size(), f) != header.size())
      throw Error("short write of the header");
    for (size_t i : order) {
      const auto& [name, t] = tensors[i];
      // Contiguous CPU bytes in the tensor's own dtype (one tensor at a time, so a
      // CUDA state dict never needs a full host copy).
      // (to(..., MemoryFormat::Contiguous) would alias a transposed 2-D tensor.)
      at::Tensor c = t.resolve_conj().resolve_neg().contiguous().to(at::kCPU);
      const size_t n = c.nbytes();
      if (n && std::fwrite(c.data_ptr(), 1, n, f) != n)
        throw Error("short write of tensor '" + name + "'");
    }
  });
}

// ---- WeightSet ------------------------------------------------------------------

WeightSet::WeightSet(const sfs::path& dir) : dir_(dir) {
  std::error_code ec;
  auto add_file = [&](const sfs::path& p) {
    files_.push_back(std::make_unique<SafetensorsFile>(p));
    return files_.size() - 1;
  };
  if (sfs::is_regular_file(dir, ec)) {
    size_t k = add_file(dir);
    for (const auto& [name, ti] : files_[k]->tensors()) where_.emplace(name, k);
    looked_in_ = dir.filename().string();
    return;
  }
  LAWCAT_CHECK(sfs::is_directory(dir, ec), CheckpointError,
               dir.string() << ": no such checkpoint directory or .safetensors file");
  const sfs::path index = dir / kIndexFile;
  if (sfs::exists(index, ec)) {
    std::string text;
    try {
      text = fs::read_text(index);
    } catch (const Error& e) {
      throw CheckpointError(e.what());
    }
    std::map<std::string, size_t> shard_index;
    for (const auto& [name, file] : parse_safetensors_index(text, index.string(), dir.string())) {
      const sfs::path rel(file);
      auto it = shard_index.find(file);
      if (it == shard_index.end()) {
        LAWCAT_CHECK(sfs::is_regular_file(dir / rel, ec), CheckpointError,
                     index.string() << ": shard '" << file << "' (holding tensor '" << name
                                    << "') not found in " << dir.string());
        it = shard_index.emplace(file, add_file(dir / rel)).first;
      }
      LAWCAT_CHECK(files_[it->second]->contains(name), CheckpointError,
                   index.string() << ": weight_map puts tensor '" << name << "' in '" << file
                                  << "', but " << (dir / rel).string() << " has no such tensor");
      where_.emplace(name, it->second);
    }
    looked_in_ = std::string(kIndexFile) + " and its " + std::to_string(files_.size()) +
                 " shard" + (files_.size() == 1 ? "" : "s");
    return;
  }
  const sfs::path single = dir / kSingleFile;
  LAWCAT_CHECK(sfs::exists(single, ec), CheckpointError,
               dir.string() << ": no " << kSingleFile << " or " << kIndexFile
                            << " (not a Hugging Face safetensors checkpoint?)");
  size_t k = add_file(single);
  for (const auto& [name, ti] : files_[k]->tensors()) where_.emplace(name, k);
  looked_in_ = kSingleFile;
}

void WeightSet::throw_missing(const std::string& name) const {
  throw CheckpointError("tensor '" + name + "' not found in " + dir_.string() + " (looked in " +
                        looked_in_ + ")");
}

std::vector<std::string> WeightSet::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

bool WeightSet::contains(const std::string& name) const { return where_.count(name) != 0; }

const SafetensorsFile& WeightSet::file(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw_missing(name);
  return *files_[it->second];
}

const TensorInfo& WeightSet::info(const std::string& name) const { return file(name).info(name); }

at::Tensor WeightSet::load(const std::string& name, at::Device device, at::ScalarType dtype) const {
  return file(name).load(name, device, dtype);
}

at::Tensor WeightSet::load_checked(const std::string& name, const std::vector<int64_t>& shape,
                                   at::Device device, at::ScalarType dtype) const {
  const auto& f = file(name);
  const auto& ti = f.info(name);
  LAWCAT_CHECK(ti.shape == shape, CheckpointError,
               f.path().string() << ": tensor '" << name << "': expected shape "
                                 << format::shape(shape) << ", got " << format::shape(ti.shape));
  return f.load(name, device, dtype);
}

void save_weight_set(const sfs::path& dir,
                     const std::vector<std::pair<std::string, at::Tensor>>& tensors, int shards,
                     const std::map<std::string, std::string>& metadata) {
  LAWCAT_CHECK(shards >= 1, CheckpointError,
               dir.string() << ": shard count must be >= 1, got " << shards);
  LAWCAT_CHECK(shards == 1 || static_cast<size_t>(shards) <= tensors.size(), CheckpointError,
               dir.string() << ": cannot split " << tensors.size() << " tensors into " << shards
                            << " non-empty shards");
  sfs::create_directories(dir);
  std::error_code ec;
  std::set<std::string> keep;

  if (shards == 1) {
    save_safetensors(dir / kSingleFile, tensors, metadata);
    keep.insert(kSingleFile);
  } else {
    // Split in the given order, balanced by bytes, each shard non-empty: tensor i
    // starting at byte s goes to shard s * n / total, clamped so shards advance by
    // at most one per tensor and enough tensors remain for the shards left.
    const size_t n = tensors.size();
    std::vector<uint64_t> nbytes(n);
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
      const auto& t = tensors[i].second;
      nbytes[i] = t.defined() ? static_cast<uint64_t>(t.numel()) * t.element_size() : 0;
      total += nbytes[i];
    }
    std::vector<std::vector<std::pair<std::string, at::Tensor>>> parts(shards);
    nlohmann::json weight_map = nlohmann::json::object();
    uint64_t start = 0;
    size_t cur = 0;
    for (size_t i = 0; i < n; ++i) {
      size_t want = total ? static_cast<size_t>(static_cast<long double>(start) * shards / total) : 0;
      size_t lo = std::max(cur, static_cast<size_t>(shards) > n - i ? shards - (n - i) : size_t{0});
      size_t hi = std::min(i == 0 ? size_t{0} : cur + 1, static_cast<size_t>(shards) - 1);
      cur = std::min(std::max(want, lo), hi);
      parts[cur].push_back(tensors[i]);
      LAWCAT_CHECK(!weight_map.contains(tensors[i].first), CheckpointError,
                   dir.string() << ": tensor '" << tensors[i].first << "' given twice");
      weight_map[tensors[i].first] = shard_name(static_cast<int>(cur), shards);
      start += nbytes[i];
    }
    for (int s = 0; s < shards; ++s) {
      save_safetensors(dir / shard_name(s, shards), parts[s], metadata);
      keep.insert(shard_name(s, shards));
    }
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    fs::atomic_write_text(dir / kIndexFile, index.dump(2) + "\n");
    keep.insert(kIndexFile);
  }

  // Drop the other layout of an earlier save (an index would shadow model.safetensors).
  if (!keep.count(kIndexFile)) remove_quietly(dir / kIndexFile);
  if (!keep.count(kSingleFile) && sfs::exists(dir / kSingleFile, ec)) remove_quietly(dir / kSingleFile);
  for (const auto& e : sfs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (is_shard_name(name) && !keep.count(name)) remove_quietly(e.path());
  }
}

}  // namespace lawcat::io
