// UCX context and memory registration (internal to transport/ucx).
#pragma once

#include <ucp/api/ucp.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "transport/transport.h"

namespace strata::transport::ucx {

// The local regions that peers may access by active message; every incoming AM Put/Get is
// checked against it. Thread-safe.
class RegionTable {
 public:
  void Add(uint64_t base, uint64_t length);
  void Remove(uint64_t base, uint64_t length);
  // True when [address, address + length) lies inside one registered region.
  bool Contains(uint64_t address, uint64_t length) const;

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<uint64_t, uint64_t>> regions_;  // (base, length); few, so a flat list
};

// Owns the ucp_context; shared by the transport and its regions, so a Region may outlive the
// transport that made it. ucp_mem_map / ucp_rkey_pack are thread-safe on it (the context is
// created with mt_workers_shared).
class UcxContext {
 public:
  static StatusOr<std::shared_ptr<UcxContext>> Create(const std::string& tls);
  ~UcxContext();
  UcxContext(const UcxContext&) = delete;
  UcxContext& operator=(const UcxContext&) = delete;

  ucp_context_h get() const { return context_; }
  RegionTable& regions() { return regions_; }

 private:
  UcxContext() = default;
  ucp_context_h context_ = nullptr;
  RegionTable regions_;
};

StatusOr<std::unique_ptr<Region>> RegisterUcxMemory(std::shared_ptr<UcxContext> context, void* data,
                                                    uint64_t bytes);
// Memory allocated by UCX (ucp_mem_map with UCP_MEM_MAP_ALLOCATE: System V or POSIX shared
// memory first, by UCX's default UCX_ALLOC_PRIO), so that peers on this host can map it
// (ucp_rkey_ptr) and copy to and from it directly. Freed when the Region is destroyed.
StatusOr<std::unique_ptr<Region>> AllocateUcxMemory(std::shared_ptr<UcxContext> context,
                                                    uint64_t bytes);

}  // namespace strata::transport::ucx
