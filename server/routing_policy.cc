#include "server/routing_policy.h"

#include <string>

namespace strata::server {

StatusOr<RoutingPolicy> ParseRoutingPolicy(std::string_view name) {
  if (name == "load") return RoutingPolicy::kLoad;
  if (name == "round-robin") return RoutingPolicy::kRoundRobin;
  if (name == "random") return RoutingPolicy::kRandom;
  return InvalidArgumentError("'" + std::string(name) +
                              "' is not a routing policy: load, round-robin or random");
}

std::string_view RoutingPolicyName(RoutingPolicy policy) {
  switch (policy) {
    case RoutingPolicy::kLoad:
      return "load";
    case RoutingPolicy::kRoundRobin:
      return "round-robin";
    case RoutingPolicy::kRandom:
      return "random";
  }
  return "unknown";
}

size_t StatelessChoice::Pick(RoutingPolicy policy, Role role, size_t candidates) {
  if (policy == RoutingPolicy::kRandom) {
    return std::uniform_int_distribution<size_t>(0, candidates - 1)(rng_);
  }
  return turns_[static_cast<int>(role)]++ % candidates;
}

}  // namespace strata::server
