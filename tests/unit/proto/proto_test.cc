#include <gtest/gtest.h>

#include <string>

#include "common/status.h"
#include "proto/envelope.h"
#include "proto/status_convert.h"

namespace strata::proto {
namespace {

TEST(StatusConvert, EveryCodeOfStatusHRoundTripsWithTheSameNumberAndName) {
  int num_checked = 0;
  for (int code = 0; code <= 100; ++code) {
    const auto status_code = static_cast<StatusCode>(code);
    const std::string_view name = StatusCodeName(status_code);
    if (name == "UNKNOWN" && code != static_cast<int>(StatusCode::kUnknown)) continue;
    ASSERT_TRUE(v1::StatusCode_IsValid(code)) << "proto enum lacks " << name;
    // STATUS_CODE_<NAME> in the proto enum.
    EXPECT_EQ(v1::StatusCode_Name(static_cast<v1::StatusCode>(code)),
              "STATUS_CODE_" + std::string(name));
    const Status status =
        code == 0 ? OkStatus() : Status(status_code, "why " + std::to_string(code));
    const Status back = FromProto(ToProto(status));
    EXPECT_EQ(back, status);
    ++num_checked;
  }
  EXPECT_EQ(num_checked, v1::StatusCode_descriptor()->value_count());
}

TEST(StatusConvert, UnknownPeerCodeBecomesUnknownKeepingTheMessage) {
  v1::Error error;
  error.set_code(static_cast<v1::StatusCode>(77));
  error.set_message("future failure");
  const Status status = FromProto(error);
  EXPECT_EQ(status.code(), StatusCode::kUnknown);
  EXPECT_NE(status.message().find("77"), std::string::npos);
  EXPECT_NE(status.message().find("future failure"), std::string::npos);
}

TEST(Envelope, RoundTripsATokenBatch) {
  v1::Envelope envelope;
  envelope.set_call_id(42);
  auto* batch = envelope.mutable_token_batch();
  batch->set_instance_id("decode-0");
  batch->set_step(7);
  auto* request = batch->add_requests();
  request->set_request_id("cmpl-1");
  request->add_token_ids(151643);
  request->add_logprobs(-0.25f);
  request->set_finish_reason(v1::FINISH_REASON_LENGTH);
  const std::string bytes = SerializeEnvelope(envelope);

  auto parsed = ParseEnvelope(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->call_id(), 42u);
  ASSERT_EQ(parsed->body_case(), v1::Envelope::kTokenBatch);
  EXPECT_EQ(BodyName(*parsed), "token_batch");
  ASSERT_EQ(parsed->token_batch().requests_size(), 1);
  EXPECT_EQ(parsed->token_batch().requests(0).token_ids(0), 151643);
  EXPECT_EQ(parsed->token_batch().requests(0).finish_reason(), v1::FINISH_REASON_LENGTH);
}

TEST(Envelope, DecodeAdmitReplyCarriesRemoteMemory) {
  v1::Envelope envelope;
  auto* reply = envelope.mutable_decode_admit_reply();
  reply->set_request_id("cmpl-9");
  auto* destination = reply->mutable_kv_destination();
  auto* region = destination->add_regions();
  region->set_address(0x7f0000001000ull);
  region->set_length(1 << 20);
  region->set_packed_key(std::string("\x00\x01\xff\x7f", 4));
  auto* block = destination->add_blocks();
  block->set_region_index(0);
  block->set_offset(4096);
  block->set_length(4096);
  auto parsed = ParseEnvelope(SerializeEnvelope(envelope));
  ASSERT_TRUE(parsed.ok());
  const auto& got = parsed->decode_admit_reply().kv_destination();
  EXPECT_EQ(got.regions(0).packed_key(), std::string("\x00\x01\xff\x7f", 4));
  EXPECT_EQ(got.regions(0).address(), 0x7f0000001000ull);
  EXPECT_EQ(got.blocks(0).offset(), 4096u);
}

TEST(Envelope, GarbageIsDataLoss) {
  const std::string garbage = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
  auto parsed = ParseEnvelope(garbage);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kDataLoss);
}

TEST(Envelope, EmptyBodyIsInvalidArgument) {
  v1::Envelope envelope;
  envelope.set_call_id(3);
  auto parsed = ParseEnvelope(SerializeEnvelope(envelope));
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
}

TEST(Envelope, OverTheLimitIsPayloadTooLarge) {
  v1::Envelope envelope;
  envelope.mutable_prefill_request()->mutable_prompt_token_ids()->Resize(1000, 5);
  auto parsed = ParseEnvelope(SerializeEnvelope(envelope), 100);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), StatusCode::kPayloadTooLarge);
}

}  // namespace
}  // namespace strata::proto
