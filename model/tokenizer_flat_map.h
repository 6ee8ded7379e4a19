// Open-addressing hash tables for the BPE hot paths (internal to model/): loading a real
// tokenizer does ~1M lookups and encoding does several per character, and std::unordered_map's
// node chasing costs more than the hashing. Both tables are built once and then read-only, so
// they are safe to read from many threads.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::model::tok {

// Distinct strings -> int32 values; the strings are owned by the index.
class FlatStringIndex {
 public:
  // Sizes the table for about `expected` strings (it grows as needed).
  void Reserve(size_t expected);
  // Inserts or overwrites the value of `key`.
  void Set(std::string key, int32_t value);
  std::optional<int32_t> Find(std::string_view key) const;
  size_t size() const { return keys_.size(); }
  // Visits every (key, value).
  template <typename F>
  void ForEach(F&& f) const {
    for (size_t i = 0; i < keys_.size(); ++i) f(keys_[i], values_[i]);
  }
  const std::string& key(size_t index) const { return keys_[index]; }
  // Index of `key` among the stored keys (stable: the order of first insertion), or -1.
  int64_t IndexOf(std::string_view key) const;

 private:
  static uint64_t Hash(std::string_view s) { return std::hash<std::string_view>{}(s); }
  void Rehash(size_t capacity);

  std::vector<std::string> keys_;
  std::vector<int32_t> values_;
  // Per slot: (upper 32 bits of the hash << 32) | (key index + 1); 0 = empty.
  std::vector<uint64_t> slots_;
  size_t mask_ = 0;
};

// uint64 keys -> a pair of int32 (the BPE merge of a pair of ids: rank and new id).
class FlatPairMap {
 public:
  struct Value {
    int32_t rank;
    int32_t new_id;
  };
  void Reserve(size_t expected);
  void Set(uint64_t key, Value value);
  const Value* Find(uint64_t key) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = Slot(key);; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == kEmpty) return nullptr;
      if (e.key == key) return &e.value;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Entry {
    uint64_t key;
    Value value;
  };
  size_t Slot(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> 20) & mask_;
  }
  void Rehash(size_t capacity);

  std::vector<Entry> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace strata::model::tok
