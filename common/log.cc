#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

namespace strata::log {
namespace {

thread_local std::string t_request_id;

struct Identity {
  std::mutex mu;
  std::string prefix = "[strata:0]";
};
Identity& GetIdentity() {
  static Identity identity;
  return identity;
}

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

spdlog::logger& Logger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::stderr_color_mt("strata");
    l->set_pattern("%Y-%m-%d %H:%M:%S.%e %L %v");
    l->set_level(spdlog::level::trace);  // filtering is ours (g_level)
    return l;
  }();
  return *logger;
}

spdlog::level::level_enum ToSpd(Level level) {
  switch (level) {
    case Level::kTrace: return spdlog::level::trace;
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
    case Level::kOff: return spdlog::level::off;
  }
  return spdlog::level::info;
}

}  // namespace

StatusOr<Level> ParseLevel(std::string_view name) {
  if (name == "trace") return Level::kTrace;
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  if (name == "off") return Level::kOff;
  return InvalidArgumentError("unknown log level '" + std::string(name) +
                              "' (expected trace, debug, info, warn, error or off)");
}

void SetLevel(Level level) { g_level.store(static_cast<int>(level)); }

void SetIdentity(std::string role, int rank) {
  Identity& id = GetIdentity();
  std::lock_guard lock(id.mu);
  id.prefix = "[" + role + ":" + std::to_string(rank) + "]";
}

void InitFromEnvironment() {
  if (const char* env = std::getenv("STRATA_LOG_LEVEL")) {
    auto level = ParseLevel(env);
    if (level.ok()) SetLevel(*level);
  }
}

bool Enabled(Level level) {
  return level != Level::kOff && static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void Write(Level level, std::string_view message) {
  std::string prefix;
  {
    Identity& id = GetIdentity();
    std::lock_guard lock(id.mu);
    prefix = id.prefix;
  }
  const std::string& rid = t_request_id;
  Logger().log(ToSpd(level), "{} [req={}] {}", prefix, rid.empty() ? "-" : rid, message);
}

ScopedRequestId::ScopedRequestId(std::string request_id) : previous_(std::move(t_request_id)) {
  t_request_id = std::move(request_id);
}
ScopedRequestId::~ScopedRequestId() { t_request_id = std::move(previous_); }

const std::string& CurrentRequestId() { return t_request_id; }

}  // namespace strata::log
