// Subcommand registry: each cmd_<verb>.cpp registers itself with
// LAWCAT_COMMAND(verb, help, setup). `setup` adds the verb's options to its
// CLI11 subcommand and returns the function that runs it (exit code).
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
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
}  // namespace lawcat::cli

#define LAWCAT_CLI_CONCAT2(a, b) a##b
#define LAWCAT_CLI_CONCAT(a, b) LAWCAT_CLI_CONCAT2(a, b)
#define LAWCAT_COMMAND(name, help, setup)                                              \
  static const bool LAWCAT_CLI_CONCAT(lawcat_command_registered_, __LINE__) =          \
      ::lawcat::cli::register_command(name, help, setup)
