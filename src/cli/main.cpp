// lawcat CLI entry point: builds one CLI11 subcommand per registered verb
// (cmd_<verb>.cpp), runs the chosen one, and turns errors into a readable
// chain on stderr with a non-zero exit code.
#include <ATen/Parallel.h>

#include <cstdlib>
#include <iostream>
#include <thread>

#include "cli/command.h"
#include "util/error.h"
#include "util/log.h"

namespace lawcat::cli {
std::vector<CommandSpec>& command_registry() {
  static std::vector<CommandSpec> registry;
  return registry;
}
void set_default_threads() {
  int n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (const char* env = std::getenv("LAWCAT_THREADS")) n = std::max(1, std::atoi(env));
  at::set_num_threads(n);
}
}  // namespace lawcat::cli

int main(int argc, char** argv) {
  using namespace lawcat;
  log::init();
  CLI::App app{"lawcat: distill pre-trained transformers into LAWCAT linear attention"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lawcat 0.1.0");
  cli::Runner chosen;
  for (auto& spec : cli::command_registry()) {
    CLI::App* sub = app.add_subcommand(spec.name, spec.help);
    auto runner = spec.setup(*sub);
    sub->callback([&chosen, runner] { chosen = runner; });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    cli::set_default_threads();
    return chosen ? chosen() : 1;
  } catch (const std::exception& e) {
    std::cerr << "lawcat: error: " << describe_exception(e) << "\n";
    return 1;
  }
}
