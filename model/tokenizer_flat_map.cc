#include "model/tokenizer_flat_map.h"

namespace strata::model::tok {
namespace {

size_t CapacityFor(size_t n) {
  size_t capacity = 16;
  while (capacity < 2 * n) capacity <<= 1;  // load factor <= 1/2
  return capacity;
}

}  // namespace

void FlatStringIndex::Reserve(size_t expected) {
  keys_.reserve(expected);
  values_.reserve(expected);
  if (CapacityFor(expected) > slots_.size()) Rehash(CapacityFor(expected));
}

void FlatStringIndex::Rehash(size_t capacity) {
  slots_.assign(capacity, 0);
  mask_ = capacity - 1;
  for (size_t k = 0; k < keys_.size(); ++k) {
    uint64_t h = Hash(keys_[k]);
    size_t i = static_cast<size_t>(h) & mask_;
    while (slots_[i] != 0) i = (i + 1) & mask_;
    slots_[i] = (h & 0xFFFFFFFF00000000ULL) | (k + 1);
  }
}

int64_t FlatStringIndex::IndexOf(std::string_view key) const {
  if (slots_.empty()) return -1;
  uint64_t h = Hash(key);
  uint64_t tag = h & 0xFFFFFFFF00000000ULL;
  for (size_t i = static_cast<size_t>(h) & mask_;; i = (i + 1) & mask_) {
    uint64_t s = slots_[i];
    if (s == 0) return -1;
    if ((s & 0xFFFFFFFF00000000ULL) == tag) {
      size_t k = static_cast<size_t>(s & 0xFFFFFFFFULL) - 1;
      if (keys_[k] == key) return static_cast<int64_t>(k);
    }
  }
}

std::optional<int32_t> FlatStringIndex::Find(std::string_view key) const {
  int64_t k = IndexOf(key);
  if (k < 0) return std::nullopt;
  return values_[static_cast<size_t>(k)];
}

void FlatStringIndex::Set(std::string key, int32_t value) {
  int64_t existing = IndexOf(key);
  if (existing >= 0) {
    values_[static_cast<size_t>(existing)] = value;
    return;
  }
  if (2 * (keys_.size() + 1) > slots_.size()) Rehash(CapacityFor(keys_.size() + 1));
  uint64_t h = Hash(key);
  size_t i = static_cast<size_t>(h) & mask_;
  while (slots_[i] != 0) i = (i + 1) & mask_;
  keys_.push_back(std::move(key));
  values_.push_back(value);
  slots_[i] = (h & 0xFFFFFFFF00000000ULL) | keys_.size();
}

void FlatPairMap::Reserve(size_t expected) {
  if (CapacityFor(expected) > slots_.size()) Rehash(CapacityFor(expected));
}

void FlatPairMap::Rehash(size_t capacity) {
  std::vector<Entry> old = std::move(slots_);
  slots_.assign(capacity, Entry{kEmpty, {0, 0}});
  mask_ = capacity - 1;
  for (const Entry& e : old) {
    if (e.key == kEmpty) continue;
    size_t i = Slot(e.key);
    while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
    slots_[i] = e;
  }
}

void FlatPairMap::Set(uint64_t key, Value value) {
  if (2 * (size_ + 1) > slots_.size()) Rehash(CapacityFor(size_ + 1));
  size_t i = Slot(key);
  while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
  if (slots_[i].key == kEmpty) ++size_;
  slots_[i] = Entry{key, value};
}

}  // namespace strata::model::tok
