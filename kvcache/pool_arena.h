// The KV pool's DRAM arena: one anonymous mapping, huge pages when the system has them
// (MAP_HUGETLB from the reserved pool, else transparent huge pages via madvise), pages touched
// only when a block is first written.
#pragma once

#include <cstdint>
#include <memory>

#include "common/status.h"

namespace strata::kvcache {

class PoolArena {
 public:
  enum class PageKind { kHugeTlb, kTransparentHuge, kNormal };

  // kInvalidArgument for 0 bytes, kResourceExhausted when the mapping fails.
  static StatusOr<std::unique_ptr<PoolArena>> Create(uint64_t bytes, bool try_huge_pages);
  ~PoolArena();
  PoolArena(const PoolArena&) = delete;
  PoolArena& operator=(const PoolArena&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  PageKind page_kind() const { return page_kind_; }

 private:
  PoolArena() = default;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;          // usable bytes (as asked)
  uint64_t mapped_bytes_ = 0;  // rounded up to the page size
  PageKind page_kind_ = PageKind::kNormal;
};

const char* PageKindName(PoolArena::PageKind kind);

}  // namespace strata::kvcache
