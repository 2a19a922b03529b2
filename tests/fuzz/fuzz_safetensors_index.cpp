// libFuzzer target: a sharded checkpoint's model.safetensors.index.json
// (io/safetensors_header.h parse_safetensors_index). Every accepted shard name must be a
// relative path inside the checkpoint folder.
#include <filesystem>

#include "fuzz_common.h"
#include "io/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lawcat;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_only_lawcat_errors([&] {
    for (const auto& [name, file] : io::parse_safetensors_index(text, "model.safetensors.index.json", "ckpt")) {
      const std::filesystem::path p(file);
      if (file.empty() || p.is_absolute()) fuzz::fail("accepted a shard outside the folder: " + file);
      for (const auto& part : p)
        if (part == "..") fuzz::fail("accepted a shard outside the folder: " + file);
    }
  });
  return 0;
}
