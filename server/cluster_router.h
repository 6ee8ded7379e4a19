// server::ClusterRouter -- the server side of disaggregated serving (DESIGN.md §3): a
// GenerationService (what the HTTP API talks to) that runs each request on a decode and a
// prefill instance of the cluster.
//
//   Submit -> DecodeAdmit to a decode instance (reserves KV; load-aware choice: KV usage, then
//             running requests) -> PrefillRequest to a prefill instance (least queued prompt
//             tokens; ties go to the instance that last served the same prompt prefix, whose
//             local prefix cache likely holds it) -> FirstToken from prefill -> a TokenBatch
//             from decode every step -> events to the caller.
//   RouterOptions::routing replaces those choices with round-robin or random ones (stateless:
//   any instance gives the same outputs; an instance that is full, too small for the request or
//   has just failed it is still passed over).
//
// Instances register here (RegisterInstance) and heartbeat their load; one that misses its
// lease or whose connection fails is dropped. Its requests do not hang: those that had not
// produced a token are started again on other instances, the others end with kUnavailable
// (HTTP 503). Abort travels to prefill and decode; every request has a deadline (its own or
// RouterOptions::default_deadline_ms). When every decode instance is full, requests wait here
// (bounded by max_waiting: beyond it Submit answers kResourceExhausted, HTTP 429).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "decode/generation.h"
#include "server/routing_policy.h"
#include "transport/transport.h"

namespace strata::server {

struct RouterOptions {
  std::string listen = "127.0.0.1:0";  // transport address instances register at
  std::string model_name;              // instances must serve this model ("" = any)
  int64_t vocab_size = 0;
  int max_model_len = 0;
  std::vector<int32_t> eos_token_ids;  // become stop tokens unless ignore_eos
  int64_t heartbeat_interval_ms = 500;
  int64_t instance_lease_ms = 3000;
  int64_t call_timeout_ms = 5000;  // DecodeAdmit
  int64_t kv_lease_ms = 30000;     // decode's reservation waits this long for the KV
  int64_t default_deadline_ms = 600000;
  int max_waiting = 1024;
  int max_attempts = 3;  // starts of one request (instance failures before its first token)
  RoutingPolicy routing = RoutingPolicy::kLoad;
};

// An instance as the router sees it: its last heartbeat (role "prefill", "decode" or "KV pool")
// and what the router has given it.
struct InstanceInfo : decode::InstanceStats {
  std::string address;
  int assigned = 0;    // requests the router has on it now
  int64_t routed = 0;  // requests the router has sent it (DecodeAdmit or PrefillRequest), ever
};

class ClusterRouter : public decode::GenerationService {
 public:
  static StatusOr<std::unique_ptr<ClusterRouter>> Start(
      RouterOptions options, std::unique_ptr<transport::Transport> transport);
  ~ClusterRouter() override;

  // Where instances register (the bound address).
  std::string address() const;

  Status Submit(decode::GenerateRequest request, EventCallback on_event) override;
  void Abort(const std::string& request_id) override;
  decode::GenerationStats Stats() const override;
  // At least one prefill and one decode instance registered.
  bool Ready() const override;
  // Which roles have no instance registered yet (or any more), and where they register.
  std::string NotReadyReason() const override;

  std::vector<InstanceInfo> Instances() const;
  // Stops taking requests, ends those in flight with kUnavailable, closes the transport.
  void Shutdown();

  class Impl;

 private:
  explicit ClusterRouter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::server
