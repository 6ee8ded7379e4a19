#include "decode/scheduler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "common/clock.h"
#include "common/log.h"
#include "ops/sampling.h"

namespace strata::decode {

struct Scheduler::Sequence {
  GenerateRequest request;
  GenerationService::EventCallback on_event;
  ops::SamplingOptions sampling;
  uint64_t arrival = 0;
  std::vector<int32_t> tokens;  // prompt, then output
  int num_prompt = 0;
  int64_t num_computed = 0;                // leading tokens whose KV is in `blocks`
  std::vector<kvcache::BlockId> blocks;    // block table
  std::vector<kvcache::BlockHash> hashes;  // prefix hashes of the published leading blocks
  bool running = false;
  bool aborted = false;
  bool admitted_once = false;
  bool first_event_sent = false;
  int cached_tokens = 0;
  std::vector<GeneratedToken> prompt_logprobs;  // by position - 1, while collected
  // Disaggregated decode: reserved, not yet activated, until this deadline.
  bool reserved = false;
  int64_t lease_deadline_ns = 0;
  bool kv_writing = false;  // a writer began (BeginKvWrite) and has not ended
  uint64_t kv_writer = 0;
  Status writer_lost;  // its writer went away before KvReady: ends with this at the next step
  // Ends at the start of the next step with this reason (a first token from prefill that
  // already finished the request).
  FinishReason finish_next_step = FinishReason::kNone;

  int num_output() const { return static_cast<int>(tokens.size()) - num_prompt; }
  // Prompt logprobs are still to be collected: every prompt chunk needs all its logits rows
  // and no prompt token may come from the prefix cache (cached tokens have no logits).
  bool collects_prompt_logprobs() const {
    return request.sampling.num_prompt_logprobs >= 0 && !first_event_sent && num_prompt > 1;
  }
  // The most tokens of one chunk: a sequence collecting prompt logprobs gets a full row of
  // logits per token, so its chunks are kept small enough for that memory to stay bounded.
  int64_t max_chunk_tokens(int64_t budget) const {
    constexpr int64_t kMaxPromptLogprobsChunkTokens = 128;
    return collects_prompt_logprobs() ? std::min(budget, kMaxPromptLogprobsChunkTokens) : budget;
  }
};

namespace {

ops::SamplingOptions ToOpsSampling(const SamplingParams& p, uint64_t seed) {
  ops::SamplingOptions o;
  o.temperature = p.temperature;
  o.top_p = p.top_p;
  o.top_k = p.top_k;
  o.min_p = p.min_p;
  o.presence_penalty = p.presence_penalty;
  o.frequency_penalty = p.frequency_penalty;
  o.repetition_penalty = p.repetition_penalty;
  o.seed = seed;
  o.num_top_logprobs = p.num_top_logprobs;
  return o;
}

// log_softmax of `logits` at `token_id`, and the top `num_top` entries (best first, ties by id).
GeneratedToken TokenLogprobs(std::span<const float> logits, int32_t token_id, int num_top) {
  float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v - mx));
  const float log_z = mx + static_cast<float>(std::log(sum));
  GeneratedToken g;
  g.token_id = token_id;
  g.logprob = logits[static_cast<size_t>(token_id)] - log_z;
  const int64_t n = std::min<int64_t>(num_top, static_cast<int64_t>(logits.size()));
  if (n > 0) {
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int64_t i = 0; i < n; ++i) g.top_logprobs.push_back({ids[i], logits[ids[i]] - log_z});
  }
  return g;
}

uint64_t RandomSeed() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

}  // namespace

Scheduler::Scheduler(SchedulerOptions options, model::ModelRunner* runner)
    : options_(std::move(options)),
      runner_(runner),
      block_size_(runner->block_size()),
      vocab_size_(runner->config().vocab_size),
      pool_(runner->num_kv_blocks()) {}

Scheduler::~Scheduler() = default;

