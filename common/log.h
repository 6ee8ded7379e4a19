// Logging: every line carries the process role, its rank and the current request id
// (STYLE.md habit 11):
//   2026-11-22 17:46:46.123 I [decode:1] [req=cmpl-42] admitted 3 blocks
// Role and rank are process-wide (set once at start-up); the request id is per thread and set
// by a ScopedRequestId for the duration of the work on that request. Thread-safe.
#pragma once

#include <spdlog/fmt/fmt.h>

#include <string>
#include <string_view>

#include "common/status.h"

namespace strata::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// Parses "trace|debug|info|warn|error|off".
StatusOr<Level> ParseLevel(std::string_view name);
void SetLevel(Level level);
// Process identity shown on every line, e.g. SetIdentity("prefill", 0).
void SetIdentity(std::string role, int rank);
// Level from STRATA_LOG_LEVEL when set and valid; otherwise info.
void InitFromEnvironment();

void Write(Level level, std::string_view message);
bool Enabled(Level level);

// Sets the calling thread's request id for its lifetime, restoring the previous one after.
class ScopedRequestId {
 public:
  explicit ScopedRequestId(std::string request_id);
  ~ScopedRequestId();
  ScopedRequestId(const ScopedRequestId&) = delete;
  ScopedRequestId& operator=(const ScopedRequestId&) = delete;

 private:
  std::string previous_;
};
const std::string& CurrentRequestId();

template <typename... Args>
void Trace(fmt::format_string<Args...> f, Args&&... args) {
  if (Enabled(Level::kTrace)) Write(Level::kTrace, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void Debug(fmt::format_string<Args...> f, Args&&... args) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void Info(fmt::format_string<Args...> f, Args&&... args) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void Warn(fmt::format_string<Args...> f, Args&&... args) {
  if (Enabled(Level::kWarn)) Write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void Error(fmt::format_string<Args...> f, Args&&... args) {
  if (Enabled(Level::kError)) Write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace strata::log
