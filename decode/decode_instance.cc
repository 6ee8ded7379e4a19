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
  ro.router_address = self->config_.router;
  ro.instance =
      DescribeInstance(self->config_, v1::ROLE_DECODE, self->address_, num_blocks, block_size);
  self->registration_ = std::make_unique<service::Registration>(
      self->node_.get(), std::move(ro), [raw] { return raw->CurrentLoad(); });
  log::Info("decode instance {} listening on {} ({} KV blocks of {} tokens)",
            self->config_.instance_id, self->address_, num_blocks, block_size);
  return self;
}

DecodeInstance::~DecodeInstance() { Shutdown(); }

void DecodeInstance::Shutdown() {
  if (registration_) registration_->Stop();
  if (engine_) engine_->Shutdown();  // aborts what is left; Flush tells the routers
  if (node_) node_->Shutdown();
}

v1::Load DecodeInstance::CurrentLoad() const {
  GenerationStats s = engine_->Stats();
  v1::Load load;
  load.set_num_kv_blocks_used(static_cast<uint64_t>(s.kv_blocks_used));
  load.set_num_running_requests(static_cast<uint32_t>(s.num_running));
  load.set_num_queued_requests(static_cast<uint32_t>(s.num_waiting));
  return load;
}

void DecodeInstance::OnRequest(transport::PeerId from, v1::Envelope e) {
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
                 reply_error, from, call_id](Scheduler& s) mutable {
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
