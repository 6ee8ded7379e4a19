// The `strata` binary: parses the command line and runs one subcommand. Exit codes: what the
// subcommand returns; 2 for a usage error (unknown subcommand or flag, bad value), naming it.
#include <iostream>

#include "apps/strata/commands.h"
#include "common/config.h"
#include "common/log.h"
#include "common/version.h"

int main(int argc, char** argv) {
  strata::log::InitFromEnvironment();
  CLI::App app{"Strata: disaggregated serving of Mixture-of-Experts language models", "strata"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(strata::kVersion) + " (" + strata::kGitSha + ")");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->envname("STRATA_LOG_LEVEL")
      ->capture_default_str();

  std::function<int()> to_run;
  auto commands = strata::apps::AllCommands();
  std::vector<std::function<int()>> runners(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    CLI::App* sub = app.add_subcommand(commands[i].name, commands[i].summary);
    runners[i] = commands[i].configure(*sub);
    sub->callback([&to_run, &runners, i] { to_run = runners[i]; });
  }

  // CLI11 reports a stray word as "a subcommand is required"; name it instead.
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--log-level") {
      ++i;
      continue;
    }
    if (arg.empty() || arg[0] == '-') continue;
    bool known = false;
    for (const auto& c : commands) known = known || c.name == arg;
    if (!known) {
      std::cerr << "strata: unknown subcommand '" << arg << "'\nRun strata --help for the list.\n";
      return 2;
    }
    break;
  }

  auto outcome = strata::ParseCommandLine(app, argc, argv);
  if (outcome.kind == strata::ParseOutcome::Kind::kHelpShown) return 0;
  if (outcome.kind == strata::ParseOutcome::Kind::kError) return outcome.exit_code;
  auto level = strata::log::ParseLevel(log_level);
  if (!level.ok()) {
    std::cerr << "strata: --log-level: " << level.status().message() << "\n";
    return 2;
  }
  strata::log::SetLevel(*level);
  return to_run ? to_run() : 2;
}
