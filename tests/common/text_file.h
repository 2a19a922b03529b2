// A whole file as text (the outputs and logs that the tests of the scripts read back).
#pragma once
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace lawcat::test {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace lawcat::test
