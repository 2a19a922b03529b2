// The torch-free half of the safetensors reader/writer: header parsing and
// validation, header building. Uses only the standard library, nlohmann::json
// and util/error.h, so the libFuzzer target (tests/fuzz/, built with clang
// outside the LibTorch build by scripts/fuzz.sh) compiles it on its own.
// safetensors.h maps these types to ATen.
//
// File layout: [u64 little-endian N][N bytes of JSON header][data buffer].
// The header is an object: "__metadata__" (optional, string -> string) and one
// entry per tensor {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
// offsets relative to the data buffer. Validation follows the Rust reference
// (huggingface/safetensors): known dtypes only, offsets in range, byte size ==
// numel x element size (no overflow), tensors packed with no overlaps, holes or
// trailing bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lawcat::io {

// Header length limit (the reference implementation's MAX_HEADER_SIZE).
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

enum class SafetensorsDtype : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* safetensors_dtype_name(SafetensorsDtype d);  // "F32"
size_t safetensors_dtype_size(SafetensorsDtype d);       // bytes per element
std::optional<SafetensorsDtype> parse_safetensors_dtype(std::string_view name);
// "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL" (for messages).
std::string safetensors_dtype_list();

struct RawTensorInfo {
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::vector<int64_t> shape;    // every dim >= 0, numel x element size fits in u64
  uint64_t begin = 0, end = 0;   // byte offsets into the data buffer
};

struct SafetensorsHeader {
  std::map<std::string, RawTensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;       // offset of the data buffer in the file (8 + N)
  uint64_t data_size = 0;        // bytes in the data buffer
};

// Validates the N JSON bytes against a data buffer of `data_size` bytes.
// Throws lawcat::CheckpointError "<where>: tensor 'X': <problem>".
SafetensorsHeader parse_safetensors_header_json(const std::string& where, const char* json,
                                                size_t json_size, uint64_t data_size);

// Validates a whole file image (length prefix, header, data buffer size).
SafetensorsHeader parse_safetensors_file_bytes(const std::string& where, const uint8_t* file,
                                               size_t file_size);

// One tensor to write: `size` bytes of row-major data in `dtype`.
struct RawTensorToWrite {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::vector<int64_t> shape;
};

// The writer's layout, identical to the reference writer's: tensors sorted by
// dtype (widest alignment first: I64, F64, F32, I32, BF16, F16, I16, I8, U8,
// BOOL), then by name; packed from offset 0.
// Fills `order` (indices into `tensors`) and returns the complete header block
// (the 8-byte length prefix + JSON padded with spaces to a multiple of 8), so
// the data buffer starts 8-byte aligned. Throws CheckpointError prefixed with
// `where` for duplicate / reserved / non-UTF-8 names and negative dims.
std::string build_safetensors_header(const std::string& where,
                                     const std::vector<RawTensorToWrite>& tensors,
                                     const std::map<std::string, std::string>& metadata,
                                     std::vector<size_t>& order,
                                     std::vector<uint64_t>& offsets);

// The tensor -> shard map of a sharded checkpoint's model.safetensors.index.json
// ({"weight_map": {"name": "model-00001-of-00002.safetensors", ...}, "metadata": ...}),
// in the file's order. Throws CheckpointError naming `where` for invalid JSON, a missing
// weight_map, a value that is not a string, and a shard that is not a plain relative
// file name inside `dir` (empty, absolute, or with a ".." part).
std::vector<std::pair<std::string, std::string>> parse_safetensors_index(const std::string& text,
                                                                         const std::string& where,
                                                                         const std::string& dir);

}  // namespace lawcat::io
