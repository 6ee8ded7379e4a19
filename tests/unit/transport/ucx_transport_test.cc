// UCX-specific behaviour beyond the contract: which bulk path an endpoint picks, RMA forced
// over tcp (slow there, but it must still be correct), and where UCX's warnings go.
#include <gtest/gtest.h>
#include <netdb.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <thread>

#include "common/log.h"
#include "tests/unit/transport/transport_test_util.h"

namespace strata::transport::testing {
namespace {

struct Connected {
  std::unique_ptr<UcxTransport> server, client;
  PeerId client_to_server = kInvalidPeer;
  PeerId server_to_client = kInvalidPeer;
};

StatusOr<Connected> ConnectPair(const std::string& tls, UcxOptions::BulkMode mode,
                                Events& server_events) {
  UcxOptions options;
  options.tls = tls;
  options.bulk_mode = mode;
  options.spin_us = 0;
  Connected pair;
  STRATA_ASSIGN_OR_RETURN(pair.server, UcxTransport::Create(options));
  STRATA_ASSIGN_OR_RETURN(pair.client, UcxTransport::Create(options));
  Handlers handlers;
  handlers.on_peer_connected = [&server_events](PeerId peer, const std::string&) {
    server_events.Connected(peer);
  };
  STRATA_RETURN_IF_ERROR(pair.server->SetHandlers(std::move(handlers)));
  STRATA_ASSIGN_OR_RETURN(std::string address, pair.server->Listen("127.0.0.1:0"));
  STRATA_ASSIGN_OR_RETURN(pair.client_to_server,
                          pair.client->Connect(address, DeadlineAfterMillis(kWaitMs)));
  STRATA_ASSIGN_OR_RETURN(pair.server_to_client, server_events.WaitConnected());
  return pair;
}

// Shared-memory transports alone never connect two processes (connections start from a socket
// address): refused up front with a message that says what to add, instead of peers that stay
// unreachable.
TEST(UcxTransport, TransportsOfOneHostAloneAreRefused) {
  for (const char* local : {"sm", "shm", "posix,sysv", "posix,sysv,self", "sm,cma"}) {
    Status st = CheckUcxTransports(local);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << local;
    EXPECT_NE(st.message().find("sm,tcp"), std::string::npos) << st.message();
    UcxOptions options;
    options.tls = local;
    EXPECT_EQ(UcxTransport::Create(options).status().code(), StatusCode::kInvalidArgument) << local;
  }
  for (const char* fine : {"tcp", "sm,tcp", "tcp,sm", "rc,sm", "all", "^tcp", "^cma,sm"}) {
    EXPECT_TRUE(CheckUcxTransports(fine).ok()) << fine;
  }
}

TEST(UcxTransport, AutoPicksActiveMessagesOverTcp) {
  Events events;
  auto pair = ConnectPair("tcp", UcxOptions::BulkMode::kAuto, events);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto path = pair->client->BulkPath(pair->client_to_server);
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(*path, "am");
  EXPECT_EQ(*pair->server->BulkPath(pair->server_to_client), "am");
}

TEST(UcxTransport, AutoPicksActiveMessagesOverSharedMemoryAndRmaCanBeForced) {
  // See ChooseRma: RMA over sm measured ~100x slower than AM rendezvous with UCX 1.13.
  Events events;
  auto pair = ConnectPair("sm,tcp", UcxOptions::BulkMode::kAuto, events);
  if (!pair.ok()) GTEST_SKIP() << "UCX sm unavailable here: " << pair.status().ToString();
  auto path = pair->client->BulkPath(pair->client_to_server);
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(*path, "am");
  Events forced_events;
  auto forced = ConnectPair("sm,tcp", UcxOptions::BulkMode::kRma, forced_events);
  ASSERT_TRUE(forced.ok()) << forced.status().ToString();
  EXPECT_EQ(*forced->client->BulkPath(forced->client_to_server), "rma");
}

TEST(UcxTransport, ForcedRmaOverTcpIsCorrect) {
  Events events;
  auto pair = ConnectPair("tcp", UcxOptions::BulkMode::kRma, events);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  EXPECT_EQ(*pair->client->BulkPath(pair->client_to_server), "rma");
  std::vector<uint8_t> server_memory(256 * 1024, 0);
  std::vector<uint8_t> client_memory = Pattern(256 * 1024, 3);
  auto server_region = pair->server->RegisterMemory(server_memory.data(), server_memory.size());
  auto client_region = pair->client->RegisterMemory(client_memory.data(), client_memory.size());
  ASSERT_TRUE(server_region.ok() && client_region.ok());
  Transfer put{
      pair->client_to_server, client_region->get(),        0, (*server_region)->remote(), 0,
      client_memory.size(),   DeadlineAfterMillis(kWaitMs)};
  ASSERT_TRUE(PutAndWait(*pair->client, put).ok());
  EXPECT_EQ(server_memory, client_memory);
  std::memset(client_memory.data(), 0, client_memory.size());
  ASSERT_TRUE(GetAndWait(*pair->client, put).ok());
  EXPECT_EQ(server_memory, client_memory);
}

TEST(UcxTransport, ActiveMessagePutOutsideTargetRegionsIsRefusedByTheTarget) {
  Events events;
  auto pair = ConnectPair("tcp", UcxOptions::BulkMode::kActiveMessage, events);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  std::vector<uint8_t> server_memory(4096), client_memory(1 << 20);
  auto server_region = pair->server->RegisterMemory(server_memory.data(), server_memory.size());
  auto client_region = pair->client->RegisterMemory(client_memory.data(), client_memory.size());
  ASSERT_TRUE(server_region.ok() && client_region.ok());
  // A descriptor claiming more than the target registered: the client-side range check passes,
  // the target's check refuses, for eager and rendezvous sizes alike.
  RemoteRegion inflated = (*server_region)->remote();
  inflated.length = 1 << 20;
  for (uint64_t length : {uint64_t{8192}, uint64_t{1} << 20}) {
    Transfer put{pair->client_to_server,      client_region->get(), 0, inflated, 0, length,
                 DeadlineAfterMillis(kWaitMs)};
    Status status = PutAndWait(*pair->client, put);
    EXPECT_FALSE(status.ok()) << length;
    Status get = GetAndWait(*pair->client, put);
    EXPECT_EQ(get.code(), StatusCode::kInvalidArgument) << get.ToString();
  }
  // The connection survives the refusals.
  Transfer fine{
      pair->client_to_server,      client_region->get(), 0, (*server_region)->remote(), 0, 4096,
      DeadlineAfterMillis(kWaitMs)};
  EXPECT_TRUE(PutAndWait(*pair->client, fine).ok());
}

// Over sm, a same-host Put/Get on memory from AllocateMemory is one memcpy by the initiator: it
// needs nothing from the target's progress thread, which here is held in a handler for seconds.
TEST(UcxTransport, SameHostTransfersOnAllocatedMemoryAreDirectCopies) {
  static constexpr int64_t kHoldMs = 4000;
  UcxOptions options;
  options.tls = "sm,tcp";
  options.spin_us = 0;
  auto server = UcxTransport::Create(options);
  auto client = UcxTransport::Create(options);
  if (!server.ok() || !client.ok()) GTEST_SKIP() << "UCX sm unavailable here";
  Events events;
  std::promise<void> holding;
  Handlers handlers;
  handlers.on_peer_connected = [&events](PeerId peer, const std::string&) {
    events.Connected(peer);
  };
  handlers.on_message = [&holding](Message) {
    holding.set_value();
    std::this_thread::sleep_for(std::chrono::milliseconds(kHoldMs));
  };
  ASSERT_TRUE((*server)->SetHandlers(std::move(handlers)).ok());
  auto address = (*server)->Listen("127.0.0.1:0");
  ASSERT_TRUE(address.ok());
  auto peer = (*client)->Connect(*address, DeadlineAfterMillis(kWaitMs));
  ASSERT_TRUE(peer.ok()) << peer.status().ToString();
  ASSERT_TRUE(events.WaitConnected().ok());
  constexpr uint64_t kBytes = 8u << 20;
  auto target = (*server)->AllocateMemory(kBytes);
  auto source = (*client)->AllocateMemory(kBytes);
  ASSERT_TRUE(target.ok() && source.ok());
  const std::vector<uint8_t> pattern = Pattern(kBytes, 3);
  std::memcpy((*source)->data(), pattern.data(), kBytes);
  std::memset((*target)->data(), 0, kBytes);

  ASSERT_TRUE((*client)->Send(*peer, 1, "hold").ok());
  ASSERT_EQ(holding.get_future().wait_for(std::chrono::milliseconds(kWaitMs)),
            std::future_status::ready);
  Stopwatch watch;
  Transfer put{
      *peer, source->get(), 0, (*target)->remote(), 0, kBytes, DeadlineAfterMillis(kWaitMs)};
  ASSERT_TRUE(PutAndWait(**client, put).ok());
  EXPECT_EQ(0, std::memcmp((*target)->data(), pattern.data(), kBytes));
  std::memset((*source)->data(), 0, kBytes);
  Transfer get{*peer,
               source->get(),
               0,
               (*target)->remote(),
               4096,
               kBytes - 4096,
               DeadlineAfterMillis(kWaitMs)};
  ASSERT_TRUE(GetAndWait(**client, get).ok());
  EXPECT_EQ(0, std::memcmp((*source)->data(), pattern.data() + 4096, kBytes - 4096));
  EXPECT_LT(watch.ElapsedMillis(), kHoldMs / 2) << "the transfers waited for the target";
  (*client)->Shutdown();
  (*server)->Shutdown();
}

TEST(UcxTransport, MapRemoteReadsASameHostPeersAllocatedMemoryUntilThePeerGoes) {
  Events events;
  auto pair = ConnectPair("sm,tcp", UcxOptions::BulkMode::kAuto, events);
  if (!pair.ok()) GTEST_SKIP() << "UCX sm unavailable here: " << pair.status().ToString();
  constexpr uint64_t kBytes = 1u << 20;
  auto shared = pair->server->AllocateMemory(kBytes);
  ASSERT_TRUE(shared.ok()) << shared.status().ToString();
  const std::vector<uint8_t> pattern = Pattern(kBytes, 5);
  std::memcpy((*shared)->data(), pattern.data(), kBytes);
  auto mapping = pair->client->MapRemote(pair->client_to_server, (*shared)->remote(),
                                         DeadlineAfterMillis(kWaitMs));
  ASSERT_TRUE(mapping.ok()) << mapping.status().ToString();
  EXPECT_EQ((*mapping)->size(), kBytes);
  std::vector<uint8_t> seen(kBytes);
  ASSERT_TRUE(
      (*mapping)->Access([&](const uint8_t* base) { std::memcpy(seen.data(), base, kBytes); }));
  EXPECT_EQ(seen, pattern);
  // It is the peer's memory itself, not a copy: its later writes show.
  static_cast<uint8_t*>((*shared)->data())[12345] = 0xAB;
  uint8_t byte = 0;
  ASSERT_TRUE((*mapping)->Access([&](const uint8_t* base) { byte = base[12345]; }));
  EXPECT_EQ(byte, 0xAB);

  // User memory registered in place cannot be mapped.
  std::vector<uint8_t> heap(kBytes);
  auto registered = pair->server->RegisterMemory(heap.data(), heap.size());
  ASSERT_TRUE(registered.ok());
  auto refused = pair->client->MapRemote(pair->client_to_server, (*registered)->remote(),
                                         DeadlineAfterMillis(kWaitMs));
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition)
      << refused.status().ToString();

