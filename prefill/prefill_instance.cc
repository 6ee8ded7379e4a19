#include "prefill/prefill_instance.h"

#include <algorithm>
#include <future>

#include "common/clock.h"
#include "common/log.h"
#include "decode/wire.h"
#include "kvcache/pool_client.h"
#include "proto/status_convert.h"

namespace strata::prefill {

struct PrefillInstance::Job {
  std::string id;
  transport::PeerId server = transport::kInvalidPeer;
  transport::PeerId decode = transport::kInvalidPeer;
  v1::KvLocation destination;
  int64_t num_prompt = 0;
  int cached_tokens = 0;
  std::vector<kvcache::BlockHash> hashes;  // full prompt blocks (for the pool offer)
  int pool_hit_blocks = 0;
  // Progress (mu_).
  int pending_puts = 0;  // layers whose KV Put batch is in flight
  Status push_error;
  // Ended before its prefill finished: decode gets a KvReady with this error once no write of
  // the job is in flight any more (its blocks there stay held until then).
  Status failed;
  bool prefilled = false;  // blocks handed over by the scheduler
  bool completed = false;
  bool first_token_sent = false;
  std::vector<bool> layer_pushed;  // a runner may not report layers (then OnPrefilled pushes)
  int64_t first_put_ns = 0;        // push timing (PrefillStats)
  int64_t prefilled_ns = 0;
  int64_t last_put_done_ns = 0;  // FirstToken goes to the router before KvReady to decode
  std::vector<kvcache::BlockId> blocks;
  int32_t first_token = -1;
};

StatusOr<std::unique_ptr<PrefillInstance>> PrefillInstance::Start(
    decode::InstanceConfig config, std::unique_ptr<model::ModelRunner> runner,
    std::unique_ptr<transport::Transport> transport) {
  std::unique_ptr<PrefillInstance> self(new PrefillInstance());
  PrefillInstance* raw = self.get();
  self->config_ = std::move(config);
  if (self->is_group_leader()) {
    self->group_ =
        std::make_unique<decode::RankGroup>(self->config_.ep_size, self->config_.rank_heartbeat_ms);
  }
  kvcache::PagedKvCache* cache = runner->host_kv_cache();
  const int32_t num_blocks = runner->num_kv_blocks();
  self->block_size_ = runner->block_size();
  decode::SchedulerOptions so = self->config_.scheduler;
  so.prefill_hooks.on_layer_kv_written =
      [raw](const std::string& id, std::span<const kvcache::BlockId> blocks, int64_t n, int layer) {
        raw->OnLayerWritten(id, blocks, n, layer);
      };
  so.prefill_hooks.on_prefilled = [raw](const std::string& id, std::vector<kvcache::BlockId> blocks,
                                        int32_t first) {
    raw->OnPrefilled(id, std::move(blocks), first);
  };
  self->engine_ = std::make_unique<decode::Engine>(so, std::move(runner));
  service::RpcCallbacks callbacks;
  callbacks.on_request = [raw](transport::PeerId from, v1::Envelope e) {
    raw->OnRequest(from, std::move(e));
  };
  callbacks.on_peer_failure = [raw](transport::PeerId peer, const Status&) {
    raw->OnPeerFailure(peer);
  };
  STRATA_ASSIGN_OR_RETURN(self->node_,
                          service::RpcNode::Create(std::move(transport), std::move(callbacks)));
  STRATA_ASSIGN_OR_RETURN(self->kv_,
                          kvcache::RegisteredKv::Register(cache, &self->node_->transport()));
  STRATA_ASSIGN_OR_RETURN(self->address_, self->node_->Listen(self->config_.listen));
  if (!self->config_.kvcache.empty()) {
    kvcache::KvPoolClientOptions po;
    po.instance_id = self->config_.instance_id;
    self->pool_ =
        std::make_unique<kvcache::KvPoolClient>(self->node_.get(), self->config_.kvcache, po);
  }
  for (int i = 0; i < std::max(1, self->config_.admission_threads); ++i) {
    self->admit_threads_.emplace_back([raw] { raw->AdmitLoop(); });
  }

  service::RegistrationOptions ro;
  // A rank >= 1 of a data-parallel group registers with its rank 0, which stands for the group.
  ro.router_address =
      self->config_.group_leader.empty() ? self->config_.router : self->config_.group_leader;
  ro.instance = decode::DescribeInstance(self->config_, v1::ROLE_PREFILL, self->address_,
                                         num_blocks, self->block_size_);
  ro.paused = self->group_ != nullptr;  // the router hears of a group once it is whole
  self->registration_ = std::make_unique<service::Registration>(
      self->node_.get(), std::move(ro), [raw] { return raw->CurrentLoad(); });
  if (self->group_) {
    self->group_->ResumeAfter(*self->node_, *self->registration_,
                              self->config_.group_join_timeout_ms, self->config_.instance_id);
  }
  log::Info("prefill instance {} listening on {} ({} KV blocks of {} tokens, {} pool(s){})",
            self->config_.instance_id, self->address_, num_blocks, self->block_size_,
            self->config_.kvcache.size(),
            self->config_.ep_size > 1 ? ", EP rank " + std::to_string(self->config_.ep_rank) +
                                            " of " + std::to_string(self->config_.ep_size)
                                      : std::string());
  return self;
}

PrefillInstance::~PrefillInstance() { Shutdown(); }

void PrefillInstance::Shutdown() {
  if (registration_) registration_->Stop();
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : admit_threads_) {
    if (t.joinable()) t.join();
  }
  if (engine_) engine_->Shutdown();
  if (node_ && group_) {
    // What the other ranks still prefill ends with the group: the routers try elsewhere.
    FailForwarded([](const decode::RankGroup::Forwarded&) { return true; },
                  UnavailableError("the prefill instance is stopping"));
  }
  // The transport last: it completes the pushes still in flight (with errors).
  if (node_) node_->Shutdown();
}

