#include "common/memory_info.h"

#include <algorithm>
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

namespace {

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
  uint64_t value = 0;
  auto [rest, error] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (error != std::errc() || rest == text->data()) return std::nullopt;
  return value;
}

std::optional<uint64_t> Room(std::optional<uint64_t> limit, std::optional<uint64_t> used) {
  // cgroup v1 writes "no limit" as a huge page-aligned number.
  if (!limit.has_value() || *limit >= (uint64_t{1} << 62)) return std::nullopt;
  const uint64_t in_use = used.value_or(0);
  return *limit > in_use ? *limit - in_use : 0;
}

}  // namespace

std::optional<uint64_t> CgroupMemoryRoom(std::string_view proc_self_cgroup,
                                         const std::string& root) {
  // Lines "hierarchy-id:controllers:path"; v2 has "0::path", v1 a line whose controllers name
  // memory.
  for (size_t start = 0; start < proc_self_cgroup.size();) {
    size_t end = proc_self_cgroup.find('\n', start);
    if (end == std::string_view::npos) end = proc_self_cgroup.size();
    const std::string_view line = proc_self_cgroup.substr(start, end - start);
    start = end + 1;
    const size_t first = line.find(':');
    const size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    std::string path(line.substr(second + 1));
    if (path == "/") path.clear();
    if (line.substr(0, first) == "0" && controllers.empty()) {
      const std::string dir = root + path;
      if (auto room = Room(ReadNumber(dir + "/memory.max"), ReadNumber(dir + "/memory.current"))) {
        return room;
      }
      continue;
    }
    for (size_t c = 0; c <= controllers.size();) {
      size_t comma = controllers.find(',', c);
      if (comma == std::string_view::npos) comma = controllers.size();
      if (controllers.substr(c, comma - c) == "memory") {
        const std::string dir = root + "/memory" + path;
        return Room(ReadNumber(dir + "/memory.limit_in_bytes"),
                    ReadNumber(dir + "/memory.usage_in_bytes"));
      }
      c = comma + 1;
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
