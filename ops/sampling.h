// Token sampling from one row of logits (host memory, f32): greedy, temperature, top-k, top-p,
// min-p, presence/frequency/repetition penalties, per-request seed, and top-N logprobs.
//
// Order (as vLLM): repetition penalty over prompt + output tokens (logit / p if > 0, else * p),
// then frequency/presence over output tokens (logit -= f * count + p * [count > 0]); then
// temperature == 0 -> argmax (ties: lowest id); else logits / temperature, softmax, top-k, top-p
// (smallest set of best tokens whose mass reaches top_p), min-p (drop p < min_p * p_max), and a
// draw from what is left. The draw for generated token number `step` uses a uniform number that
// depends only on (seed, step): the same seed and prompt give the same output in any batch.
// Logprobs are log_softmax of the raw logits (the model's distribution, before penalties and
// temperature), like vLLM's default.
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"

namespace strata::ops {

struct SamplingOptions {
  float temperature = 1.0f;  // 0 = greedy
  float top_p = 1.0f;        // (0, 1]
  int top_k = -1;            // -1 or 0 = off
  float min_p = 0.0f;        // [0, 1]
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;  // > 0; 1 = off
  uint64_t seed = 0;
  int num_top_logprobs = -1;  // -1: none; 0: the sampled token's; N: also the top N
};

// kInvalidArgument naming the field when an option is out of range.
Status ValidateSamplingOptions(const SamplingOptions& options);

struct TokenLogprobEntry {
  int32_t token_id = 0;
  float logprob = 0.0f;
};

struct SampledToken {
  int32_t token_id = 0;
  float logprob = 0.0f;                         // when num_top_logprobs >= 0
  std::vector<TokenLogprobEntry> top_logprobs;  // best first, num_top_logprobs entries
};

// prompt/output: token ids seen so far (for penalties); step: number of tokens generated
// before this one. options must be valid (ValidateSamplingOptions).
SampledToken SampleToken(std::span<const float> logits, const SamplingOptions& options,
                         std::span<const int32_t> prompt, std::span<const int32_t> output,
                         uint64_t step);

// The uniform [0, 1) number used for (seed, step).
double SamplingUniform(uint64_t seed, uint64_t step);

}  // namespace strata::ops
