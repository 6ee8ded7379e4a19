// Status <-> strata.v1.Error: how an error crosses a process (DESIGN.md §8).
#pragma once

#include "common/status.h"
#include "proto/common.pb.h"

namespace strata::proto {

// OK maps to code STATUS_CODE_OK with an empty message.
v1::Error ToProto(const Status& status);
// A code this build does not know (a newer peer) becomes kUnknown, keeping the message.
Status FromProto(const v1::Error& error);

}  // namespace strata::proto
