#include "transport/fault/fault_transport.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

namespace strata::transport {

class FaultTransport::Impl {
 public:
  explicit Impl(Transport* inner) : inner_(inner) {
    thread_ = std::thread([this] { Run(); });
  }

  // Runs `task` on the fault thread at `when` (tasks due at the same time run in order).
  void Schedule(Deadline when, std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      timers_.emplace(std::make_pair(when, next_timer_seq_++), std::move(task));
    }
    cv_.notify_all();
  }
  void Post(std::function<void()> task) { Schedule(MonoClock::now(), std::move(task)); }

  // Stops after running every task still queued (delayed ones too, at once).
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  Handlers user;  // fixed before the inner transport starts

  // Fault settings and bookkeeping, guarded by mu_.
  struct Op {
    PeerId peer;
    Completion done;
    bool started = false;
  };
  std::mutex mu_;
  bool drop_ = false;
  std::chrono::milliseconds message_delay_{0};
  std::chrono::milliseconds transfer_delay_{0};
  int64_t fail_after_ = -1;
  std::unordered_map<PeerId, Status> broken_;  // peers cut by InjectDisconnect or Disconnect
  std::unordered_map<PeerId, Deadline> last_send_at_;
  std::unordered_map<uint64_t, Op> ops_;
  uint64_t next_op_ = 1;
  bool shut_down_ = false;

  // Consumes one operation of the fail-after budget; false when the operation must fail.
  bool TakeOperationLocked() {
    if (fail_after_ < 0) return true;
    if (fail_after_ == 0) return false;
    --fail_after_;
    return true;
  }

  // Completes op `id` (once) on the fault thread.
  void CompleteOnThread(uint64_t id, Status status) {
    Completion done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = ops_.find(id);
      if (it == ops_.end()) return;
      done = std::move(it->second.done);
      ops_.erase(it);
    }
    done(std::move(status));
  }
  void Complete(uint64_t id, Status status) {
    Post([this, id, status = std::move(status)]() mutable {
      CompleteOnThread(id, std::move(status));
    });
  }

  void StartInner(uint64_t id, const Transfer& transfer, bool is_put) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = ops_.find(id);
      if (it == ops_.end() || it->second.started) return;  // timed out or cut meanwhile
      it->second.started = true;
    }
    const PeerId peer = transfer.peer;
    Completion inner_done = [this, id, peer](Status status) {
      Post([this, id, peer, status = std::move(status)]() mutable {
        {
          std::lock_guard<std::mutex> lock(mu_);
          auto broken = broken_.find(peer);
          // A transfer cut by an injected disconnect reports the injected cause, not the inner
          // transport's kCancelled.
          if (!status.ok() && broken != broken_.end()) status = broken->second;
        }
        CompleteOnThread(id, std::move(status));
      });
    };
    if (is_put) {
      inner_->Put(transfer, std::move(inner_done));
    } else {
      inner_->Get(transfer, std::move(inner_done));
    }
  }

  void StartTransfer(const Transfer& transfer, Completion done, bool is_put) {
    uint64_t id;
    Status early;
    std::chrono::milliseconds delay{0};
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (shut_down_) {
        lock.unlock();
        // The contract's one exception: after Shutdown, complete at once on the caller.
        return done(CancelledError("transport shut down"));
      }
      id = next_op_++;
      ops_[id] = Op{transfer.peer, std::move(done)};
      auto broken = broken_.find(transfer.peer);
      if (broken != broken_.end()) {
        early = broken->second;
      } else if (!TakeOperationLocked()) {
        early = UnavailableError("injected failure");
      }
      delay = transfer_delay_;
    }
    if (!early.ok()) return Complete(id, early);
    if (delay.count() == 0) return StartInner(id, transfer, is_put);
    Schedule(MonoClock::now() + delay,
             [this, id, transfer, is_put] { StartInner(id, transfer, is_put); });
    Schedule(transfer.deadline, [this, id] {
      bool pending = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = ops_.find(id);
        pending = it != ops_.end() && !it->second.started;
      }
      if (pending) {
        CompleteOnThread(id, DeadlineExceededError("transfer deadline passed (delayed by fault "
                                                   "injection)"));
      }
    });
  }

  // Completes every not-yet-started transfer to `peer` (all peers when kInvalidPeer).
  void FailUnstarted(PeerId peer, const Status& status) {
    std::vector<uint64_t> ids;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [id, op] : ops_) {
        if (!op.started && (peer == kInvalidPeer || op.peer == peer)) ids.push_back(id);
      }
    }
    for (uint64_t id : ids) Complete(id, status);
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (timers_.empty()) {
        if (stopping_) return;
        cv_.wait(lock);
        continue;
      }
      auto first = timers_.begin();
      if (!stopping_ && first->first.first > MonoClock::now()) {
        cv_.wait_until(lock, first->first.first);
        continue;
      }
      auto task = std::move(first->second);
      timers_.erase(first);
      lock.unlock();
      task();
      lock.lock();
    }
  }

  Transport* inner_;
  std::map<std::pair<Deadline, uint64_t>, std::function<void()>> timers_;
  uint64_t next_timer_seq_ = 0;
  bool stopping_ = false;
  std::condition_variable cv_;
  std::thread thread_;
};

FaultTransport::FaultTransport(std::unique_ptr<Transport> inner)
    : inner_(std::move(inner)), impl_(std::make_shared<Impl>(inner_.get())) {}

FaultTransport::~FaultTransport() { Shutdown(); }

