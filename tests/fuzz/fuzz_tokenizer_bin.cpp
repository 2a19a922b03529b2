// libFuzzer target: llama2.c tokenizer.bin (text::load_llama2c), then encode / decode.
#include "fuzz_common.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lawcat;
  const auto file = fuzz::write_file("tokenizer.bin", std::string_view(reinterpret_cast<const char*>(data), size));
  fuzz::expect_only_lawcat_errors([&] {
    auto tok = text::load_llama2c(file);
    const auto ids = tok->encode("Once upon a time, caf\xc3\xa9 \xe4\xb8\xad 42.", /*add_bos=*/true);
    for (int64_t id : ids)
      if (id < 0 || id >= tok->vocab_size()) fuzz::fail("encode gave an id outside the vocabulary");
    (void)tok->decode(ids);
  });
  return 0;
}
