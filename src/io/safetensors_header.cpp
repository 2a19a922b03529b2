// Safetensors header parsing, validation and building (torch-free; see the header).
#include "io/safetensors_header.h"

#include <filesystem>

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors is little-endian; lawcat only supports little-endian hosts"
#endif

namespace lawcat::io {
namespace {

struct DtypeRow {
  SafetensorsDtype dtype;
  const char* name;
  size_t size;
  int write_rank;  // the reference writer sorts by its Dtype enum order, descending
};
constexpr DtypeRow kDtypes[] = {
    {SafetensorsDtype::F64, "F64", 8, 8},  {SafetensorsDtype::F32, "F32", 4, 7},
    {SafetensorsDtype::F16, "F16", 2, 4},  {SafetensorsDtype::BF16, "BF16", 2, 5},
    {SafetensorsDtype::I64, "I64", 8, 9},  {SafetensorsDtype::I32, "I32", 4, 6},
    {SafetensorsDtype::I16, "I16", 2, 3},  {SafetensorsDtype::I8, "I8", 1, 2},
    {SafetensorsDtype::U8, "U8", 1, 1},    {SafetensorsDtype::BOOL, "BOOL", 1, 0},
};
const DtypeRow& row(SafetensorsDtype d) { return kDtypes[static_cast<size_t>(d)]; }

// Short, bounded rendering of a JSON value for messages (never the whole header).
std::string show(const nlohmann::json& v) {
  std::string s;
  try {
    s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const std::exception&) {
    s = "<unprintable>";
  }
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// Tensor names come from the file: keep messages printable and short.
std::string quote_name(const std::string& name) {
  std::string out = "'";
  size_t n = 0;
  for (unsigned char c : name) {
    if (++n > 200) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

std::string range_text(uint64_t b, uint64_t e) {
  return "[" + std::to_string(b) + ", " + std::to_string(e) + "]";
}

uint64_t read_offset(const std::string& where, const std::string& tname, const nlohmann::json& v) {
  LAWCAT_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
               CheckpointError,
               where << ": tensor " << tname << ": data_offsets must hold non-negative integers, got "
                     << show(v));
  return v.get<uint64_t>();
}

RawTensorInfo parse_entry(const std::string& where, const std::string& name,
                          const nlohmann::json& e, uint64_t data_size) {
  const std::string tname = quote_name(name);
  LAWCAT_CHECK(e.is_object(), CheckpointError,
               where << ": tensor " << tname << ": header entry must be an object, got " << show(e));
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    LAWCAT_CHECK(e.contains(key), CheckpointError,
                 where << ": tensor " << tname << ": missing '" << key << "' in the header entry");
  }
  RawTensorInfo info;

  const auto& jd = e.at("dtype");
  LAWCAT_CHECK(jd.is_string(), CheckpointError,
               where << ": tensor " << tname << ": dtype must be a string, got " << show(jd));
  auto dt = parse_safetensors_dtype(jd.get_ref<const std::string&>());
  LAWCAT_CHECK(dt.has_value(), CheckpointError,
               where << ": tensor " << tname << ": unknown dtype " << show(jd)
                     << " (supported: " << safetensors_dtype_list() << ")");
  info.dtype = *dt;

  const auto& js = e.at("shape");
  LAWCAT_CHECK(js.is_array(), CheckpointError,
               where << ": tensor " << tname << ": shape must be an array, got " << show(js));
  uint64_t numel = 1;
  for (const auto& d : js) {
    LAWCAT_CHECK(d.is_number_integer(), CheckpointError,
                 where << ": tensor " << tname << ": shape " << show(js)
                       << " must hold integers, got " << show(d));
    LAWCAT_CHECK(d.is_number_unsigned() || d.get<int64_t>() >= 0, CheckpointError,
                 where << ": tensor " << tname << ": negative dimension " << show(d) << " in shape "
                       << show(js));
    const uint64_t dim = d.get<uint64_t>();
    LAWCAT_CHECK(dim <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) &&
                     !__builtin_mul_overflow(numel, dim, &numel),
                 CheckpointError,
                 where << ": tensor " << tname << ": shape " << show(js)
                       << " overflows 64-bit element counts");
    info.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t nbytes = 0;
  LAWCAT_CHECK(!__builtin_mul_overflow(numel, row(info.dtype).size, &nbytes) &&
                   numel <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
               CheckpointError,
               where << ": tensor " << tname << ": shape " << show(js)
                     << " overflows 64-bit byte sizes");

  const auto& jo = e.at("data_offsets");
  LAWCAT_CHECK(jo.is_array() && jo.size() == 2, CheckpointError,
               where << ": tensor " << tname << ": data_offsets must be [begin, end], got "
                     << show(jo));
  info.begin = read_offset(where, tname, jo[0]);
  info.end = read_offset(where, tname, jo[1]);
  LAWCAT_CHECK(info.begin <= info.end, CheckpointError,
               where << ": tensor " << tname << ": data_offsets " << range_text(info.begin, info.end)
                     << " have begin > end");
  LAWCAT_CHECK(info.end <= data_size, CheckpointError,
               where << ": tensor " << tname << ": data_offsets " << range_text(info.begin, info.end)
                     << " extend past the data buffer (" << data_size << " bytes)");
  LAWCAT_CHECK(info.end - info.begin == nbytes, CheckpointError,
               where << ": tensor " << tname << ": data_offsets " << range_text(info.begin, info.end)
                     << " hold " << (info.end - info.begin) << " bytes, but " << row(info.dtype).name
                     << " " << show(js) << " needs " << numel << " x " << row(info.dtype).size
                     << " = " << nbytes << " bytes");
  return info;
}

// Tensors must tile the data buffer exactly: sorted by offset, each starts where
// the previous ended (no overlap, no hole), and the last ends at the buffer end.
void check_packing(const std::string& where, const std::map<std::string, RawTensorInfo>& tensors,
                   uint64_t data_size) {
  std::vector<std::pair<const std::string*, const RawTensorInfo*>> sorted;
  sorted.reserve(tensors.size());
  for (const auto& [name, info] : tensors) sorted.emplace_back(&name, &info);
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    if (a.second->begin != b.second->begin) return a.second->begin < b.second->begin;
    return a.second->end < b.second->end;
  });
  uint64_t pos = 0;
  const std::string* prev = nullptr;
  const RawTensorInfo* prev_info = nullptr;
  for (const auto& [name, info] : sorted) {
    if (info->begin < pos) {
      throw CheckpointError(where + ": tensor " + quote_name(*name) + ": data_offsets " +
                            range_text(info->begin, info->end) + " overlap tensor " +
                            quote_name(*prev) + " " + range_text(prev_info->begin, prev_info->end));
    }
    if (info->begin > pos) {
      std::ostringstream os;
      os << where << ": tensor " << quote_name(*name) << ": data_offsets "
         << range_text(info->begin, info->end) << " leave a hole of " << (info->begin - pos)
         << " bytes after "
         << (prev ? "tensor " + quote_name(*prev) + " (ends at " + std::to_string(pos) + ")"
                  : std::string("the start of the data buffer"))
         << "; safetensors data must be packed";
      throw CheckpointError(os.str());
    }
    pos = info->end;
    prev = name;
    prev_info = info;
  }
  LAWCAT_CHECK(pos == data_size, CheckpointError,
               where << ": the data buffer has " << (data_size - pos)
                     << " bytes after the last tensor (" << data_size
                     << " bytes, tensors cover " << pos << "); safetensors data must be packed");
}

}  // namespace

