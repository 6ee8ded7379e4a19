#include "common/config.h"

#include <cctype>
#include <iostream>

namespace strata {

std::string EnvNameForFlag(std::string_view flag) {
  while (!flag.empty() && flag.front() == '-') flag.remove_prefix(1);
  std::string env = "STRATA_";
  for (char c : flag) {
    env += (c == '-' || c == '.') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return env;
}

CLI::Option* AddSwitch(CLI::App& app, std::string_view name, bool* value, std::string help) {
  return app.add_flag("--" + std::string(name), *value, std::move(help))
      ->envname(EnvNameForFlag(name));
}

Status FlagError(std::string_view flag, std::string_view why) {
  std::string message = "--";
  while (!flag.empty() && flag.front() == '-') flag.remove_prefix(1);
  message += flag;
  message += ": ";
  message += why;
  return InvalidArgumentError(std::move(message));
}

ParseOutcome ParseCommandLine(CLI::App& app, int argc, const char* const* argv) {
  ParseOutcome outcome;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    outcome.kind = ParseOutcome::Kind::kHelpShown;
    outcome.message = app.help();
    std::cout << outcome.message;
  } catch (const CLI::CallForAllHelp& e) {
    outcome.kind = ParseOutcome::Kind::kHelpShown;
    outcome.message = app.help("", CLI::AppFormatMode::All);
    std::cout << outcome.message;
  } catch (const CLI::CallForVersion& e) {
    outcome.kind = ParseOutcome::Kind::kHelpShown;
    outcome.message = e.what();
    std::cout << outcome.message << "\n";
  } catch (const CLI::ParseError& e) {
    outcome.kind = ParseOutcome::Kind::kError;
    outcome.exit_code = 2;
    std::string what = e.what();
    // CLI11 says "The following arguments were not expected: --x" for unknown flags and
    // subcommands; keep its wording (it names them) and point at --help.
    outcome.message = app.get_name() + ": " + what + "\nRun with --help for usage.";
    std::cerr << outcome.message << "\n";
  }
  return outcome;
}

}  // namespace strata
