#include "util/format.h"

#include <cstdint>
#include <iomanip>
#include <sstream>

namespace lawcat::format {

std::string fixed(double v, int decimals) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(decimals) << v;
  return os.str();
}

std::string significant(double v, int digits) {
  std::ostringstream os;
  os << std::setprecision(digits) << v;
  return os.str();
}

std::string human_count(double v, int small_decimals) {
  if (v >= 1e9) return fixed(v / 1e9, 1) + "G";
  if (v >= 1e6) return fixed(v / 1e6, 1) + "M";
  if (v >= 1e3) return fixed(v / 1e3, 1) + "K";
  return fixed(v, small_decimals);
}

std::string duration(double s) {
  std::ostringstream os;
  if (s >= 3600)
    os << static_cast<int64_t>(s / 3600) << "h" << std::setw(2) << std::setfill('0') << static_cast<int64_t>(s / 60) % 60
       << "m";
  else if (s >= 60)
    os << static_cast<int64_t>(s / 60) << "m" << std::setw(2) << std::setfill('0') << static_cast<int64_t>(s) % 60 << "s";
  else
    os << fixed(s, 1) << "s";
  return os.str();
}

std::string shape(const std::vector<int64_t>& dims) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < dims.size(); ++i) os << (i ? ", " : "") << dims[i];
  os << "]";
  return os.str();
}

}  // namespace lawcat::format
