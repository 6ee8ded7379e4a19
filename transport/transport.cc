#include "transport/transport.h"

#include <string>

namespace strata::transport {

Status ValidateTransfer(const Transfer& transfer) {
  if (transfer.peer == kInvalidPeer) return InvalidArgumentError("transfer names no peer");
  if (transfer.local == nullptr) return InvalidArgumentError("transfer has no local region");
  if (transfer.length == 0) return InvalidArgumentError("transfer of 0 bytes");
  const uint64_t local_size = transfer.local->size();
  if (transfer.local_offset > local_size || transfer.length > local_size - transfer.local_offset) {
    return InvalidArgumentError("local range [" + std::to_string(transfer.local_offset) + ", +" +
                                std::to_string(transfer.length) + ") is outside the region of " +
                                std::to_string(local_size) + " bytes");
  }
  const uint64_t remote_size = transfer.remote.length;
  if (transfer.remote_offset > remote_size ||
      transfer.length > remote_size - transfer.remote_offset) {
    return InvalidArgumentError("remote range [" + std::to_string(transfer.remote_offset) + ", +" +
                                std::to_string(transfer.length) +
                                ") is outside the remote region of " + std::to_string(remote_size) +
                                " bytes");
  }
  if (transfer.remote.packed_key.empty()) {
    return InvalidArgumentError("remote region has no packed key");
  }
  return OkStatus();
}

}  // namespace strata::transport
