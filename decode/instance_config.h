// What a prefill or decode instance of disaggregated serving is told at start (DESIGN.md §3).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "decode/scheduler.h"
#include "proto/registry.pb.h"

namespace strata::decode {

struct InstanceConfig {
  std::string instance_id;             // unique in the cluster
  std::string model_name;              // the model directory's name (the router checks it matches)
  std::string listen = "127.0.0.1:0";  // transport address for peers
  std::string router;                  // the router's transport address
  SchedulerOptions scheduler;
  // Decode: reserved blocks whose KV has not arrived by then are reclaimed (the DecodeAdmit's
  // lease_ms wins when set).
  int64_t default_kv_lease_ms = 30000;
  // Prefill: the KV pool instances (empty: no pool).
  std::vector<std::string> kvcache;
  // Prefill: deadline of each KV push and pool operation.
  int64_t transfer_timeout_ms = 30000;
  // Prefill: requests admitted at once. An admission waits on the network (the decode
  // instance's grant of its KV, the pool's lookup and reads), so several overlap those waits:
  // a pool read of one request does not hold back the next one's.
  int admission_threads = 4;

  // Instances as data-parallel EP groups (`--ep N`, DESIGN.md §1): every rank of the group is
  // a prefill or decode instance around its own EP rank, with its own scheduler and KV cache.
  // Rank 0 (group_leader empty, ep_size N) registers with the router for the whole group and
  // sends each request to a rank (decode: the most free KV; prefill: the fewest queued prompt
  // tokens); the other ranks (group_leader: rank 0's address) register with rank 0 instead of
  // the router and report their load to it.
  int ep_size = 1;
  int ep_rank = 0;
  std::string group_leader;
  int64_t rank_heartbeat_ms = 100;    // how often the other ranks report their load to rank 0
  int64_t forward_timeout_ms = 4000;  // decode: rank 0 waits this long for a rank's admit answer
  // Rank 0 registers with the router once every rank has joined it, or after this long anyway.
  int64_t group_join_timeout_ms = 60000;
  // Rank 0: fills the group's EP figures into each load it reports (the router's /metrics shows
  // them as strata_ep_*); called on the registration thread. Null: none.
  std::function<void(v1::ExpertParallelLoad*)> expert_parallel_load;
};

// What an instance tells the router when it registers: id, role, address, model, capacity.
v1::RegisterInstance DescribeInstance(const InstanceConfig& config, v1::Role role,
                                      const std::string& address, int32_t num_kv_blocks,
                                      int block_size);

}  // namespace strata::decode
