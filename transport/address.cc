#include "transport/address.h"

#include <charconv>

#include "common/config.h"

namespace strata::transport {

StatusOr<HostPort> SplitHostPort(std::string_view address) {
  const std::string quoted = "'" + std::string(address) + "'";
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) {
    return InvalidArgumentError("address must be host:port, got " + quoted);
  }
  HostPort out;
  out.host = std::string(address.substr(0, colon));
  if (out.host.empty()) return InvalidArgumentError("no host in address " + quoted);
  const std::string_view port = address.substr(colon + 1);
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), out.port);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || out.port < 0 ||
      out.port > 65535) {
    return InvalidArgumentError("bad port in address " + quoted + " (a number in [0, 65535])");
  }
  return out;
}

Status CheckAddressFlag(std::string_view flag, std::string_view address, AddressUse use) {
  StatusOr<HostPort> split = SplitHostPort(address);
  if (!split.ok()) return FlagError(flag, split.status().message());
  if (use == AddressUse::kConnect && split->port == 0) {
    return FlagError(
        flag, "'" + std::string(address) + "' has port 0: give the port the peer listens on");
  }
  return OkStatus();
}

}  // namespace strata::transport
