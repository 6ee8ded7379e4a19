// The other process of transport_integration_test: a UCX transport that listens, prints its
// address on stdout, and serves requests (message types below) until told to exit or killed.
//   transport_peer <ucx-tls> <region-bytes>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "proto/common.pb.h"
#include "tests/integration/transport_peer_protocol.h"
#include "transport/sync.h"
#include "transport/ucx/ucx_transport.h"

using namespace strata;
using namespace strata::transport;

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: transport_peer <ucx-tls> <region-bytes> [allocated]\n");
    return 2;
  }
  const bool allocate = argc == 4 && std::string(argv[3]) == "allocated";
  UcxOptions options;
  options.tls = argv[1];
  const uint64_t region_bytes = std::strtoull(argv[2], nullptr, 10);
  auto created = UcxTransport::Create(options);
  if (!created.ok()) {
    std::fprintf(stderr, "transport_peer: %s\n", created.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<UcxTransport> transport = std::move(created).value();
  // Heap memory passed to RegisterMemory, or AllocateMemory (shared memory for a same-host peer).
  std::vector<uint8_t> pattern = integration::Pattern(region_bytes, integration::kPeerPatternTag);
  std::vector<uint8_t> heap;
  StatusOr<std::unique_ptr<Region>> region = InvalidArgumentError("unset");
  if (allocate) {
    region = transport->AllocateMemory(region_bytes);
    if (region.ok()) std::memcpy((*region)->data(), pattern.data(), region_bytes);
  } else {
    heap = std::move(pattern);
    region = transport->RegisterMemory(heap.data(), heap.size());
  }
  if (!region.ok()) return 1;
  const uint8_t* memory = static_cast<const uint8_t*>((*region)->data());

  Mailbox mailbox;
  Handlers handlers;
  handlers.on_message = mailbox.Handler();
  if (!transport->SetHandlers(std::move(handlers)).ok()) return 1;
  auto address = transport->Listen("127.0.0.1:0");
  if (!address.ok()) return 1;
  std::printf("%s\n", address->c_str());
  std::fflush(stdout);

  // Serve until asked to exit; a parent that dies without asking leaves us idle, so give up
  // after a long quiet spell rather than linger forever.
  for (;;) {
    auto message = mailbox.Pop(DeadlineAfterMillis(60000));
    if (!message.ok()) return 3;
    switch (message->type) {
      case integration::kDescribe: {
        v1::RemoteMemory remote;
        remote.set_address((*region)->remote().address);
        remote.set_length((*region)->remote().length);
        remote.set_packed_key((*region)->remote().packed_key);
        (void)transport->Send(message->peer, integration::kDescribe, remote.SerializeAsString());
        break;
      }
      case integration::kEcho:
        (void)transport->Send(message->peer, integration::kEcho, std::move(message->payload));
        break;
      case integration::kChecksum:
        (void)transport->Send(message->peer, integration::kChecksum,
                              std::to_string(integration::Checksum(memory, region_bytes)));
        break;
      case integration::kExit:
        transport->Shutdown();
        return 0;
      default:
        break;
    }
  }
}
