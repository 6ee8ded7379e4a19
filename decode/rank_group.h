// decode::RankGroup -- rank 0's book of the other ranks of a data-parallel EP instance
// (InstanceConfig::ep_size > 1, DESIGN.md §1): the prefill or decode instances of ranks 1..N-1
// register with rank 0 the way instances register with the router, and heartbeat their load;
// rank 0 picks a rank for each request and remembers which rank serves it for which router, so
// the rank's answers go back to that router and the router's aborts reach that rank. A rank is
// dropped when its connection fails (RemoveRank), not on a missed heartbeat: its EP group fails
// with it anyway, and that ends the instance.
//
// Thread-safety: every method may be called from any thread (one internal lock; the replies to
// registrations and heartbeats are sent after it is released).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proto/envelope.pb.h"
#include "proto/registry.pb.h"
#include "service/registration.h"
#include "service/rpc_node.h"

namespace strata::decode {

class RankGroup {
 public:
  struct Rank {
    std::string id, address;
    v1::Capacity capacity;
    v1::Load load;           // its last report
    int64_t since_load = 0;  // cost (KV blocks, prompt tokens) given to it since that report
    int live = 0;            // its requests not ended yet
    int order = 0;           // 1, 2, ... in the order the ranks joined
  };
  struct Forwarded {
    transport::PeerId rank = transport::kInvalidPeer;    // the rank's connection
    transport::PeerId router = transport::kInvalidPeer;  // who asked for the request
  };

  // `size`: ranks in the group, this one included; the others heartbeat every `heartbeat_ms`.
  RankGroup(int size, int64_t heartbeat_ms);

  // A rank's RegisterInstance / Heartbeat: answers it on `node`. OnRegister returns true when
  // this registration made the group whole (every rank joined).
  bool OnRegister(service::RpcNode& node, transport::PeerId from, uint64_t call_id,
                  const v1::RegisterInstance& reg);
  void OnHeartbeat(service::RpcNode& node, transport::PeerId from, uint64_t call_id,
                   const v1::Heartbeat& hb);
  bool whole() const;
  // A rank's RegisterInstance or Heartbeat in `e`: answered, and `registration` (rank 0's own,
  // paused until then) resumed once the group is whole. False for any other message.
  bool OnMemberMessage(service::RpcNode& node, transport::PeerId from, const v1::Envelope& e,
                       service::Registration& registration);
  // Resumes `registration` after `timeout_ms` even if some rank never joined (a missing rank
  // fails the group anyway), with a warning naming `instance_id`.
  void ResumeAfter(service::RpcNode& node, service::Registration& registration, int64_t timeout_ms,
                   const std::string& instance_id) const;

  // Picks the rank with the lowest `score` (lower is better) among those not in `exclude`; this
  // rank (scored `own_score`) wins ties and is returned as kInvalidPeer. Another rank is
  // recorded as serving `request_id` for `router`, and `cost` counts as its load until its next
  // report.
  transport::PeerId Assign(const std::string& request_id, transport::PeerId router, int64_t cost,
                           double own_score, const std::function<double(const Rank&)>& score,
                           const std::vector<transport::PeerId>& exclude = {});
  // `rank` did not take `request_id` after all (it refused it): no longer forwarded there nor
  // counted as its request (its cost still counts as its load until its next report).
  void Retract(const std::string& request_id, transport::PeerId rank);
  // Where a forwarded request is (nullopt: not forwarded, or ended).
  std::optional<Forwarded> Find(const std::string& request_id) const;
  // Ends a forwarded request (finished or aborted); returns where it was.
  std::optional<Forwarded> End(const std::string& request_id);
  // Ends every forwarded request that `pred` selects.
  std::vector<std::pair<std::string, Forwarded>> EndIf(
      const std::function<bool(const Forwarded&)>& pred);
  // A router went away: its requests on the other ranks end, and those ranks get an Abort.
  void AbortRequestsOf(service::RpcNode& node, transport::PeerId router);
  // A rank went away (its connection failed); false when `peer` is no rank.
  bool RemoveRank(transport::PeerId peer);

  // `own` plus the other ranks' last reports: the instance's load for the router.
  v1::Load AddLoads(v1::Load own) const;
  // The load rank 0 reports for the group: AddLoads(own), plus the group's EP figures from
  // `expert_parallel_load` (InstanceConfig; null: none) and the requests given to each rank.
  v1::Load GroupLoad(
      v1::Load own, const std::function<void(v1::ExpertParallelLoad*)>& expert_parallel_load) const;
  int64_t num_forwarded() const;
  // Requests given to each rank since the start, [0] this rank's (ranks that went away keep
  // their count).
  std::vector<int64_t> AssignedPerRank() const;

 private:
  const int size_;
  const int64_t heartbeat_ms_;
  mutable std::mutex mu_;
  std::map<transport::PeerId, Rank> ranks_;
  std::map<std::string, Forwarded> forwarded_;
  std::vector<int64_t> assigned_;  // [order]
};

}  // namespace strata::decode
