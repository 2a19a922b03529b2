// io/safetensors: bit-exact round trips, the reference writer's layout, views
// over the mapping, unaligned data, dtype / device conversion on load.
#include "io/safetensors.h"

#include "io/io_helpers.h"

using namespace lawcat;
using namespace lawcat::io;
using lawcat::test::bit_equal;

TEST_CASE("save_safetensors / SafetensorsFile round-trip every dtype bit-exactly", "[io]") {
  auto dir = test::scratch_dir("st_roundtrip");
  auto tensors = test::tiny_llama(7);
  save_safetensors(dir / "a.safetensors", tensors, {{"step", "12"}});

  SafetensorsFile f(dir / "a.safetensors");
  CHECK(f.path() == dir / "a.safetensors");
  REQUIRE(f.tensors().size() == tensors.size());
  CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"step", "12"}});
  for (const auto& [name, t] : tensors) {
    CAPTURE(name, t.scalar_type(), t.sizes());
    REQUIRE(f.contains(name));
    const auto& ti = f.info(name);
    CHECK(ti.name == name);
    CHECK(ti.dtype == t.scalar_type());
    CHECK(ti.shape == t.sizes().vec());
    CHECK(bit_equal(f.view(name), t));
    CHECK(bit_equal(f.load(name), t));
  }
  // The data buffer starts 8-byte aligned (header padded with spaces).
  auto bytes = test::read_bytes(dir / "a.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  CHECK(bytes[8] == '{');
  CHECK(bytes[8 + n - 1] != '\0');
}

TEST_CASE("the writer uses the reference layout: dtype width, then name; metadata first", "[io]") {
  auto dir = test::scratch_dir("st_layout");
  test::NamedTensors t = {{"b", at::zeros({2}, at::kFloat)},     {"a", at::zeros({3}, at::kByte)},
                          {"c", at::zeros({1}, at::kLong)},      {"d", at::zeros({2}, at::kBFloat16)},
                          {"e", at::zeros({2}, at::kHalf)},      {"a2", at::zeros({1}, at::kFloat)}};
  save_safetensors(dir / "l.safetensors", t);
  auto bytes = test::read_bytes(dir / "l.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  std::string header = bytes.substr(8, n);
  // Byte-for-byte what huggingface/safetensors writes for the same dict.
  std::string expect =
      R"({"__metadata__":{"format":"pt"},"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("a2":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]},)"
      R"("d":{"dtype":"BF16","shape":[2],"data_offsets":[20,24]},)"
      R"("e":{"dtype":"F16","shape":[2],"data_offsets":[24,28]},)"
      R"("a":{"dtype":"U8","shape":[3],"data_offsets":[28,31]}})";
  expect.append((8 - expect.size() % 8) % 8, ' ');
  CHECK(header == expect);
  CHECK(bytes.size() == 8 + n + 31);
}

TEST_CASE("views share the mapping and outlive the file object; loads are owned copies", "[io]") {
  auto dir = test::scratch_dir("st_views");
  auto w = at::arange(12, at::kFloat).reshape({3, 4});
  save_safetensors(dir / "v.safetensors", {{"w", w}});
  at::Tensor v, l;
  {
    SafetensorsFile f(dir / "v.safetensors");
    v = f.view("w");
    l = f.load("w");
    CHECK(v.data_ptr() != l.data_ptr());
    CHECK(f.view("w").data_ptr() == v.data_ptr());  // zero-copy
  }
  CHECK(bit_equal(v, w));  // the mapping is still alive
  l.add_(1);               // a load is writable
  CHECK(bit_equal(v, w));
  CHECK(l.equal(w + 1));
}

TEST_CASE("load converts dtype; CUDA loads convert on the device", "[io][cuda]") {
  auto dir = test::scratch_dir("st_convert");
  auto w = at::randn({4, 8}).to(at::kBFloat16);
  save_safetensors(dir / "c.safetensors", {{"w", w}});
  SafetensorsFile f(dir / "c.safetensors");
  auto f32 = f.load("w", at::kCPU, at::kFloat);
  CHECK(f32.scalar_type() == at::kFloat);
  CHECK(bit_equal(f32, w.to(at::kFloat)));
  LAWCAT_REQUIRE_CUDA_OR_SKIP();
  auto g = f.load("w", at::Device(at::kCUDA, 0), at::kFloat);
  CHECK(g.is_cuda());
  CHECK(bit_equal(g.cpu(), w.to(at::kFloat)));
  // A CUDA tensor saves like its CPU copy.
  save_safetensors(dir / "g.safetensors", {{"w", w.cuda()}});
  CHECK(test::read_bytes(dir / "g.safetensors") == test::read_bytes(dir / "c.safetensors"));
}

