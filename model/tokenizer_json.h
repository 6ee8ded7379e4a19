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

// The vocabulary and merges of a BPE model, in file order.
struct BpeTables {
  std::vector<std::pair<std::string, int64_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // "a b" strings split at the space
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
