// Typed configuration from command-line flags, each with a STRATA_* environment variable
// (STYLE.md habit 6). Services declare a plain struct of settings and bind each field to a flag
// with AddFlag(); the environment variable name is derived from the flag (--max-num-seqs ->
// STRATA_MAX_NUM_SEQS) and shown in --help. An explicit flag wins over the environment.
// Validation happens once at start-up; errors name the flag.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
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

// A byte count as people write it: "1073741824", "8Gi", "512Mi", "2G", "1.5GiB". Units as in
// Kubernetes quantities: k, M, G, T are powers of 1000; Ki, Mi, Gi, Ti powers of 1024; a trailing
// "B" is allowed and case is ignored. A fraction of a byte is dropped. A sign, junk, or more
// than 2^63 - 1 bytes is InvalidArgument saying what was wrong.
StatusOr<uint64_t> ParseByteSize(std::string_view text);

// `bytes` as ParseByteSize reads it back, in the largest binary unit that holds it whole
// (1073741824 -> "1Gi", 1536 -> "1536").
std::string ByteSizeText(uint64_t bytes);

// AddFlag for a byte count (ParseByteSize's forms; a bad one is a usage error naming the flag).
template <typename T>
CLI::Option* AddByteSizeFlag(CLI::App& app, std::string_view name, T* value, std::string help) {
  static_assert(sizeof(T) == 8, "byte counts are 64-bit");
  return AddFlag(app, name, value, std::move(help) + "; 8Gi, 512Mi and 2G work too")
      ->transform([](const std::string& text) {
        StatusOr<uint64_t> bytes = ParseByteSize(text);
        if (!bytes.ok()) throw CLI::ValidationError(bytes.status().message());
        return std::to_string(*bytes);
      })
      ->type_name("BYTES")
      ->default_str(ByteSizeText(static_cast<uint64_t>(*value)));
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
