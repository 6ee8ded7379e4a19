// Blocking helpers over the callback API of transport::Transport, for callers on their own
// threads (services, tests, benchmarks). None of them may be called from a transport callback of
// the same transport: they would wait for a callback that cannot run.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>

#include "transport/transport.h"

namespace strata::transport {

// Put/Get and wait for the completion. The transfer's own deadline bounds the wait (plus a
// grace period for the completion to be delivered); the result is the completion's status.
Status PutAndWait(Transport& transport, const Transfer& transfer);
Status GetAndWait(Transport& transport, const Transfer& transfer);

// Turns on_message callbacks into a queue to pop with a deadline. Thread-safe.
class Mailbox {
 public:
  // A handler that pushes into this mailbox (the mailbox must outlive the transport's use of it).
  std::function<void(Message)> Handler();
  void Push(Message message);
  // The oldest message, or kDeadlineExceeded when none arrives before the deadline.
  StatusOr<Message> Pop(Deadline deadline);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Message> messages_;
};

}  // namespace strata::transport