  // Once the peer is gone the mapping is too: Access says so instead of touching the memory.
  pair->server->Shutdown();
  const Deadline give_up = DeadlineAfterMillis(kWaitMs);
  bool readable = true;
  while (readable && MonoClock::now() < give_up) {
    readable = (*mapping)->Access([](const uint8_t*) {});
    if (readable) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_FALSE(readable);
  pair->client->Shutdown();
}

TEST(UcxTransport, MapRemoteNeedsSharedMemory) {
  Events events;
  auto pair = ConnectPair("tcp", UcxOptions::BulkMode::kAuto, events);
  ASSERT_TRUE(pair.ok()) << pair.status().ToString();
  auto region = pair->server->AllocateMemory(4096);
  ASSERT_TRUE(region.ok());
  auto mapping = pair->client->MapRemote(pair->client_to_server, (*region)->remote(),
                                         DeadlineAfterMillis(kWaitMs));
  EXPECT_EQ(mapping.status().code(), StatusCode::kUnimplemented) << mapping.status().ToString();
}

TEST(UcxTransport, BadListenAddressesAreInvalidArgument) {
  auto transport = UcxTransport::Create();
  ASSERT_TRUE(transport.ok());
  EXPECT_EQ((*transport)->Listen("no-port").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*transport)->Listen("127.0.0.1:99999").status().code(), StatusCode::kInvalidArgument);
  auto unknown = (*transport)->Listen("no-such-host.invalid:80");  // RFC 6761: never resolves
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("cannot resolve the host"), std::string::npos)
      << unknown.status().message();
}

