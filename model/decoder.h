// tokenizer.json "decoder" components (internal to model/): ByteLevel, Metaspace, ByteFallback,
// Fuse, Strip, Replace and Sequence, with Hugging Face tokenizers' semantics. A decoder turns the
// token strings of a run of ids into text pieces that are then concatenated.
// Immutable after construction; safe to call from many threads.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace strata::model::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites `tokens` in place (the chain may merge them into fewer pieces).
  virtual void DecodeChain(std::vector<std::string>& tokens) const = 0;
  // True for ByteLevel (alone or in a Sequence): added tokens are then kept out of the chain and
  // emitted verbatim, since their text is not in the byte alphabet.
  virtual bool byte_level() const { return false; }
};

// Builds the decoder described by `spec`; a null spec gives nullptr (tokens joined by spaces).
// Errors name the component ("decoder Foo: ...").
StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const nlohmann::json& spec);

}  // namespace strata::model::tok