PrefillStats PrefillInstance::Stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

int64_t PrefillInstance::OwnQueuedTokens(uint32_t* num_queued) const {
  int64_t queued_tokens = 0;
  uint32_t queued = 0;
  for (const auto& [id, job] : jobs_) {
    if (!job->prefilled) {
      queued_tokens += job->num_prompt - job->cached_tokens;
      ++queued;
    }
  }
  if (num_queued != nullptr) *num_queued = queued;
  return queued_tokens + queued_prompt_tokens_;
}

v1::Load PrefillInstance::CurrentLoad() const {
  decode::GenerationStats s = engine_->Stats();
  v1::Load load;
  load.set_num_kv_blocks_used(static_cast<uint64_t>(s.kv_blocks_used));
  load.set_num_running_requests(static_cast<uint32_t>(s.num_running));
  {
    std::lock_guard lock(mu_);
    uint32_t queued = 0;
    load.set_num_queued_tokens(static_cast<uint64_t>(OwnQueuedTokens(&queued)));
    load.set_num_queued_requests(queued);
  }
  // Rank 0 of a group: the group's load (the other ranks' last reports added to this rank's)
  // and its EP figures.
  return group_ ? group_->GroupLoad(std::move(load), config_.expert_parallel_load) : load;
}

decode::GenerationStats PrefillInstance::InstanceStats() const {
  decode::GenerationStats s = engine_->Stats();
  if (!group_) return s;
  s.num_running += static_cast<int>(group_->num_forwarded());
  s.kv_blocks_used += static_cast<int64_t>(group_->AddLoads(v1::Load()).num_kv_blocks_used());
  return s;
}

std::vector<int64_t> PrefillInstance::RequestsPerRank() const {
  return group_ ? group_->AssignedPerRank() : std::vector<int64_t>();
}

