// service::RpcNode -- strata.v1 envelopes over one transport::Transport: one-way sends, calls
// with deadlines, and a handler for what peers send (DESIGN.md §3-4). Every role (server,
// prefill, decode, kvcache) is built on one.
//
// Threading: the node owns one dispatch thread. Everything the node calls back -- on_request,
// on_peer_failure, reply callbacks of Call(), tasks given to Post()/PostAfter() -- runs there,
// one at a time, in arrival order. So a role's control state may be touched from those
// callbacks without locks. They must not block for long; they may call every method of the
// node except CallAndWait() and Shutdown() (which would wait for the dispatch thread itself).
// Connect() blocks for the handshake and is allowed there (the handshake does not need the
// dispatch thread), though a role that connects to far peers should do it elsewhere.
//
// Calls: Call() sends an envelope with a fresh call_id; the peer answers with Reply(), whose
// envelope carries reply_to = call_id. The callback runs exactly once: with the reply, with the
// error a reply of body `error` carries, with kDeadlineExceeded when no reply came in time, with
// kUnavailable when the peer failed first, or with kCancelled at shutdown.
//
// Short work may skip the hop to the dispatch thread (each hop wakes a thread: tens of
// microseconds on a loaded host, the larger part of a small call's round trip):
//   - a call made with ReplyOn::kTransportThread gets its reply on the transport's thread
//     (errors -- deadline, peer failure, shutdown -- still come on the dispatch thread); for
//     callers that only hand the reply to a waiting thread (CallAndWait does);
//   - RpcCallbacks::on_request_inline may answer a request on the transport's thread.
// Such callbacks follow the transport's rules: no blocking, no waiting for this node.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "proto/envelope.h"
#include "transport/transport.h"

namespace strata::service {

using transport::Deadline;
using transport::PeerId;
using v1::Envelope;

struct RpcCallbacks {
  // An envelope that is not a reply (reply_to == 0). `call_id` != 0 asks for a Reply().
  std::function<void(PeerId from, Envelope envelope)> on_request;
  // A connected peer failed or closed. Its pending calls have already completed (kUnavailable).
  std::function<void(PeerId peer, const Status& why)> on_peer_failure;
  // Optional. Sees every request first, on the transport's thread: returns true when it handled
  // it there (short, non-blocking work under the role's own lock), false to pass it on to
  // on_request. A request it handles may overtake earlier ones of the same peer still queued
  // for the dispatch thread.
  std::function<bool(PeerId from, Envelope& envelope)> on_request_inline;
};

// Where a call's reply callback runs (see the file comment).
enum class ReplyOn { kDispatchThread, kTransportThread };

class RpcNode {
 public:
  using ReplyCallback = std::function<void(StatusOr<Envelope>)>;

  // Takes the transport (fresh: no handlers set, not listening) and starts the dispatch thread.
  static StatusOr<std::unique_ptr<RpcNode>> Create(std::unique_ptr<transport::Transport> transport,
                                                   RpcCallbacks callbacks);
  ~RpcNode();  // Shutdown()

  // Accepts peers at `address`; returns the address they should use.
  StatusOr<std::string> Listen(const std::string& address);
  // The open connection to `address`, or a new one (blocks until connected or the deadline).
  StatusOr<PeerId> Connect(const std::string& address, Deadline deadline);

  // One-way message. kUnavailable when the peer is gone.
  Status Send(PeerId peer, Envelope envelope);
  // A request expecting a reply; see the file comment.
  void Call(PeerId peer, Envelope envelope, Deadline deadline, ReplyCallback done,
            ReplyOn reply_on = ReplyOn::kDispatchThread);
  // Call() and wait (the reply comes through the transport's thread). Not on the dispatch thread
  // (kFailedPrecondition there).
  StatusOr<Envelope> CallAndWait(PeerId peer, Envelope envelope, Deadline deadline);
  // Answers call `call_id` of `peer`.
  Status Reply(PeerId peer, uint64_t call_id, Envelope reply);
  // Answers call `call_id` with only an error.
  Status ReplyError(PeerId peer, uint64_t call_id, const Status& error);

  // Runs `task` on the dispatch thread (soon / after `delay_ms`). Dropped after Shutdown().
  void Post(std::function<void()> task);
  void PostAfter(int64_t delay_ms, std::function<void()> task);
  bool OnDispatchThread() const;
  // Timers not yet run: PostAfter tasks and the deadlines of pending calls (for tests).
  size_t pending_timers() const;

  transport::Transport& transport() { return *transport_; }
  std::string listen_address() const;

  // Fails pending calls with kCancelled, stops the dispatch thread, shuts the transport down.
  // Idempotent; not from the dispatch thread.
  void Shutdown();

 private:
  // Timers fire in deadline order; the sequence number tells apart those of one deadline.
  using TimerKey = std::pair<Deadline, uint64_t>;
  struct PendingCall {
    PeerId peer;
    TimerKey timer;  // its deadline's timer, removed when the call completes otherwise
    ReplyCallback done;
    ReplyOn reply_on = ReplyOn::kDispatchThread;
  };
  RpcNode(std::unique_ptr<transport::Transport> transport, RpcCallbacks callbacks);
  void OnMessage(transport::Message message);
  void OnPeerFailure(PeerId peer, const Status& why);
  // Completes call `id` of `from` with `reply` (nothing when it already completed).
  void CompleteCall(uint64_t id, PeerId from, Envelope reply);
  void Loop();
  void Enqueue(std::function<void()> task);
  // Adds a timer (mu_ held). True when the dispatch thread sleeps past `at` and must be woken.
  bool AddTimerLocked(Deadline at, std::function<void()> task, TimerKey* key = nullptr);
  // Removes and returns call `id` (and its timer); nullopt when it already completed.
  std::optional<PendingCall> TakeCall(uint64_t id);
  // Removes and returns the pending calls matching `pred`, with their timers.
  std::vector<PendingCall> TakeCalls(const std::function<bool(uint64_t, const PendingCall&)>& pred);

  std::unique_ptr<transport::Transport> transport_;
  RpcCallbacks callbacks_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::map<TimerKey, std::function<void()>> timers_;
  uint64_t next_timer_seq_ = 0;
  // When the dispatch thread, asleep, wakes by itself; min() while it is awake (it looks at the
  // timers again before it sleeps). A call whose deadline comes later needs no wake-up.
  Deadline dispatch_wakes_at_ = Deadline::min();
  std::unordered_map<uint64_t, PendingCall> calls_;
  std::unordered_map<std::string, PeerId> peers_by_address_;
  uint64_t next_call_id_ = 1;
  bool stop_ = false;
  std::string listen_address_;
  std::thread::id dispatch_id_;
  std::thread thread_;
};

}  // namespace strata::service
