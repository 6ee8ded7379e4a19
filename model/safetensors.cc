// Memory-mapped safetensors files, sharded checkpoints and tensor conversion to float/bf16.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "model/fp8.h"

namespace strata::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string ErrnoText() { return std::strerror(errno); }

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError(path + ": cannot open: " + ErrnoText());
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgumentError(path + ": not a regular file");
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* map = mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      std::string why = ErrnoText();
      ::close(fd);
      return InternalError(path + ": mmap failed: " + why);
    }
    file->map_ = map;
  }
  ::close(fd);
  std::span<const uint8_t> bytes(static_cast<const uint8_t*>(file->map_), file->size_);
  STRATA_ASSIGN_OR_RETURN(file->header_, ParseSafetensors(bytes, path));
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) munmap(map_, size_);
}

StatusOr<SafetensorsModel> SafetensorsModel::Open(const std::string& path) {
  SafetensorsModel model;
  std::vector<std::string> shard_paths;
  std::map<std::string, std::string> index;  // tensor -> shard file name
  std::string index_path;
  if (IsDirectory(path)) {
    index_path = path + "/model.safetensors.index.json";
    if (Exists(index_path)) {
      std::ifstream in(index_path, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) {
        return DataLossError(index_path + ": not a JSON object");
      }
      auto wm = j.find("weight_map");
      if (wm == j.end() || !wm->is_object()) {
        return DataLossError(index_path + ": missing weight_map object");
      }
      std::set<std::string> files;
      for (const auto& [name, file] : wm->items()) {
        if (!file.is_string()) {
          return DataLossError(index_path + ": weight_map['" + name + "'] is not a string");
        }
        std::string f = file.get<std::string>();
        if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..") {
          return InvalidArgumentError(index_path + ": weight_map['" + name + "']: shard name '" +
                                      f + "' must be a plain file name");
        }
        index[name] = f;
        files.insert(f);
      }
      for (const auto& f : files) shard_paths.push_back(path + "/" + f);
    } else if (Exists(path + "/model.safetensors")) {
      shard_paths.push_back(path + "/model.safetensors");
    } else {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(path, ec)) {
        if (entry.path().extension() == ".safetensors") shard_paths.push_back(entry.path());
      }
      if (shard_paths.size() != 1) {
        return NotFoundError(path + ": no model.safetensors.index.json or model.safetensors (" +
                             std::to_string(shard_paths.size()) + " *.safetensors files)");
      }
    }
  } else {
    shard_paths.push_back(path);
  }

  std::map<std::string_view, std::string> owner;  // tensor -> shard file name
  for (const auto& shard : shard_paths) {
    STRATA_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(shard));
    const std::string shard_name = fs::path(shard).filename();
    for (const auto& t : file->header().tensors) {
      auto [it, inserted] = model.by_name_.emplace(t.name, &t);
      if (!inserted) {
        return DataLossError(shard + ": tensor '" + t.name + "' is also in another shard");
      }
      owner[t.name] = shard_name;
    }
    model.files_.push_back(std::move(file));
  }
  for (const auto& [name, file] : index) {
    auto it = owner.find(name);
    if (it == owner.end() || it->second != file) {
      return DataLossError(index_path + ": tensor '" + name + "' is not in its shard " + file);
    }
  }
  return model;
}

const TensorView* SafetensorsModel::Find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::string> SafetensorsModel::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& [name, view] : by_name_) out.push_back(name);
  return out;
}

std::string ScaleInvName(std::string_view weight_name) {
  return std::string(weight_name) + "_scale_inv";
}

