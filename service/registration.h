// service::Registration -- an instance's membership in the cluster (DESIGN.md §3): it connects
// to the router (the server process), registers (role, address, capacity), heartbeats its load,
// and starts over -- reconnect, register again -- when the router restarts, forgets it or
// stops answering. Runs on its own thread; the RpcNode's calls carry every deadline.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "proto/registry.pb.h"
#include "service/rpc_node.h"

namespace strata::service {

struct RegistrationOptions {
  std::string router_address;     // where the server's router listens
  v1::RegisterInstance instance;  // id, role, address, model, capacity (load is filled in)
  int64_t call_timeout_ms = 2000;
  int64_t retry_ms = 200;  // between attempts while the router is unreachable
  // Roles start in any order (a supervisor's, a Kubernetes rollout): for this long after start a
  // router that cannot be reached is only logged once at info level ("waiting for the router");
  // past it, or once this instance had registered, it is a warning (once until it registers).
  // A router that answers and refuses the registration is a warning at once.
  int64_t quiet_start_ms = 10000;
  // True: nothing is sent until Resume() (e.g. rank 0 of an EP group registers the instance
  // once its other ranks have joined).
  bool paused = false;
};

class Registration {
 public:
  // `load` is called on the registration thread before each message.
  Registration(RpcNode* node, RegistrationOptions options, std::function<v1::Load()> load);
  ~Registration();  // Stop()

  // The router's connection (kInvalidPeer while not registered).
  PeerId router_peer() const { return router_peer_.load(); }
  bool registered() const { return router_peer_.load() != transport::kInvalidPeer; }
  // Blocks until registered or the deadline; false on timeout.
  bool WaitRegistered(Deadline deadline);
  // Starts a registration made with options.paused. Idempotent.
  void Resume();
  void Stop();

 private:
  void Loop();
  bool Sleep(int64_t ms);  // false when stopping

  RpcNode* node_;
  RegistrationOptions options_;
  std::function<v1::Load()> load_;
  std::atomic<PeerId> router_peer_{transport::kInvalidPeer};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool paused_ = false;
  std::thread thread_;
};

}  // namespace strata::service
