// How the cluster router picks a prefill and a decode instance for a request (DESIGN.md §3):
// load-aware by default (ClusterRouter weighs the instances' heartbeats), or stateless --
// round-robin or random, as in SGLang's router -- which any instance must serve alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>

#include "common/status.h"

namespace strata::server {

enum class RoutingPolicy {
  kLoad,  // least loaded (decode: KV usage, then requests; prefill: queued tokens), cache-aware
          // ties
  kRoundRobin,  // each role's instances in turn, by id
  kRandom,      // uniformly among a role's instances
};
// "load", "round-robin" or "random"; InvalidArgument naming the choices otherwise.
StatusOr<RoutingPolicy> ParseRoutingPolicy(std::string_view name);
std::string_view RoutingPolicyName(RoutingPolicy policy);  // ParseRoutingPolicy's inverse

// The stateless policies' choice among one role's eligible instances. Not thread-safe (the
// router calls it under its lock).
class StatelessChoice {
 public:
  enum class Role { kPrefill, kDecode };
  // An index in [0, candidates): kRoundRobin takes the role's next turn, kRandom draws.
  size_t Pick(RoutingPolicy policy, Role role, size_t candidates);

 private:
  uint64_t turns_[2] = {0, 0};  // by Role
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace strata::server