TEST_CASE("unaligned data (other writers) is copied to aligned memory", "[io]") {
  auto dir = test::scratch_dir("st_unaligned");
  // The data buffer starts 8-byte aligned; U8[3] first puts the F32 and I64 tensors
  // at offsets 3 and 11, misaligned for their element sizes.
  std::string header =
      R"({"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},)"
      R"("c":{"dtype":"I64","shape":[1],"data_offsets":[11,19]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string data = "xyz";
  float fv[2] = {1.5f, -2.25f};
  int64_t iv = -1234567890123;
  data.append(reinterpret_cast<const char*>(fv), 8);
  data.append(reinterpret_cast<const char*>(&iv), 8);
  test::write_raw_safetensors(dir / "u.safetensors", header, data);
  SafetensorsFile f(dir / "u.safetensors");
  auto b = f.view("b");
  CHECK(reinterpret_cast<uintptr_t>(b.data_ptr()) % 4 == 0);
  CHECK(b[0].item<float>() == 1.5f);
  CHECK(b[1].item<float>() == -2.25f);
  CHECK(f.load("c").item<int64_t>() == iv);
  CHECK(f.load("b", at::kCPU, at::kDouble)[1].item<double>() == -2.25);
  CHECK(std::string(static_cast<const char*>(f.view("a").data_ptr()), 3) == "xyz");
}

TEST_CASE("an empty state dict and a file of only empty tensors are valid", "[io]") {
  auto dir = test::scratch_dir("st_empty");
  save_safetensors(dir / "e.safetensors", {});
  SafetensorsFile e(dir / "e.safetensors");
  CHECK(e.tensors().empty());
  save_safetensors(dir / "z.safetensors", {{"x", at::empty({0})}, {"y", at::empty({3, 0}, at::kLong)}});
  SafetensorsFile z(dir / "z.safetensors");
  CHECK(z.load("y").sizes() == at::IntArrayRef({3, 0}));
}

TEST_CASE("save_safetensors refuses what it cannot store, naming file and tensor", "[io]") {
  auto dir = test::scratch_dir("st_save_bad");
  auto p = dir / "bad.safetensors";
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] {
                     save_safetensors(p, {{"x", at::zeros({2})}, {"x", at::zeros({3})}});
                   }),
                   "bad.safetensors", "'x'", "twice");
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] {
                     save_safetensors(p, {{"z", at::zeros({2}, at::kComplexFloat)}});
                   }),
                   "bad.safetensors", "'z'", "ComplexFloat");
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] {
                     save_safetensors(p, {{"__metadata__", at::zeros({2})}});
                   }),
                   "bad.safetensors", "reserved");
  LAWCAT_CHECK_MSG(test::checkpoint_error_of([&] { save_safetensors(p, {{"u", at::Tensor()}}); }),
                   "bad.safetensors", "'u'", "undefined");
  CHECK(!std::filesystem::exists(p));
}

TEST_CASE("parse_safetensors_header (exposed API) maps dtypes to ATen", "[io]") {
  std::string h = R"({"__metadata__":{"k":"v"},"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}})";
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> meta;
  parse_safetensors_header("x.safetensors", h.data(), h.size(), 8, tensors, meta);
  REQUIRE(tensors.count("w"));
  CHECK(tensors.at("w").dtype == at::kBFloat16);
  CHECK(tensors.at("w").shape == std::vector<int64_t>{2, 2});
  CHECK(meta.at("k") == "v");
  for (auto d : {SafetensorsDtype::F64, SafetensorsDtype::F32, SafetensorsDtype::F16,
                 SafetensorsDtype::BF16, SafetensorsDtype::I64, SafetensorsDtype::I32,
                 SafetensorsDtype::I16, SafetensorsDtype::I8, SafetensorsDtype::U8,
                 SafetensorsDtype::BOOL}) {
    CAPTURE(safetensors_dtype_name(d));
    CHECK(to_safetensors_dtype(to_scalar_type(d)) == d);
    CHECK(at::elementSize(to_scalar_type(d)) == safetensors_dtype_size(d));
    CHECK(parse_safetensors_dtype(safetensors_dtype_name(d)) == d);
  }
}