Status ConvertToFloat(const TensorView& t, const TensorView* scale_inv, std::span<float> out,
                      int64_t block_rows, int64_t block_cols) {
  const int64_t n = t.NumElements();
  if (static_cast<int64_t>(out.size()) != n) {
    return InvalidArgumentError("tensor '" + t.name + "': output holds " +
                                std::to_string(out.size()) + " floats, tensor has " +
                                std::to_string(n));
  }
  const uint8_t* p = t.data;
  switch (t.dtype) {
    case TensorDtype::kF32:
      if (n > 0) std::memcpy(out.data(), p, n * sizeof(float));  // empty: out.data() may be null
      return OkStatus();
    case TensorDtype::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(bf16{Load<uint16_t>(p + 2 * i)});
      return OkStatus();
    case TensorDtype::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = F16ToFloat(f16{Load<uint16_t>(p + 2 * i)});
      return OkStatus();
    case TensorDtype::kF8E4M3:
      break;
    default:
      return InvalidArgumentError("tensor '" + t.name + "': dtype " +
                                  std::string(TensorDtypeName(t.dtype)) +
                                  " cannot be read as float");
  }
  if (scale_inv == nullptr) {
    return NotFoundError("tensor '" + t.name + "': F8_E4M3 weight without " + ScaleInvName(t.name));
  }
  if (t.shape.size() != 2 || block_rows <= 0 || block_cols <= 0) {
    return InvalidArgumentError("tensor '" + t.name +
                                "': F8_E4M3 block dequantization needs a "
                                "2-D weight and positive block sizes");
  }
  const int64_t rows = t.shape[0], cols = t.shape[1];
  const int64_t srows = (rows + block_rows - 1) / block_rows;
  const int64_t scols = (cols + block_cols - 1) / block_cols;
  if (scale_inv->shape != std::vector<int64_t>{srows, scols} ||
      (scale_inv->dtype != TensorDtype::kF32 && scale_inv->dtype != TensorDtype::kBF16)) {
    return InvalidArgumentError("tensor '" + scale_inv->name + "': expected F32 or BF16 [" +
                                std::to_string(srows) + ", " + std::to_string(scols) +
                                "] block scales for " + t.name);
  }
  auto scale_at = [&](int64_t i) {
    return scale_inv->dtype == TensorDtype::kF32
               ? Load<float>(scale_inv->data + 4 * i)
               : Bf16ToFloat(bf16{Load<uint16_t>(scale_inv->data + 2 * i)});
  };
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t srow = (r / block_rows) * scols;
    for (int64_t c = 0; c < cols; ++c) {
      out[r * cols + c] = Fp8E4M3ToFloat(p[r * cols + c]) * scale_at(srow + c / block_cols);
    }
  }
  return OkStatus();
}

StatusOr<std::vector<float>> ReadTensorAsFloat(const SafetensorsModel& model, std::string_view name,
                                               int64_t block_rows, int64_t block_cols) {
  const TensorView* t = model.Find(name);
  if (t == nullptr) return NotFoundError("tensor '" + std::string(name) + "' not found");
  const TensorView* scale =
      t->dtype == TensorDtype::kF8E4M3 ? model.Find(ScaleInvName(name)) : nullptr;
  std::vector<float> out(static_cast<size_t>(t->NumElements()));
  STRATA_RETURN_IF_ERROR(ConvertToFloat(*t, scale, out, block_rows, block_cols));
  return out;
}

StatusOr<std::vector<bf16>> ReadTensorAsBf16(const SafetensorsModel& model, std::string_view name,
                                             int64_t block_rows, int64_t block_cols) {
  const TensorView* t = model.Find(name);
  if (t == nullptr) return NotFoundError("tensor '" + std::string(name) + "' not found");
  std::vector<bf16> out(static_cast<size_t>(t->NumElements()));
  if (t->dtype == TensorDtype::kBF16) {
    if (t->bytes > 0) std::memcpy(out.data(), t->data, t->bytes);  // empty: data may be null
    return out;
  }
  STRATA_ASSIGN_OR_RETURN(std::vector<float> f,
                          ReadTensorAsFloat(model, name, block_rows, block_cols));
  for (size_t i = 0; i < f.size(); ++i) out[i] = FloatToBf16(f[i]);
  return out;
}

}  // namespace strata::model
