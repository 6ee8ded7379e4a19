#include "common/config.h"

#include <cctype>
#include <iostream>
#include <limits>

namespace strata {

std::string EnvNameForFlag(std::string_view flag) {
  while (!flag.empty() && flag.front() == '-') flag.remove_prefix(1);
  std::string env = "STRATA_";
  for (char c : flag) {
    env += (c == '-' || c == '.') ? '_'
                                  : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return env;
}

StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  size_t i = 0;
  uint64_t whole = 0;
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  bool overflow = false;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    whole = whole * 10 + static_cast<uint64_t>(text[i] - '0');
    overflow = overflow || whole > kMax;
  }
  if (i == 0) {
    return InvalidArgumentError(quoted + " is not a byte count (a whole number, or one with a " +
                                "unit: 8Gi, 512Mi, 2G, 1.5GiB)");
  }
  // The digits after a decimal point, as numerator / denominator (exact: "1.1k" is 1100).
  uint64_t numerator = 0;
  uint64_t denominator = 1;
  if (i < text.size() && text[i] == '.') {
    const size_t first = ++i;
    for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
      if (denominator > kMax / 10) continue;  // digits past the 18th change nothing that counts
      numerator = numerator * 10 + static_cast<uint64_t>(text[i] - '0');
      denominator *= 10;
    }
    if (i == first) return InvalidArgumentError(quoted + ": no digits after the decimal point");
  }
  std::string unit;
  for (; i < text.size(); ++i)
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();  // "GiB", "GB", "B"
  uint64_t multiplier = 1;
  if (!unit.empty()) {
    static constexpr std::string_view kPrefixes = "kmgt";
    const size_t power = kPrefixes.find(unit[0]);
    const bool binary = unit.size() == 2 && unit[1] == 'i';
    if (power == std::string_view::npos || (unit.size() > 1 && !binary)) {
      return InvalidArgumentError(quoted + ": unknown unit (k, M, G, T are powers of 1000; Ki, " +
                                  "Mi, Gi, Ti powers of 1024; B may follow)");
    }
    for (size_t p = 0; p <= power; ++p) multiplier *= binary ? 1024 : 1000;
  }
  const unsigned __int128 bytes =
      static_cast<unsigned __int128>(whole) * multiplier +
      static_cast<unsigned __int128>(numerator) * multiplier / denominator;
  if (overflow || bytes > kMax) {
    return InvalidArgumentError(quoted + " is more bytes than this flag can hold");
  }
  return static_cast<uint64_t>(bytes);
}

std::string ByteSizeText(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"Ki", "Mi", "Gi", "Ti"};
  int unit = -1;
  while (unit < 3 && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++unit;
  }
  return std::to_string(bytes) + (unit < 0 ? "" : kUnits[unit]);
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
