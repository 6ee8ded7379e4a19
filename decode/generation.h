// The seam between the server (HTTP, tokenizer, chat template, stop strings, detokenization)
// and whatever generates tokens: the embedded engine today, the disaggregated prefill/decode
// instances over proto/ messages later. Instances deal in token ids only (DESIGN.md §3).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/registry.pb.h"

namespace strata::decode {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy
  float top_p = 1.0f;        // (0, 1]
  int top_k = -1;            // -1 = off
  float min_p = 0.0f;        // [0, 1]
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;  // 1 = off
  std::optional<uint64_t> seed;     // same seed + same prompt -> same output
  int max_tokens = 16;              // tokens to generate (>= 1)
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;  // besides the model's EOS ids
  int num_top_logprobs = -1;            // -1: no logprobs; 0: the sampled token's only; N: top N
  // Prompt logprobs (completions' echo + logprobs): -1 off; 0: each prompt token's own; N: also
  // the top N. Every prompt token is then computed (the prefix cache is not used for the
  // request's prompt), so this costs a full prefill with logits for each prompt token.
  int num_prompt_logprobs = -1;
};

struct GenerateRequest {
  std::string request_id;
  std::vector<int32_t> prompt_token_ids;
  SamplingParams sampling;
  int64_t deadline_ns = 0;  // MonotonicNanos() deadline; 0 = none
};

enum class FinishReason { kNone, kStop, kLength, kAbort, kError };

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;
};

struct GeneratedToken {
  int32_t token_id = 0;
  float logprob = 0.0f;                    // valid when num_top_logprobs >= 0
  std::vector<TokenLogprob> top_logprobs;  // num_top_logprobs entries, best first
};

// One step's worth of output for one request. The last event has finish != kNone.
struct TokenEvent {
  std::vector<GeneratedToken> tokens;
  FinishReason finish = FinishReason::kNone;
  Status error;           // set when finish == kError
  int prompt_tokens = 0;  // set on the first event
  int cached_tokens = 0;  // prompt tokens served from the prefix cache (first event)
  // First event with num_prompt_logprobs >= 0: one entry per prompt token after the first
  // (entry i is prompt token i + 1, given prompt tokens 0..i), log_softmax of the raw logits.
  std::vector<GeneratedToken> prompt_logprobs;
};

// An EP group's figures as its rank 0 reports them (v1::ExpertParallelLoad), per instance.
struct ExpertParallelStats {
  std::string instance_id;
  int ranks = 0;
  int layers = 0;
  std::vector<int64_t> tokens_received;  // [layer * ranks + rank]
  std::vector<int64_t> requests_per_rank;
  double max_mean_load_ratio = 0;
  int64_t moe_rounds = 0;
  double dispatch_seconds = 0, combine_seconds = 0, wait_seconds = 0;
  double overlap_fraction = 0;
  int64_t steps = 0, microbatched_steps = 0;
};

// Cluster mode: one prefill or decode instance as the router sees it (its last heartbeat).
struct InstanceStats {
  std::string id;
  std::string role;  // "prefill" or "decode"
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;
  int running = 0;            // requests it runs
  int waiting = 0;            // requests it has queued
  int64_t queued_tokens = 0;  // prompt tokens it has queued (prefill)
};

struct GenerationStats {
  int num_running = 0;
  int num_waiting = 0;
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;
  int64_t prefix_cache_hit_tokens = 0;
  int64_t prefix_cache_query_tokens = 0;
  std::vector<ExpertParallelStats> expert_parallel;  // cluster mode: the EP instances
  std::map<std::string, v1::KvPoolLoad> kv_pools;    // cluster mode: pools given --router, by id
  // Cluster mode: requests the router has sent each prefill and decode instance, by id, ever.
  std::map<std::string, int64_t> requests_routed;
  std::vector<InstanceStats> instances;  // cluster mode: the registered prefill and decode ones
};

// Thread-safe. The callback runs on a generation thread: it must be quick and must not call
// back into the service except Abort().
class GenerationService {
 public:
  using EventCallback = std::function<void(TokenEvent)>;
  virtual ~GenerationService() = default;

  // Queues a request. Errors: kInvalidArgument (bad params, prompt too long for the context),
  // kResourceExhausted (queue full), kUnavailable (not ready / shutting down). After an OK
  // return, the callback is called until an event with finish != kNone, exactly once finished.
  virtual Status Submit(GenerateRequest request, EventCallback on_event) = 0;
  // Ends a request early (client gone). Its KV is freed within one step; its callback receives
  // a final kAbort event. Unknown ids are ignored.
  virtual void Abort(const std::string& request_id) = 0;
  virtual GenerationStats Stats() const = 0;
  virtual bool Ready() const = 0;
  // Why it is not Ready(), in words for the 503 a client gets (no trailing period).
  virtual std::string NotReadyReason() const { return "the model is still loading"; }
};

}  // namespace strata::decode
