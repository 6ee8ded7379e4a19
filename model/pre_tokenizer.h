// tokenizer.json "pre_tokenizer" components (internal to model/): Split (regex or literal, every
// delimiter behavior, invert), ByteLevel, Digits, Metaspace and Sequence, with Hugging Face
// tokenizers' semantics. Immutable after construction; safe to call from many threads.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace strata::model::tok {

// One pre-token on its way to the model.
struct Piece {
  std::string text;
  bool at_input_start = false;  // begins at offset 0 of the text given to Encode
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their split (and possibly rewritten) pieces; empty pieces are dropped.
  // Fails only if the regex engine gives up.
  virtual Status PreTokenize(std::vector<Piece>& pieces) const = 0;
};

// Builds the pre-tokenizer described by `spec`; a null spec gives nullptr (the text is one
// pre-token). Errors name the component ("pre_tokenizer Split: ...").
StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& spec);

}  // namespace strata::model::tok