Status ValidateGenerateRequest(const GenerateRequest& r, int64_t vocab_size, int max_model_len) {
  if (r.prompt_token_ids.empty()) return InvalidArgumentError("'prompt': must not be empty");
  for (int32_t id : r.prompt_token_ids) {
    if (id < 0 || id >= vocab_size) {
      return InvalidArgumentError("'prompt': token id " + std::to_string(id) +
                                  " is outside the vocabulary (size " + std::to_string(vocab_size) +
                                  ")");
    }
  }
  const auto& s = r.sampling;
  if (s.max_tokens < 1) return InvalidArgumentError("'max_tokens': must be at least 1");
  if (s.num_prompt_logprobs < -1 || s.num_prompt_logprobs > vocab_size) {
    return InvalidArgumentError(
        "'prompt_logprobs': must be between -1 (off) and the vocabulary "
        "size, got " +
        std::to_string(s.num_prompt_logprobs));
  }
  int64_t total = static_cast<int64_t>(r.prompt_token_ids.size()) + s.max_tokens;
  if (total > max_model_len) {
    return InvalidArgumentError("'max_tokens': This model's maximum context length is " +
                                std::to_string(max_model_len) + " tokens. However, you requested " +
                                std::to_string(total) + " tokens.");
  }
  return ops::ValidateSamplingOptions(ToOpsSampling(s, 0));
}

Status Scheduler::Validate(const GenerateRequest& r) const {
  STRATA_RETURN_IF_ERROR(ValidateGenerateRequest(r, vocab_size_, options_.max_model_len));
  int64_t total = static_cast<int64_t>(r.prompt_token_ids.size()) + r.sampling.max_tokens;
  int64_t blocks = model::BlocksForTokens(total, block_size_);
  if (blocks > pool_.num_blocks()) {
    return InvalidArgumentError("the request needs " + std::to_string(blocks) +
                                " KV blocks (context length " + std::to_string(total) +
                                "), more than the " + std::to_string(pool_.num_blocks()) +
                                " the KV cache has");
  }
  return OkStatus();
}

Status Scheduler::Add(GenerateRequest request, GenerationService::EventCallback on_event) {
  return AddPreloaded(std::move(request), std::move(on_event), {});
}

Status Scheduler::AddPreloaded(GenerateRequest request, GenerationService::EventCallback on_event,
                               std::vector<kvcache::BlockId> preloaded) {
  Status ok = OkStatus();
  if (static_cast<int>(waiting_.size()) >= options_.max_waiting) {
    ok = ResourceExhaustedError("the queue is full (" + std::to_string(options_.max_waiting) +
                                " requests waiting)");
  } else if (sequences_.count(request.request_id)) {
    ok = InvalidArgumentError("duplicate request id '" + request.request_id + "'");
  } else if (static_cast<int64_t>(preloaded.size()) * block_size_ >=
             static_cast<int64_t>(request.prompt_token_ids.size())) {
    ok = InvalidArgumentError("preloaded KV covers the whole prompt; one token must be computed");
  }
  if (!ok.ok()) {
    pool_.ReleaseAll(preloaded);
    return ok;
  }
  auto seq = std::make_unique<Sequence>();
  seq->blocks = std::move(preloaded);
  seq->num_computed = static_cast<int64_t>(seq->blocks.size()) * block_size_;
  seq->sampling = ToOpsSampling(request.sampling, request.sampling.seed.value_or(RandomSeed()));
  seq->arrival = next_arrival_++;
  seq->tokens = request.prompt_token_ids;
  seq->num_prompt = static_cast<int>(seq->tokens.size());
  seq->request = std::move(request);
  seq->on_event = std::move(on_event);
  waiting_.push_back(seq.get());
  std::string id = seq->request.request_id;
  sequences_[id] = std::move(seq);
  return OkStatus();
}

void Scheduler::Abort(const std::string& request_id) {
  auto it = sequences_.find(request_id);
  if (it != sequences_.end()) it->second->aborted = true;
}

