// Writing safetensors checkpoints (used by `strata gen-model` and tests): one
// `model.safetensors`, or shards `model-0000i-of-0000n.safetensors` plus
// `model.safetensors.index.json` when the data exceeds max_shard_bytes.
//
// Files are what the official `safetensors` library writes and accepts: the JSON header is
// padded with spaces to a multiple of 8 bytes, `__metadata__` holds {"format": "pt"}, and the
// data area is covered without holes, larger dtypes first so every tensor is aligned to its
// element size. The output depends only on the inputs (same specs and bytes -> same files).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/safetensors.h"

namespace strata::model {

struct TensorSpec {
  std::string name;
  TensorDtype dtype = TensorDtype::kBF16;
  std::vector<int64_t> shape;
  uint64_t Bytes() const;
};

// Fills the bytes of tensor `index` (an index into the spec list). Called once per tensor from
// the writing thread; it may use other threads internally. `out` is zero-initialized.
using TensorFiller = std::function<Status(size_t index, std::span<uint8_t> out)>;

struct SafetensorsWriteOptions {
  // 0: always one file. Otherwise shards of at most this many data bytes (a single larger
  // tensor gets a shard of its own); one file, without an index, when everything fits.
  uint64_t max_shard_bytes = 0;
  std::map<std::string, std::string> metadata = {{"format", "pt"}};
  // Called after each tensor with the data bytes written so far and the total.
  std::function<void(uint64_t done_bytes, uint64_t total_bytes)> on_progress;
};

// Writes the checkpoint into directory `dir` (which must exist); returns the file names written
// (shards, then the index when there is one). Names must be unique.
StatusOr<std::vector<std::string>> WriteSafetensors(const std::string& dir,
                                                    const std::vector<TensorSpec>& specs,
                                                    const TensorFiller& fill,
                                                    const SafetensorsWriteOptions& options = {});

// One safetensors file image in memory, from specs and their bytes (data[i].size() must equal
// specs[i].Bytes()). For tests and fuzz seeds.
StatusOr<std::vector<uint8_t>> SerializeSafetensors(
    const std::vector<TensorSpec>& specs, const std::vector<std::vector<uint8_t>>& data,
    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace strata::model
