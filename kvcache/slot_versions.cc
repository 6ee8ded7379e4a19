#include "kvcache/slot_versions.h"

#include <cstring>
#include <string>

namespace strata::kvcache {

StatusOr<std::unique_ptr<SlotVersions>> SlotVersions::Create(transport::Transport& transport,
                                                             int64_t num_slots) {
  if (num_slots < 1) {
    return InvalidArgumentError("a version table of " + std::to_string(num_slots) + " slots");
  }
  const uint64_t bytes = static_cast<uint64_t>(num_slots) * sizeof(uint64_t);
  STRATA_ASSIGN_OR_RETURN(auto region, transport.AllocateMemory(bytes));
  std::memset(region->data(), 0, bytes);
  return std::unique_ptr<SlotVersions>(new SlotVersions(std::move(region)));
}

}  // namespace strata::kvcache
