// One-pass reader of tokenizer.json (internal to model/). The BPE vocabulary and merges, which
// are nearly all of a real file (8-11 MB), go straight into flat vectors; the rest becomes a
// JSON DOM. This keeps LoadFromDir well under a second: a full nlohmann DOM of the vocabulary
// alone costs several hundred milliseconds.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace strata::model::tok {

// Merges as pairs of strings in one arena (a real file has up to ~300k of them).
class MergeList {
 public:
  void Add(std::string_view a, std::string_view b) {
    offsets_.push_back(static_cast<uint32_t>(arena_.size()));
    arena_.append(a);
    offsets_.push_back(static_cast<uint32_t>(arena_.size()));
    arena_.append(b);
  }
  size_t size() const { return offsets_.size() / 2; }
  std::string_view first(size_t i) const { return Part(2 * i); }
  std::string_view second(size_t i) const { return Part(2 * i + 1); }

 private:
  std::string_view Part(size_t k) const {
    size_t end = k + 1 < offsets_.size() ? offsets_[k + 1] : arena_.size();
    return std::string_view(arena_).substr(offsets_[k], end - offsets_[k]);
  }
  std::string arena_;
  std::vector<uint32_t> offsets_;
};

// The vocabulary and merges of a BPE model, in file order.
struct BpeTables {
  std::vector<std::pair<std::string, int64_t>> vocab;
  MergeList merges;  // "a b" strings split at the (first) space
};

struct ParsedTokenizerJson {
  // The document, except that model.vocab and model.merges are null when they were captured.
  nlohmann::json spec;
  bool vocab_captured = false;
  bool merges_captured = false;
  BpeTables tables;
};

// DataLoss for invalid JSON; InvalidArgument for a malformed vocab entry or merge (naming it).
StatusOr<ParsedTokenizerJson> ParseTokenizerJson(std::string_view text);

// The tables from a DOM "model" object (when they were not captured); errors name the field.
Status BpeTablesFromJson(const nlohmann::json& model, bool need_vocab, bool need_merges,
                         BpeTables& tables);

}  // namespace strata::model::tok
