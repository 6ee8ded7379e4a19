// In-process transport (embedded mode, DESIGN.md §3): peers are Transports of one process that
// share an InprocFabric. Send moves the payload string to the receiver (no copy, no
// serialization); Put/Get are a memcpy between registered regions.
//
// Addresses are "name:port"; port 0 picks a free number. They are only meaningful within one
// fabric.
//
// Threading: each transport has one dispatch thread; its callbacks (messages it receives,
// completions of the Put/Get it starts, peer events) run there, in order. A Put/Get runs its
// memcpy on the initiator's dispatch thread, so a transfer completes after the initiator's
// earlier queued callbacks.
#pragma once

#include <memory>

#include "transport/transport.h"

namespace strata::transport {

class InprocFabric;

// The shared namespace of listeners. Thread-safe; outlived by nobody in particular (transports
// hold it by shared_ptr).
std::shared_ptr<InprocFabric> NewInprocFabric();

std::unique_ptr<Transport> NewInprocTransport(std::shared_ptr<InprocFabric> fabric);

}  // namespace strata::transport