void FaultTransport::SetDropMessages(bool drop) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->drop_ = drop;
}
void FaultTransport::SetMessageDelay(std::chrono::milliseconds delay) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->message_delay_ = delay;
}
void FaultTransport::SetTransferDelay(std::chrono::milliseconds delay) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->transfer_delay_ = delay;
}
void FaultTransport::FailAfter(int64_t num_operations) {
  std::lock_guard<std::mutex> lock(impl_->mu_);
  impl_->fail_after_ = num_operations < 0 ? -1 : num_operations;
}

Status FaultTransport::InjectDisconnect(PeerId peer) {
  const Status cause = UnavailableError("injected disconnect of peer " + std::to_string(peer));
  {
    std::lock_guard<std::mutex> lock(impl_->mu_);
    if (impl_->broken_.count(peer) != 0) return NotFoundError("peer already cut");
    impl_->broken_[peer] = cause;
  }
  impl_->FailUnstarted(peer, cause);
  Status status = inner_->Disconnect(peer);
  if (!status.ok()) return status;
  Impl* impl = impl_.get();
  impl_->Post([impl, peer, cause] {
    if (impl->user.on_peer_failure) impl->user.on_peer_failure(peer, cause);
  });
  return OkStatus();
}

std::string FaultTransport::name() const { return "fault(" + inner_->name() + ")"; }

Status FaultTransport::SetHandlers(Handlers handlers) {
  Impl* impl = impl_.get();
  Handlers wrapped;
  if (handlers.on_message) {
    wrapped.on_message = [impl](Message message) {
      impl->Post([impl, message = std::move(message)]() mutable {
        impl->user.on_message(std::move(message));
      });
    };
  }
  if (handlers.on_peer_connected) {
    wrapped.on_peer_connected = [impl](PeerId peer, const std::string& address) {
      impl->Post([impl, peer, address] { impl->user.on_peer_connected(peer, address); });
    };
  }
  wrapped.on_peer_failure = [impl](PeerId peer, const Status& why) {
    {
      std::lock_guard<std::mutex> lock(impl->mu_);
      if (impl->broken_.count(peer) != 0) return;  // already reported by InjectDisconnect
      impl->broken_[peer] = why;
    }
    impl->FailUnstarted(peer, why);
    impl->Post([impl, peer, why] {
      if (impl->user.on_peer_failure) impl->user.on_peer_failure(peer, why);
    });
  };
  STRATA_RETURN_IF_ERROR(inner_->SetHandlers(std::move(wrapped)));
  impl_->user = std::move(handlers);
  return OkStatus();
}

StatusOr<std::string> FaultTransport::Listen(const std::string& address) {
  return inner_->Listen(address);
}

StatusOr<PeerId> FaultTransport::Connect(const std::string& address, Deadline deadline) {
  return inner_->Connect(address, deadline);
}

Status FaultTransport::Send(PeerId peer, MessageType type, std::string payload) {
  Deadline send_at;
  {
    std::lock_guard<std::mutex> lock(impl_->mu_);
    auto broken = impl_->broken_.find(peer);
    if (broken != impl_->broken_.end()) return broken->second;
    if (!impl_->TakeOperationLocked()) return UnavailableError("injected failure");
    if (impl_->drop_) return OkStatus();
    const Deadline now = MonoClock::now();
    auto last = impl_->last_send_at_.find(peer);
    const bool ordered_behind_delayed = last != impl_->last_send_at_.end() && last->second > now;
    if (impl_->message_delay_.count() == 0 && !ordered_behind_delayed) {
      send_at = Deadline{};
    } else {
      send_at = now + impl_->message_delay_;
      if (ordered_behind_delayed && last->second > send_at) send_at = last->second;
      impl_->last_send_at_[peer] = send_at;
    }
  }
  if (send_at == Deadline{}) return inner_->Send(peer, type, std::move(payload));
  Transport* inner = inner_.get();
  impl_->Schedule(send_at, [inner, peer, type, payload = std::move(payload)]() mutable {
    // Like a real network, a delayed message that cannot be delivered is lost.
    (void)inner->Send(peer, type, std::move(payload));
  });
  return OkStatus();
}

StatusOr<std::unique_ptr<Region>> FaultTransport::RegisterMemory(void* data, uint64_t bytes) {
  return inner_->RegisterMemory(data, bytes);
}

StatusOr<std::unique_ptr<Region>> FaultTransport::AllocateMemory(uint64_t bytes) {
  return inner_->AllocateMemory(bytes);
}

void FaultTransport::Put(const Transfer& transfer, Completion done) {
  impl_->StartTransfer(transfer, std::move(done), /*is_put=*/true);
}

void FaultTransport::Get(const Transfer& transfer, Completion done) {
  impl_->StartTransfer(transfer, std::move(done), /*is_put=*/false);
}

Status FaultTransport::Disconnect(PeerId peer) {
  STRATA_RETURN_IF_ERROR(inner_->Disconnect(peer));
  const Status cause = CancelledError("this side disconnected peer " + std::to_string(peer));
  {
    std::lock_guard<std::mutex> lock(impl_->mu_);
    impl_->broken_.emplace(peer, cause);
  }
  impl_->FailUnstarted(peer, cause);
  return OkStatus();
}

void FaultTransport::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu_);
    if (impl_->shut_down_) return;
    impl_->shut_down_ = true;
  }
  inner_->Shutdown();  // completes started transfers; their completions queue up here
  impl_->FailUnstarted(kInvalidPeer, CancelledError("transport shut down"));
  impl_->Stop();
}

}  // namespace strata::transport
