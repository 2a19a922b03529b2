// io/safetensors: every malformed file is a CheckpointError naming the file, the
// tensor (where there is one) and the problem.
#include "io/safetensors.h"

#include "io/io_helpers.h"

using namespace lawcat;
using namespace lawcat::io;

namespace {
// Writes [N][header][data] as bad.safetensors and returns the error from opening it.
std::string open_error(const std::string& header, const std::string& data) {
  auto dir = test::scratch_dir("st_bad");
  test::write_raw_safetensors(dir / "bad.safetensors", header, data);
  return test::checkpoint_error_of([&] { SafetensorsFile f(dir / "bad.safetensors"); });
}
std::string open_bytes_error(const std::string& bytes) {
  auto dir = test::scratch_dir("st_bad_bytes");
  test::write_bytes(dir / "bad.safetensors", bytes);
  return test::checkpoint_error_of([&] { SafetensorsFile f(dir / "bad.safetensors"); });
}
std::string u64(uint64_t n) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s;
}
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  uint64_t b, uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":[" + std::to_string(b) + "," + std::to_string(e) + "]}";
}
}  // namespace

TEST_CASE("truncated files and bad header lengths", "[io]") {
  SECTION("shorter than the length prefix") {
    LAWCAT_CHECK_MSG(open_bytes_error(std::string("\x10\0\0", 3)), "bad.safetensors", "too small");
  }
  SECTION("empty file") { LAWCAT_CHECK_MSG(open_bytes_error(""), "bad.safetensors", "too small"); }
  SECTION("header length past the end of the file") {
    LAWCAT_CHECK_MSG(open_bytes_error(u64(1000) + "{\"a\":1}"), "bad.safetensors",
                     "header length 1000 extends past the end of the file (15 bytes");
  }
  SECTION("absurd header length") {
    LAWCAT_CHECK_MSG(open_bytes_error(u64(uint64_t(1) << 62) + "{}"), "bad.safetensors",
                     "exceeds the 100000000-byte limit");
  }
  SECTION("a file cut inside the data buffer") {
    std::string h = "{" + entry("model.norm.weight", "F32", "[25]", 0, 100) + "}";
    LAWCAT_CHECK_MSG(open_error(h, std::string(64, 'x')), "bad.safetensors",
                     "tensor 'model.norm.weight': data_offsets [0, 100] extend past the data "
                     "buffer (64 bytes)");
  }
  SECTION("not JSON") {
    LAWCAT_CHECK_MSG(open_bytes_error(u64(4) + "PK\x03\x04"), "bad.safetensors",
                     "does not start with '{'");
  }
}

TEST_CASE("bad header JSON", "[io]") {
  LAWCAT_CHECK_MSG(open_error("{\"a\": {\"dtype\": \"F32\",", ""), "bad.safetensors",
                   "not valid JSON");
  LAWCAT_CHECK_MSG(open_error("{\"a\":1} x", ""), "bad.safetensors", "not valid JSON");
  LAWCAT_CHECK_MSG(open_error(std::string("{\"a\0\":1}", 8), ""), "bad.safetensors",
                   "not valid JSON");
  LAWCAT_CHECK_MSG(open_error("{\"a\xff\":1}", ""), "bad.safetensors", "not valid JSON");
  LAWCAT_CHECK_MSG(open_error("{\"w\":[1,2]}", ""), "bad.safetensors", "tensor 'w'",
                   "must be an object");
}

