// "host:port" addresses of the transports (UCX listeners and the peers that connect to them),
// split and checked without a name lookup: a command rejects a malformed flag at start-up and
// still waits for a name that does not resolve yet (a Kubernetes Service that comes up later).
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace strata::transport {

struct HostPort {
  std::string host;  // an IPv4 literal or a name; "localhost" stays as written
  int port = 0;      // 0: any free port (listening only)
};

// Splits at the last ':'. InvalidArgument naming `address` when there is no ':', the host is
// empty, or the port is not a number in [0, 65535].
StatusOr<HostPort> SplitHostPort(std::string_view address);

enum class AddressUse { kListen, kConnect };

// For a command's flag: SplitHostPort's checks, and for kConnect a port other than 0 (a peer
// never listens on port 0). The error is "--flag: why", as FlagError's.
Status CheckAddressFlag(std::string_view flag, std::string_view address, AddressUse use);

}  // namespace strata::transport
