// A group of EP ranks as threads in one process, each with its own in-process transport endpoint.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "expert_parallel/ep_endpoint.h"
#include "transport/inproc/inproc_transport.h"

namespace strata::expert_parallel::testing {

inline StatusOr<std::vector<std::unique_ptr<EpEndpoint>>> MakeInprocGroup(EpOptions base) {
  auto fabric = transport::NewInprocFabric();
  std::vector<std::unique_ptr<EpEndpoint>> eps;
  std::string leader;
  for (int r = 0; r < base.size; ++r) {
    EpOptions o = base;
    o.rank = r;
    std::unique_ptr<transport::Transport> t;
    if (base.size > 1) t = transport::NewInprocTransport(fabric);
    STRATA_ASSIGN_OR_RETURN(auto ep, EpEndpoint::Create(o, std::move(t)));
    if (base.size > 1) {
      STRATA_ASSIGN_OR_RETURN(std::string addr, ep->Listen("ep" + std::to_string(r) + ":0"));
      if (r == 0) leader = addr;
    }
    eps.push_back(std::move(ep));
  }
  std::vector<Status> st(base.size);
  std::vector<std::thread> threads;
  for (int r = 0; r < base.size; ++r) {
    threads.emplace_back([&, r] { st[r] = eps[r]->Join(leader); });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : st) STRATA_RETURN_IF_ERROR(s);
  return eps;
}

// Runs fn(rank) on one thread per rank and returns the statuses.
inline std::vector<Status> OnEachRank(int size, const std::function<Status(int)>& fn) {
  std::vector<Status> st(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) threads.emplace_back([&, r] { st[r] = fn(r); });
  for (auto& t : threads) t.join();
  return st;
}

}  // namespace strata::expert_parallel::testing
