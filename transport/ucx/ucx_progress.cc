// The progress thread of the UCX transport: the command queue that public calls post to, the
// loop that drives ucp_worker_progress and sleeps on the worker's event fd, and deadlines.
#include <sched.h>
#include <sys/epoll.h>

#include <algorithm>

#include "transport/ucx/ucx_transport_impl.h"

namespace strata::transport::ucx {
namespace {

// How long Shutdown lets endpoint closes finish before tearing the worker down regardless.
constexpr int64_t kCloseGraceMs = 2000;
// The longest the progress thread sleeps without looking at deadlines.
constexpr int kMaxSleepMs = 50;
// Deadlines are looked at this often (and before every sleep).
constexpr int64_t kDeadlineCheckNs = 1000000;

// The transport whose progress thread this is (null on other threads).
thread_local const UcxTransportImpl* progress_thread_owner = nullptr;

}  // namespace

void UcxTransportImpl::Post(std::function<void()> command) {
  if (progress_thread_owner == this) {
    // From a callback on the progress thread: no lock, no wake-up (a write syscall) needed.
    deferred_.push_back(std::move(command));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(command_mu_);
    commands_.push_back(std::move(command));
    has_commands_.store(true);
  }
  // Pairs with Loop's store of sleeping_ before its look at has_commands_ (both seq_cst): either
  // the loop sees the command, or this sees the loop about to sleep and wakes it.
  if (sleeping_.load()) ucp_worker_signal(worker_);
}

// ---------------------------------------------------------------- progress loop

void UcxTransportImpl::Loop() {
  progress_thread_owner = this;
  int64_t last_activity_ns = MonotonicNanos();
  int64_t stop_started_ns = 0;
  int64_t next_deadline_check_ns = 0;
  for (;;) {
    bool active = RunCommandsAndDeferred();
    // One progress call per turn, not "until idle": while data streams in, progress keeps
    // returning non-zero, and draining it first would hold back new transfers, the receives of
    // rendezvous data and the completions (measured: the pipeline stalled between transfers).
    if (ucp_worker_progress(worker_) != 0) active = true;
    active |= RunCommandsAndDeferred();
    active |= RunEvents();
    if (MonotonicNanos() >= next_deadline_check_ns) {
      CheckDeadlines();
      active |= RunEvents();
      next_deadline_check_ns = MonotonicNanos() + kDeadlineCheckNs;
    }
    // Endpoint closes in flight (force closes normally finish at once).
    for (auto it = closing_.begin(); it != closing_.end();) {
      if (ucp_request_check_status(*it) != UCS_INPROGRESS) {
        ucp_request_free(*it);
        it = closing_.erase(it);
      } else {
        ++it;
      }
    }
    if (closing_.empty()) retired_ep_args_.clear();
    if (stopping_) {
      // Let UCX finish canceling the closed endpoints' requests (some complete only on later
      // progress calls), bounded by the grace period.
      const int64_t now_ns = MonotonicNanos();
      if (stop_started_ns == 0) stop_started_ns = now_ns;
      if (active) last_activity_ns = now_ns;
      const bool quiet = closing_.empty() && now_ns - last_activity_ns > 20 * 1000000;
      if (quiet || now_ns - stop_started_ns > kCloseGraceMs * 1000000) break;
      continue;
    }
    const int64_t now_ns = MonotonicNanos();
    if (active) {
      last_activity_ns = now_ns;
      continue;
    }
    if (now_ns - last_activity_ns < options_.spin_us * 1000 || inflight_ > 0) {
      // Polling, with nothing done this turn: let other threads run first. On a busy machine the
      // thread we wait for is often the peer's progress thread on this same core (measured on
      // 2 loaded cores: tcp transfers ran 3-8x faster with this yield).
      sched_yield();
      continue;
    }
    // Callbacks may have posted to deferred_ (Post from this thread does not signal), and a
    // deadline may be due: neither may wait for the sleep to end.
    CheckDeadlines();
    if (RunEvents() || !deferred_.empty()) continue;
    sleeping_.store(true);
    const ucs_status_t armed = ucp_worker_arm(worker_);
    if (armed != UCS_ERR_BUSY && inflight_ == 0 && !has_commands_.load()) {
      epoll_event event;
      epoll_wait(epoll_fd_, &event, 1, NextTimeoutMs());
    }
    sleeping_.store(false);
  }
  RunEvents();
}

bool UcxTransportImpl::RunCommandsAndDeferred() {
  bool ran = false;
  for (;;) {
    std::vector<std::function<void()>> commands;
    if (has_commands_.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(command_mu_);
      commands.swap(commands_);
      has_commands_.store(false, std::memory_order_release);
    }
    std::vector<std::function<void()>> deferred;
    deferred.swap(deferred_);
    if (commands.empty() && deferred.empty()) return ran;
    ran = true;
    for (auto& task : deferred) task();
    for (auto& command : commands) command();
  }
}

bool UcxTransportImpl::RunEvents() {
  const bool ran = !events_.empty();
  while (!events_.empty()) {
    std::vector<std::function<void()>> events;
    events.swap(events_);
    for (auto& event : events) event();
  }
  return ran;
}

int UcxTransportImpl::NextTimeoutMs() const {
  Deadline next = MonoClock::now() + std::chrono::milliseconds(kMaxSleepMs);
  for (const auto& [id, op] : ops_) next = std::min(next, op.deadline);
  for (const auto& [id, peer] : peers_) {
    if (Connecting(peer)) next = std::min(next, peer.connect_deadline);
  }
  const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - MonoClock::now());
  return static_cast<int>(std::clamp<int64_t>(wait.count(), 0, kMaxSleepMs));
}

void UcxTransportImpl::CheckDeadlines() {
  const Deadline now = MonoClock::now();
  std::vector<uint64_t> expired;
  for (const auto& [id, op] : ops_) {
    if (op.deadline < now) expired.push_back(id);
  }
  for (uint64_t id : expired) {
    auto it = ops_.find(id);
    if (it == ops_.end()) continue;  // completed by an earlier failure in this loop
    const PeerId peer = it->second.peer;
    it->second.forced =
        DeadlineExceededError("transfer to peer " + std::to_string(peer) + " missed its deadline");
    // Closing the endpoint is what makes UCX drop the buffers of the late transfer.
    FailPeer(peer,
             UnavailableError("connection closed: a transfer to this peer missed its deadline"),
             UnavailableError("connection closed: a transfer to this peer missed its deadline"));
    if (ops_.count(id) != 0) CompleteOp(id, *ops_[id].forced);
  }
  std::vector<PeerId> late;
  for (const auto& [id, peer] : peers_) {
    if (Connecting(peer) && peer.connect_deadline < now) late.push_back(id);
  }
  for (PeerId id : late) {
    FailPeer(id, DeadlineExceededError("connect deadline passed"), std::nullopt);
  }
}

}  // namespace strata::transport::ucx