StatusOr<std::vector<kvcache::BlockId>> Scheduler::Reserve(
    GenerateRequest request, GenerationService::EventCallback on_event, int64_t lease_deadline_ns) {
  if (sequences_.count(request.request_id)) {
    return InvalidArgumentError("duplicate request id '" + request.request_id + "'");
  }
  const int64_t num_prompt = static_cast<int64_t>(request.prompt_token_ids.size());
  STRATA_ASSIGN_OR_RETURN(auto blocks,
                          pool_.AllocateMany(model::BlocksForTokens(num_prompt, block_size_)));
  auto seq = std::make_unique<Sequence>();
  seq->blocks = blocks;
  seq->sampling = ToOpsSampling(request.sampling, request.sampling.seed.value_or(RandomSeed()));
  seq->arrival = next_arrival_++;
  seq->tokens = request.prompt_token_ids;
  seq->num_prompt = static_cast<int>(num_prompt);
  seq->reserved = true;
  seq->lease_deadline_ns = lease_deadline_ns;
  seq->request = std::move(request);
  seq->on_event = std::move(on_event);
  reserved_.push_back(seq.get());
  std::string id = seq->request.request_id;
  sequences_[id] = std::move(seq);
  return blocks;
}

Status Scheduler::Activate(const std::string& request_id, int32_t first_token) {
  auto it = sequences_.find(request_id);
  if (it == sequences_.end() || !it->second->reserved) {
    return NotFoundError("no request '" + request_id + "' holds reserved KV blocks here");
  }
  Sequence* seq = it->second.get();
  if (first_token < 0 || first_token >= vocab_size_) {
    return InvalidArgumentError("first token " + std::to_string(first_token) +
                                " is outside the vocabulary");
  }
  std::erase(reserved_, seq);
  seq->reserved = false;
  seq->num_computed = seq->num_prompt;
  seq->tokens.push_back(first_token);
  // The server had the first token (and the prompt's usage) from prefill.
  seq->first_event_sent = true;
  seq->admitted_once = true;
  const auto& sp = seq->request.sampling;
  bool stop = std::find(sp.stop_token_ids.begin(), sp.stop_token_ids.end(), first_token) !=
              sp.stop_token_ids.end();
  if (!sp.ignore_eos) {
    stop = stop || std::find(options_.eos_token_ids.begin(), options_.eos_token_ids.end(),
                             first_token) != options_.eos_token_ids.end();
  }
  if (stop) {
    seq->finish_next_step = FinishReason::kStop;
  } else if (seq->num_output() >= sp.max_tokens ||
             static_cast<int64_t>(seq->tokens.size()) >= options_.max_model_len) {
    seq->finish_next_step = FinishReason::kLength;
  }
  auto pos = std::find_if(waiting_.begin(), waiting_.end(),
                          [seq](Sequence* w) { return w->arrival > seq->arrival; });
  waiting_.insert(pos, seq);
  return OkStatus();
}

void Scheduler::ReleaseBlocks(std::span<const kvcache::BlockId> blocks) {
  pool_.ReleaseAll(blocks);
}

StatusOr<std::vector<kvcache::BlockId>> Scheduler::AllocateBlocks(int32_t n) {
  return pool_.AllocateMany(n);
}

void Scheduler::AbortAll(std::vector<PendingEvent>* events) {
  std::vector<Sequence*> all;
  for (auto& [id, seq] : sequences_) all.push_back(seq.get());
  for (Sequence* s : all) Finish(s, FinishReason::kAbort, OkStatus(), events);
}

bool Scheduler::EnsureBlocks(Sequence* seq, int64_t num_tokens) {
  int32_t need =
      model::BlocksForTokens(num_tokens, block_size_) - static_cast<int32_t>(seq->blocks.size());
  if (need <= 0) return true;
  auto ids = pool_.AllocateMany(need);
  if (!ids.ok()) return false;
  seq->blocks.insert(seq->blocks.end(), ids->begin(), ids->end());
  return true;
}

