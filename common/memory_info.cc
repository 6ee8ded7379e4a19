#include "common/memory_info.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include "common/config.h"

namespace strata {

std::optional<uint64_t> ParseMemAvailable(std::string_view meminfo) {
  constexpr std::string_view kKey = "MemAvailable:";
  for (size_t start = 0; start < meminfo.size();) {
    size_t end = meminfo.find('\n', start);
    if (end == std::string_view::npos) end = meminfo.size();
    std::string_view line = meminfo.substr(start, end - start);
    start = end + 1;
    if (line.substr(0, kKey.size()) != kKey) continue;
    line.remove_prefix(kKey.size());
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    uint64_t kib = 0;
    auto [rest, error] = std::from_chars(line.data(), line.data() + line.size(), kib);
    if (error != std::errc() || rest == line.data()) return std::nullopt;
    if (std::string_view(rest, line.data() + line.size()) != " kB") return std::nullopt;
    return kib * 1024;
  }
  return std::nullopt;
}

std::optional<uint64_t> AvailableMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return ParseMemAvailable(text.str());
}

Status CheckFitsInMemory(std::string_view flag, uint64_t bytes, std::optional<uint64_t> available,
                         const std::string& what) {
  if (!available.has_value() || bytes <= *available) return OkStatus();
  return FlagError(flag, what + " need " + std::to_string(bytes) +
                             " bytes, more than this machine has available (" +
                             std::to_string(*available) +
                             " bytes, MemAvailable in /proc/meminfo): the kernel would kill the "
                             "process once they fill");
}

}  // namespace strata
