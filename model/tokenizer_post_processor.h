// tokenizer.json "post_processor" components (internal to model/): TemplateProcessing,
// BertProcessing, RobertaProcessing, ByteLevel (ids unchanged) and Sequence, for a single
// sequence. Immutable after construction; safe to call from many threads.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"

namespace strata::model::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds the template's special tokens around `ids` when add_special_tokens is true.
  virtual void Process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
};

// Builds the post-processor described by `spec`; a null spec gives nullptr (ids unchanged).
// Errors name the component ("post_processor Foo: ...").
StatusOr<std::unique_ptr<PostProcessor>> MakePostProcessor(const nlohmann::json& spec);

// "[prefix...] $A [suffix...]": what transformers' LlamaTokenizerFast installs for
// add_bos_token / add_eos_token.
std::unique_ptr<PostProcessor> MakeAffixPostProcessor(std::vector<int32_t> prefix,
                                                      std::vector<int32_t> suffix);

}  // namespace strata::model::tok
