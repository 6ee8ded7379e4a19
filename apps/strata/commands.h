// The `strata` binary's subcommands. Each one is a name, a one-line summary, a function that
// declares its flags on a CLI11 subcommand (binding them to a typed config it owns), and a
// function that runs it after parsing and returns the process exit code.
//
// To add one: write cmd_<name>.cc with a function returning a Command, and list it in
// AllCommands() (commands.cc). Mains stay thin: Run() validates the config and calls into a
// library (server::Run, prefill::Run, ...).
#pragma once

#include <signal.h>

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace strata::apps {

struct Command {
  std::string name;
  std::string summary;
  // Declares flags on `app`; returns the function to run once parsing succeeded.
  std::function<std::function<int()>(CLI::App& app)> configure;
};

std::vector<Command> AllCommands();

// Blocks SIGINT and SIGTERM in the calling thread, and so in every thread it starts afterwards,
// and returns that set: a role's main thread then takes them with sigwait()/sigtimedwait().
sigset_t BlockStopSignals();

// One subcommand per file.
Command InfoCommand();
Command GenModelCommand();
Command BenchCommand();
Command TokenizeCommand();
Command GenerateCommand();
Command EpWorkerCommand();
Command ServeCommand();
Command ServerCommand();
Command PrefillCommand();
Command DecodeCommand();
Command KvCacheCommand();

}  // namespace strata::apps
