#include "server/completion_job.h"

#include "common/clock.h"
#include "common/log.h"

namespace strata::server {
namespace {

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

CompletionJob::CompletionJob(JobSpec spec, const TextCodec& codec,
                             decode::GenerationService* service, ServerMetrics* metrics,
                             std::shared_ptr<Exchange> exchange, std::function<void(int)> on_done)
    : spec_(std::move(spec)),
      codec_(codec),
      service_(service),
      metrics_(metrics),
      exchange_(std::move(exchange)),
      on_done_(std::move(on_done)) {
  if (spec_.stream) chunk_writer_.emplace(spec_.envelope, spec_.chat, spec_.include_usage);
}

Status CompletionJob::Start() {
  // mu_ is held while submitting so that no event is handled before the stream has started;
  // the service never calls back while holding its own locks, so this cannot deadlock.
  std::lock_guard lock(mu_);
  choices_.resize(spec_.choices.size());
  for (size_t i = 0; i < spec_.choices.size(); ++i) {
    auto& c = choices_[i];
    const auto& spec = spec_.choices[i];
    c.processor = std::make_unique<OutputProcessor>(static_cast<int>(i), codec_, spec_.stop,
                                                    spec_.want_logprobs,
                                                    static_cast<int>(spec.echo_text.size()));
    c.request_id = spec_.envelope.id + "-" + std::to_string(i);
    c.accumulated.index = static_cast<int>(i);
    c.accumulated.has_logprobs = spec_.want_logprobs;
    c.text = spec.echo_text;
  }
  for (size_t i = 0; i < spec_.choices.size(); ++i) {
    decode::GenerateRequest req;
    req.request_id = choices_[i].request_id;
    req.prompt_token_ids = spec_.choices[i].prompt_token_ids;
    req.sampling = spec_.choices[i].sampling;
    req.deadline_ns = spec_.deadline_ns;
    // The callback owns the job until the service delivers the final event.
    Status st = service_->Submit(
        std::move(req),
        [self = shared_from_this(), i](decode::TokenEvent ev) { self->OnEvent(i, std::move(ev)); });
    if (!st.ok()) {
      for (size_t k = 0; k < i; ++k) service_->Abort(choices_[k].request_id);
      done_ = true;
      return st;
    }
  }
  metrics_->RecordQueueTime(static_cast<double>(MonotonicNanos() - spec_.arrival_ns) * 1e-9);
  if (spec_.stream) {
    exchange_->StartStream(200, "text/event-stream", {});
    stream_started_ = true;
  }
  std::weak_ptr<CompletionJob> weak = weak_from_this();
  exchange_->OnClose([weak] {
    if (auto self = weak.lock()) self->OnClientGone();
  });
  return OkStatus();
}

void CompletionJob::OnEvent(size_t index, decode::TokenEvent event) {
  std::lock_guard lock(mu_);
  auto& c = choices_[index];
  if (event.finish != decode::FinishReason::kNone) c.generation_done = true;
  if (done_ || c.finished) return;
  if (!c.has_prompt_info && (event.prompt_tokens > 0 || !event.tokens.empty())) {
    c.has_prompt_info = true;
    c.prompt_tokens = event.prompt_tokens;
    c.cached_tokens = event.cached_tokens;
  }
  if (first_token_ns_ == 0 && !event.tokens.empty()) {
    first_token_ns_ = MonotonicNanos();
    metrics_->RecordTimeToFirstToken(static_cast<double>(first_token_ns_ - spec_.arrival_ns) *
                                     1e-9);
  }
  if (event.finish == decode::FinishReason::kError) {
    FailLocked(event.error.ok() ? InternalError("generation failed") : event.error);
    return;
  }
  if (event.finish == decode::FinishReason::kAbort) {
    FailLocked(UnavailableError("the request was aborted by the server (shutting down)"));
    return;
  }
  ChoiceOutput delta = c.processor->Push(event.tokens, event.finish);
  const auto& choice_spec = spec_.choices[index];
  if (choice_spec.sampling.num_prompt_logprobs >= 0 && !c.prompt_logprobs_done &&
      !event.tokens.empty()) {
    // The first event with tokens carries the prompt logprobs; they precede the output's.
    c.prompt_logprobs_done = true;
    ChoiceOutput prompt =
        c.processor->PromptLogprobs(choice_spec.prompt_token_ids, event.prompt_logprobs);
    delta.logprobs.insert(delta.logprobs.begin(), std::make_move_iterator(prompt.logprobs.begin()),
                          std::make_move_iterator(prompt.logprobs.end()));
    delta.text_offsets.insert(delta.text_offsets.begin(), prompt.text_offsets.begin(),
                              prompt.text_offsets.end());
  }
  if (spec_.stream) {
    if (!c.sent_first && !choice_spec.echo_text.empty()) {
      delta.text = choice_spec.echo_text + delta.text;
    }
    bool has_content = !delta.text.empty() || !delta.logprobs.empty() || delta.finish;
    if (has_content || (spec_.chat && !c.sent_first)) {
      std::string event_text;
      chunk_writer_->AppendEvent(delta, !c.sent_first, &event_text);
      exchange_->Write(std::move(event_text));
      c.sent_first = true;
    }
  } else {
    c.text += delta.text;
    for (auto& lp : delta.logprobs) c.accumulated.logprobs.push_back(std::move(lp));
    for (int off : delta.text_offsets) c.accumulated.text_offsets.push_back(off);
  }
  if (delta.finish) {
    c.finished = true;
    c.accumulated.finish = delta.finish;
    ++num_finished_;
    // A stop string ended the choice before the engine did: free its KV now.
    if (!c.generation_done) service_->Abort(c.request_id);
  }
  MaybeFinishLocked();
}

Usage CompletionJob::UsageLocked() const {
  Usage u;
  std::vector<bool> seen;
  for (size_t i = 0; i < choices_.size(); ++i) {
    const auto& c = choices_[i];
    u.completion_tokens += c.processor->num_tokens();
    size_t p = static_cast<size_t>(spec_.choices[i].prompt_index);
    if (p >= seen.size()) seen.resize(p + 1, false);
    if (!seen[p]) {  // a prompt counts once, whatever n is (as OpenAI counts it)
      seen[p] = true;
      u.prompt_tokens += static_cast<int>(spec_.choices[i].prompt_token_ids.size());
      u.cached_tokens += c.cached_tokens;
    }
  }
  return u;
}

void CompletionJob::SendChunkLocked(const nlohmann::json& chunk) {
  exchange_->Write("data: " + Dump(chunk) + "\n\n");
}

void CompletionJob::MaybeFinishLocked() {
  if (done_ || num_finished_ < static_cast<int>(choices_.size())) return;
  done_ = true;
  Usage usage = UsageLocked();
  if (spec_.stream) {
    if (spec_.include_usage) {
      SendChunkLocked(spec_.chat ? ChatUsageChunkJson(spec_.envelope, usage)
                                 : CompletionUsageChunkJson(spec_.envelope, usage));
    }
    exchange_->Write("data: [DONE]\n\n");
    exchange_->End();
  } else {
    std::vector<ChoiceOutput> outputs;
    for (auto& c : choices_) {
      ChoiceOutput out = c.accumulated;
      out.text = c.text;
      outputs.push_back(std::move(out));
    }
    auto body = spec_.chat ? ChatCompletionJson(spec_.envelope, outputs, usage)
                           : CompletionJson(spec_.envelope, outputs, usage);
    exchange_->Respond({200, "application/json", Dump(body), {}});
  }
  int64_t now = MonotonicNanos();
  metrics_->RecordEndToEnd(static_cast<double>(now - spec_.arrival_ns) * 1e-9);
  int tokens0 = choices_.empty() ? 0 : choices_[0].processor->num_tokens();
  if (tokens0 > 1 && first_token_ns_ > 0) {
    metrics_->RecordTimePerOutputToken(static_cast<double>(now - first_token_ns_) * 1e-9 /
                                       (tokens0 - 1));
  }
  metrics_->AddPromptTokens(usage.prompt_tokens);
  metrics_->AddGenerationTokens(usage.completion_tokens);
  metrics_->AddCachedPromptTokens(usage.cached_tokens);
  if (on_done_) on_done_(200);
}

void CompletionJob::AbortAllLocked() {
  for (auto& c : choices_) {
    if (!c.generation_done) service_->Abort(c.request_id);
  }
}

void CompletionJob::FailLocked(const Status& status) {
  if (done_) return;
  done_ = true;
  AbortAllLocked();
  int http_status = HttpStatusCode(status.code());
  log::Warn("request {} failed: {}", spec_.envelope.id, status.ToString());
  if (stream_started_) {
    SendChunkLocked(ErrorJson(status));
    exchange_->Write("data: [DONE]\n\n");
    exchange_->End();
  } else {
    HttpResponse res{http_status, "application/json", Dump(ErrorJson(status)), {}};
    if (http_status == 429 || http_status == 503) {
      res.headers.emplace_back("Retry-After", std::to_string(spec_.retry_after_seconds));
    }
    exchange_->Respond(std::move(res));
  }
  if (on_done_) on_done_(http_status);
}

void CompletionJob::OnClientGone() {
  std::lock_guard lock(mu_);
  if (done_) return;
  done_ = true;
  log::Info("request {}: client disconnected, aborting {} choice(s)", spec_.envelope.id,
            choices_.size());
  AbortAllLocked();
  if (on_done_) on_done_(499);
}

}  // namespace strata::server
