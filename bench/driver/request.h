// What the driver sends (RequestSpec) and what it observes (RequestRecord).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata::bench {

// One request of a workload. Plain data; workloads are built once and read by many threads.
struct RequestSpec {
  std::string prompt;          // the user message (chat) or the prompt (completions)
  int input_len = 0;           // prompt length in tokens of the model's tokenizer
  int output_len = 16;         // max_tokens to ask for (exact with ignore_eos)
  double arrival_s = -1.0;     // fixed arrival offset from the start (trace); < 0: by the rate
  int abort_after_tokens = 0;  // > 0: disconnect after receiving this many token chunks
};

// One request as the driver saw it. Times are MonotonicNanos(); 0 = did not happen.
struct RequestRecord {
  int64_t index = -1;            // position in the run (0-based, warmup excluded)
  int input_len = 0;             // from the spec
  int max_tokens = 0;            // from the spec
  int64_t scheduled_ns = 0;      // when the arrival process released it
  int64_t send_ns = 0;           // when the driver started sending it (connect included)
  int64_t first_token_ns = 0;    // first chunk with generated text
  int64_t end_ns = 0;            // stream finished, failed or aborted
  std::vector<int64_t> itl_ns;   // gap before each later token chunk (chunks, not tokens)
  int num_chunks = 0;            // chunks that carried generated text
  int output_tokens = 0;         // usage.completion_tokens, or num_chunks when usage is missing
  int usage_prompt_tokens = -1;  // usage.prompt_tokens (-1: not reported)
  int cached_tokens = -1;        // usage.prompt_tokens_details.cached_tokens (-1: not reported)
  int http_status = 0;
  std::string finish_reason;
  bool success = false;  // completed normally
  bool aborted = false;  // the driver disconnected on purpose (--abort-fraction)
  std::string error;     // why it failed (empty on success and on abort)

  double TtftMs() const { return first_token_ns ? (first_token_ns - send_ns) * 1e-6 : 0.0; }
  double E2eMs() const { return end_ns ? (end_ns - send_ns) * 1e-6 : 0.0; }
  // (E2E - TTFT) / (output tokens - 1), as vLLM defines it; 0 for a single token.
  double TpotMs() const {
    if (output_tokens <= 1 || first_token_ns == 0) return 0.0;
    return (end_ns - first_token_ns) * 1e-6 / (output_tokens - 1);
  }
};

}  // namespace strata::bench
