// A fake OpenAI-compatible server for testing and measuring the load-test driver: it answers
// POST /v1/completions and /v1/chat/completions (streaming and not), GET /version and
// GET /v1/models, and streams tokens on a known schedule: the first token `first_token_delay_us`
// after the request was read, then each next one after the next gap of
// `inter_token_delays_us` (cycled). Events are written at absolute times (no drift), so a
// client's measured TTFT/ITL can be checked against the schedule exactly.
//
// It does no tokenization: every token is the text "tok " (or `token_text`), the prompt's token
// count is its number of whitespace-separated words, and the output has `tokens_per_response`
// tokens (0: the request's max_tokens / max_completion_tokens, 16 when absent).
//
// Thread-safe accessors; Stop() (or the destructor) joins the io threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace strata::bench {

struct FakeServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: an ephemeral port (see FakeOpenAiServer::port())
  int num_threads = 1;
  int tokens_per_response = 0;
  int64_t first_token_delay_us = 0;
  std::vector<int64_t> inter_token_delays_us;  // cycled; empty = no gap
  int fail_every = 0;              // every Nth generation request answers HTTP 500 (0 = never)
  int stream_error_every = 0;      // every Nth sends an error event after its first token
  int cached_tokens = 0;           // reported as usage.prompt_tokens_details.cached_tokens
  bool record_send_times = false;  // keep each event's write time per X-Request-Id
  std::string token_text = "tok ";
};

class FakeOpenAiServer {
 public:
  // Binds and starts serving on options.num_threads threads.
  static StatusOr<std::unique_ptr<FakeOpenAiServer>> Start(FakeServerOptions options);
  ~FakeOpenAiServer();

  uint16_t port() const;
  std::string base_url() const;  // "http://host:port"
  void Stop();

  int64_t num_generation_requests() const;  // POSTs to a generation endpoint, any outcome
  int64_t num_client_disconnects() const;   // timed streams cut by the client before the end
  int64_t num_connections() const;          // connections accepted
  // MonotonicNanos() just before each token event of that request was written (with
  // record_send_times); empty when unknown.
  std::vector<int64_t> SendTimes(const std::string& request_id) const;

  class Impl;

 private:
  explicit FakeOpenAiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::bench
