// libFuzzer target: Hugging Face config.json (io/hf_config.h parse_llama_config).
// Any JSON document is parsed; an accepted config must survive to_json -> parse unchanged.
#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "io/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lawcat;
  auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;  // not JSON: the file reader's error, not this parser's
  fuzz::expect_only_lawcat_errors([&] {
    const io::LlamaConfig c = io::parse_llama_config(j, "config.json");
    const io::LlamaConfig back = io::parse_llama_config(io::to_json(c), "rebuilt config.json");
    if (!(back == c)) fuzz::fail("config.json changed in the round trip");
  });
  return 0;
}
