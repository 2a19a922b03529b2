// safetensors reader and writer (https://github.com/huggingface/safetensors format:
// u64 little-endian header length N, N bytes of JSON header, then the data buffer).
// Hand-written because no C++ implementation is packaged; the format is small.
// The header is validated strictly: every offset in range, no overlaps or gaps,
// sizes consistent with dtype x shape, known dtypes only (see safetensors_header.h,
// the torch-free part that the fuzzer also builds).
#pragma once
#include <ATen/ATen.h>

#include "io/safetensors_header.h"

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lawcat::fs { class MappedFile; }

namespace lawcat::io {

// F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL <-> the matching ATen types.
at::ScalarType to_scalar_type(SafetensorsDtype d);
std::optional<SafetensorsDtype> to_safetensors_dtype(at::ScalarType t);  // nullopt: not storable

struct TensorInfo {
  std::string name;
  at::ScalarType dtype;          // on disk
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;   // byte offsets into the data buffer
};

// One .safetensors file, memory-mapped (read-only, MAP_PRIVATE). The whole header
// is validated on open.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);  // throws CheckpointError
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  const std::filesystem::path& path() const;
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws naming the tensor and file
  // Zero-copy CPU tensor over the mmap. It holds a reference to the mapping, so it
  // stays valid after this object is gone. READ-ONLY: the pages are mapped
  // PROT_READ and writing through the tensor faults; use load() for a tensor you
  // may modify. When the data is not aligned to the element size (a file not
  // written by us or the reference writer), this returns an aligned copy instead.
  at::Tensor view(const std::string& name) const;
  // An owned copy on `device` in `dtype` (Undefined = the file's dtype). One copy
  // from the mapping: a CPU load converts while copying; a CUDA load copies the
  // file's bytes to the device and converts there.
  at::Tensor load(const std::string& name, at::Device device = at::kCPU,
                  at::ScalarType dtype = at::ScalarType::Undefined) const;

 private:
  std::shared_ptr<fs::MappedFile> map_;
  const uint8_t* data_ = nullptr;  // start of the data buffer
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Parses and validates a header (the N bytes of JSON) against a data buffer of
// `data_size` bytes. Exposed for tests and the fuzzer. Throws CheckpointError
// prefixed with `where`.
void parse_safetensors_header(const std::string& where, const char* json, size_t json_size,
                              uint64_t data_size, std::map<std::string, TensorInfo>& tensors,
                              std::map<std::string, std::string>& metadata);

// Writes tensors (any CPU/CUDA tensor; written contiguous, in its own dtype) atomically,
// in the reference writer's layout (sorted by dtype width then name, header padded
// with spaces to 8 bytes), so equal inputs give byte-identical files. The metadata
// gets "format": "pt" unless it sets "format" itself. Throws CheckpointError
// naming the file and tensor (duplicate names, unsupported dtype).
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// A checkpoint directory's weights: model.safetensors, or the shards listed in
// model.safetensors.index.json (its weight_map; it wins when both exist). `dir`
// may also name a single .safetensors file. Looks tensors up across shards.
class WeightSet {
 public:
  explicit WeightSet(const std::filesystem::path& dir);  // throws CheckpointError naming the file
  const std::filesystem::path& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws naming the tensor
  const SafetensorsFile& file(const std::string& name) const;  // the shard holding it
  at::Tensor load(const std::string& name, at::Device device = at::kCPU,
                  at::ScalarType dtype = at::ScalarType::Undefined) const;
  // load() + shape check (before copying): throws CheckpointError
  // "FILE: tensor 'X': expected shape [..], got [..]".
  at::Tensor load_checked(const std::string& name, const std::vector<int64_t>& shape,
                          at::Device device = at::kCPU,
                          at::ScalarType dtype = at::ScalarType::Undefined) const;

 private:
  [[noreturn]] void throw_missing(const std::string& name) const;
  std::filesystem::path dir_;
  std::string looked_in_;  // for "not found" messages: "model.safetensors" or the index
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

// Writes `tensors` into dir as model.safetensors, or as `shards` files
// model-0000i-of-0000n.safetensors plus model.safetensors.index.json when shards > 1
// (tensors split in the given order, balanced by bytes, every shard non-empty;
// the index carries metadata.total_size). Every file is written atomically and the
// index last; a previous save's other layout (model.safetensors, index, stale
// shards) is removed afterwards, so the directory never mixes two saves.
void save_weight_set(const std::filesystem::path& dir,
                     const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                     int shards = 1, const std::map<std::string, std::string>& metadata = {});

}  // namespace lawcat::io
