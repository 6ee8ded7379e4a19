#include "transport/sync.h"

#include <chrono>
#include <future>
#include <memory>

namespace strata::transport {
namespace {

// Completions are delivered by the transport thread a little after the deadline at worst; past
// this grace the transport itself is stuck, which is reported rather than waited on forever.
constexpr auto kCompletionGrace = std::chrono::seconds(5);

template <typename Start>
Status StartAndWait(const Transfer& transfer, Start start) {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> future = promise->get_future();
  start([promise](Status status) { promise->set_value(std::move(status)); });
  const Deadline wait_until = std::max(transfer.deadline, MonoClock::now()) + kCompletionGrace;
  if (future.wait_until(wait_until) != std::future_status::ready) {
    return InternalError("transport did not complete a transfer within " +
                         std::to_string(kCompletionGrace.count()) + " s after its deadline");
  }
  return future.get();
}

}  // namespace

Status PutAndWait(Transport& transport, const Transfer& transfer) {
  return StartAndWait(transfer, [&](Completion done) { transport.Put(transfer, std::move(done)); });
}

Status GetAndWait(Transport& transport, const Transfer& transfer) {
  return StartAndWait(transfer, [&](Completion done) { transport.Get(transfer, std::move(done)); });
}

std::function<void(Message)> Mailbox::Handler() {
  return [this](Message message) { Push(std::move(message)); };
}

void Mailbox::Push(Message message) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    messages_.push_back(std::move(message));
  }
  cv_.notify_all();
}

StatusOr<Message> Mailbox::Pop(Deadline deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_until(lock, deadline, [&] { return !messages_.empty(); })) {
    return DeadlineExceededError("no message arrived before the deadline");
  }
  Message message = std::move(messages_.front());
  messages_.pop_front();
  return message;
}

size_t Mailbox::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_.size();
}

}  // namespace strata::transport