bool PrefillInstance::ForwardToRank(transport::PeerId from, v1::Envelope& e) {
  const v1::PrefillRequest& r = e.prefill_request();
  const int64_t tokens = r.prompt_token_ids_size();
  // The rank with the fewest queued prompt tokens (what was sent to a rank since its last
  // report counts as queued), then the fewest requests; this rank wins ties.
  double own;
  {
    std::lock_guard lock(mu_);
    uint32_t queued = 0;
    own = static_cast<double>(OwnQueuedTokens(&queued)) + 1e-6 * queued;
  }
  const transport::PeerId rank =
      group_->Assign(r.request_id(), from, tokens, own, [](const decode::RankGroup::Rank& x) {
        return static_cast<double>(x.load.num_queued_tokens() + x.since_load) + 1e-6 * x.live;
      });
  if (rank == transport::kInvalidPeer) return false;
  if (Status st = node_->Send(rank, std::move(e)); !st.ok()) {
    FailForwarded(
        [rank](const decode::RankGroup::Forwarded& f) { return f.rank == rank; },
        UnavailableError("cannot reach an EP rank of the prefill instance: " + st.message()));
  }
  return true;
}

void PrefillInstance::FailForwarded(
    const std::function<bool(const decode::RankGroup::Forwarded&)>& pred, const Status& why) {
  for (const auto& [id, f] : group_->EndIf(pred)) {
    log::Warn("{}: prefill on another EP rank failed: {}", id, why.message());
    v1::Envelope ft;
    ft.mutable_first_token()->set_request_id(id);
    *ft.mutable_first_token()->mutable_error() = proto::ToProto(why);
    (void)node_->Send(f.router, std::move(ft));
  }
}

void PrefillInstance::OnRequest(transport::PeerId from, v1::Envelope e) {
  if (group_) {
    if (group_->OnMemberMessage(*node_, from, e, *registration_)) return;
    switch (e.body_case()) {
      case v1::Envelope::kFirstToken: {  // a rank's: on to the router that asked
        auto f = group_->Find(e.first_token().request_id());
        if (f && f->rank == from) {
          group_->End(e.first_token().request_id());
          (void)node_->Send(f->router, std::move(e));
        }
        return;
      }
      case v1::Envelope::kPrefillRequest:
        if (ForwardToRank(from, e)) return;
        break;
      case v1::Envelope::kAbort:
        if (auto f = group_->End(e.abort().request_id())) {
          (void)node_->Send(f->rank, std::move(e));
          return;
        }
        break;
      default:
        break;
    }
  }
  switch (e.body_case()) {
    case v1::Envelope::kPrefillRequest: {
      auto request = std::make_shared<v1::PrefillRequest>(std::move(*e.mutable_prefill_request()));
      const int64_t tokens = request->prompt_token_ids_size();
      {
        std::lock_guard lock(mu_);
        queued_prompt_tokens_ += tokens;
      }
      RunOnAdmissionThread([this, from, request, tokens] {
        {
          std::lock_guard lock(mu_);
          queued_prompt_tokens_ -= tokens;
        }
        Admit(from, std::move(*request));
      });
      return;
    }
    case v1::Envelope::kAbort:
      engine_->Abort(e.abort().request_id());
      return;
    default:
      log::Warn("prefill: unexpected {} from peer {}", proto::BodyName(e), from);
      if (e.call_id() != 0) {
        (void)node_->ReplyError(from, e.call_id(),
                                InvalidArgumentError("a prefill instance does not take " +
                                                     std::string(proto::BodyName(e))));
      }
  }
}

void PrefillInstance::OnPeerFailure(transport::PeerId peer) {
  if (group_) {
    if (group_->RemoveRank(peer)) {
      // Its requests cannot go on (the EP group fails with it): the routers try elsewhere.
      FailForwarded([peer](const decode::RankGroup::Forwarded& f) { return f.rank == peer; },
                    UnavailableError("an EP rank of the prefill instance failed"));
      return;
    }
    group_->AbortRequestsOf(*node_, peer);  // a router that went away
  }
  std::vector<std::string> orphans;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, job] : jobs_) {
      if (job->server == peer && !job->prefilled) orphans.push_back(id);
    }
  }
  for (const auto& id : orphans) engine_->Abort(id);
}

