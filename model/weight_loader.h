// Internal to the forward: turns checkpoint tensors into what the ops read. bf16 tensors are
// used in place (mmap); f32/f16/fp8-block tensors are converted to bf16 once and owned here.
#pragma once

#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/safetensors.h"
#include "ops/backend.h"

namespace strata::model {

class WeightLoader {
 public:
  WeightLoader(SafetensorsModel model, int64_t fp8_block_rows, int64_t fp8_block_cols)
      : model_(std::move(model)), block_rows_(fp8_block_rows), block_cols_(fp8_block_cols) {}

  bool Has(const std::string& name) const { return model_.Find(name) != nullptr; }
  // A [rows, cols] matrix as bf16. kNotFound / kInvalidArgument name the tensor.
  StatusOr<ops::WeightView> Linear(const std::string& name, int64_t rows, int64_t cols);
  // Same, stored transposed by mistake (test-only ForwardMistake::kTransposeExpert): element
  // (r, c) is read from flat index c * rows + r.
  StatusOr<ops::WeightView> LinearTransposedMistake(const std::string& name, int64_t rows,
                                                    int64_t cols);
  // A [rows, cols] matrix as f32 (router weights: exact logits).
  StatusOr<ops::WeightView> LinearF32(const std::string& name, int64_t rows, int64_t cols);
  // A vector of n elements as f32.
  StatusOr<std::vector<float>> Vector(const std::string& name, int64_t n);
  // Owns a bf16 buffer for derived weights (MLA absorption).
  std::vector<bf16>& OwnBf16(std::vector<bf16> data);
  // Owns `bytes` of 64-byte aligned memory (weights repacked into a backend's tile layout).
  void* OwnBytes(size_t bytes);
  // `w` was copied into a backend's layout: its mapped tensor (if it is one) is no longer read by
  // the forward and need not be prefaulted.
  void Repacked(const ops::WeightView& w);

  // Reads every page of the tensors used in place, so the first forward does not fault.
  void Prefault() const;
  int64_t mapped_bytes_used() const { return mapped_bytes_; }

 private:
  StatusOr<const TensorView*> Find(const std::string& name, std::vector<int64_t> shape) const;

  SafetensorsModel model_;
  int64_t block_rows_, block_cols_;
  std::deque<std::vector<bf16>> owned_bf16_;
  std::deque<std::vector<float>> owned_f32_;
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<void, FreeDeleter>> owned_bytes_;
  std::vector<const TensorView*> mapped_;
  int64_t mapped_bytes_ = 0;
};

}  // namespace strata::model
