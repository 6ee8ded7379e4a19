// One request generated start to finish on a ModelRunner: prefill the prompt (in chunks), then
// decode token by token with ops::SampleToken. Used by `strata generate` and the benchmarks;
// the serving path batches many requests in decode/ instead.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "model/model_runner.h"
#include "ops/sampling.h"

namespace strata::model {

struct GenerateOptions {
  int max_tokens = 16;  // >= 1
  bool ignore_eos = false;
  std::vector<int32_t> eos_token_ids;  // stop on any of these unless ignore_eos
  ops::SamplingOptions sampling;
  int prefill_chunk_tokens = 2048;  // prompts longer than this prefill in chunks
};

struct GenerateOutput {
  std::vector<int32_t> token_ids;          // generated tokens
  std::vector<ops::SampledToken> sampled;  // per token (logprobs when asked)
  bool stopped_on_eos = false;
  double prefill_ms = 0;  // prompt forward(s) + the first token's sampling
  double decode_ms = 0;   // the remaining tokens (one forward each)
};

// kInvalidArgument for an empty prompt, max_tokens < 1 or bad sampling options; otherwise the
// errors of ModelRunner::Forward. Uses KV blocks [0, needed) of the runner's cache: no other
// sequence may use the runner's cache meanwhile; kResourceExhausted when it is too small.
StatusOr<GenerateOutput> GenerateOne(ModelRunner& runner, const std::vector<int32_t>& prompt,
                                     const GenerateOptions& options);

}  // namespace strata::model
