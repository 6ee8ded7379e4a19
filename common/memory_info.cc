#include "common/memory_info.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "common/config.h"

namespace strata {
namespace {

// The pieces of `text` between `separator`s (empty ones included).
std::vector<std::string_view> Pieces(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  for (size_t begin = 0; begin <= text.size();) {
    size_t end = text.find(separator, begin);
    if (end == std::string_view::npos) end = text.size();
    pieces.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return pieces;
}

// The number `text` starts with, and what follows it; nullopt when it starts with none.
std::optional<std::pair<uint64_t, std::string_view>> LeadingNumber(std::string_view text) {
  uint64_t value = 0;
  auto [rest, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || rest == text.data()) return std::nullopt;
  return std::make_pair(value, std::string_view(rest, text.data() + text.size() - rest));
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A cgroup file holding one number ("max" or anything else: nullopt).
std::optional<uint64_t> ReadNumber(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.has_value()) return std::nullopt;
  auto number = LeadingNumber(*text);
  if (!number.has_value()) return std::nullopt;
  return number->first;
}

std::optional<uint64_t> Room(std::optional<uint64_t> limit, std::optional<uint64_t> used) {
  // cgroup v1 writes "no limit" as a huge page-aligned number.
  if (!limit.has_value() || *limit >= (uint64_t{1} << 62)) return std::nullopt;
  const uint64_t in_use = used.value_or(0);
  return *limit > in_use ? *limit - in_use : 0;
}

}  // namespace

std::optional<uint64_t> ParseMemAvailable(std::string_view meminfo) {
  constexpr std::string_view kKey = "MemAvailable:";
  for (std::string_view line : Pieces(meminfo, '\n')) {
    if (line.substr(0, kKey.size()) != kKey) continue;
    line.remove_prefix(kKey.size());
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    auto number = LeadingNumber(line);
    if (!number.has_value() || number->second != " kB") return std::nullopt;
    return number->first * 1024;
  }
  return std::nullopt;
}

std::optional<uint64_t> CgroupMemoryRoom(std::string_view proc_self_cgroup,
                                         const std::string& root) {
  // Lines "hierarchy-id:controllers:path"; v2 has "0::path", v1 a line whose controllers name
  // memory.
  for (std::string_view line : Pieces(proc_self_cgroup, '\n')) {
    const size_t first = line.find(':');
    const size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, first);
    const std::string_view names = line.substr(first + 1, second - first - 1);
    const std::string_view where = line.substr(second + 1);  // may hold ':' itself
    const std::string path = where == "/" ? std::string() : std::string(where);
    if (id == "0" && names.empty()) {
      const std::string dir = root + path;
      if (auto room = Room(ReadNumber(dir + "/memory.max"), ReadNumber(dir + "/memory.current"))) {
        return room;
      }
      continue;
    }
    const std::vector<std::string_view> controllers = Pieces(names, ',');
    if (std::find(controllers.begin(), controllers.end(), "memory") != controllers.end()) {
      const std::string dir = root + "/memory" + path;
      return Room(ReadNumber(dir + "/memory.limit_in_bytes"),
                  ReadNumber(dir + "/memory.usage_in_bytes"));
    }
  }
  return std::nullopt;
}

std::optional<uint64_t> AvailableMemoryBytes() {
  std::optional<uint64_t> available;
  if (auto meminfo = ReadFile("/proc/meminfo")) available = ParseMemAvailable(*meminfo);
  if (auto cgroup = ReadFile("/proc/self/cgroup")) {
    if (auto room = CgroupMemoryRoom(*cgroup)) {
      available = available.has_value() ? std::min(*available, *room) : *room;
    }
  }
  return available;
}

Status CheckFitsInMemory(std::string_view flag, uint64_t bytes, std::optional<uint64_t> available,
                         const std::string& what) {
  if (!available.has_value() || bytes <= *available) return OkStatus();
  return FlagError(flag, what + " need " + std::to_string(bytes) +
                             " bytes, more than this machine has available (" +
                             std::to_string(*available) +
                             " bytes: MemAvailable, or the room under this cgroup's memory limit "
                             "when smaller); the kernel would kill the process once they fill");
}

}  // namespace strata