void PrefillInstance::RunOnAdmissionThread(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_all();
}

void PrefillInstance::AdmitLoop() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (stop_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

void PrefillInstance::FailEarly(transport::PeerId server, transport::PeerId decode,
                                const std::string& id, const Status& why) {
  log::Warn("{}: prefill failed: {}", id, why.message());
  v1::Envelope ft;
  ft.mutable_first_token()->set_request_id(id);
  *ft.mutable_first_token()->mutable_error() = proto::ToProto(why);
  (void)node_->Send(server, std::move(ft));
  if (decode != transport::kInvalidPeer) SendKvReadyError(decode, id, why);
  std::lock_guard lock(mu_);
  ++stats_.failed;
}

void PrefillInstance::SendKvReadyError(transport::PeerId decode, const std::string& id,
                                       const Status& why) {
  v1::Envelope ready;
  ready.mutable_kv_ready()->set_request_id(id);
  *ready.mutable_kv_ready()->mutable_error() = proto::ToProto(why);
  (void)node_->Send(decode, std::move(ready));
}

void PrefillInstance::Admit(transport::PeerId from, v1::PrefillRequest r) {
  auto job = std::make_shared<Job>();
  job->id = r.request_id();
  job->server = from;
  job->num_prompt = r.prompt_token_ids_size();
  job->destination = std::move(*r.mutable_kv_destination());
  auto decode = node_->Connect(r.decode_address(),
                               transport::DeadlineAfterMillis(config_.transfer_timeout_ms));
  if (!decode.ok()) {
    FailEarly(from, transport::kInvalidPeer, job->id,
              UnavailableError("cannot reach decode instance " + r.decode_instance_id() + " at " +
                               r.decode_address() + ": " + decode.status().message()));
    return;
  }
  job->decode = *decode;
  decode::GenerateRequest request;
  request.request_id = job->id;
  request.prompt_token_ids.assign(r.prompt_token_ids().begin(), r.prompt_token_ids().end());
  request.sampling = decode::FromProto(r.sampling());
  request.sampling.max_tokens = 1;  // prefill samples the first token only
  request.deadline_ns = MonotonicDeadlineFromUnixMillis(static_cast<int64_t>(r.deadline_unix_ms()));
  if (Status st = engine_->Validate(request); !st.ok()) {
    FailEarly(from, job->decode, job->id, st);
    return;
  }
  // Decode lets us write into the reservation (and holds its blocks for us from now on), or
  // says it is gone.
  v1::Envelope begin;
  begin.mutable_kv_write_begin()->set_request_id(job->id);
  auto ack = node_->CallAndWait(job->decode, std::move(begin),
                                transport::DeadlineAfterMillis(config_.transfer_timeout_ms));
  Status granted = ack.ok() ? proto::FromProto(ack->ack().error()) : ack.status();
  if (!granted.ok()) {
    // A grant that came too late is given back by the KvReady.
    FailEarly(from, job->decode, job->id,
              UnavailableError("decode instance " + r.decode_instance_id() +
                               " does not take the KV: " + granted.message()));
    return;
  }
  log::Debug("{}: decode granted the KV write", job->id);
  // Prompt logprobs need the logits of every prompt token: nothing comes from the pool then.
  std::vector<kvcache::BlockId> preloaded =
      request.sampling.num_prompt_logprobs >= 0
          ? std::vector<kvcache::BlockId>{}
          : FetchFromPool(request.prompt_token_ids, job.get());
  {
    std::lock_guard lock(mu_);
    if (jobs_.count(job->id)) {
      FailEarly(from, job->decode, job->id,
                InvalidArgumentError("duplicate request id '" + job->id + "'"));
      return;
    }
    jobs_[job->id] = job;
    ++stats_.requests;
    stats_.prompt_tokens += job->num_prompt;
  }
  std::string id = job->id;
  auto on_event = [this, job](decode::TokenEvent ev) { OnEvent(job, std::move(ev)); };
  if (preloaded.empty()) {
    if (Status st = engine_->Submit(std::move(request), on_event); !st.ok()) {
      {
        std::lock_guard lock(mu_);
        jobs_.erase(id);
      }
      FailEarly(from, job->decode, id, st);
    }
    return;
  }
  engine_->Post([this, request = std::move(request), on_event, preloaded = std::move(preloaded),
                 job](decode::Scheduler& s) mutable {
    if (Status st = s.AddPreloaded(std::move(request), on_event, std::move(preloaded)); !st.ok()) {
      {
        std::lock_guard lock(mu_);
        jobs_.erase(job->id);
      }
      FailEarly(job->server, job->decode, job->id, st);
    }
  });
}

void PrefillInstance::OnLayerWritten(const std::string& id,
                                     std::span<const kvcache::BlockId> blocks, int64_t num_tokens,
                                     int layer) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    job = it->second;
  }
  PushLayer(job, blocks, num_tokens, layer);
}

