// The generation seam's types (decode/generation.h) <-> their strata.v1 messages, for the roles
// of disaggregated serving.
#pragma once

#include "decode/generation.h"
#include "proto/common.pb.h"
#include "proto/request.pb.h"

namespace strata::decode {

v1::SamplingParams ToProto(const SamplingParams& params);
SamplingParams FromProto(const v1::SamplingParams& params);

v1::FinishReason ToProto(FinishReason reason);
FinishReason FromProto(v1::FinishReason reason);

// One token's logprob entries into / out of the parallel arrays of RequestTokens / FirstToken.
void AppendToken(const GeneratedToken& token, v1::RequestTokens* out);
GeneratedToken TokenAt(const v1::RequestTokens& tokens, int i);

}  // namespace strata::decode
