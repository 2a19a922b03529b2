#include "util/memory.h"

#include <fstream>
#include <sstream>
#include <string>

namespace lawcat::memory {

Resident resident() {
  Resident r;
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    // Lines like "VmRSS:\t  123456 kB".
    auto value_kb = [&line] {
      std::istringstream is(line.substr(line.find(':') + 1));
      int64_t kb = -1;
      is >> kb;
      return kb < 0 ? int64_t{-1} : kb * 1024;
    };
    if (line.rfind("VmRSS:", 0) == 0) r.current_bytes = value_kb();
    if (line.rfind("VmHWM:", 0) == 0) r.peak_bytes = value_kb();
  }
  return r;
}

}  // namespace lawcat::memory