void PrefillInstance::PushLayer(const std::shared_ptr<Job>& job,
                                std::span<const kvcache::BlockId> blocks, int64_t num_tokens,
                                int layer) {
  {
    std::lock_guard lock(mu_);
    if (job->layer_pushed.empty()) job->layer_pushed.assign(kv_->spec().num_layers, false);
    if (layer < 0 || layer >= static_cast<int>(job->layer_pushed.size()) ||
        job->layer_pushed[layer]) {
      return;
    }
    job->layer_pushed[layer] = true;
  }
  kvcache::KvTransferRange range;
  range.first_token = 0;
  range.num_tokens = num_tokens;
  range.segments = kvcache::SegmentsOfLayer(kv_->spec(), layer);
  auto transfers =
      kvcache::PlanKvTransfers(*kv_, blocks, job->destination, job->decode, range,
                               transport::DeadlineAfterMillis(config_.transfer_timeout_ms));
  {
    std::lock_guard lock(mu_);
    if (!transfers.ok()) {
      if (job->push_error.ok()) job->push_error = transfers.status();
      return;
    }
    if (!job->push_error.ok() || !job->failed.ok()) return;  // already failed: move no more
    ++job->pending_puts;                                     // one batch per layer
    if (job->first_put_ns == 0) job->first_put_ns = MonotonicNanos();
    for (const auto& x : *transfers) stats_.kv_bytes_pushed += static_cast<int64_t>(x.length);
  }
  // Outside the lock: a transport that has shut down completes the batch on this thread.
  node_->transport().PutBatch(
      std::move(transfers).value(), [this, job](std::vector<Status> statuses) {
        bool owe_ready = false;
        {
          std::lock_guard lock(mu_);
          --job->pending_puts;
          job->last_put_done_ns = MonotonicNanos();
          for (const Status& st : statuses) {
            if (!st.ok() && job->push_error.ok()) job->push_error = st;
          }
          if (!job->failed.ok() && job->pending_puts == 0 && !job->completed) {
            job->completed = true;
            owe_ready = true;
          }
        }
        if (owe_ready) {
          SendKvReadyError(job->decode, job->id, job->failed);
        } else {
          MaybeComplete(job);
        }
      });
}

void PrefillInstance::OnPrefilled(const std::string& id, std::vector<kvcache::BlockId> blocks,
                                  int32_t first) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      // Not ours any more (cannot happen: jobs leave only after this); give the blocks back.
      engine_->Post([blocks](decode::Scheduler& s) { s.ReleaseBlocks(blocks); });
      return;
    }
    job = it->second;
    job->blocks = std::move(blocks);
    job->first_token = first;
  }
  // Layers the runner did not report as they were written (a runner without the per-layer
  // hook, or a microbatched EP step) move now, before the job may complete.
  for (int l = 0; l < kv_->spec().num_layers; ++l) PushLayer(job, job->blocks, job->num_prompt, l);
  {
    std::lock_guard lock(mu_);
    job->prefilled = true;
    job->prefilled_ns = MonotonicNanos();
  }
  MaybeComplete(job);
}

