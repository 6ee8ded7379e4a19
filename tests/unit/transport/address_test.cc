#include "transport/address.h"

#include <gtest/gtest.h>

namespace strata::transport {
namespace {

TEST(AddressTest, SplitsHostAndPort) {
  StatusOr<HostPort> ip = SplitHostPort("127.0.0.1:7100");
  ASSERT_TRUE(ip.ok()) << ip.status().ToString();
  EXPECT_EQ(ip->host, "127.0.0.1");
  EXPECT_EQ(ip->port, 7100);
  StatusOr<HostPort> name = SplitHostPort("strata-router.default.svc:65535");
  ASSERT_TRUE(name.ok()) << name.status().ToString();
  EXPECT_EQ(name->host, "strata-router.default.svc");
  EXPECT_EQ(name->port, 65535);
  EXPECT_EQ(SplitHostPort("0.0.0.0:0")->port, 0);
}

TEST(AddressTest, MalformedAddressesSayWhatIsWrong) {
  for (const char* bad : {"7100", "127.0.0.1", ":7100", "host:", "host:abc", "host:71x", "host:-1",
                          "host:65536", "host:99999999999", "host: 80"}) {
    StatusOr<HostPort> split = SplitHostPort(bad);
    ASSERT_FALSE(split.ok()) << bad;
    EXPECT_EQ(split.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(split.status().message().find(std::string("'") + bad + "'"), std::string::npos)
        << split.status().message();
  }
}

TEST(AddressTest, FlagChecksNameTheFlagAndRefusePortZeroToConnectTo) {
  EXPECT_TRUE(CheckAddressFlag("listen", "0.0.0.0:0", AddressUse::kListen).ok());
  EXPECT_TRUE(CheckAddressFlag("router", "strata-router:7100", AddressUse::kConnect).ok());
  // A name that does not resolve (yet) is no flag error: the role waits for it.
  EXPECT_TRUE(CheckAddressFlag("router", "no-such-host.invalid:7100", AddressUse::kConnect).ok());

  Status zero = CheckAddressFlag("router", "127.0.0.1:0", AddressUse::kConnect);
  EXPECT_EQ(zero.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(zero.message().rfind("--router: ", 0), 0u) << zero.message();
  EXPECT_NE(zero.message().find("port 0"), std::string::npos) << zero.message();

  Status bad = CheckAddressFlag("kvcache", "pool:abc", AddressUse::kConnect);
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message().rfind("--kvcache: bad port in address 'pool:abc'", 0), 0u)
      << bad.message();
}

}  // namespace
}  // namespace strata::transport
