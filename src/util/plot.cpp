#include "util/plot.h"

#include <cstdlib>

#include "util/log.h"

namespace lawcat::plot {

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

std::string quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

std::string file(const std::filesystem::path& p) {
  std::string o = "'";
  for (char c : p.string()) o += c == '\'' ? std::string("''") : std::string(1, c);
  return o + "'";
}

bool run(const std::filesystem::path& script, const std::filesystem::path& png) {
  if (!have_gnuplot()) {
    log::warn("gnuplot not found: skipping the plot ", png.string(), " (install gnuplot-nox; data and script are in ",
              script.parent_path().string(), ")");
    return false;
  }
  const std::filesystem::path err = script.string() + ".log";
  const std::string cmd = "gnuplot " + file(script) + " >" + file(err) + " 2>&1";
  if (std::system(cmd.c_str()) != 0 || !std::filesystem::exists(png)) {
    log::warn("gnuplot failed on ", script.string(), " (see ", err.string(), ")");
    return false;
  }
  std::error_code ec;
  std::filesystem::remove(err, ec);
  return true;
}

}  // namespace lawcat::plot
