// libFuzzer target: tokenizer.json (+ tokenizer_config.json) through text::load_tokenizer,
// then encode / decode of a fixed text. Input: tokenizer.json, optionally followed by
// "\n@@config@@\n" and tokenizer_config.json.
#include "fuzz_common.h"
#include "text/regex.h"
#include "text/tokenizer.h"

// Without PCRE2 (LAWCAT_HAVE_PCRE2, which scripts/fuzz.sh defines) every tokenizer.json is
// refused before it is parsed, and the target would fuzz nothing but that refusal.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (!lawcat::text::Regex::available()) lawcat::fuzz::fail("built without PCRE2: tokenizer.json cannot be parsed");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lawcat;
  const auto parts = fuzz::split(std::string_view(reinterpret_cast<const char*>(data), size), "\n@@config@@\n");
  fuzz::write_file("tokenizer.json", parts[0]);
  std::error_code ec;
  std::filesystem::remove(fuzz::scratch() / "tokenizer_config.json", ec);
  if (parts.size() > 1) fuzz::write_file("tokenizer_config.json", parts[1]);
  fuzz::expect_only_lawcat_errors([&] {
    auto tok = text::load_tokenizer(fuzz::scratch());
    const auto ids = tok->encode("Hello world, 123 caf\xc3\xa9 \xe4\xb8\xad! <s>", /*add_bos=*/true);
    for (int64_t id : ids)
      if (id < 0 || id >= tok->vocab_size()) fuzz::fail("encode gave an id outside the vocabulary");
    (void)tok->decode(ids);
  });
  return 0;
}
