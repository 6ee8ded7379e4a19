// KV-transfer-like bulk moves and small-message latency over the UCX transport, between two
// processes (this one and a forked child), printed as one JSON object on stdout.
// run_transport_bench.py runs it next to ucx_perftest and writes bench/results/transport.json.
//
//   transport_bench --tls tcp|sm,tcp [--bulk auto|rma|am] [--sizes 1024,1048576,...]
//                   [--seconds 0.3] [--window 8] [--latency-iters 2000]
//                   [--memory allocated|registered]
//
// --memory: both sides' regions come from Transport::AllocateMemory (the default, what KV
// pools should use; over sm a same-host peer then copies directly) or are plain heap memory
// passed to RegisterMemory.
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "transport/sync.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::transport {
namespace {

constexpr MessageType kPing = 1;
constexpr MessageType kDescribe = 2;
constexpr MessageType kExit = 3;

std::string EncodeRegion(const RemoteRegion& region) {
  nlohmann::json j = {{"address", region.address}, {"length", region.length}};
  std::string key_hex;
  for (unsigned char c : region.packed_key) {
    char buf[3];
    std::snprintf(buf, sizeof(buf), "%02x", c);
    key_hex += buf;
  }
  j["key"] = key_hex;
  return j.dump();
}

RemoteRegion DecodeRegion(const std::string& text) {
  auto j = nlohmann::json::parse(text);
  RemoteRegion region{j["address"], j["length"], std::string()};
  const std::string hex = j["key"];
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    region.packed_key.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return region;
}

// The child: listens, echoes pings, describes its region, exits when told.
// A region of `bytes` filled with `fill`, from AllocateMemory or over `heap`.
StatusOr<std::unique_ptr<Region>> MakeRegion(Transport& transport, bool allocate, uint64_t bytes,
                                             uint8_t fill, std::vector<uint8_t>& heap) {
  if (allocate) {
    STRATA_ASSIGN_OR_RETURN(auto region, transport.AllocateMemory(bytes));
    std::memset(region->data(), fill, bytes);
    return region;
  }
  heap.assign(bytes, fill);
  return transport.RegisterMemory(heap.data(), heap.size());
}

int RunServer(const UcxOptions& options, bool allocate, uint64_t region_bytes, int address_fd) {
  auto transport = UcxTransport::Create(options);
  if (!transport.ok()) return 1;
  std::vector<uint8_t> memory;
  auto region = MakeRegion(**transport, allocate, region_bytes, 1, memory);
  if (!region.ok()) return 1;
  std::mutex mu;
  std::condition_variable cv;
  bool exit = false;
  Handlers handlers;
  UcxTransport* raw = transport->get();
  const std::string described = EncodeRegion((*region)->remote());
  handlers.on_message = [&](Message message) {
    if (message.type == kPing) {
      (void)raw->Send(message.peer, kPing, std::move(message.payload));  // from the callback
    } else if (message.type == kDescribe) {
      (void)raw->Send(message.peer, kDescribe, described);
    } else if (message.type == kExit) {
      std::lock_guard<std::mutex> lock(mu);
      exit = true;
      cv.notify_all();
    }
  };
  if (!(*transport)->SetHandlers(std::move(handlers)).ok()) return 1;
  auto address = (*transport)->Listen("127.0.0.1:0");
  if (!address.ok()) return 1;
  const std::string line = *address + "\n";
  if (write(address_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 1;
  close(address_fd);
  std::unique_lock<std::mutex> lock(mu);
  cv.wait_for(lock, std::chrono::minutes(5), [&] { return exit; });
  return 0;
}

// Bandwidth of back-to-back transfers of `size` bytes with up to `window` in flight.
nlohmann::json MeasureBulk(Transport& transport, PeerId peer, const Region& local,
                           const RemoteRegion& remote, bool is_put, uint64_t size, int window,
                           double seconds) {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  int64_t completed = 0;
  Status first_error;
  auto start_one = [&] {
    Transfer transfer{peer, &local, 0, remote, 0, size, DeadlineAfterMillis(60000)};
    auto done = [&](Status status) {
      std::lock_guard<std::mutex> lock(mu);
      --in_flight;
      ++completed;
      if (!status.ok() && first_error.ok()) first_error = status;
      cv.notify_all();
    };
    if (is_put) {
      transport.Put(transfer, done);
    } else {
      transport.Get(transfer, done);
    }
  };
  // Warm-up (registration caches, rendezvous setup).
  for (int i = 0; i < 2; ++i) {
    Transfer transfer{peer, &local, 0, remote, 0, size, DeadlineAfterMillis(60000)};
    Status status = is_put ? PutAndWait(transport, transfer) : GetAndWait(transport, transfer);
    if (!status.ok()) return {{"error", status.ToString()}};
  }
  const uint64_t max_iters = std::max<uint64_t>(8, (2ull << 30) / size);
  Stopwatch watch;
  uint64_t started = 0;
  std::unique_lock<std::mutex> lock(mu);
  while ((watch.ElapsedSeconds() < seconds || started < 4) && started < max_iters) {
    cv.wait(lock, [&] { return in_flight < window; });
    ++in_flight;
    ++started;
    lock.unlock();
    start_one();
    lock.lock();
  }
  cv.wait(lock, [&] { return in_flight == 0; });
  const double elapsed = watch.ElapsedSeconds();
  if (!first_error.ok()) return {{"error", first_error.ToString()}};
  return {{"op", is_put ? "put" : "get"},
          {"bytes", size},
          {"iterations", completed},
          {"seconds", elapsed},
          {"mb_per_s", static_cast<double>(size) * static_cast<double>(completed) / elapsed / 1e6}};
}

nlohmann::json MeasureLatency(Transport& transport, PeerId peer, Mailbox& mailbox, int iters) {
  std::vector<double> half_rtt_us;
  const std::string payload(8, 'x');
  for (int i = 0; i < iters + 50; ++i) {
    Stopwatch watch;
    if (!transport.Send(peer, kPing, payload).ok()) return {{"error", "send failed"}};
    auto reply = mailbox.Pop(DeadlineAfterMillis(10000));
    if (!reply.ok()) return {{"error", reply.status().ToString()}};
    if (i >= 50) half_rtt_us.push_back(watch.ElapsedNanos() / 2000.0);
  }
  std::sort(half_rtt_us.begin(), half_rtt_us.end());
  return {{"op", "message_latency"},
          {"bytes", payload.size()},
          {"iterations", iters},
          {"p50_usec", half_rtt_us[half_rtt_us.size() / 2]},
          {"p90_usec", half_rtt_us[half_rtt_us.size() * 9 / 10]}};
}

int Main(int argc, char** argv) {
  log::InitFromEnvironment();
  CLI::App app{"UCX transport benchmark (two processes)"};
  std::string tls = "tcp";
  std::string bulk = "auto";
  std::string sizes_text = "1024,65536,1048576,4194304,16777216,67108864";
  double seconds = 0.3;
  int window = 8;
  int latency_iters = 2000;
  std::string memory_kind = "allocated";
  app.add_option("--tls", tls, "UCX_TLS for both processes");
  app.add_option("--bulk", bulk, "bulk path: auto, rma or am");
  app.add_option("--sizes", sizes_text, "transfer sizes in bytes, comma separated");
  app.add_option("--seconds", seconds, "measuring time per size and direction");
  app.add_option("--window", window, "transfers in flight");
  app.add_option("--latency-iters", latency_iters, "ping-pong round trips");
  app.add_option("--memory", memory_kind, "regions: allocated (AllocateMemory) or registered")
      ->check(CLI::IsMember({"allocated", "registered"}));
  CLI11_PARSE(app, argc, argv);

  UcxOptions options;
  options.tls = tls;
  auto mode = ParseBulkMode(bulk);
  if (!mode.ok()) {
    std::fprintf(stderr, "%s\n", mode.status().ToString().c_str());
    return 2;
  }
  options.bulk_mode = *mode;
  std::vector<uint64_t> sizes;
  std::stringstream stream(sizes_text);
  for (std::string item; std::getline(stream, item, ',');) sizes.push_back(std::stoull(item));
  const uint64_t max_size = *std::max_element(sizes.begin(), sizes.end());

  const bool allocate = memory_kind == "allocated";
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return 1;
  const pid_t child = fork();
  if (child == 0) {
    close(pipe_fds[0]);
    _exit(RunServer(options, allocate, max_size, pipe_fds[1]));
  }
  close(pipe_fds[1]);
  std::string address;
  char c;
  while (read(pipe_fds[0], &c, 1) == 1 && c != '\n') address += c;
  close(pipe_fds[0]);

  nlohmann::json out = {
      {"tls", tls}, {"bulk_mode", bulk}, {"window", window}, {"memory", memory_kind}};
  {
    auto transport = UcxTransport::Create(options);
    if (!transport.ok() || address.empty()) {
      std::fprintf(stderr, "setup failed\n");
      kill(child, SIGKILL);
      return 1;
    }
    Mailbox mailbox;
    Handlers handlers;
    handlers.on_message = mailbox.Handler();
    (void)(*transport)->SetHandlers(std::move(handlers));
    auto peer = (*transport)->Connect(address, DeadlineAfterMillis(15000));
    if (!peer.ok()) {
      std::fprintf(stderr, "connect: %s\n", peer.status().ToString().c_str());
      kill(child, SIGKILL);
      return 1;
    }
    out["bulk_path"] = *(*transport)->BulkPath(*peer);
    (void)(*transport)->Send(*peer, kDescribe, "");
    auto described = mailbox.Pop(DeadlineAfterMillis(15000));
    if (!described.ok()) return 1;
    const RemoteRegion remote = DecodeRegion(described->payload);
    std::vector<uint8_t> memory;
    auto local = MakeRegion(**transport, allocate, max_size, 2, memory);
    if (!local.ok()) return 1;
    nlohmann::json results = nlohmann::json::array();
    results.push_back(MeasureLatency(**transport, *peer, mailbox, latency_iters));
    for (uint64_t size : sizes) {
      for (bool is_put : {true, false}) {
        results.push_back(
            MeasureBulk(**transport, *peer, **local, remote, is_put, size, window, seconds));
      }
    }
    out["results"] = results;
    (void)(*transport)->Send(*peer, kExit, "");
    (*transport)->Shutdown();
  }
  int status = 0;
  for (int i = 0; i < 500 && waitpid(child, &status, WNOHANG) == 0; ++i) usleep(10000);
  kill(child, SIGKILL);
  waitpid(child, &status, 0);
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace
}  // namespace strata::transport

int main(int argc, char** argv) { return strata::transport::Main(argc, argv); }