// A listener on every interface tells peers an address they reach, not 0.0.0.0.
TEST(UcxTransport, AWildcardListenerAdvertisesAReachableAddress) {
  auto server = UcxTransport::Create();
  auto client = UcxTransport::Create();
  ASSERT_TRUE(server.ok() && client.ok());
  auto bound = (*server)->Listen("0.0.0.0:0");
  ASSERT_TRUE(bound.ok()) << bound.status().ToString();
  EXPECT_EQ(bound->rfind("0.0.0.0:", 0), std::string::npos) << *bound;
  auto peer = (*client)->Connect(*bound, DeadlineAfterMillis(10000));
  EXPECT_TRUE(peer.ok()) << *bound << ": " << peer.status().ToString();
}

// Addresses may name hosts (Kubernetes Services, /etc/hosts), not only IPv4 literals.
TEST(UcxTransport, HostNamesResolve) {
  char name[256] = {};
  ASSERT_EQ(gethostname(name, sizeof(name) - 1), 0);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* found = nullptr;
  if (getaddrinfo(name, nullptr, &hints, &found) != 0) {
    GTEST_SKIP() << "this machine's name (" << name << ") has no IPv4 address";
  }
  freeaddrinfo(found);
  auto server = UcxTransport::Create();
  auto client = UcxTransport::Create();
  ASSERT_TRUE(server.ok() && client.ok());
  auto bound = (*server)->Listen(std::string(name) + ":0");
  ASSERT_TRUE(bound.ok()) << bound.status().ToString();
  const std::string port = bound->substr(bound->rfind(':') + 1);
  auto peer = (*client)->Connect(std::string(name) + ":" + port, DeadlineAfterMillis(10000));
  EXPECT_TRUE(peer.ok()) << peer.status().ToString();
}

