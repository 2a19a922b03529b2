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
  // "verb" registers a top-level command; "verb sub" (e.g. "bench prefill") nests
  // under "verb". The deepest parsed command wins.
  cli::Runner chosen;
  int chosen_depth = 0;
  auto find_sub = [](CLI::App& parent, const std::string& name) -> CLI::App* {
    for (CLI::App* c : parent.get_subcommands([](CLI::App*) { return true; }))
      if (c->get_name() == name) return c;
    return nullptr;
  };
  auto add = [&](CLI::App& parent, const std::string& name, const cli::CommandSpec& spec, int depth) {
    CLI::App* sub = find_sub(parent, name);
    if (!sub) sub = parent.add_subcommand(name, spec.help);
    auto runner = spec.setup(*sub);
    sub->callback([&chosen, &chosen_depth, runner, depth] {
      if (depth >= chosen_depth) {
        chosen = runner;
        chosen_depth = depth;
      }
    });
  };
  for (auto& spec : cli::command_registry())
    if (spec.name.find(' ') == std::string::npos) add(app, spec.name, spec, 1);
  for (auto& spec : cli::command_registry()) {
    auto space = spec.name.find(' ');
    if (space == std::string::npos) continue;
    std::string parent = spec.name.substr(0, space);
    CLI::App* p = find_sub(app, parent);
    if (!p) p = app.add_subcommand(parent, parent + " commands");
    add(*p, spec.name.substr(space + 1), spec, 2);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help / --version exit 0; any usage error (unknown option, a value that does not
    // convert or fails its check) exits 2, the shell convention, not CLI11's 1xx codes
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    cli::set_default_threads();
    return chosen ? chosen() : 1;
  } catch (const std::exception& e) {
    const std::string message = describe_exception(e);
    std::cerr << "lawcat: error: " << message << "\n";
    log::write_to_files(log::Level::error, "lawcat: error: " + message);  // the run's run.log, if one is open
    return 1;
  }
}