const char* safetensors_dtype_name(SafetensorsDtype d) { return row(d).name; }
size_t safetensors_dtype_size(SafetensorsDtype d) { return row(d).size; }

std::optional<SafetensorsDtype> parse_safetensors_dtype(std::string_view name) {
  for (const auto& r : kDtypes)
    if (name == r.name) return r.dtype;
  return std::nullopt;
}

std::string safetensors_dtype_list() {
  std::string s;
  for (const auto& r : kDtypes) s += (s.empty() ? "" : ", ") + std::string(r.name);
  return s;
}

SafetensorsHeader parse_safetensors_header_json(const std::string& where, const char* json,
                                                size_t json_size, uint64_t data_size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json, json + json_size);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(where + ": header is not valid JSON: " + e.what());
  }
  LAWCAT_CHECK(j.is_object(), CheckpointError,
               where << ": header must be a JSON object, got " << j.type_name());

  SafetensorsHeader h;
  h.data_size = data_size;
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      LAWCAT_CHECK(value.is_object(), CheckpointError,
                   where << ": __metadata__ must be an object of strings, got " << value.type_name());
      for (const auto& [mk, mv] : value.items()) {
        LAWCAT_CHECK(mv.is_string(), CheckpointError,
                     where << ": __metadata__[" << quote_name(mk) << "] must be a string, got "
                           << show(mv));
        h.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    h.tensors.emplace(key, parse_entry(where, key, value, data_size));
  }
  check_packing(where, h.tensors, data_size);
  return h;
}

