// What a prefill or decode instance of disaggregated serving is told at start (DESIGN.md §3).
#pragma once

#include <cstdint>
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
};

// What an instance tells the router when it registers: id, role, address, model, capacity.
v1::RegisterInstance DescribeInstance(const InstanceConfig& config, v1::Role role,
                                      const std::string& address, int32_t num_kv_blocks,
                                      int block_size);

}  // namespace strata::decode