void Scheduler::ReleaseBlocks(Sequence* seq) {
  pool_.ReleaseAll(seq->blocks);
  seq->blocks.clear();
  seq->hashes.clear();
  seq->num_computed = 0;
}

void Scheduler::Preempt(Sequence* seq) {
  log::Debug("preempting {} ({} tokens) to free KV blocks", seq->request.request_id,
             seq->tokens.size());
  ReleaseBlocks(seq);
  std::erase(running_, seq);
  seq->running = false;
  auto pos = std::find_if(waiting_.begin(), waiting_.end(),
                          [seq](Sequence* w) { return w->arrival > seq->arrival; });
  waiting_.insert(pos, seq);
  ++num_preemptions_;
}

void Scheduler::Finish(Sequence* seq, FinishReason reason, Status error,
                       std::vector<PendingEvent>* events) {
  if (events != nullptr) {
    PendingEvent ev;
    ev.callback = &seq->on_event;
    ev.event.finish = reason;
    ev.event.error = std::move(error);
    if (!seq->first_event_sent) {
      ev.event.prompt_tokens = seq->num_prompt;
      ev.event.cached_tokens = seq->cached_tokens;
      seq->first_event_sent = true;
    }
    events->push_back(std::move(ev));
  }
  if (seq->reserved && seq->kv_writing) {
    HeldForWriter held;
    held.request_id = seq->request.request_id;
    held.writer = seq->kv_writer;
    held.blocks = std::move(seq->blocks);
    held.until_ns = MonotonicNanos() + options_.kv_write_grace_ms * 1000000;
    held_for_writer_.push_back(std::move(held));
    seq->blocks.clear();
  }
  ReleaseBlocks(seq);
  if (seq->running) {
    std::erase(running_, seq);
  } else if (seq->reserved) {
    std::erase(reserved_, seq);
  } else {
    auto it = std::find(waiting_.begin(), waiting_.end(), seq);
    if (it != waiting_.end()) waiting_.erase(it);
  }
  seq->running = false;
  auto it = sequences_.find(seq->request.request_id);
  finished_.push_back(std::move(it->second));
  sequences_.erase(it);
}

Status Scheduler::BeginKvWrite(const std::string& request_id, uint64_t writer) {
  auto it = sequences_.find(request_id);
  if (it == sequences_.end() || !it->second->reserved || it->second->aborted) {
    return NotFoundError("no request '" + request_id + "' holds reserved KV blocks here");
  }
  it->second->kv_writing = true;
  it->second->kv_writer = writer;
  return OkStatus();
}

void Scheduler::ReleaseHeldIf(const std::function<bool(const HeldForWriter&)>& pred) {
  std::erase_if(held_for_writer_, [&](HeldForWriter& h) {
    if (!pred(h)) return false;
    pool_.ReleaseAll(h.blocks);
    return true;
  });
}

void Scheduler::EndKvWrite(const std::string& request_id) {
  auto it = sequences_.find(request_id);
  if (it != sequences_.end()) it->second->kv_writing = false;
  ReleaseHeldIf([&](const HeldForWriter& h) { return h.request_id == request_id; });
}

void Scheduler::DropKvWriter(uint64_t writer) {
  for (auto& [id, seq] : sequences_) {
    if (seq->kv_writing && seq->kv_writer == writer) {
      seq->kv_writing = false;
      // Its KV will not be complete: end it now rather than at the lease.
      if (seq->reserved) {
        seq->writer_lost =
            UnavailableError("the prefill instance writing the prompt's KV went away");
      }
    }
  }
  ReleaseHeldIf([&](const HeldForWriter& h) { return h.writer == writer; });
}

