#include "common/page_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace strata {
namespace {

#ifdef MADV_POPULATE_READ
constexpr int kPopulateRead = MADV_POPULATE_READ;
#else
constexpr int kPopulateRead = 22;   // Linux 5.14+
#endif
#ifdef MADV_POPULATE_WRITE
constexpr int kPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kPopulateWrite = 23;  // Linux 5.14+
#endif

constexpr uint64_t kHugePage = uint64_t{2} << 20;

bool Populate(const void* data, uint64_t bytes, int advice) {
  if (bytes == 0) return true;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(data) + bytes;
  return madvise(reinterpret_cast<void*>(begin), end - begin, advice) == 0;
}

}  // namespace

bool PopulateForWrite(void* data, uint64_t bytes) { return Populate(data, bytes, kPopulateWrite); }

bool PopulateForRead(const void* data, uint64_t bytes) {
  return Populate(data, bytes, kPopulateRead);
}

StatusOr<std::shared_ptr<void>> AllocateZeroedPages(uint64_t bytes, bool populate) {
  const uint64_t size = bytes == 0 ? 1 : bytes;
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return ResourceExhaustedError("cannot map " + std::to_string(bytes) +
                                  " bytes: " + std::strerror(errno));
  }
  if (size >= kHugePage) (void)madvise(p, size, MADV_HUGEPAGE);  // a hint: fine if refused
  if (populate) (void)PopulateForWrite(p, size);                 // else on first touch
  return std::shared_ptr<void>(p, [size](void* q) { munmap(q, size); });
}

}  // namespace strata
