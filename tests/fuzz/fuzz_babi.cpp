// libFuzzer target: the bAbI task file parser (eval/babilong.h load_babi).
#include "eval/babilong.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lawcat;
  const auto file = fuzz::write_file("qa1_test.txt", std::string_view(reinterpret_cast<const char*>(data), size));
  fuzz::expect_only_lawcat_errors([&] { (void)eval::load_babi(file); });
  return 0;
}
