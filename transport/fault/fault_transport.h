// A Transport decorator that injects faults, for tests (Mooncake's habit): tests of the layers
// above exercise drops, delays and peer loss without real failures. With no fault set it passes
// everything through and keeps the Transport contract, so the contract suite runs over it too.
//
// Faults apply to what this side does (its Sends and the Put/Get it starts) and are changed at
// any time from any thread; a change applies to calls made after it returns.
//
// Threading: the decorator has one thread of its own. Every callback it hands to the user --
// inner messages, completions, peer events -- runs there, one at a time (so the "one callback at
// a time" contract holds even though faults are timer-driven).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "transport/transport.h"

namespace strata::transport {

class FaultTransport : public Transport {
 public:
  explicit FaultTransport(std::unique_ptr<Transport> inner);
  ~FaultTransport() override;

  // Sends are accepted (OK) and silently dropped.
  void SetDropMessages(bool drop);
  // Sends are delivered this much later (order kept).
  void SetMessageDelay(std::chrono::milliseconds delay);
  // Put/Get start this much later; one whose deadline passes first completes with
  // kDeadlineExceeded at its deadline.
  void SetTransferDelay(std::chrono::milliseconds delay);
  // After `num_operations` more accepted Send/Put/Get, every later one fails with kUnavailable
  // ("injected failure"). A negative value turns this off.
  void FailAfter(int64_t num_operations);
  // Cuts the connection to `peer` as if the network failed: pending and delayed transfers to it
  // complete with kUnavailable, on_peer_failure(peer) runs here, and the peer sees a failure too.
  Status InjectDisconnect(PeerId peer);

  Transport& inner() { return *inner_; }

  std::string name() const override;
  Status SetHandlers(Handlers handlers) override;
  StatusOr<std::string> Listen(const std::string& address) override;
  StatusOr<PeerId> Connect(const std::string& address, Deadline deadline) override;
  Status Send(PeerId peer, MessageType type, std::string payload) override;
  StatusOr<std::unique_ptr<Region>> RegisterMemory(void* data, uint64_t bytes) override;
  StatusOr<std::unique_ptr<Region>> AllocateMemory(uint64_t bytes) override;
  void Put(const Transfer& transfer, Completion done) override;
  void Get(const Transfer& transfer, Completion done) override;
  Status Disconnect(PeerId peer) override;
  void Shutdown() override;

 private:
  class Impl;
  std::unique_ptr<Transport> inner_;
  std::shared_ptr<Impl> impl_;
};

}  // namespace strata::transport
