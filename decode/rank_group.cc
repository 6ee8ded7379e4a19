#include "decode/rank_group.h"

#include <algorithm>

#include "common/log.h"

namespace strata::decode {

RankGroup::RankGroup(int size, int64_t heartbeat_ms)
    : size_(size), heartbeat_ms_(heartbeat_ms), assigned_(1, 0) {}

bool RankGroup::OnRegister(service::RpcNode& node, transport::PeerId from, uint64_t call_id,
                           const v1::RegisterInstance& reg) {
  int order;
  bool whole_now;
  {
    std::lock_guard lock(mu_);
    const bool was_whole = static_cast<int>(ranks_.size()) + 1 >= size_;
    auto [it, added] = ranks_.try_emplace(from);
    Rank& r = it->second;
    if (added) {
      assigned_.push_back(0);
      r.order = static_cast<int>(assigned_.size()) - 1;
    }
    r.id = reg.instance_id();
    r.address = reg.address();
    r.capacity = reg.capacity();
    r.load = reg.load();
    r.since_load = 0;
    order = r.order;
    whole_now = !was_whole && static_cast<int>(ranks_.size()) + 1 >= size_;
  }
  log::Info("EP rank {} ({}) joined rank 0 from {}", order, reg.instance_id(), reg.address());
  v1::Envelope reply;
  auto* rr = reply.mutable_register_reply();
  rr->set_heartbeat_interval_ms(static_cast<uint64_t>(heartbeat_ms_));
  rr->set_lease_ms(static_cast<uint64_t>(10 * heartbeat_ms_));
  (void)node.Reply(from, call_id, std::move(reply));
  return whole_now;
}

void RankGroup::OnHeartbeat(service::RpcNode& node, transport::PeerId from, uint64_t call_id,
                            const v1::Heartbeat& hb) {
  bool known;
  {
    std::lock_guard lock(mu_);
    auto it = ranks_.find(from);
    known = it != ranks_.end();
    if (known) {
      it->second.load = hb.load();
      it->second.since_load = 0;
    }
  }
  v1::Envelope reply;
  reply.mutable_heartbeat_reply()->set_reregister(!known);
  (void)node.Reply(from, call_id, std::move(reply));
}

bool RankGroup::whole() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(ranks_.size()) + 1 >= size_;
}

bool RankGroup::OnMemberMessage(service::RpcNode& node, transport::PeerId from,
                                const v1::Envelope& e, service::Registration& registration) {
  switch (e.body_case()) {
    case v1::Envelope::kRegisterInstance:
      if (OnRegister(node, from, e.call_id(), e.register_instance())) {
        registration.Resume();  // the group is whole: the router may hear of it
      }
      return true;
    case v1::Envelope::kHeartbeat:
      OnHeartbeat(node, from, e.call_id(), e.heartbeat());
      return true;
    default:
      return false;
  }
}

void RankGroup::ResumeAfter(service::RpcNode& node, service::Registration& registration,
                            int64_t timeout_ms, const std::string& instance_id) const {
  node.PostAfter(timeout_ms, [this, &registration, timeout_ms, instance_id] {
    if (!whole()) {
      log::Warn("instance {}: not every EP rank joined in {} ms; registering anyway", instance_id,
                timeout_ms);
    }
    registration.Resume();
  });
}

transport::PeerId RankGroup::Assign(const std::string& request_id, transport::PeerId router,
                                    int64_t cost, double own_score,
                                    const std::function<double(const Rank&)>& score,
                                    const std::vector<transport::PeerId>& exclude) {
  std::lock_guard lock(mu_);
  transport::PeerId best = transport::kInvalidPeer;
  double best_score = own_score;
  for (const auto& [peer, r] : ranks_) {
    if (std::find(exclude.begin(), exclude.end(), peer) != exclude.end()) continue;
    const double s = score(r);
    if (s < best_score) {
      best = peer;
      best_score = s;
    }
  }
  if (best == transport::kInvalidPeer) {
    ++assigned_[0];
    return best;
  }
  Rank& r = ranks_.at(best);
  ++r.live;
  r.since_load += cost;
  ++assigned_[r.order];
  forwarded_[request_id] = {best, router};
  return best;
}

void RankGroup::Retract(const std::string& request_id, transport::PeerId rank) {
  std::lock_guard lock(mu_);
  auto it = forwarded_.find(request_id);
  if (it == forwarded_.end() || it->second.rank != rank) return;
  forwarded_.erase(it);
  if (auto r = ranks_.find(rank); r != ranks_.end()) {
    --r->second.live;
    --assigned_[r->second.order];
  }
}

std::optional<RankGroup::Forwarded> RankGroup::Find(const std::string& request_id) const {
  std::lock_guard lock(mu_);
  auto it = forwarded_.find(request_id);
  if (it == forwarded_.end()) return std::nullopt;
  return it->second;
}

std::optional<RankGroup::Forwarded> RankGroup::End(const std::string& request_id) {
  std::lock_guard lock(mu_);
  auto it = forwarded_.find(request_id);
  if (it == forwarded_.end()) return std::nullopt;
  Forwarded f = it->second;
  forwarded_.erase(it);
  if (auto r = ranks_.find(f.rank); r != ranks_.end()) --r->second.live;
  return f;
}

std::vector<std::pair<std::string, RankGroup::Forwarded>> RankGroup::EndIf(
    const std::function<bool(const Forwarded&)>& pred) {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, Forwarded>> out;
  for (auto it = forwarded_.begin(); it != forwarded_.end();) {
    if (!pred(it->second)) {
      ++it;
      continue;
    }
    if (auto r = ranks_.find(it->second.rank); r != ranks_.end()) --r->second.live;
    out.emplace_back(it->first, it->second);
    it = forwarded_.erase(it);
  }
  return out;
}

void RankGroup::AbortRequestsOf(service::RpcNode& node, transport::PeerId router) {
  for (const auto& [id, f] : EndIf([router](const Forwarded& f) { return f.router == router; })) {
    v1::Envelope abort;
    abort.mutable_abort()->set_request_id(id);
    (void)node.Send(f.rank, std::move(abort));
  }
}

bool RankGroup::RemoveRank(transport::PeerId peer) {
  std::lock_guard lock(mu_);
  return ranks_.erase(peer) > 0;
}

v1::Load RankGroup::AddLoads(v1::Load load) const {
  std::lock_guard lock(mu_);
  for (const auto& [peer, r] : ranks_) {
    load.set_num_kv_blocks_used(load.num_kv_blocks_used() + r.load.num_kv_blocks_used());
    load.set_num_running_requests(load.num_running_requests() + r.load.num_running_requests());
    load.set_num_queued_requests(load.num_queued_requests() + r.load.num_queued_requests());
    load.set_num_queued_tokens(load.num_queued_tokens() + r.load.num_queued_tokens());
  }
  return load;
}

v1::Load RankGroup::GroupLoad(
    v1::Load own, const std::function<void(v1::ExpertParallelLoad*)>& expert_parallel_load) const {
  v1::Load load = AddLoads(std::move(own));
  if (expert_parallel_load) {
    v1::ExpertParallelLoad* ep = load.mutable_expert_parallel();
    expert_parallel_load(ep);
    for (int64_t n : AssignedPerRank()) ep->add_requests_per_rank(static_cast<uint64_t>(n));
  }
  return load;
}

int64_t RankGroup::num_forwarded() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(forwarded_.size());
}

std::vector<int64_t> RankGroup::AssignedPerRank() const {
  std::lock_guard lock(mu_);
  return assigned_;
}

}  // namespace strata::decode