TEST_CASE("entries need dtype, shape, data_offsets of the right types", "[io]") {
  LAWCAT_CHECK_MSG(open_error(R"({"w":{"dtype":"F32","shape":[1]}})", "abcd"), "bad.safetensors",
                   "tensor 'w'", "missing 'data_offsets'");
  LAWCAT_CHECK_MSG(open_error(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "abcd"),
                   "bad.safetensors", "tensor 'w'", "missing 'dtype'");
  LAWCAT_CHECK_MSG(open_error(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "abcd"),
                   "bad.safetensors", "tensor 'w'", "missing 'shape'");
  LAWCAT_CHECK_MSG(open_error(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", "abcd"),
                   "bad.safetensors", "tensor 'w'", "dtype must be a string");
  LAWCAT_CHECK_MSG(open_error(R"({"w":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})", "abcd"),
                   "bad.safetensors", "tensor 'w'", "shape must be an array");
  LAWCAT_CHECK_MSG(open_error(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "abcd"),
                   "bad.safetensors", "tensor 'w'", "must hold integers");
  LAWCAT_CHECK_MSG(open_error(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", "abcd"),
                   "bad.safetensors", "tensor 'w'", "data_offsets must be [begin, end]");
  LAWCAT_CHECK_MSG(open_error(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", "abcd"),
                   "bad.safetensors", "tensor 'w'", "non-negative integers");
}

TEST_CASE("unknown dtype names the dtype and the tensor", "[io]") {
  LAWCAT_CHECK_MSG(open_error("{" + entry("model.layers.0.mlp.up_proj.weight", "F8_E4M3", "[4]", 0, 4) + "}",
                              "abcd"),
                   "bad.safetensors", "tensor 'model.layers.0.mlp.up_proj.weight'",
                   "unknown dtype \"F8_E4M3\"", "BF16");
  LAWCAT_CHECK_MSG(open_error("{" + entry("w", "f32", "[1]", 0, 4) + "}", "abcd"), "unknown dtype");
}

TEST_CASE("byte size must equal numel x element size; shapes must not overflow", "[io]") {
  LAWCAT_CHECK_MSG(open_error("{" + entry("w", "F32", "[3,3]", 0, 32) + "}", std::string(32, 'x')),
                   "bad.safetensors", "tensor 'w'", "hold 32 bytes", "needs 9 x 4 = 36 bytes");
  LAWCAT_CHECK_MSG(open_error("{" + entry("w", "F32", "[-1,4]", 0, 16) + "}", std::string(16, 'x')),
                   "bad.safetensors", "tensor 'w'", "negative dimension -1");
  LAWCAT_CHECK_MSG(open_error("{" + entry("w", "F32", "[4294967296,4294967296]", 0, 0) + "}", ""),
                   "bad.safetensors", "tensor 'w'", "overflows");
  // 2^62 elements: numel fits, numel x 4 bytes does not.
  LAWCAT_CHECK_MSG(open_error("{" + entry("w", "F32", "[4611686018427387904]", 0, 0) + "}", ""),
                   "bad.safetensors", "tensor 'w'", "overflows");
  LAWCAT_CHECK_MSG(open_error("{" + entry("w", "U8", "[18446744073709551615]", 0, 0) + "}", ""),
                   "bad.safetensors", "tensor 'w'", "overflows");
  // Wraps to a small size with unchecked arithmetic: 2^32 * 2^32 * 0 is refused, not read as 0.
  LAWCAT_CHECK_MSG(open_error("{" + entry("w", "U8", "[4294967296,4294967296,0]", 0, 0) + "}", ""),
                   "tensor 'w'", "overflows");
}

TEST_CASE("offsets: begin <= end, in range, no overlap, no hole, no trailing bytes", "[io]") {
  const std::string d24(24, 'x');
  SECTION("begin > end") {
    LAWCAT_CHECK_MSG(open_error("{" + entry("w", "U8", "[0]", 8, 4) + "}", d24),
                     "bad.safetensors", "tensor 'w'", "[8, 4] have begin > end");
  }
  SECTION("past the buffer") {
    LAWCAT_CHECK_MSG(open_error("{" + entry("a", "F32", "[2]", 0, 8) + "," +
                                entry("b", "F32", "[5]", 8, 28) + "}", d24),
                     "bad.safetensors", "tensor 'b'", "[8, 28] extend past the data buffer (24 bytes)");
  }
  SECTION("overlap") {
    LAWCAT_CHECK_MSG(open_error("{" + entry("a", "F32", "[4]", 0, 16) + "," +
                                entry("b", "F32", "[4]", 8, 24) + "}", d24),
                     "bad.safetensors", "tensor 'b'", "[8, 24] overlap tensor 'a' [0, 16]");
  }
  SECTION("two tensors on the same bytes") {
    LAWCAT_CHECK_MSG(open_error("{" + entry("a", "F32", "[6]", 0, 24) + "," +
                                entry("b", "I32", "[6]", 0, 24) + "}", d24),
                     "bad.safetensors", "overlap");
  }
  SECTION("hole between tensors") {
    LAWCAT_CHECK_MSG(open_error("{" + entry("a", "F32", "[2]", 0, 8) + "," +
                                entry("b", "F32", "[2]", 16, 24) + "}", d24),
                     "bad.safetensors", "tensor 'b'", "hole of 8 bytes after tensor 'a'");
  }
  SECTION("hole at the start") {
    LAWCAT_CHECK_MSG(open_error("{" + entry("a", "F32", "[4]", 8, 24) + "}", d24),
                     "bad.safetensors", "tensor 'a'", "hole of 8 bytes after the start");
  }
  SECTION("trailing bytes") {
    LAWCAT_CHECK_MSG(open_error("{" + entry("a", "F32", "[4]", 0, 16) + "}", d24),
                     "bad.safetensors", "8 bytes after the last tensor");
  }
  SECTION("empty tensors anywhere are fine") {
    CHECK(open_error("{" + entry("a", "F32", "[4]", 0, 16) + "," + entry("z", "F32", "[0]", 16, 16) +
                         "," + entry("y", "F32", "[0,7]", 0, 0) + "," +
                         entry("b", "F32", "[2]", 16, 24) + "}",
                     d24) == "NO ERROR");
  }
}

TEST_CASE("__metadata__ must map strings to strings", "[io]") {
  LAWCAT_CHECK_MSG(open_error(R"({"__metadata__":{"format":"pt","step":12}})", ""),
                   "bad.safetensors", "__metadata__['step'] must be a string");
  LAWCAT_CHECK_MSG(open_error(R"({"__metadata__":["pt"]})", ""), "bad.safetensors",
                   "__metadata__ must be an object");
  CHECK(open_error(R"({"__metadata__":null})", "") == "NO ERROR");
}

TEST_CASE("tensor names in messages are printable", "[io]") {
  auto msg = open_error("{" + entry("a\\u0001b", "F32", "[1]", 0, 8) + "}", std::string(8, 'x'));
  LAWCAT_CHECK_MSG(msg, "tensor 'a\\x01b'");
}
