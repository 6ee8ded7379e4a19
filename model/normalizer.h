// tokenizer.json "normalizer" components (internal to model/): NFC, NFD, NFKC, NFKD (libutf8proc),
// Lowercase, Strip, Prepend, Replace and Sequence, with Hugging Face tokenizers' semantics.
// A Normalizer is immutable after construction and safe to call from many threads.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace strata::model::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `text` is valid UTF-8; so is the result.
  virtual std::string Normalize(std::string_view text) const = 0;
};

// Builds the normalizer described by `spec`; a null spec gives nullptr (no normalization).
// Errors name the component type ("normalizer Foo: ...").
StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const nlohmann::json& spec);

}  // namespace strata::model::tok
