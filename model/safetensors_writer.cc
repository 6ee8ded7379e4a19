#include "model/safetensors_writer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>

namespace strata::model {
namespace {

using nlohmann::json;

// The order of tensors in a file's data area: larger element sizes first, then spec order.
std::vector<size_t> DataOrder(const std::vector<TensorSpec>& specs,
                              const std::vector<size_t>& members) {
  std::vector<size_t> order = members;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return TensorDtypeSize(specs[a].dtype) > TensorDtypeSize(specs[b].dtype);
  });
  return order;
}

// The header bytes (8-byte length + padded JSON) and each member's data offset.
std::string BuildHeader(const std::vector<TensorSpec>& specs, const std::vector<size_t>& order,
                        const std::map<std::string, std::string>& metadata,
                        std::vector<uint64_t>* offsets, uint64_t* data_bytes) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t offset = 0;
  offsets->clear();
  for (size_t i : order) {
    const uint64_t bytes = specs[i].Bytes();
    h[specs[i].name] = {{"dtype", std::string(TensorDtypeName(specs[i].dtype))},
                        {"shape", specs[i].shape},
                        {"data_offsets", {offset, offset + bytes}}};
    offsets->push_back(offset);
    offset += bytes;
  }
  *data_bytes = offset;
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + text;
}

Status CheckSpecs(const std::vector<TensorSpec>& specs) {
  std::set<std::string> names;
  for (const auto& s : specs) {
    if (s.name.empty() || s.name == "__metadata__") {
      return InvalidArgumentError("safetensors writer: invalid tensor name '" + s.name + "'");
    }
    if (!names.insert(s.name).second) {
      return InvalidArgumentError("safetensors writer: duplicate tensor '" + s.name + "'");
    }
    for (int64_t d : s.shape) {
      if (d < 0) return InvalidArgumentError("safetensors writer: '" + s.name + "': bad shape");
    }
  }
  return OkStatus();
}

Status WriteOneFile(const std::string& path, const std::vector<TensorSpec>& specs,
                    const std::vector<size_t>& members, const TensorFiller& fill,
                    const SafetensorsWriteOptions& options, uint64_t* done, uint64_t total) {
  std::vector<size_t> order = DataOrder(specs, members);
  std::vector<uint64_t> offsets;
  uint64_t data_bytes = 0;
  const std::string header = BuildHeader(specs, order, options.metadata, &offsets, &data_bytes);
  const uint64_t file_bytes = header.size() + data_bytes;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return InternalError(path + ": cannot create: " + std::strerror(errno));
  if (ftruncate(fd, static_cast<off_t>(file_bytes)) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return ResourceExhaustedError(path + ": cannot size to " + std::to_string(file_bytes) +
                                  " bytes: " + why);
  }
  void* map = mmap(nullptr, file_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return InternalError(path + ": mmap failed: " + std::strerror(errno));
  uint8_t* base = static_cast<uint8_t*>(map);
  std::memcpy(base, header.data(), header.size());
  Status status;
  for (size_t k = 0; k < order.size() && status.ok(); ++k) {
    const uint64_t bytes = specs[order[k]].Bytes();
    status = fill(order[k], std::span<uint8_t>(base + header.size() + offsets[k], bytes));
    *done += bytes;
    if (options.on_progress) options.on_progress(*done, total);
  }
  if (munmap(map, file_bytes) != 0 && status.ok()) {
    status = InternalError(path + ": munmap failed: " + std::strerror(errno));
  }
  return status;
}

std::string ShardName(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

}  // namespace

uint64_t TensorSpec::Bytes() const {
  uint64_t n = TensorDtypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

StatusOr<std::vector<std::string>> WriteSafetensors(const std::string& dir,
                                                    const std::vector<TensorSpec>& specs,
                                                    const TensorFiller& fill,
                                                    const SafetensorsWriteOptions& options) {
  STRATA_RETURN_IF_ERROR(CheckSpecs(specs));
  uint64_t total = 0;
  for (const auto& s : specs) total += s.Bytes();
  std::vector<std::vector<size_t>> shards(1);
  uint64_t shard_bytes = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const uint64_t bytes = specs[i].Bytes();
    if (options.max_shard_bytes > 0 && !shards.back().empty() &&
        shard_bytes + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += bytes;
  }
  std::vector<std::string> written;
  uint64_t done = 0;
  if (shards.size() == 1) {
    STRATA_RETURN_IF_ERROR(
        WriteOneFile(dir + "/model.safetensors", specs, shards[0], fill, options, &done, total));
    written.push_back("model.safetensors");
    return written;
  }
  json weight_map = json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = ShardName(s, shards.size());
    STRATA_RETURN_IF_ERROR(
        WriteOneFile(dir + "/" + name, specs, shards[s], fill, options, &done, total));
    for (size_t i : shards[s]) weight_map[specs[i].name] = name;
    written.push_back(name);
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string index_path = dir + "/model.safetensors.index.json";
  std::ofstream out(index_path, std::ios::binary | std::ios::trunc);
  out << index.dump(2) << "\n";
  if (!out) return InternalError(index_path + ": write failed");
  written.push_back("model.safetensors.index.json");
  return written;
}

StatusOr<std::vector<uint8_t>> SerializeSafetensors(
    const std::vector<TensorSpec>& specs, const std::vector<std::vector<uint8_t>>& data,
    const std::map<std::string, std::string>& metadata) {
  STRATA_RETURN_IF_ERROR(CheckSpecs(specs));
  if (data.size() != specs.size()) {
    return InvalidArgumentError("SerializeSafetensors: one data buffer per spec");
  }
  std::vector<size_t> members(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    if (data[i].size() != specs[i].Bytes()) {
      return InvalidArgumentError("SerializeSafetensors: '" + specs[i].name + "' has " +
                                  std::to_string(data[i].size()) + " bytes, needs " +
                                  std::to_string(specs[i].Bytes()));
    }
    members[i] = i;
  }
  std::vector<size_t> order = DataOrder(specs, members);
  std::vector<uint64_t> offsets;
  uint64_t data_bytes = 0;
  const std::string header = BuildHeader(specs, order, metadata, &offsets, &data_bytes);
  std::vector<uint8_t> out(header.begin(), header.end());
  for (size_t i : order) out.insert(out.end(), data[i].begin(), data[i].end());
  return out;
}

}  // namespace strata::model
