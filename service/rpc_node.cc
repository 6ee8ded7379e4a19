#include "service/rpc_node.h"

#include <algorithm>
#include <future>

#include "common/log.h"
#include "proto/status_convert.h"

namespace strata::service {
namespace {

// The longest the dispatch thread sleeps without looking at its timers again.
constexpr auto kMaxSleep = std::chrono::milliseconds(100);

}  // namespace

StatusOr<std::unique_ptr<RpcNode>> RpcNode::Create(std::unique_ptr<transport::Transport> transport,
                                                   RpcCallbacks callbacks) {
  if (transport == nullptr) return InvalidArgumentError("RpcNode needs a transport");
  std::unique_ptr<RpcNode> node(new RpcNode(std::move(transport), std::move(callbacks)));
  RpcNode* raw = node.get();
  transport::Handlers handlers;
  handlers.on_message = [raw](transport::Message m) { raw->OnMessage(std::move(m)); };
  handlers.on_peer_failure = [raw](PeerId peer, const Status& why) {
    raw->OnPeerFailure(peer, why);
  };
  STRATA_RETURN_IF_ERROR(raw->transport_->SetHandlers(std::move(handlers)));
  return node;
}

RpcNode::RpcNode(std::unique_ptr<transport::Transport> transport, RpcCallbacks callbacks)
    : transport_(std::move(transport)), callbacks_(std::move(callbacks)) {
  thread_ = std::thread([this] { Loop(); });
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return dispatch_id_ != std::thread::id(); });
}

RpcNode::~RpcNode() { Shutdown(); }

StatusOr<std::string> RpcNode::Listen(const std::string& address) {
  STRATA_ASSIGN_OR_RETURN(std::string bound, transport_->Listen(address));
  std::lock_guard lock(mu_);
  listen_address_ = bound;
  return bound;
}

std::string RpcNode::listen_address() const {
  std::lock_guard lock(mu_);
  return listen_address_;
}

StatusOr<PeerId> RpcNode::Connect(const std::string& address, Deadline deadline) {
  {
    std::lock_guard lock(mu_);
    if (stop_) return UnavailableError("the node is shutting down");
    auto it = peers_by_address_.find(address);
    if (it != peers_by_address_.end()) return it->second;
  }
  STRATA_ASSIGN_OR_RETURN(PeerId peer, transport_->Connect(address, deadline));
  std::lock_guard lock(mu_);
  peers_by_address_[address] = peer;
  return peer;
}

Status RpcNode::Send(PeerId peer, Envelope envelope) {
  return transport_->Send(peer, proto::kEnvelopeMessageType, proto::SerializeEnvelope(envelope));
}

void RpcNode::Call(PeerId peer, Envelope envelope, Deadline deadline, ReplyCallback done,
                   ReplyOn reply_on) {
  uint64_t id;
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stop_) {
      tasks_.push_back([done = std::move(done)] { done(CancelledError("the node shut down")); });
      return;
    }
    id = next_call_id_++;
    PendingCall& call = calls_[id];
    call.peer = peer;
    call.done = std::move(done);
    call.reply_on = reply_on;
    // The deadline check runs on the dispatch thread.
    wake = AddTimerLocked(
        deadline,
        [this, id] {
          if (auto expired = TakeCall(id)) {
            expired->done(DeadlineExceededError("no reply before the deadline"));
          }
        },
        &call.timer);
  }
  if (wake) cv_.notify_all();
  envelope.set_call_id(id);
  Status st = Send(peer, std::move(envelope));
  if (!st.ok()) {
    Enqueue([this, id, st] {
      if (auto failed = TakeCall(id)) failed->done(st);
    });
  }
}

StatusOr<Envelope> RpcNode::CallAndWait(PeerId peer, Envelope envelope, Deadline deadline) {
  if (OnDispatchThread()) {
    return FailedPreconditionError("CallAndWait on the dispatch thread would wait for itself");
  }
  auto promise = std::make_shared<std::promise<StatusOr<Envelope>>>();
  auto future = promise->get_future();
  Call(
      peer, std::move(envelope), deadline,
      [promise](StatusOr<Envelope> r) { promise->set_value(std::move(r)); },
      ReplyOn::kTransportThread);
  // Every call completes (the dispatch thread answers deadlines); the grace only guards
  // against a stuck node.
  if (future.wait_until(std::max(deadline, MonoClock::now()) + std::chrono::seconds(5)) !=
      std::future_status::ready) {
    return InternalError("the node's dispatch thread did not complete a call");
  }
  return future.get();
}

Status RpcNode::Reply(PeerId peer, uint64_t call_id, Envelope reply) {
  if (call_id == 0) return InvalidArgumentError("a reply needs the call id it answers");
  reply.set_call_id(0);
  reply.set_reply_to(call_id);
  return Send(peer, std::move(reply));
}

Status RpcNode::ReplyError(PeerId peer, uint64_t call_id, const Status& error) {
  Envelope reply;
  *reply.mutable_error() = proto::ToProto(error);
  return Reply(peer, call_id, std::move(reply));
}

void RpcNode::Post(std::function<void()> task) { Enqueue(std::move(task)); }

void RpcNode::PostAfter(int64_t delay_ms, std::function<void()> task) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    wake = AddTimerLocked(transport::DeadlineAfterMillis(delay_ms), std::move(task));
  }
  if (wake) cv_.notify_all();
}

