// Subcommand registry: each cmd_<verb>.cpp registers itself with
// LAWCAT_COMMAND(verb, help, setup). `setup` adds the verb's options to its
// CLI11 subcommand and returns the function that runs it (exit code).
#pragma once
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace lawcat::cli {
using Runner = std::function<int()>;
using Setup = std::function<Runner(CLI::App&)>;
struct CommandSpec {
  std::string name, help;
  Setup setup;
};
std::vector<CommandSpec>& command_registry();
inline bool register_command(std::string name, std::string help, Setup setup) {
  command_registry().push_back({std::move(name), std::move(help), std::move(setup)});
  return true;
}
// Threads for LibTorch CPU work: $LAWCAT_THREADS or all cores.
void set_default_threads();

// Range checks with short messages: CLI11 prefixes the option, giving
// "--max-new-tokens: must be >= 1, got 0" (CLI::PositiveNumber prints a 309-digit
// bound). Text that is not a number passes here and fails CLI11's conversion.
// `exclusive`: the value must be > min instead of >= min.
inline CLI::Validator at_least(double min, bool exclusive = false) {
  std::ostringstream desc;
  desc << (exclusive ? "> " : ">= ") << min;
  return CLI::Validator(
      [min, exclusive, d = desc.str()](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0') return {};
        const bool ok = exclusive ? v > min : v >= min;
        return ok ? std::string() : "must be " + d + ", got " + text;
      },
      desc.str());
}
// lo < value <= hi (e.g. --top-p in (0, 1]).
inline CLI::Validator in_range_open_closed(double lo, double hi) {
  std::ostringstream desc;
  desc << "in (" << lo << ", " << hi << "]";
  return CLI::Validator(
      [lo, hi, d = desc.str()](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || *end != '\0') return {};
        return v > lo && v <= hi ? std::string() : "must be " + d + ", got " + text;
      },
      desc.str());
}
}  // namespace lawcat::cli

#define LAWCAT_CLI_CONCAT2(a, b) a##b
#define LAWCAT_CLI_CONCAT(a, b) LAWCAT_CLI_CONCAT2(a, b)
#define LAWCAT_COMMAND(name, help, setup)                                              \
  static const bool LAWCAT_CLI_CONCAT(lawcat_command_registered_, __LINE__) =          \
      ::lawcat::cli::register_command(name, help, setup)
