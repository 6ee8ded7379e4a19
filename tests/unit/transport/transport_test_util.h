// Shared by the transport tests: backends to run the contract over, and a connected pair.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "tests/unit/test_bytes.h"
#include "transport/fault/fault_transport.h"
#include "transport/inproc/inproc_transport.h"
#include "transport/sync.h"
#include "transport/transport.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::transport::testing {

// Generous for a loaded 2-core machine; every wait in the tests is bounded by one of these.
inline constexpr int64_t kWaitMs = 10000;

struct Backend {
  std::string name;
  // Makes the two transports of one test (they share whatever they must, e.g. a fabric).
  std::function<StatusOr<std::pair<std::unique_ptr<Transport>, std::unique_ptr<Transport>>>()>
      make_pair;
  std::string listen_address;
};
inline void PrintTo(const Backend& backend, std::ostream* os) { *os << backend.name; }

inline std::unique_ptr<Transport> MustUcx(const UcxOptions& options) {
  auto transport = UcxTransport::Create(options);
  if (!transport.ok()) return nullptr;
  return std::unique_ptr<Transport>(std::move(transport).value());
}

inline Backend UcxBackend(std::string name, std::string tls, UcxOptions::BulkMode mode,
                          bool fault_wrapped = false) {
  Backend backend;
  backend.name = std::move(name);
  backend.listen_address = "127.0.0.1:0";
  backend.make_pair = [tls, mode, fault_wrapped]()
      -> StatusOr<std::pair<std::unique_ptr<Transport>, std::unique_ptr<Transport>>> {
    UcxOptions options;
    options.tls = tls;
    options.bulk_mode = mode;
    options.spin_us = 0;  // the machine is shared: sleep when idle
    auto a = UcxTransport::Create(options);
    if (!a.ok()) return a.status();
    auto b = UcxTransport::Create(options);
    if (!b.ok()) return b.status();
    std::unique_ptr<Transport> first = std::move(a).value();
    std::unique_ptr<Transport> second = std::move(b).value();
    if (fault_wrapped) {
      first = std::make_unique<FaultTransport>(std::move(first));
      second = std::make_unique<FaultTransport>(std::move(second));
    }
    return std::make_pair(std::move(first), std::move(second));
  };
  return backend;
}

inline Backend InprocBackend(bool fault_wrapped = false) {
  Backend backend;
  backend.name = fault_wrapped ? "fault_inproc" : "inproc";
  backend.listen_address = "contract:0";
  backend.make_pair = [fault_wrapped]()
      -> StatusOr<std::pair<std::unique_ptr<Transport>, std::unique_ptr<Transport>>> {
    auto fabric = NewInprocFabric();
    std::unique_ptr<Transport> a = NewInprocTransport(fabric);
    std::unique_ptr<Transport> b = NewInprocTransport(fabric);
    if (fault_wrapped) {
      a = std::make_unique<FaultTransport>(std::move(a));
      b = std::make_unique<FaultTransport>(std::move(b));
    }
    return std::make_pair(std::move(a), std::move(b));
  };
  return backend;
}

// Records peer events; waits are bounded.
class Events {
 public:
  void Connected(PeerId peer) {
    std::lock_guard<std::mutex> lock(mu_);
    connected_.push_back(peer);
    cv_.notify_all();
  }
  void Failed(PeerId peer, const Status& why) {
    std::lock_guard<std::mutex> lock(mu_);
    failed_.emplace_back(peer, why);
    cv_.notify_all();
  }
  StatusOr<PeerId> WaitConnected(int64_t ms = kWaitMs) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return !connected_.empty(); })) {
      return DeadlineExceededError("no peer connected");
    }
    return connected_.front();
  }
  // The failure reported for `peer`, or nullopt when none came in time.
  std::optional<Status> WaitFailed(PeerId peer, int64_t ms = kWaitMs) {
    std::unique_lock<std::mutex> lock(mu_);
    const Status* found = nullptr;
    auto pred = [&] {
      for (const auto& [id, why] : failed_) {
        if (id == peer) found = &why;
      }
      return found != nullptr;
    };
    if (!cv_.wait_for(lock, std::chrono::milliseconds(ms), pred)) {
      return std::nullopt;
    }
    return *found;
  }
  size_t num_failed() {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<PeerId> connected_;
  std::vector<std::pair<PeerId, Status>> failed_;
};

inline Handlers MakeHandlers(Mailbox& mailbox, Events& events) {
  Handlers handlers;
  handlers.on_message = mailbox.Handler();
  handlers.on_peer_connected = [&events](PeerId peer, const std::string&) {
    events.Connected(peer);
  };
  handlers.on_peer_failure = [&events](PeerId peer, const Status& why) {
    events.Failed(peer, why);
  };
  return handlers;
}

using strata::testing::Pattern;

}  // namespace strata::transport::testing
