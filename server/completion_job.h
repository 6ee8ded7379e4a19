// One HTTP generation request in flight: its choices (n per prompt), submitted to the
// GenerationService, their outputs turned into OpenAI responses (one JSON body, or an SSE
// stream of chunks ending in `data: [DONE]`), usage, metrics, and cancellation when the client
// goes away (every choice is aborted, which frees its KV within one step).
//
// Thread-safety: events arrive on the generation thread, the close notice on an I/O thread;
// the job serializes them with its own mutex.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "decode/generation.h"
#include "server/http_server.h"
#include "server/openai_protocol.h"
#include "server/output_processor.h"
#include "server/server_metrics.h"
#include "server/text_codec.h"

namespace strata::server {

struct JobChoice {
  int prompt_index = 0;
  std::vector<int32_t> prompt_token_ids;
  std::string echo_text;  // prepended to the output (completions' echo)
  decode::SamplingParams sampling;
};

struct JobSpec {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;
  bool want_logprobs = false;
  Envelope envelope;
  std::vector<std::string> stop;
  std::vector<JobChoice> choices;  // in OpenAI `index` order
  int64_t arrival_ns = 0;
  int64_t deadline_ns = 0;      // 0 = none
  int retry_after_seconds = 1;  // the Retry-After of a 429 / 503 (the queue filled meanwhile)
};

class CompletionJob : public std::enable_shared_from_this<CompletionJob> {
 public:
  CompletionJob(JobSpec spec, const TextCodec& codec, decode::GenerationService* service,
                ServerMetrics* metrics, std::shared_ptr<Exchange> exchange,
                std::function<void(int http_status)> on_done);

  // Submits every choice. On an error nothing was sent to the client yet; the choices already
  // submitted are aborted and the caller answers with the error.
  Status Start();

 private:
  struct ChoiceState {
    std::unique_ptr<OutputProcessor> processor;
    std::string request_id;
    std::string text;  // non-streaming: the whole text
    ChoiceOutput accumulated;
    bool sent_first = false;
    bool prompt_logprobs_done = false;  // echo + logprobs: the prompt's part was added
    bool finished = false;              // no more output for the client
    bool generation_done = false;       // the service delivered its final event
    int prompt_tokens = 0;
    int cached_tokens = 0;
    bool has_prompt_info = false;
  };

  void OnEvent(size_t choice, decode::TokenEvent event);
  void OnClientGone();
  // With mu_ held: sends what is due when every choice has finished.
  void MaybeFinishLocked();
  void SendChunkLocked(const nlohmann::json& chunk);
  void FailLocked(const Status& status);
  Usage UsageLocked() const;
  void AbortAllLocked();

  JobSpec spec_;
  const TextCodec& codec_;
  decode::GenerationService* service_;
  ServerMetrics* metrics_;
  std::shared_ptr<Exchange> exchange_;
  std::function<void(int)> on_done_;

  std::optional<StreamChunkWriter> chunk_writer_;  // streaming only
  std::mutex mu_;
  std::vector<ChoiceState> choices_;
  int num_finished_ = 0;
  bool done_ = false;  // the response has been completed (or the client is gone)
  bool stream_started_ = false;
  int64_t first_token_ns_ = 0;
  Status error_;
};

}  // namespace strata::server