void Scheduler::ExpireAndAbort(std::vector<PendingEvent>* events) {
  const int64_t now = MonotonicNanos();
  ReleaseHeldIf([&](const HeldForWriter& h) {
    if (now <= h.until_ns) return false;
    log::Warn("{}: the KV writer did not finish within {} ms; its blocks are reused", h.request_id,
              options_.kv_write_grace_ms);
    return true;
  });
  std::vector<std::pair<Sequence*, bool>> ended;  // (seq, deadline)
  for (auto& [id, seq] : sequences_) {
    if (seq->finish_next_step != FinishReason::kNone) {
      continue;
    } else if (seq->aborted || !seq->writer_lost.ok()) {
      ended.emplace_back(seq.get(), false);
    } else if (seq->reserved && now > seq->lease_deadline_ns) {
      ended.emplace_back(seq.get(), true);
    } else if (seq->request.deadline_ns > 0 && now > seq->request.deadline_ns) {
      ended.emplace_back(seq.get(), true);
    }
  }
  std::vector<Sequence*> done;
  for (auto& [id, seq] : sequences_) {
    if (seq->finish_next_step != FinishReason::kNone) done.push_back(seq.get());
  }
  for (Sequence* seq : done) Finish(seq, seq->finish_next_step, OkStatus(), events);
  for (auto [seq, deadline] : ended) {
    if (deadline && seq->reserved) {
      Finish(seq, FinishReason::kError,
             DeadlineExceededError("the prompt's KV did not arrive within the reservation lease"),
             events);
    } else if (deadline) {
      Finish(seq, FinishReason::kError,
             DeadlineExceededError("the request ran past its deadline (--request-timeout)"),
             events);
    } else if (!seq->aborted && !seq->writer_lost.ok()) {
      Finish(seq, FinishReason::kError, seq->writer_lost, events);
    } else {
      Finish(seq, FinishReason::kAbort, OkStatus(), events);
    }
  }
}

bool Scheduler::AdmitWaiting(Sequence* seq, int* budget, std::vector<Scheduled>* batch) {
  int matched_blocks = 0;
  const int64_t preloaded_tokens = seq->blocks.empty() ? 0 : seq->num_computed;
  if (options_.enable_prefix_caching && seq->blocks.empty() && !seq->collects_prompt_logprobs()) {
    // Leave at least one token to compute: its logits give the next token.
    auto all = kvcache::HashFullBlocks(seq->tokens, block_size_);
    size_t usable = std::min(all.size(), (seq->tokens.size() - 1) / block_size_);
    all.resize(usable);
    auto hit = pool_.MatchPrefix(all);
    matched_blocks = static_cast<int>(hit.size());
    seq->blocks = std::move(hit);
    seq->hashes.assign(all.begin(), all.begin() + matched_blocks);
    seq->num_computed = static_cast<int64_t>(matched_blocks) * block_size_;
  }
  int64_t remaining = static_cast<int64_t>(seq->tokens.size()) - seq->num_computed;
  int n = static_cast<int>(std::min<int64_t>(remaining, seq->max_chunk_tokens(*budget)));
  if (!EnsureBlocks(seq, seq->num_computed + n)) {
    ReleaseBlocks(seq);  // gives the prefix hit back; admission waits for blocks (FIFO)
    return false;
  }
  if (!seq->admitted_once) {
    seq->admitted_once = true;
    seq->cached_tokens = matched_blocks * block_size_ + static_cast<int>(preloaded_tokens);
    prefix_query_tokens_ += seq->num_prompt;
    prefix_hit_tokens_ += seq->cached_tokens;
  }
  waiting_.pop_front();
  seq->running = true;
  auto pos = std::find_if(running_.begin(), running_.end(),
                          [seq](Sequence* r) { return r->arrival > seq->arrival; });
  running_.insert(pos, seq);
  batch->push_back({seq, n, n == remaining});
  *budget -= n;
  return true;
}

