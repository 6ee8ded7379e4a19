// Envelope framing: every strata.v1 message between services travels as a strata.v1.Envelope
// with transport message type kEnvelopeMessageType (see proto/envelope.proto).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "proto/envelope.pb.h"

namespace strata::proto {

// The transport::Transport message type that carries a serialized Envelope.
inline constexpr uint32_t kEnvelopeMessageType = 1;

// Default upper bound for one envelope (a 128K-token prompt is ~0.7 MB).
inline constexpr size_t kMaxEnvelopeBytes = 64u << 20;

std::string SerializeEnvelope(const v1::Envelope& envelope);

// Parses bytes received from a peer. Errors: kPayloadTooLarge over max_bytes, kDataLoss when the
// bytes are not an Envelope, kInvalidArgument when it carries no body (e.g. a peer with a newer
// message list sent one this build does not know).
StatusOr<v1::Envelope> ParseEnvelope(std::string_view bytes, size_t max_bytes = kMaxEnvelopeBytes);

// "decode_admit", "token_batch", ... for logs; "none" when unset.
std::string_view BodyName(const v1::Envelope& envelope);

}  // namespace strata::proto
