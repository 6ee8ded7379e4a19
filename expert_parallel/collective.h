// expert_parallel::Collective: an all-to-all that moves a whole round at once, for fabrics whose
// native primitive is a grouped send/receive (NCCL) rather than one-sided puts. An EpEndpoint
// built with a Collective uses it instead of a Transport: the same message formats, the same
// static per-stream buffers (slot i of the send section goes to rank i, the slot of rank j in
// the receive section comes from rank j), the rank's own share included.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "expert_parallel/compute_gate.h"

namespace strata::expert_parallel {

class Collective {
 public:
  virtual ~Collective() = default;
  // send: [size][slot_bytes], send_bytes[i] of slot i meant for rank i; fills recv (same shape)
  // and recv_bytes. Every rank calls it for the same rounds in the same order. Waits at most
  // the collective's timeout (kDeadlineExceeded, and the collective is unusable after);
  // releases `gate` (optional) while waiting and adds the wait to *wait_ns.
  virtual Status AllToAll(const uint8_t* send, uint8_t* recv, size_t slot_bytes,
                          const size_t* send_bytes, size_t* recv_bytes, ComputeGate* gate,
                          int64_t* wait_ns) = 0;
};

}  // namespace strata::expert_parallel