void Scheduler::Schedule(std::vector<Scheduled>* batch) {
  int budget = options_.max_num_batched_tokens;
  // Running sequences, oldest first. Preemption takes the youngest, which has not been
  // scheduled yet in this step (or is the current one).
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence* seq = running_[i];
    int64_t remaining = static_cast<int64_t>(seq->tokens.size()) - seq->num_computed;
    int n = static_cast<int>(std::min<int64_t>(remaining, seq->max_chunk_tokens(budget)));
    bool preempted_self = false;
    while (!EnsureBlocks(seq, seq->num_computed + n)) {
      Sequence* victim = running_.back();
      Preempt(victim);
      if (victim == seq) {
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) break;
    batch->push_back({seq, n, n == remaining});
    budget -= n;
  }
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int>(running_.size()) < options_.max_num_seqs) {
    if (!AdmitWaiting(waiting_.front(), &budget, batch)) break;  // FIFO: nobody jumps the queue
  }
}

void Scheduler::PublishFullBlocks(Sequence* seq) {
  if (!options_.enable_prefix_caching) return;
  size_t full = static_cast<size_t>(seq->num_computed / block_size_);
  while (seq->hashes.size() < full) {
    size_t b = seq->hashes.size();
    kvcache::BlockHash parent = b == 0 ? 0 : seq->hashes[b - 1];
    auto hash = kvcache::HashBlock(
        parent, std::span<const int32_t>(seq->tokens.data() + b * block_size_, block_size_));
    pool_.Publish(seq->blocks[b], hash);  // false: an equal block is already cached; fine
    seq->hashes.push_back(hash);
  }
}

void Scheduler::Sample(Sequence* seq, std::span<const float> logits,
                       std::vector<PendingEvent>* events) {
  std::span<const int32_t> prompt(seq->tokens.data(), seq->num_prompt);
  std::span<const int32_t> output(seq->tokens.data() + seq->num_prompt, seq->num_output());
  ops::SampledToken t = ops::SampleToken(logits, seq->sampling, prompt, output,
                                         static_cast<uint64_t>(seq->num_output()));
  seq->tokens.push_back(t.token_id);
  PendingEvent ev;
  ev.callback = &seq->on_event;
  GeneratedToken g;
  g.token_id = t.token_id;
  g.logprob = t.logprob;
  for (const auto& e : t.top_logprobs) g.top_logprobs.push_back({e.token_id, e.logprob});
  ev.event.tokens.push_back(std::move(g));
  if (!seq->first_event_sent) {
    ev.event.prompt_tokens = seq->num_prompt;
    ev.event.cached_tokens = seq->cached_tokens;
    ev.event.prompt_logprobs = std::move(seq->prompt_logprobs);
    seq->first_event_sent = true;
  }
  const auto& sp = seq->request.sampling;
  bool stop = std::find(sp.stop_token_ids.begin(), sp.stop_token_ids.end(), t.token_id) !=
              sp.stop_token_ids.end();
  if (!sp.ignore_eos) {
    stop = stop || std::find(options_.eos_token_ids.begin(), options_.eos_token_ids.end(),
                             t.token_id) != options_.eos_token_ids.end();
  }
  if (stop) {
    ev.event.finish = FinishReason::kStop;
  } else if (seq->num_output() >= sp.max_tokens ||
             static_cast<int64_t>(seq->tokens.size()) >= options_.max_model_len) {
    ev.event.finish = FinishReason::kLength;
  }
  events->push_back(std::move(ev));
  if (events->back().event.finish == FinishReason::kNone) return;
  if (options_.prefill_hooks.on_prefilled && seq->num_output() == 1) {
    // Prefill instance: the blocks go on to the KV push (released by the callee).
    std::vector<kvcache::BlockId> blocks = std::move(seq->blocks);
    seq->blocks.clear();
    seq->hashes.clear();
    options_.prefill_hooks.on_prefilled(seq->request.request_id, std::move(blocks),
                                        seq->tokens.back());
  }
  Finish(seq, FinishReason::kNone, {}, nullptr);
}

