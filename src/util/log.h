// Logging. The backend is spdlog, compiled in its own translation unit
// (util/spdlog_backend/) without the LibTorch include path: LibTorch ships
// fmt 12 headers that shadow the system fmt that Debian's spdlog is built on.
// Call sites write lawcat::log::info("loaded ", n, " tensors from ", path).
#pragma once
#include <filesystem>
#include <sstream>
#include <string>

namespace lawcat::log {
enum class Level { trace, debug, info, warn, error };

// Level from $LAWCAT_LOG (trace, debug, info, warn, error) or `level`.
void init(const std::string& level = "info");
// Also write the log to `file` (appending); used by training runs.
void add_file_sink(const std::filesystem::path& file);
void write(Level level, const std::string& message);
// Writes `message` to the log files added with add_file_sink only (and flushes them), not to
// the terminal: cli/main.cpp prints a fatal error itself, and records it in run.log with this.
void write_to_files(Level level, const std::string& message);
bool enabled(Level level);

template <typename... A>
std::string cat(const A&... a) {
  std::ostringstream os;
  (os << ... << a);
  return os.str();
}
template <typename... A> void trace(const A&... a) { if (enabled(Level::trace)) write(Level::trace, cat(a...)); }
template <typename... A> void debug(const A&... a) { if (enabled(Level::debug)) write(Level::debug, cat(a...)); }
template <typename... A> void info(const A&... a) { write(Level::info, cat(a...)); }
template <typename... A> void warn(const A&... a) { write(Level::warn, cat(a...)); }
template <typename... A> void error(const A&... a) { write(Level::error, cat(a...)); }
}  // namespace lawcat::log
