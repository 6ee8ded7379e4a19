// ParseSafetensors: the bounds-checked parser of a safetensors file image. Pure (no I/O), so
// it is fuzzed directly (tests/fuzz/safetensors_header_fuzz.cc).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <set>

#include "model/safetensors.h"

namespace strata::model {
namespace {

using nlohmann::json;

struct DtypeInfo {
  TensorDtype dtype;
  std::string_view name;
  size_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {TensorDtype::kF32, "F32", 4},        {TensorDtype::kF16, "F16", 2},
    {TensorDtype::kBF16, "BF16", 2},      {TensorDtype::kF8E4M3, "F8_E4M3", 1},
    {TensorDtype::kF8E5M2, "F8_E5M2", 1}, {TensorDtype::kF64, "F64", 8},
    {TensorDtype::kI8, "I8", 1},          {TensorDtype::kU8, "U8", 1},
    {TensorDtype::kI16, "I16", 2},        {TensorDtype::kI32, "I32", 4},
    {TensorDtype::kI64, "I64", 8},        {TensorDtype::kBool, "BOOL", 1},
};

std::string Clip(std::string_view s) {
  return s.size() > 80 ? std::string(s.substr(0, 77)) + "..." : std::string(s);
}

// Reads a non-negative integer that fits in uint64 (JSON numbers only).
bool AsU64(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    *out = static_cast<uint64_t>(i);
    return true;
  }
  return false;
}

}  // namespace

std::string_view TensorDtypeName(TensorDtype dtype) {
  for (const auto& d : kDtypes) {
    if (d.dtype == dtype) return d.name;
  }
  return "?";
}

StatusOr<TensorDtype> ParseTensorDtype(std::string_view name) {
  for (const auto& d : kDtypes) {
    if (d.name == name) return d.dtype;
  }
  return InvalidArgumentError("unknown dtype '" + Clip(name) + "'");
}

size_t TensorDtypeSize(TensorDtype dtype) {
  for (const auto& d : kDtypes) {
    if (d.dtype == dtype) return d.size;
  }
  return 1;
}

int64_t TensorView::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

StatusOr<SafetensorsHeader> ParseSafetensors(std::span<const uint8_t> file,
                                             std::string_view label) {
  const std::string where(label);
  if (file.size() < 8) {
    return DataLossError(where + ": " + std::to_string(file.size()) +
                         " bytes, too short for the 8-byte header length");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file[i];
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return InvalidArgumentError(where + ": header length " + std::to_string(header_len) +
                                " exceeds the limit of " +
                                std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
  }
  if (header_len > file.size() - 8) {
    return DataLossError(where + ": truncated: header length " + std::to_string(header_len) +
                         " but only " + std::to_string(file.size() - 8) + " bytes follow");
  }
  if (header_len == 0 || file[8] != '{') {
    return DataLossError(where + ": header is not a JSON object");
  }
  const char* text = reinterpret_cast<const char*>(file.data() + 8);
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      if (!seen.insert(parsed.get<std::string>()).second && duplicate.empty()) {
        duplicate = parsed.get<std::string>();
      }
    }
    return true;
  };
  json header = json::parse(text, text + header_len, on_event, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return DataLossError(where + ": header is not valid JSON");
  }
  if (!duplicate.empty()) {
    return DataLossError(where + ": tensor '" + Clip(duplicate) + "' appears twice in the header");
  }

  SafetensorsHeader out;
  out.data_offset = 8 + static_cast<size_t>(header_len);
  const uint8_t* data = file.data() + out.data_offset;
  const uint64_t data_size = file.size() - out.data_offset;
  out.tensors.reserve(header.size());
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) return DataLossError(where + ": __metadata__ is not an object");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) {
          return DataLossError(where + ": __metadata__ value '" + Clip(k) + "' is not a string");
        }
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string tensor = where + ": tensor '" + Clip(name) + "'";
    if (!info.is_object()) return DataLossError(tensor + ": entry is not an object");
    auto dtype_it = info.find("dtype");
    auto shape_it = info.find("shape");
    auto offsets_it = info.find("data_offsets");
    if (dtype_it == info.end() || !dtype_it->is_string()) {
      return DataLossError(tensor + ": missing dtype");
    }
    if (shape_it == info.end() || !shape_it->is_array()) {
      return DataLossError(tensor + ": missing shape");
    }
    if (offsets_it == info.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
      return DataLossError(tensor + ": data_offsets is not [begin, end]");
    }
    TensorView view;
    view.name = name;
    auto dtype = ParseTensorDtype(dtype_it->get<std::string>());
    if (!dtype.ok()) return InvalidArgumentError(tensor + ": " + dtype.status().message());
    view.dtype = *dtype;
    uint64_t num_bytes = TensorDtypeSize(view.dtype);
    for (const auto& d : *shape_it) {
      uint64_t dim = 0;
      if (!AsU64(d, &dim) || dim > static_cast<uint64_t>(INT64_MAX)) {
        return DataLossError(tensor + ": shape has a non-integer or negative dimension");
      }
      if (dim != 0 && num_bytes > UINT64_MAX / dim) {
        return DataLossError(tensor + ": shape " + shape_it->dump() + " overflows");
      }
      num_bytes *= dim;
      view.shape.push_back(static_cast<int64_t>(dim));
    }
    uint64_t begin = 0, end = 0;
    if (!AsU64((*offsets_it)[0], &begin) || !AsU64((*offsets_it)[1], &end)) {
      return DataLossError(tensor + ": data_offsets are not non-negative integers");
    }
    if (begin > end) {
      return DataLossError(tensor + ": data_offsets begin " + std::to_string(begin) + " > end " +
                           std::to_string(end));
    }
    if (end > data_size) {
      return DataLossError(tensor + ": data_offsets [" + std::to_string(begin) + ", " +
                           std::to_string(end) + "] exceed the data area of " +
                           std::to_string(data_size) + " bytes (truncated file?)");
    }
    if (end - begin != num_bytes) {
      return DataLossError(tensor + ": " + std::to_string(end - begin) + " bytes for " +
                           std::string(TensorDtypeName(view.dtype)) + " shape " + shape_it->dump() +
                           ", which needs " + std::to_string(num_bytes));
    }
    view.data = data + begin;
    view.bytes = static_cast<size_t>(num_bytes);
    out.tensors.push_back(std::move(view));
  }

  // No two non-empty tensors may share bytes.
  std::vector<const TensorView*> by_offset;
  for (const auto& t : out.tensors) {
    if (t.bytes > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorView* a, const TensorView* b) { return a->data < b->data; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorView* prev = by_offset[i - 1];
    if (by_offset[i]->data < prev->data + prev->bytes) {
      return DataLossError(where + ": tensors '" + Clip(prev->name) + "' and '" +
                           Clip(by_offset[i]->name) + "' overlap");
    }
  }
  return out;
}

}  // namespace strata::model
