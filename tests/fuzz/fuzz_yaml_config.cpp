// libFuzzer target: the YAML run config reader with --set overrides
// (config/yaml.h parse_run_config). Input: the YAML text, then one override per
// "\n@@set@@\n"-separated part ("distill.lr=0.1"). An accepted config must survive
// to_yaml -> parse unchanged.
#include "config/yaml.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lawcat;
  auto parts = fuzz::split(std::string_view(reinterpret_cast<const char*>(data), size), "\n@@set@@\n");
  const std::string yaml = parts[0];
  const std::vector<std::string> overrides(parts.begin() + 1, parts.end());
  fuzz::expect_only_lawcat_errors([&] {
    const config::RunConfig c = config::parse_run_config(yaml, "fuzz.yaml", overrides);
    const std::string again = config::to_yaml(c);
    const config::RunConfig back = config::parse_run_config(again, "rebuilt.yaml");
    if (config::to_yaml(back) != again) fuzz::fail("the config changed in the to_yaml round trip:\n" + again);
  });
  return 0;
}