SafetensorsHeader parse_safetensors_file_bytes(const std::string& where, const uint8_t* file,
                                               size_t file_size) {
  LAWCAT_CHECK(file_size >= 8, CheckpointError,
               where << ": file is too small for a safetensors file (" << file_size
                     << " bytes; the 8-byte header length is missing)");
  uint64_t n = 0;
  std::memcpy(&n, file, 8);  // little-endian (checked at compile time above)
  LAWCAT_CHECK(n <= kMaxSafetensorsHeader, CheckpointError,
               where << ": header length " << n << " exceeds the " << kMaxSafetensorsHeader
                     << "-byte limit (corrupt or not a safetensors file)");
  LAWCAT_CHECK(n <= file_size - 8, CheckpointError,
               where << ": header length " << n << " extends past the end of the file ("
                     << file_size << " bytes; truncated download?)");
  LAWCAT_CHECK(n >= 2 && file[8] == '{', CheckpointError,
               where << ": header does not start with '{' (not a safetensors file?)");
  auto h = parse_safetensors_header_json(where, reinterpret_cast<const char*>(file + 8), n,
                                         file_size - 8 - n);
  h.data_start = 8 + n;
  return h;
}

std::string build_safetensors_header(const std::string& where,
                                     const std::vector<RawTensorToWrite>& tensors,
                                     const std::map<std::string, std::string>& metadata,
                                     std::vector<size_t>& order, std::vector<uint64_t>& offsets) {
  order.resize(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    int ra = row(tensors[a].dtype).write_rank, rb = row(tensors[b].dtype).write_rank;
    if (ra != rb) return ra > rb;
    return tensors[a].name < tensors[b].name;
  });

  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = j["__metadata__"];
    m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  offsets.assign(tensors.size(), 0);
  std::set<std::string> seen;
  uint64_t pos = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const auto& t = tensors[order[k]];
    LAWCAT_CHECK(t.name != "__metadata__", CheckpointError,
                 where << ": '__metadata__' is reserved and cannot name a tensor");
    LAWCAT_CHECK(seen.insert(t.name).second, CheckpointError,
                 where << ": tensor " << quote_name(t.name) << " given twice");
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      LAWCAT_CHECK(d >= 0, CheckpointError,
                   where << ": tensor " << quote_name(t.name) << ": negative dimension " << d);
      LAWCAT_CHECK(!__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel),
                   CheckpointError, where << ": tensor " << quote_name(t.name) << ": size overflow");
    }
    uint64_t nbytes = 0, end = 0;
    LAWCAT_CHECK(!__builtin_mul_overflow(numel, row(t.dtype).size, &nbytes) &&
                     !__builtin_add_overflow(pos, nbytes, &end),
                 CheckpointError, where << ": tensor " << quote_name(t.name) << ": size overflow");
    offsets[order[k]] = pos;
    auto& e = j[t.name];
    e["dtype"] = row(t.dtype).name;
    e["shape"] = t.shape;
    e["data_offsets"] = {pos, end};
    pos = end;
  }

  std::string text;
  try {
    text = j.dump();
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(where + ": cannot write the header (tensor names and metadata must be "
                          "valid UTF-8): " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  LAWCAT_CHECK(text.size() <= kMaxSafetensorsHeader, CheckpointError,
               where << ": header of " << text.size() << " bytes exceeds the "
                     << kMaxSafetensorsHeader << "-byte limit");
  uint64_t n = text.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + text;
}

std::vector<std::pair<std::string, std::string>> parse_safetensors_index(const std::string& text,
                                                                         const std::string& where,
                                                                         const std::string& dir) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(where + ": invalid JSON: " + e.what());
  }
  LAWCAT_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), CheckpointError,
               where << ": expected an object with a \"weight_map\" object (tensor name -> shard file)");
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, shard] : j["weight_map"].items()) {
    LAWCAT_CHECK(shard.is_string(), CheckpointError,
                 where << ": weight_map['" << name << "'] must be a file name, got " << shard.type_name());
    const std::string file = shard.get<std::string>();
    const std::filesystem::path rel(file);
    bool safe = !file.empty() && rel.is_relative();
    for (const auto& part : rel) safe = safe && part != "..";
    LAWCAT_CHECK(safe, CheckpointError,
                 where << ": weight_map['" << name << "'] = '" << file << "' is not a file name inside " << dir);
    out.emplace_back(name, file);
  }
  return out;
}

}  // namespace lawcat::io
