// libFuzzer target: the llama2.c checkpoint header and the size it implies
// (io/llama2c_header.h). An accepted header must describe exactly `size` bytes.
#include "fuzz_common.h"
#include "io/llama2c_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lawcat;
  fuzz::expect_only_lawcat_errors([&] {
    const io::Llama2cLayout l = io::parse_llama2c_layout(data, size, "model.bin");
    if (l.file_bytes != size || l.data_offset > size) fuzz::fail("accepted a header that does not fit the file");
  });
  return 0;
}
