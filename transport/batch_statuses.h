// The statuses of a PutBatch/GetBatch's transfers, gathered as they complete, for the
// implementations (transport.cc's default and UCX's): the completion runs once, after the last.
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

#include "transport/transport.h"

namespace strata::transport {

class BatchStatuses {
 public:
  BatchStatuses(size_t num_transfers, BatchCompletion done)
      : statuses_(num_transfers), left_(num_transfers), done_(std::move(done)) {}

  // Records transfer `i`'s status; true for the call that recorded the last one, which then
  // calls Report() (or has it called).
  bool Record(size_t i, Status status) {
    std::lock_guard lock(mu_);
    statuses_[i] = std::move(status);
    return --left_ == 0;
  }
  void Report() { done_(std::move(statuses_)); }

 private:
  std::mutex mu_;
  std::vector<Status> statuses_;
  size_t left_;
  BatchCompletion done_;
};

}  // namespace strata::transport
