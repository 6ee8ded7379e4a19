// The tokenizer.json "model" of type BPE (internal to model/): vocabulary, merges as a rank map
// keyed by the pair of ids, unk / fuse_unk / byte_fallback / continuing_subword_prefix /
// end_of_word_suffix / ignore_merges, with Hugging Face tokenizers' semantics.
//
// Thread-safety: immutable after Create(); Encode may run on many threads. Its per-word result
// cache is sharded, each shard behind its own mutex.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/tokenizer_flat_map.h"
#include "model/tokenizer_json.h"

namespace strata::model::tok {

// Hash for heterogeneous (string_view) lookups in string-keyed maps.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class BpeModel {
 public:
  // `spec` is tokenizer.json's "model" object (its options); `tables` its vocab and merges.
  // Errors name the field at fault.
  static StatusOr<std::unique_ptr<BpeModel>> Create(const nlohmann::json& spec, BpeTables tables);

  // Appends the ids of one pre-token (valid UTF-8).
  void Encode(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The token of `id`, or nullptr when the vocabulary has no such id.
  const std::string* IdToToken(int32_t id) const;
  int32_t max_id() const { return static_cast<int32_t>(id_to_key_.size()) - 1; }

 private:
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void EncodeUncached(std::string_view word, std::vector<int32_t>& out) const;

  FlatStringIndex vocab_;
  std::vector<int32_t> id_to_key_;  // id -> index of its token in vocab_, -1 for holes
  FlatPairMap merges_;
  // Ids of one-character tokens below U+0800 (all of the byte-level alphabet), -1 if none.
  std::vector<int32_t> char_ids_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  std::array<int32_t, 256> byte_fallback_ids_{};  // "<0xXX>" ids, -1 when absent

  static constexpr size_t kNumShards = 16;
  static constexpr size_t kMaxEntriesPerShard = 16384;
  static constexpr size_t kMaxCachedWordBytes = 256;
  struct CacheShard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
  };
  mutable std::array<CacheShard, kNumShards> cache_;
};

}  // namespace strata::model::tok
