// safetensors reader and writer (https://github.com/huggingface/safetensors format:
// u64 little-endian header length N, N bytes of JSON header, then the data buffer).
// Hand-written because no C++ implementation is packaged; the format is small.
// The header is validated strictly: every offset in range, no overlaps or gaps,
// sizes consistent with dtype x shape, known dtypes only.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lawcat::fs { class MappedFile; }

namespace lawcat::io {

struct TensorInfo {
  std::string name;
  at::ScalarType dtype;          // on disk
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;   // byte offsets into the data buffer
};

// One .safetensors file, memory-mapped. Tensors are views of the mapping until copied.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);  // throws CheckpointError
  ~SafetensorsFile();
  const std::filesystem::path& path() const;
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // Zero-copy CPU tensor over the mmap (valid while this object lives).
  at::Tensor view(const std::string& name) const;
  // Copy to `device` / `dtype` (dtype Undefined = keep the file's); one copy, no extra full copies.
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

// Writes tensors (any CPU/CUDA tensor; written contiguous, in its own dtype) atomically.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// A checkpoint directory's weights: model.safetensors, or the shards listed in
// model.safetensors.index.json (its weight_map). Looks tensors up across shards.
class WeightSet {
 public:
  explicit WeightSet(const std::filesystem::path& dir);  // throws CheckpointError naming the file
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws naming the tensor
  at::Tensor load(const std::string& name, at::Device device = at::kCPU,
                  at::ScalarType dtype = at::ScalarType::Undefined) const;
  // load() + shape check: throws CheckpointError "tensor X in FILE: expected shape [..], got [..]".
  at::Tensor load_checked(const std::string& name, const std::vector<int64_t>& shape,
                          at::Device device = at::kCPU,
                          at::ScalarType dtype = at::ScalarType::Undefined) const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

// Writes `tensors` into dir as model.safetensors, or as `shards` files
// model-0000i-of-0000n.safetensors plus model.safetensors.index.json when shards > 1.
void save_weight_set(const std::filesystem::path& dir,
                     const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                     int shards = 1);

}  // namespace lawcat::io