void PrefillInstance::OnEvent(const std::shared_ptr<Job>& job, decode::TokenEvent ev) {
  if (!ev.tokens.empty()) {
    const decode::GeneratedToken& t = ev.tokens.front();
    v1::Envelope e;
    auto* ft = e.mutable_first_token();
    ft->set_request_id(job->id);
    ft->set_token_id(t.token_id);
    ft->set_logprob(t.logprob);
    for (const auto& x : t.top_logprobs) {
      auto* top = ft->mutable_top_logprobs()->add_top();
      top->set_token_id(x.token_id);
      top->set_logprob(x.logprob);
    }
    ft->set_num_prompt_tokens(static_cast<uint32_t>(ev.prompt_tokens));
    ft->set_num_cached_tokens(static_cast<uint32_t>(ev.cached_tokens));
    for (const auto& p : ev.prompt_logprobs) decode::AppendToken(p, ft->mutable_prompt_logprobs());
    (void)node_->Send(job->server, std::move(e));
    {
      std::lock_guard lock(mu_);
      job->first_token_sent = true;
    }
    MaybeComplete(job);
    return;
  }
  if (ev.finish == decode::FinishReason::kError || ev.finish == decode::FinishReason::kAbort) {
    // Ended before its first token (deadline, abort, forward error): no KV goes to decode.
    Status why = ev.finish == decode::FinishReason::kError
                     ? ev.error
                     : CancelledError("the request was aborted during prefill");
    bool ours;
    bool ready_now = false;
    {
      std::lock_guard lock(mu_);
      ours = !job->prefilled && jobs_.erase(job->id) > 0;
      if (ours) {
        // Layers already on their way: decode hears of the failure when they have landed.
        job->failed = why;
        job->completed = ready_now = job->pending_puts == 0;
      }
    }
    if (ours)
      FailEarly(job->server, ready_now ? job->decode : transport::kInvalidPeer, job->id, why);
  }
}

void PrefillInstance::MaybeComplete(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard lock(mu_);
    if (!job->prefilled || !job->first_token_sent || job->pending_puts > 0 || job->completed) {
      return;
    }
    job->completed = true;
    jobs_.erase(job->id);
    if (job->first_put_ns > 0 && job->last_put_done_ns > 0) {
      stats_.kv_push_total_ns += job->last_put_done_ns - job->first_put_ns;
      stats_.kv_push_exposed_ns += std::max<int64_t>(0, job->last_put_done_ns - job->prefilled_ns);
    }
  }
  Complete(job);
}

void PrefillInstance::Complete(const std::shared_ptr<Job>& job) {
  v1::Envelope e;
  auto* ready = e.mutable_kv_ready();
  ready->set_request_id(job->id);
  ready->set_first_token_id(job->first_token);
  ready->set_num_tokens(static_cast<uint32_t>(job->num_prompt));
  ready->set_num_blocks(static_cast<uint32_t>(job->blocks.size()));
  if (!job->push_error.ok()) {
    log::Warn("{}: KV push to decode failed: {}", job->id, job->push_error.message());
    *ready->mutable_error() = proto::ToProto(job->push_error);
    std::lock_guard lock(mu_);
    ++stats_.failed;
  }
  (void)node_->Send(job->decode, std::move(e));
  if (pool_ != nullptr && job->push_error.ok() &&
      static_cast<int>(job->hashes.size()) > job->pool_hit_blocks) {
    // The pool reads the new blocks from here: they stay taken until it has.
    RunOnAdmissionThread([this, job] { OfferToPool(job); });
    return;
  }
  std::vector<kvcache::BlockId> blocks = std::move(job->blocks);
  engine_->Post([blocks = std::move(blocks)](decode::Scheduler& s) { s.ReleaseBlocks(blocks); });
}

