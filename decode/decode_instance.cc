#include "decode/decode_instance.h"

#include "common/clock.h"
#include "common/log.h"
#include "decode/wire.h"
#include "proto/status_convert.h"

namespace strata::decode {

StatusOr<std::unique_ptr<DecodeInstance>> DecodeInstance::Start(
    InstanceConfig config, std::unique_ptr<model::ModelRunner> runner,
    std::unique_ptr<transport::Transport> transport) {
  std::unique_ptr<DecodeInstance> self(new DecodeInstance());
  DecodeInstance* raw = self.get();
  self->config_ = std::move(config);
  if (self->is_group_leader()) {
    // Before the node exists: its dispatch thread reads group_.
    self->group_ =
        std::make_unique<RankGroup>(self->config_.ep_size, self->config_.rank_heartbeat_ms);
  }
  kvcache::PagedKvCache* cache = runner->host_kv_cache();
  const int32_t num_blocks = runner->num_kv_blocks();
  const int block_size = runner->block_size();
  self->num_kv_blocks_ = num_blocks;
  self->engine_ = std::make_unique<Engine>(self->config_.scheduler, std::move(runner));
  self->engine_->SetStepObserver([raw] { raw->Flush(); });
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

  service::RegistrationOptions ro;
  // A rank >= 1 of a data-parallel group registers with its rank 0, which stands for the group.
  const bool member = !self->config_.group_leader.empty();
  ro.router_address = member ? self->config_.group_leader : self->config_.router;
  ro.instance =
      DescribeInstance(self->config_, v1::ROLE_DECODE, self->address_, num_blocks, block_size);
  if (self->is_group_leader()) {
    // The router sees one instance: the group's (every rank has the same KV cache).
    auto* cap = ro.instance.mutable_capacity();
    cap->set_num_kv_blocks(static_cast<uint64_t>(num_blocks) * self->config_.ep_size);
    cap->set_max_running_requests(cap->max_running_requests() * self->config_.ep_size);
    ro.paused = true;  // the router hears of the group once it is whole
  }
  self->registration_ = std::make_unique<service::Registration>(
      self->node_.get(), std::move(ro), [raw] { return raw->CurrentLoad(); });
  if (self->group_) {
    self->group_->ResumeAfter(*self->node_, *self->registration_,
                              self->config_.group_join_timeout_ms, self->config_.instance_id);
  }
  log::Info("decode instance {} listening on {} ({} KV blocks of {} tokens{})",
            self->config_.instance_id, self->address_, num_blocks, block_size,
            self->config_.ep_size > 1 ? ", EP rank " + std::to_string(self->config_.ep_rank) +
                                            " of " + std::to_string(self->config_.ep_size)
                                      : std::string());
  return self;
}

DecodeInstance::~DecodeInstance() { Shutdown(); }

void DecodeInstance::Shutdown() {
  if (registration_) registration_->Stop();
  if (engine_) engine_->Shutdown();  // aborts what is left; Flush tells the routers
  if (node_ && group_) {
    // What the other ranks still run ends with the group: tell the routers now.
    EndForwarded([](const RankGroup::Forwarded&) { return true; }, FinishReason::kAbort,
                 UnavailableError("the decode instance is stopping"));
  }
  if (node_) node_->Shutdown();
}

GenerationStats DecodeInstance::Stats() const {
  GenerationStats s = engine_->Stats();
  if (!group_) return s;
  s.num_running += static_cast<int>(group_->num_forwarded());
  v1::Load others = group_->AddLoads(v1::Load());
  s.kv_blocks_used += static_cast<int64_t>(others.num_kv_blocks_used());
  s.kv_blocks_total *= config_.ep_size;
  return s;
}

std::vector<int64_t> DecodeInstance::RequestsPerRank() const {
  return group_ ? group_->AssignedPerRank() : std::vector<int64_t>();
}

v1::Load DecodeInstance::CurrentLoad() const {
  GenerationStats s = engine_->Stats();
  v1::Load load;
  load.set_num_kv_blocks_used(static_cast<uint64_t>(s.kv_blocks_used));
  load.set_num_running_requests(static_cast<uint32_t>(s.num_running));
  load.set_num_queued_requests(static_cast<uint32_t>(s.num_waiting));
  // Rank 0 of a group: the group's load (the other ranks' last reports added to this rank's)
  // and its EP figures.
  return group_ ? group_->GroupLoad(std::move(load), config_.expert_parallel_load) : load;
}

void DecodeInstance::OnRequest(transport::PeerId from, v1::Envelope e) {
  if (group_) {
    if (group_->OnMemberMessage(*node_, from, e, *registration_)) return;
    switch (e.body_case()) {
      case v1::Envelope::kTokenBatch:
        RelayTokens(from, e.token_batch());
        return;
      case v1::Envelope::kAbort:
        if (ForwardToRank(e.abort().request_id(), e)) return;
        break;
      case v1::Envelope::kRelease:
        if (ForwardToRank(e.release().request_id(), e)) return;
        break;
      default:
        break;
    }
  }
  switch (e.body_case()) {
    case v1::Envelope::kDecodeAdmit:
      Admit(from, e.call_id(), e.decode_admit());
      return;
    case v1::Envelope::kKvReady: {
      const v1::KvReady& ready = e.kv_ready();
      std::string id = ready.request_id();
      if (ready.has_error() && ready.error().code() != v1::STATUS_CODE_OK) {
        log::Warn("{}: prefill failed to deliver the KV: {}", id, ready.error().message());
        engine_->Post([id](Scheduler& s) {
          s.EndKvWrite(id);
          s.Abort(id);
        });
        return;
      }
      int32_t first = ready.first_token_id();
      engine_->Post([id, first](Scheduler& s) {
        Status st = s.Activate(id, first);
        s.EndKvWrite(id);  // an ended reservation's blocks, held for this writer, go back
        if (!st.ok()) log::Debug("{}: KvReady ignored: {}", id, st.message());
      });
      return;
    }
    case v1::Envelope::kKvWriteBegin: {
      std::string id = e.kv_write_begin().request_id();
      const uint64_t call_id = e.call_id();
      engine_->Post([this, id, from, call_id](Scheduler& s) {
        v1::Envelope reply;
        reply.mutable_ack()->set_request_id(id);
        *reply.mutable_ack()->mutable_error() = proto::ToProto(s.BeginKvWrite(id, from));
        (void)node_->Reply(from, call_id, std::move(reply));
      });
      return;
    }
    case v1::Envelope::kAbort:
      engine_->Abort(e.abort().request_id());
      return;
    case v1::Envelope::kRelease:
      engine_->Abort(e.release().request_id());
      return;
    default:
      log::Warn("decode: unexpected {} from peer {}", proto::BodyName(e), from);
      if (e.call_id() != 0) {
        (void)node_->ReplyError(from, e.call_id(),
                                InvalidArgumentError("a decode instance does not take " +
                                                     std::string(proto::BodyName(e))));
      }
  }
}

void DecodeInstance::Admit(transport::PeerId from, uint64_t call_id, const v1::DecodeAdmit& admit) {
  if (!group_) return AdmitHere(from, call_id, admit, 0);
  AdmitOnBestRank(from, call_id, admit, {});
}

void DecodeInstance::AdmitOnBestRank(transport::PeerId from, uint64_t call_id,
                                     const v1::DecodeAdmit& admit,
                                     std::vector<transport::PeerId> full) {
  // The rank with the most free KV blocks (what was given to a rank since its last report
  // counts as used), then the fewest requests; this rank wins ties.
  const int64_t blocks = admit.num_blocks();
  GenerationStats own = engine_->Stats();
  int64_t own_free;
  {
    std::lock_guard lock(mu_);
    own_free = num_kv_blocks_ - own.kv_blocks_used - pending_here_blocks_;
    pending_here_blocks_ += blocks;  // given back if another rank takes it
  }
  auto score = [](int64_t free, int64_t live) {
    return -static_cast<double>(free) + 1e-6 * static_cast<double>(live);
  };
  const transport::PeerId rank = group_->Assign(
      admit.request_id(), from, blocks, score(own_free, own.num_running + own.num_waiting),
      [&](const RankGroup::Rank& r) {
        return score(static_cast<int64_t>(r.capacity.num_kv_blocks()) -
                         static_cast<int64_t>(r.load.num_kv_blocks_used()) - r.since_load,
                     r.live);
      },
      full);
  if (rank == transport::kInvalidPeer) return AdmitHere(from, call_id, admit, blocks);
  {
    std::lock_guard lock(mu_);
    pending_here_blocks_ -= blocks;
  }
  // The rank answers with its own blocks and address: the prefill writes straight into it.
  v1::Envelope e;
  *e.mutable_decode_admit() = admit;
  const std::string id = admit.request_id();
  node_->Call(rank, std::move(e), transport::DeadlineAfterMillis(config_.forward_timeout_ms),
              [this, from, call_id, id, rank, admit,
               full = std::move(full)](StatusOr<v1::Envelope> reply) mutable {
                Status st = reply.ok() ? proto::FromProto(reply->decode_admit_reply().error())
                                       : reply.status();
                if (st.ok()) {
                  (void)node_->Reply(from, call_id, std::move(*reply));
                  return;
                }
                const bool still_ours = group_->Find(id).has_value();  // not aborted meanwhile
                group_->Retract(id, rank);
                if (st.code() == StatusCode::kResourceExhausted && still_ours) {
                  // Its KV filled up since its last report: another rank (or this one) may
                  // have room; the router hears "full" only when every rank said so.
                  full.push_back(rank);
                  AdmitOnBestRank(from, call_id, admit, std::move(full));
                  return;
                }
                if (!reply.ok()) {
                  // It may still reserve late: give that back at once.
                  v1::Envelope abort;
                  abort.mutable_abort()->set_request_id(id);
                  (void)node_->Send(rank, std::move(abort));
                }
                v1::Envelope out;
                out.mutable_decode_admit_reply()->set_request_id(id);
                *out.mutable_decode_admit_reply()->mutable_error() = proto::ToProto(st);
                (void)node_->Reply(from, call_id, std::move(out));
              });
}

void DecodeInstance::RelayTokens(transport::PeerId from, const v1::TokenBatch& batch) {
  std::map<transport::PeerId, v1::TokenBatch> out;
  for (const auto& rt : batch.requests()) {
    auto f = group_->Find(rt.request_id());
    if (!f || f->rank != from) continue;  // ended here already (aborted)
    *out[f->router].add_requests() = rt;
    if (FromProto(rt.finish_reason()) != FinishReason::kNone) group_->End(rt.request_id());
  }
  for (auto& [router, b] : out) {
    b.set_instance_id(config_.instance_id);
    b.set_step(batch.step());
    v1::Envelope e;
    *e.mutable_token_batch() = std::move(b);
    (void)node_->Send(router, std::move(e));
  }
}

bool DecodeInstance::ForwardToRank(const std::string& request_id, v1::Envelope envelope) {
  auto f = group_->End(request_id);  // its router is done with it: later tokens are dropped
  if (!f) return false;
  (void)node_->Send(f->rank, std::move(envelope));
  return true;
}

void DecodeInstance::EndForwarded(const std::function<bool(const RankGroup::Forwarded&)>& pred,
                                  FinishReason finish, const Status& why) {
  std::map<transport::PeerId, v1::TokenBatch> out;
  for (const auto& [id, f] : group_->EndIf(pred)) {
    auto* rt = out[f.router].add_requests();
    rt->set_request_id(id);
    rt->set_finish_reason(ToProto(finish));
    if (finish == FinishReason::kError) *rt->mutable_error() = proto::ToProto(why);
  }
  for (auto& [router, b] : out) {
    log::Warn("decode instance {}: ending {} request(s) of other ranks: {}", config_.instance_id,
              b.requests_size(), why.message());
    b.set_instance_id(config_.instance_id);
    v1::Envelope e;
    *e.mutable_token_batch() = std::move(b);
    (void)node_->Send(router, std::move(e));
  }
}

void DecodeInstance::AdmitHere(transport::PeerId from, uint64_t call_id,
                               const v1::DecodeAdmit& admit, int64_t counted_blocks) {
  // Rank 0 of a group counted the blocks as pending here until the reservation is made.
  auto settle = [this, counted_blocks] {
    if (counted_blocks == 0) return;
    std::lock_guard lock(mu_);
    pending_here_blocks_ -= counted_blocks;
  };
  GenerateRequest request;
  request.request_id = admit.request_id();
  request.prompt_token_ids.assign(admit.prompt_token_ids().begin(), admit.prompt_token_ids().end());
  request.sampling = FromProto(admit.sampling());
  request.deadline_ns =
      MonotonicDeadlineFromUnixMillis(static_cast<int64_t>(admit.deadline_unix_ms()));
  auto reply_error = [this, from, call_id, id = request.request_id](const Status& st) {
    v1::Envelope reply;
    reply.mutable_decode_admit_reply()->set_request_id(id);
    *reply.mutable_decode_admit_reply()->mutable_error() = proto::ToProto(st);
    (void)node_->Reply(from, call_id, std::move(reply));
  };
  if (Status st = engine_->Validate(request); !st.ok()) {
    settle();
    reply_error(st);
    return;
  }
  const int64_t lease_ms =
      admit.lease_ms() > 0 ? static_cast<int64_t>(admit.lease_ms()) : config_.default_kv_lease_ms;
  const std::string id = request.request_id;
  auto on_event = [this, from, id](TokenEvent ev) {
    // Step thread: collect into this step's batch for the router.
    v1::TokenBatch& batch = outbox_[from];
    auto* rt = batch.add_requests();
    rt->set_request_id(id);
    for (const auto& t : ev.tokens) AppendToken(t, rt);
    rt->set_finish_reason(ToProto(ev.finish));
    if (ev.finish == FinishReason::kError) *rt->mutable_error() = proto::ToProto(ev.error);
    if (ev.finish != FinishReason::kNone) {
      std::lock_guard lock(mu_);
      owners_.erase(id);
    }
  };
  {
    std::lock_guard lock(mu_);
    owners_[id] = from;
  }
  engine_->Post([this, request = std::move(request), on_event = std::move(on_event), lease_ms,
                 reply_error, from, call_id, settle](Scheduler& s) mutable {
    settle();
    const std::string rid = request.request_id;
    auto blocks =
        s.Reserve(std::move(request), std::move(on_event), MonotonicNanos() + lease_ms * 1000000);
    if (!blocks.ok()) {
      {
        std::lock_guard lock(mu_);
        owners_.erase(rid);
      }
      reply_error(blocks.status());
      return;
    }
    v1::Envelope reply;
    auto* r = reply.mutable_decode_admit_reply();
    r->set_request_id(rid);
    *r->mutable_kv_destination() = kv_->Describe(*blocks, config_.instance_id, address_);
    (void)node_->Reply(from, call_id, std::move(reply));
  });
}

void DecodeInstance::Flush() {
  if (outbox_.empty()) return;
  ++step_;
  for (auto& [peer, batch] : outbox_) {
    batch.set_instance_id(config_.instance_id);
    batch.set_step(step_);
    v1::Envelope e;
    *e.mutable_token_batch() = std::move(batch);
    (void)node_->Send(peer, std::move(e));  // a router that is gone: its requests get aborted
  }
  outbox_.clear();
}

void DecodeInstance::OnPeerFailure(transport::PeerId peer) {
  if (group_) {
    if (group_->RemoveRank(peer)) {
      // Its requests cannot go on (the EP group fails with it): they end with an error.
      log::Warn("decode instance {}: an EP rank went away", config_.instance_id);
      EndForwarded([peer](const RankGroup::Forwarded& f) { return f.rank == peer; },
                   FinishReason::kError,
                   UnavailableError("an EP rank of the decode instance failed"));
      return;
    }
    group_->AbortRequestsOf(*node_, peer);  // a router that went away
  }
  std::vector<std::string> orphans;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, owner] : owners_) {
      if (owner == peer) orphans.push_back(id);
    }
  }
  if (!orphans.empty()) {
    log::Warn("router peer {} failed: aborting its {} request(s)", peer, orphans.size());
  }
  for (const auto& id : orphans) engine_->Abort(id);
  // A prefill instance that wrote KV here: nothing more of it lands.
  engine_->Post([peer](Scheduler& s) { s.DropKvWriter(peer); });
}

}  // namespace strata::decode
