// Typed configuration from command-line flags, each with a STRATA_* environment variable
// (STYLE.md habit 6). Services declare a plain struct of settings and bind each field to a flag
// with AddFlag(); the environment variable name is derived from the flag (--max-num-seqs ->
// STRATA_MAX_NUM_SEQS) and shown in --help. An explicit flag wins over the environment.
// Validation happens once at start-up; errors name the flag.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <string_view>

#include "common/status.h"

namespace strata {

// "--max-num-seqs" or "max-num-seqs" -> "STRATA_MAX_NUM_SEQS".
std::string EnvNameForFlag(std::string_view flag);

// Binds `*value` to "--name" (and to STRATA_NAME). Returns the option for further settings
// (->check(CLI::Range(...)), ->required(), ...).
template <typename T>
CLI::Option* AddFlag(CLI::App& app, std::string_view name, T* value, std::string help) {
  std::string flag = "--" + std::string(name);
  return app.add_option(flag, *value, std::move(help))
      ->envname(EnvNameForFlag(name))
      ->capture_default_str();
}

// A boolean switch "--name" (also STRATA_NAME=1/0/true/false).
CLI::Option* AddSwitch(CLI::App& app, std::string_view name, bool* value, std::string help);

// The error for a bad flag value found by validation after parsing: "--flag: why".
Status FlagError(std::string_view flag, std::string_view why);

// Outcome of parsing a command line.
struct ParseOutcome {
  enum class Kind { kRun, kHelpShown, kError } kind = Kind::kRun;
  int exit_code = 0;    // 0 for help, 2 for a usage error
  std::string message;  // what was printed (help text or the error)
};

// Parses argv into `app`. Help (-h/--help) prints to stdout and returns kHelpShown (exit 0);
// an unknown flag or subcommand, a missing required flag or a bad value prints the error, naming
// the flag, to stderr and returns kError with exit code 2.
ParseOutcome ParseCommandLine(CLI::App& app, int argc, const char* const* argv);

}  // namespace strata