void PrefillInstance::OfferToPool(const std::shared_ptr<Job>& job) {
  const size_t first = static_cast<size_t>(job->pool_hit_blocks);
  const size_t full = std::min(job->hashes.size(), job->blocks.size());
  std::vector<kvcache::BlockHash> hashes(job->hashes.begin() + first, job->hashes.begin() + full);
  std::vector<kvcache::BlockId> blocks(job->blocks.begin() + first, job->blocks.begin() + full);
  pool_->Store(
      std::move(hashes), *kv_, std::move(blocks),
      transport::DeadlineAfterMillis(config_.transfer_timeout_ms), [this, job](Status st) {
        if (!st.ok()) log::Debug("{}: KV pool offer failed: {}", job->id, st.message());
        std::vector<kvcache::BlockId> all = std::move(job->blocks);
        engine_->Post([all = std::move(all)](decode::Scheduler& s) { s.ReleaseBlocks(all); });
      });
}

std::vector<kvcache::BlockId> PrefillInstance::FetchFromPool(const std::vector<int32_t>& prompt,
                                                             Job* job) {
  job->hashes = kvcache::HashFullBlocks(prompt, block_size_);
  if (pool_ == nullptr || pool_->num_pools() == 0) return {};
  // Leave at least one token to compute: its logits give the first token.
  std::vector<kvcache::BlockHash> usable(
      job->hashes.begin(),
      job->hashes.begin() + std::min(job->hashes.size(), (prompt.size() - 1) / block_size_));
  if (usable.empty()) return {};
  const auto deadline = transport::DeadlineAfterMillis(config_.transfer_timeout_ms);
  const int hits = pool_->Lookup(usable, deadline);
  if (hits == 0) return {};
  usable.resize(static_cast<size_t>(hits));
  // What this instance's own prefix cache holds is used from there; the rest is read from the
  // pool into fresh blocks. Blocks belong to the step thread: ask it.
  struct Plan {
    std::vector<kvcache::BlockId> local;
    std::vector<kvcache::BlockId> fresh;
  };
  auto promise = std::make_shared<std::promise<Plan>>();
  auto future = promise->get_future();
  engine_->Post([usable, promise](decode::Scheduler& s) {
    Plan plan;
    const int local = s.mutable_block_pool().CountCachedPrefix(usable);
    if (local < static_cast<int>(usable.size())) {
      plan.local = s.mutable_block_pool().MatchPrefix(
          std::span<const kvcache::BlockHash>(usable.data(), static_cast<size_t>(local)));
      auto fresh = s.AllocateBlocks(static_cast<int32_t>(usable.size()) - local);
      if (fresh.ok()) {
        plan.fresh = std::move(*fresh);
      } else {
        s.ReleaseBlocks(plan.local);  // no room: compute it all
        plan.local.clear();
      }
    }
    promise->set_value(std::move(plan));
  });
  if (future.wait_for(std::chrono::milliseconds(config_.transfer_timeout_ms)) !=
      std::future_status::ready) {
    return {};  // the engine stopped
  }
  Plan plan = future.get();
  if (plan.fresh.empty()) return {};
  std::span<const kvcache::BlockHash> to_read(usable.data() + plan.local.size(), plan.fresh.size());
  auto read = pool_->Fetch(to_read, *kv_, plan.fresh, deadline);
  const size_t n = read.ok() ? static_cast<size_t>(*read) : 0;
  if (!read.ok()) log::Debug("{}: KV pool read failed: {}", job->id, read.status().message());
  std::vector<kvcache::BlockId> unused(plan.fresh.begin() + n, plan.fresh.end());
  if (!unused.empty()) {
    engine_->Post([unused](decode::Scheduler& s) { s.ReleaseBlocks(unused); });
  }
  std::vector<kvcache::BlockId> preloaded = std::move(plan.local);
  preloaded.insert(preloaded.end(), plan.fresh.begin(), plan.fresh.begin() + n);
  job->pool_hit_blocks = static_cast<int>(preloaded.size());
  job->cached_tokens = static_cast<int>(preloaded.size()) * block_size_;
  std::lock_guard lock(mu_);
  stats_.pool_hit_tokens += static_cast<int64_t>(n) * block_size_;
  return preloaded;
}

}  // namespace strata::prefill