// UCX's own warnings (here: an excluded transport this machine lacks) go to Strata's log on
// stderr, never to stdout, where commands print their --json output.
TEST(UcxTransport, UcxWarningsGoToTheLogNotStdout) {
  std::fflush(stdout);
  std::fflush(stderr);
  FILE* out = std::tmpfile();
  FILE* err = std::tmpfile();
  ASSERT_TRUE(out && err);
  const int saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
  dup2(fileno(out), STDOUT_FILENO);
  dup2(fileno(err), STDERR_FILENO);
  UcxOptions options;
  options.tls = "^knem,xpmem";
  auto transport = UcxTransport::Create(options);
  std::fflush(stdout);
  std::fflush(stderr);
  dup2(saved_out, STDOUT_FILENO);
  dup2(saved_err, STDERR_FILENO);
  close(saved_out);
  close(saved_err);
  ASSERT_TRUE(transport.ok()) << transport.status().message();
  auto read_all = [](FILE* f) {
    std::string text;
    std::rewind(f);
    for (int c = std::fgetc(f); c != EOF; c = std::fgetc(f)) text.push_back(static_cast<char>(c));
    std::fclose(f);
    return text;
  };
  const std::string printed = read_all(out), logged = read_all(err);
  EXPECT_EQ(printed, "");
  if (logged.find("not available") != std::string::npos) {
    EXPECT_NE(logged.find("UCX: "), std::string::npos) << logged;
  }
  (*transport)->Shutdown();
}

// Large tcp segments (512 KiB) are given to UCX through the environment unless the user set
// them: after a transport exists, the segment sizes are set.
TEST(UcxTransport, TcpSegmentSizesAreSetForUcx) {
  auto transport = UcxTransport::Create();
  ASSERT_TRUE(transport.ok()) << transport.status().message();
  const char* rx = std::getenv("UCX_TCP_RX_SEG_SIZE");
  const char* tx = std::getenv("UCX_TCP_TX_SEG_SIZE");
  ASSERT_TRUE(rx != nullptr || tx != nullptr);
  if (rx != nullptr && tx != nullptr && std::string(rx) == "512k") {
    EXPECT_STREQ(tx, "512k");
  }
  (*transport)->Shutdown();
}

TEST(UcxTransport, ParseBulkMode) {
  EXPECT_EQ(*ParseBulkMode("rma"), UcxOptions::BulkMode::kRma);
  EXPECT_EQ(*ParseBulkMode("am"), UcxOptions::BulkMode::kActiveMessage);
  EXPECT_EQ(*ParseBulkMode("auto"), UcxOptions::BulkMode::kAuto);
  EXPECT_EQ(ParseBulkMode("fast").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::transport::testing
