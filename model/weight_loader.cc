#include "model/weight_loader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "common/page_memory.h"

namespace strata::model {
namespace {

std::string ShapeString(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

StatusOr<const TensorView*> WeightLoader::Find(const std::string& name,
                                               std::vector<int64_t> shape) const {
  const TensorView* t = model_.Find(name);
  if (t == nullptr) return NotFoundError("checkpoint has no tensor " + name);
  if (t->shape != shape) {
    return InvalidArgumentError("tensor " + name + " has shape " + ShapeString(t->shape) +
                                ", expected " + ShapeString(shape));
  }
  return t;
}

StatusOr<ops::WeightView> WeightLoader::Linear(const std::string& name, int64_t rows,
                                               int64_t cols) {
  STRATA_ASSIGN_OR_RETURN(const TensorView* t, Find(name, {rows, cols}));
  if (t->dtype == TensorDtype::kBF16) {
    mapped_.push_back(t);
    mapped_bytes_ += static_cast<int64_t>(t->bytes);
    return ops::WeightView{ops::DType::kBF16, t->data, rows, cols, 0};
  }
  STRATA_ASSIGN_OR_RETURN(std::vector<bf16> data,
                          ReadTensorAsBf16(model_, name, block_rows_, block_cols_));
  owned_bf16_.push_back(std::move(data));
  return ops::WeightView{ops::DType::kBF16, owned_bf16_.back().data(), rows, cols, 0};
}

StatusOr<ops::WeightView> WeightLoader::LinearTransposedMistake(const std::string& name,
                                                                int64_t rows, int64_t cols) {
  STRATA_ASSIGN_OR_RETURN(const TensorView* t, Find(name, {rows, cols}));
  (void)t;
  STRATA_ASSIGN_OR_RETURN(std::vector<bf16> data,
                          ReadTensorAsBf16(model_, name, block_rows_, block_cols_));
  std::vector<bf16> wrong(data.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) wrong[r * cols + c] = data[c * rows + r];
  }
  owned_bf16_.push_back(std::move(wrong));
  return ops::WeightView{ops::DType::kBF16, owned_bf16_.back().data(), rows, cols, 0};
}

StatusOr<ops::WeightView> WeightLoader::LinearF32(const std::string& name, int64_t rows,
                                                  int64_t cols) {
  STRATA_ASSIGN_OR_RETURN(const TensorView* t, Find(name, {rows, cols}));
  (void)t;
  STRATA_ASSIGN_OR_RETURN(std::vector<float> data,
                          ReadTensorAsFloat(model_, name, block_rows_, block_cols_));
  owned_f32_.push_back(std::move(data));
  return ops::WeightView{ops::DType::kF32, owned_f32_.back().data(), rows, cols, 0};
}

StatusOr<std::vector<float>> WeightLoader::Vector(const std::string& name, int64_t n) {
  STRATA_ASSIGN_OR_RETURN(const TensorView* t, Find(name, {n}));
  (void)t;
  return ReadTensorAsFloat(model_, name, block_rows_, block_cols_);
}

std::vector<bf16>& WeightLoader::OwnBf16(std::vector<bf16> data) {
  owned_bf16_.push_back(std::move(data));
  return owned_bf16_.back();
}

void* WeightLoader::OwnBytes(size_t bytes) {
  // Large buffers on 2 MiB boundaries, asking for transparent huge pages: fewer page faults
  // while the copy is written, fewer TLB misses while the forward streams it.
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t align = bytes >= kHuge ? kHuge : 64;
  const size_t size = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
  void* p = std::aligned_alloc(align, size);
  if (p == nullptr) throw std::bad_alloc();
  if (align == kHuge) {
    madvise(p, size, MADV_HUGEPAGE);
    (void)PopulateForWrite(p, size);  // one call instead of a fault per page
  }
  owned_bytes_.emplace_back(p);
  return p;
}

void WeightLoader::Repacked(const ops::WeightView& w) {
  std::erase_if(mapped_, [&](const TensorView* t) { return t->data == w.data; });
}

void WeightLoader::Prefault() const {
  volatile uint8_t sink = 0;
  uint8_t acc = 0;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  for (const TensorView* t : mapped_) {
    // One call maps the whole range (no fault per page); touch pages where it is unsupported.
    if (PopulateForRead(t->data, t->bytes)) continue;
    for (size_t off = 0; off < t->bytes; off += page) acc ^= t->data[off];
  }
  sink = acc;
  (void)sink;
}

}  // namespace strata::model
