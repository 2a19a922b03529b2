// spdlog behind lawcat::log (see util/log.h for why it is compiled apart).
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>

#include "util/log.h"

namespace lawcat::log {
namespace {
std::shared_ptr<spdlog::logger> logger() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto l = spdlog::stderr_color_mt("lawcat");
    l->set_pattern("[%H:%M:%S] %^%l%$ %v");
    const char* env = std::getenv("LAWCAT_LOG");
    l->set_level(spdlog::level::from_str(env ? env : "info"));
  });
  return spdlog::get("lawcat");
}
// The file sinks alone (no terminal), for write_to_files.
std::shared_ptr<spdlog::logger> file_logger() {
  static auto l = std::make_shared<spdlog::logger>("lawcat_files");
  return l;
}
spdlog::level::level_enum to_spd(Level l) {
  switch (l) {
    case Level::trace: return spdlog::level::trace;
    case Level::debug: return spdlog::level::debug;
    case Level::info: return spdlog::level::info;
    case Level::warn: return spdlog::level::warn;
    default: return spdlog::level::err;
  }
}
}  // namespace

void init(const std::string& level) {
  const char* env = std::getenv("LAWCAT_LOG");
  logger()->set_level(spdlog::level::from_str(env ? env : level));
}

void add_file_sink(const std::filesystem::path& file) {
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file.string(), false);
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %l %v");
  logger()->sinks().push_back(sink);
  file_logger()->sinks().push_back(sink);
}

void write_to_files(Level level, const std::string& message) {
  auto l = file_logger();
  if (l->sinks().empty()) return;
  l->set_level(spdlog::level::trace);
  l->log(to_spd(level), message);
  l->flush();
}

void write(Level level, const std::string& message) { logger()->log(to_spd(level), message); }
bool enabled(Level level) { return logger()->should_log(to_spd(level)); }
}  // namespace lawcat::log