size_t RpcNode::pending_timers() const {
  std::lock_guard lock(mu_);
  return timers_.size();
}

bool RpcNode::AddTimerLocked(Deadline at, std::function<void()> task, TimerKey* key) {
  const TimerKey k{at, next_timer_seq_++};
  timers_.emplace(k, std::move(task));
  if (key != nullptr) *key = k;
  return at < dispatch_wakes_at_;
}

bool RpcNode::OnDispatchThread() const { return std::this_thread::get_id() == dispatch_id_; }

void RpcNode::Enqueue(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_all();
}

std::optional<RpcNode::PendingCall> RpcNode::TakeCall(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = calls_.find(id);
  if (it == calls_.end()) return std::nullopt;
  PendingCall call = std::move(it->second);
  calls_.erase(it);
  timers_.erase(call.timer);  // gone already when it is the timer that runs
  return call;
}

std::vector<RpcNode::PendingCall> RpcNode::TakeCalls(
    const std::function<bool(uint64_t, const PendingCall&)>& pred) {
  std::vector<PendingCall> out;
  std::lock_guard lock(mu_);
  for (auto it = calls_.begin(); it != calls_.end();) {
    if (pred(it->first, it->second)) {
      timers_.erase(it->second.timer);
      out.push_back(std::move(it->second));
      it = calls_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

void RpcNode::OnMessage(transport::Message message) {
  if (message.type != proto::kEnvelopeMessageType) {
    log::Warn("peer {} sent message type {}: not an envelope, dropped", message.peer, message.type);
    return;
  }
  auto parsed = proto::ParseEnvelope(message.payload);
  if (!parsed.ok()) {
    log::Warn("peer {} sent a bad envelope: {}", message.peer, parsed.status().message());
    return;
  }
  PeerId from = message.peer;
  Envelope envelope = std::move(*parsed);
  if (envelope.reply_to() != 0) {
    const uint64_t id = envelope.reply_to();
    bool here = false;
    {
      std::lock_guard lock(mu_);
      auto it = calls_.find(id);
      here = it != calls_.end() && it->second.reply_on == ReplyOn::kTransportThread;
    }
    if (here) return CompleteCall(id, from, std::move(envelope));
    Enqueue([this, id, from, envelope = std::move(envelope)]() mutable {
      CompleteCall(id, from, std::move(envelope));
    });
    return;
  }
  if (callbacks_.on_request_inline && callbacks_.on_request_inline(from, envelope)) return;
  Enqueue([this, from, envelope = std::move(envelope)]() mutable {
    if (callbacks_.on_request) callbacks_.on_request(from, std::move(envelope));
  });
}

void RpcNode::CompleteCall(uint64_t id, PeerId from, Envelope reply) {
  ReplyCallback done;
  {
    std::lock_guard lock(mu_);
    auto it = calls_.find(id);
    if (it == calls_.end() || it->second.peer != from) return;  // late: the deadline answered it
    done = std::move(it->second.done);
    timers_.erase(it->second.timer);
    calls_.erase(it);
  }
  if (reply.has_error() && reply.error().code() != v1::STATUS_CODE_OK) {
    done(proto::FromProto(reply.error()));
  } else {
    done(std::move(reply));
  }
}

void RpcNode::OnPeerFailure(PeerId peer, const Status& why) {
  Enqueue([this, peer, why] {
    {
      std::lock_guard lock(mu_);
      for (auto it = peers_by_address_.begin(); it != peers_by_address_.end();) {
        it = it->second == peer ? peers_by_address_.erase(it) : std::next(it);
      }
    }
    std::vector<PendingCall> failed =
        TakeCalls([peer](uint64_t, const PendingCall& c) { return c.peer == peer; });
    for (auto& c : failed) c.done(UnavailableError("the peer failed: " + why.message()));
    if (callbacks_.on_peer_failure) callbacks_.on_peer_failure(peer, why);
  });
}

void RpcNode::Loop() {
  {
    std::lock_guard lock(mu_);
    dispatch_id_ = std::this_thread::get_id();
  }
  cv_.notify_all();
  std::unique_lock lock(mu_);
  while (true) {
    if (!tasks_.empty()) {
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
      continue;
    }
    if (!timers_.empty() && timers_.begin()->first.first <= MonoClock::now()) {
      auto task = std::move(timers_.begin()->second);
      timers_.erase(timers_.begin());
      lock.unlock();
      task();
      lock.lock();
      continue;
    }
    if (stop_) break;
    // Sleep until the first timer, but not longer than kMaxSleep: then a call whose deadline
    // is further away than that does not have to wake this thread (one wake-up per call
    // otherwise, which costs a small call a good part of its round trip on a busy host).
    dispatch_wakes_at_ = MonoClock::now() + kMaxSleep;
    if (!timers_.empty())
      dispatch_wakes_at_ = std::min(dispatch_wakes_at_, timers_.begin()->first.first);
    cv_.wait_until(lock, dispatch_wakes_at_);
    dispatch_wakes_at_ = Deadline::min();
  }
}

void RpcNode::Shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stop_ && !thread_.joinable()) return;
  }
  // The transport first: no message or failure callback arrives after this.
  transport_->Shutdown();
  std::vector<PendingCall> pending = TakeCalls([](uint64_t, const PendingCall&) { return true; });
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    timers_.clear();
    for (auto& c : pending) {
      tasks_.push_back([done = std::move(c.done)] { done(CancelledError("the node shut down")); });
    }
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace strata::service
