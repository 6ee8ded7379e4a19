// Free loopback ports for the processes a supervisor starts, all different. Each probe socket
// stays bound until Release(), so the kernel cannot hand one port out twice (probing one port
// at a time, a KV pool of `serve --disaggregated` was once given the router's port, and the
// server role crash-looped on "Address already in use"). Between Release() and a child's bind
// another process may still take a port; the supervisor's restart covers that.
#pragma once

#include <set>
#include <vector>

#include "common/status.h"

namespace strata::supervisor {

class FreePorts {
 public:
  FreePorts() = default;
  FreePorts(const FreePorts&) = delete;
  FreePorts& operator=(const FreePorts&) = delete;
  ~FreePorts() { Release(); }

  // A port given by the user: Pick never returns it.
  void Reserve(int port) { taken_.insert(port); }
  // A free 127.0.0.1 port that no earlier Pick returned and no Reserve named.
  StatusOr<int> Pick();
  // Frees every picked port, for the children to listen on.
  void Release();

 private:
  std::vector<int> fds_;
  std::set<int> taken_;
};

}  // namespace strata::supervisor
