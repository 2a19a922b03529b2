// libFuzzer target: a training checkpoint's state.json as resume reads it
// (train/resume_state.h parse_resume_state).
#include "fuzz_common.h"
#include "train/resume_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lawcat;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_only_lawcat_errors([&] {
    const train::ResumeState s = train::parse_resume_state(text, "state.json");
    if (s.step < 0 || s.tokens < 0 || s.world < 1) fuzz::fail("accepted an out-of-range state");
  });
  return 0;
}
