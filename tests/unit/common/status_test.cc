#include "common/status.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_EQ(HttpStatusCode(s.code()), 200);
}

TEST(StatusTest, HttpMappingCoversEveryCode) {
  struct Case {
    Status status;
    int http;
  };
  const Case cases[] = {
      {InvalidArgumentError("x"), 400},   {OutOfRangeError("x"), 400},
      {FailedPreconditionError("x"), 400}, {UnauthenticatedError("x"), 401},
      {NotFoundError("x"), 404},          {PayloadTooLargeError("x"), 413},
      {ResourceExhaustedError("x"), 429}, {CancelledError("x"), 499},
      {InternalError("x"), 500},          {DataLossError("x"), 500},
      {UnimplementedError("x"), 501},     {UnavailableError("x"), 503},
      {DeadlineExceededError("x"), 504},  {AlreadyExistsError("x"), 409},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(HttpStatusCode(c.status.code()), c.http) << c.status.ToString();
    EXPECT_FALSE(c.status.ok());
  }
}

TEST(StatusTest, ContextAndToString) {
  Status s = NotFoundError("tensor model.norm.weight").WithContext("loading /m");
  EXPECT_EQ(s.ToString(), "NOT_FOUND: loading /m: tensor model.norm.weight");
  EXPECT_TRUE(OkStatus().WithContext("ignored").ok());
}

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd");
  return x / 2;
}

StatusOr<int> Quarter(int x) {
  STRATA_ASSIGN_OR_RETURN(int h, Half(x));
  STRATA_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusOrTest, PropagatesErrors) {
  EXPECT_EQ(*Quarter(8), 2);
  auto bad = Quarter(6);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "odd");
}

TEST(StatusOrTest, MoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> p = std::make_unique<int>(7);
  ASSERT_TRUE(p.ok());
  std::unique_ptr<int> v = std::move(p).value();
  EXPECT_EQ(*v, 7);
}

}  // namespace
}  // namespace strata
