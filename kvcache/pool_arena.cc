#include "kvcache/pool_arena.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

namespace strata::kvcache {

const char* PageKindName(PoolArena::PageKind kind) {
  switch (kind) {
    case PoolArena::PageKind::kHugeTlb:
      return "hugetlb";
    case PoolArena::PageKind::kTransparentHuge:
      return "thp";
    case PoolArena::PageKind::kNormal:
      return "4k";
  }
  return "?";
}

StatusOr<std::unique_ptr<PoolArena>> PoolArena::Create(uint64_t bytes, bool try_huge_pages) {
  if (bytes == 0) return InvalidArgumentError("the pool arena needs a capacity above 0 bytes");
  constexpr uint64_t kHugePage = 2ull << 20;
  auto arena = std::unique_ptr<PoolArena>(new PoolArena());
  arena->size_ = bytes;
  void* p = MAP_FAILED;
  if (try_huge_pages) {
    const uint64_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    // No MAP_NORESERVE here: the huge pages are reserved at mmap time (it fails when the
    // reserved pool is too small) instead of a SIGBUS on first touch.
    p = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
             -1, 0);
    if (p != MAP_FAILED) {
      arena->mapped_bytes_ = rounded;
      arena->page_kind_ = PageKind::kHugeTlb;
    }
  }
  if (p == MAP_FAILED) {
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
             -1, 0);
    if (p == MAP_FAILED) {
      return ResourceExhaustedError("cannot map a pool arena of " + std::to_string(bytes) +
                                    " bytes: " + std::strerror(errno));
    }
    arena->mapped_bytes_ = bytes;
    if (try_huge_pages && madvise(p, bytes, MADV_HUGEPAGE) == 0) {
      arena->page_kind_ = PageKind::kTransparentHuge;
    }
  }
  arena->data_ = static_cast<uint8_t*>(p);
  return arena;
}

PoolArena::~PoolArena() {
  if (data_ != nullptr) munmap(data_, mapped_bytes_);
}

}  // namespace strata::kvcache