Status Scheduler::Step(std::vector<PendingEvent>* events) {
  finished_.clear();
  ExpireAndAbort(events);
  std::vector<Scheduled> batch;
  Schedule(&batch);
  if (batch.empty()) return OkStatus();
  model::ForwardBatch fb;
  fb.sequences.reserve(batch.size());
  for (const auto& s : batch) {
    model::SequenceChunk chunk;
    chunk.token_ids = std::span<const int32_t>(s.seq->tokens.data() + s.seq->num_computed,
                                               static_cast<size_t>(s.num_tokens));
    chunk.start_position = static_cast<int32_t>(s.seq->num_computed);
    chunk.block_table = s.seq->blocks;
    chunk.logits = s.sample ? model::LogitsMode::kLast : model::LogitsMode::kNone;
    if (s.seq->collects_prompt_logprobs()) chunk.logits = model::LogitsMode::kAll;
    fb.sequences.push_back(chunk);
  }
  // The sequences whose prompt completes in this step (prefill instance): each layer of their
  // KV can move as soon as the forward has written it.
  std::vector<Sequence*> completing;
  if (options_.prefill_hooks.on_layer_kv_written) {
    for (const auto& s : batch) {
      if (s.sample && s.seq->num_output() == 0) completing.push_back(s.seq);
    }
    if (!completing.empty()) {
      fb.on_layer_kv_written = [this, &completing](int layer) {
        for (Sequence* seq : completing) {
          options_.prefill_hooks.on_layer_kv_written(seq->request.request_id, seq->blocks,
                                                     seq->num_prompt, layer);
        }
      };
    }
  }
  model::ForwardResult result;
  Status st = runner_->Forward(fb, &result);
  ++num_steps_;
  if (!st.ok()) {
    log::Error("forward failed: {}", st.ToString());
    // A lost peer (an EP group that failed or stopped) makes the instance unavailable (503);
    // anything else is this instance's fault.
    const bool peer_lost =
        st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kAborted ||
        st.code() == StatusCode::kDeadlineExceeded || st.code() == StatusCode::kCancelled;
    const Status why = peer_lost ? UnavailableError("forward failed: " + st.message())
                                 : InternalError("forward failed: " + st.message());
    for (const auto& s : batch) {
      if (sequences_.count(s.seq->request.request_id)) {
        Finish(s.seq, FinishReason::kError, why, events);
      }
    }
    return st;
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    Sequence* seq = batch[i].seq;
    const int n = batch[i].num_tokens;
    int64_t last_row = 0;
    if (fb.sequences[i].logits == model::LogitsMode::kAll) {
      // Row j predicts position start + j + 1; the rows that predict a prompt token are kept by
      // position, so a chunk recomputed after preemption overwrites the same entries.
      const int64_t start = seq->num_computed;
      seq->prompt_logprobs.resize(static_cast<size_t>(seq->num_prompt - 1));
      for (int64_t j = 0; j < n && start + j + 1 < seq->num_prompt; ++j) {
        const int64_t pos = start + j + 1;
        seq->prompt_logprobs[static_cast<size_t>(pos - 1)] =
            TokenLogprobs(result.Row(i, j), seq->tokens[static_cast<size_t>(pos)],
                          seq->request.sampling.num_prompt_logprobs);
      }
      last_row = n - 1;
    }
    seq->num_computed += n;
    PublishFullBlocks(seq);
    if (batch[i].sample) Sample(seq, result.Row(i, last_row), events);
  }
  return OkStatus();
}

GenerationStats Scheduler::Stats() const {
  GenerationStats s;
  s.num_running = static_cast<int>(running_.size());
  s.num_waiting = static_cast<int>(waiting_.size());
  auto counts = pool_.counts();
  s.kv_blocks_total = counts.total;
  s.kv_blocks_used = counts.used;
  s.prefix_cache_hit_tokens = prefix_hit_tokens_;
  s.prefix_cache_query_tokens = prefix_query_tokens_;
  return s;
}

}  // namespace strata::decode
