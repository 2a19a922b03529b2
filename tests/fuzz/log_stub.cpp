// util/log.h for the fuzz targets: discards everything (the spdlog backend needs the
// system fmt, and a fuzzer's log would only slow it down).
#include "util/log.h"

namespace lawcat::log {
void init(const std::string&) {}
void add_file_sink(const std::filesystem::path&) {}
void write(Level, const std::string&) {}
void write_to_files(Level, const std::string&) {}
bool enabled(Level) { return false; }
}  // namespace lawcat::log
