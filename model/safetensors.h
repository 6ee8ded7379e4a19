// Reading safetensors checkpoints: one file or a sharded set with
// `model.safetensors.index.json`, memory-mapped read-only (MAP_PRIVATE).
//
// File layout: an 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {"format": "pt"}, "<name>": {"dtype": "BF16", "shape": [r, c],
//    "data_offsets": [begin, end]}, ...}
// then the data area; offsets are relative to the data area's start.
//
// The header is untrusted input and fully bounds-checked: N against the file size and the
// 100 MB limit, the JSON syntax, duplicate names, known dtypes, begin <= end <= data size,
// end - begin == prod(shape) * dtype size (without overflow), and no two tensors overlapping.
// A violation is a DataLoss (truncated/corrupt) or InvalidArgument (unsupported) Status whose
// message names the file and the tensor; nothing here crashes on bad input.
//
// Thread-safety: a SafetensorsModel is immutable after Open(); any number of threads may read
// it and the tensor bytes it points to. TensorView::data stays valid while the model lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/half.h"
#include "common/status.h"

namespace strata::model {

enum class TensorDtype {
  kF32,
  kF16,
  kBF16,
  kF8E4M3,  // float8_e4m3fn (no infinities, max 448)
  kF8E5M2,  // raw only
  kF64,     // raw only
  kI8,      // raw only
  kU8,      // raw only
  kI16,     // raw only
  kI32,     // raw only
  kI64,     // raw only
  kBool,    // raw only
};

// "F32", "BF16", "F8_E4M3", ... as written in safetensors headers.
std::string_view TensorDtypeName(TensorDtype dtype);
StatusOr<TensorDtype> ParseTensorDtype(std::string_view name);
size_t TensorDtypeSize(TensorDtype dtype);

// One tensor inside a mapped file (or a parsed buffer). Non-owning.
struct TensorView {
  std::string name;
  TensorDtype dtype = TensorDtype::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  int64_t NumElements() const;
};

// The parsed header of one safetensors file held in memory.
struct SafetensorsHeader {
  std::vector<TensorView> tensors;  // sorted by name; data points into the parsed buffer
  std::map<std::string, std::string> metadata;
  size_t data_offset = 0;  // 8 + N
};

inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

// Parses and validates the whole file image `file` (header and data area). `label` (usually
// the path) prefixes every error message. The returned views point into `file`.
StatusOr<SafetensorsHeader> ParseSafetensors(std::span<const uint8_t> file, std::string_view label);

// One memory-mapped safetensors file. Move-only; unmaps on destruction.
class SafetensorsFile {
 public:
  static StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  size_t size_bytes() const { return size_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  SafetensorsHeader header_;
};

// A checkpoint: every tensor of every shard, by name.
class SafetensorsModel {
 public:
  // `path` is a directory (with model.safetensors.index.json, else model.safetensors, else its
  // single *.safetensors file) or one .safetensors file. With an index, every shard it names is
  // opened; a tensor the index maps to a shard that lacks it, a tensor present in two shards,
  // or a shard name with a path separator is an error.
  static StatusOr<SafetensorsModel> Open(const std::string& path);

  // nullptr when absent.
  const TensorView* Find(std::string_view name) const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  size_t num_tensors() const { return by_name_.size(); }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*, std::less<>> by_name_;
};

// The name of the FP8 block scale of weight `name`: "<name>_scale_inv".
std::string ScaleInvName(std::string_view weight_name);

// Converts `t` to float into `out` (out.size() == t.NumElements()). F32/F16/BF16 convert
// exactly; F8_E4M3 needs `scale_inv` (F32 or BF16, shape [ceil(rows/block_rows),
// ceil(cols/block_cols)] of the 2-D weight) and dequantizes w[i][j] = fp8[i][j] *
// scale_inv[i / block_rows][j / block_cols]. Other dtypes: InvalidArgument.
Status ConvertToFloat(const TensorView& t, const TensorView* scale_inv, std::span<float> out,
                      int64_t block_rows = 128, int64_t block_cols = 128);

// Reads tensor `name` of `model` as float, applying `<name>_scale_inv` to an F8_E4M3 tensor.
StatusOr<std::vector<float>> ReadTensorAsFloat(const SafetensorsModel& model, std::string_view name,
                                               int64_t block_rows = 128, int64_t block_cols = 128);
// Same, rounded to bfloat16 (a BF16 tensor is copied bit for bit).
StatusOr<std::vector<bf16>> ReadTensorAsBf16(const SafetensorsModel& model, std::string_view name,
                                             int64_t block_rows = 128, int64_t block_cols = 128);

}  // namespace strata::model
