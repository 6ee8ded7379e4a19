// KV pool throughput over UCX between two processes: a forked child runs a KvPoolServer, this
// process is an instance with a KvPoolClient. For each size (bytes of KV per call, whole
// blocks) and each concurrency (calls in flight: threads sharing the one client, as a prefill
// instance's requests do), Store (the pool pulls the blocks: Put) and Fetch (Get) are timed end
// to end, and at concurrency 1 a Lookup (one round trip, no data). Get reads blocks the client
// read before: with shared memory straight from the pool's memory, validated by slot versions
// (kvcache/pool_direct_reads.h); get_leased is the same read with a lease, RMA gets and a
// release, as every read over tcp is; get_first (one call at a time) reads blocks stored just
// before, once each: a lease, then (same host) copies on the caller's thread. Prints one JSON
// object on stdout; run_kvpool_bench.py runs it next to ucx_perftest and writes
// bench/results/kvpool.json.
//
//   kvpool_bench --tls tcp|sm,tcp [--sizes 1048576,4194304,16777216] [--concurrency 1,4]
//                [--seconds 0.5] [--layers 12] [--block-size 16] [--spin-us 100]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "kvcache/pool_client.h"
#include "kvcache/pool_server.h"
#include "transport/ucx/ucx_transport.h"

namespace strata::kvcache {
namespace {

struct BenchFlags {
  std::string tls = "tcp";
  std::string bulk = "auto";
  std::string sizes = "1048576,4194304,16777216";
  double seconds = 0.5;
  int layers = 12;
  int block_size = 16;
  std::string concurrency = "1";
  bool fill_first = true;
  int64_t spin_us = transport::UcxOptions{}.spin_us;
};

// The deepseek_v3 bench preset's KV (MLA: kv_lora 256 + rope 32 per token and layer).
KvCacheSpec BenchSpec(const BenchFlags& f) {
  KvCacheSpec spec;
  spec.layout = KvLayout::kMla;
  spec.num_layers = f.layers;
  spec.block_size = f.block_size;
  spec.kv_lora_rank = 256;
  spec.rope_dim = 32;
  return spec;
}

transport::UcxOptions Ucx(const BenchFlags& f) {
  transport::UcxOptions o;
  o.tls = f.tls;
  o.bulk_mode = *transport::ParseBulkMode(f.bulk);
  o.spin_us = f.spin_us;
  return o;
}

int RunPool(const BenchFlags& f, uint64_t capacity, int address_fd) {
  auto t = transport::UcxTransport::Create(Ucx(f));
  if (!t.ok()) return 1;
  KvPoolServerOptions options;
  options.capacity_bytes = capacity;
  auto pool = KvPoolServer::Create(std::move(t).value(), options);
  if (!pool.ok()) return 1;
  auto address = (*pool)->Listen("127.0.0.1:0");
  if (!address.ok()) return 1;
  const std::string line = *address + "\n";
  if (write(address_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 1;
  close(address_fd);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  int sig = 0;
  sigwait(&signals, &sig);
  (*pool)->Shutdown();
  return 0;
}

// Runs `call(worker)` on `workers` threads, each in a loop until `seconds` passed (and at
// least 3 times); the calls and the wall time of them all, or the first error.
struct Timed {
  int64_t calls = 0;
  double seconds = 0;
  Status error;
};
Timed RunWorkers(int workers, double seconds, const std::function<Status(int)>& call) {
  std::atomic<int64_t> calls{0};
  std::mutex mu;
  Status first_error;
  Stopwatch watch;
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; watch.ElapsedSeconds() < seconds || i < 3; ++i) {
        Status st = call(w);
        if (!st.ok()) {
          std::lock_guard lock(mu);
          if (first_error.ok()) first_error = st;
          return;
        }
        calls.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  return Timed{calls.load(), watch.ElapsedSeconds(), first_error};
}

// The memory's own limit for moving `bytes` in this process: memcpy of one buffer into another
// again and again (both stay in the caches where they fit: what ucx_perftest's sm figures
// measure, and what a Get of blocks read before does), and into fresh memory each time (a
// destination cycling through `span` bytes, as a Put into a pool's least recently used slots).
nlohmann::json MeasureMemcpy(uint64_t bytes, uint64_t span, double seconds) {
  std::vector<uint8_t> src(bytes, 1);
  std::vector<uint8_t> dst(std::max(bytes, span), 2);
  auto rate = [&](bool cycle) {
    uint64_t offset = 0;
    int64_t copies = 0;
    Stopwatch watch;
    while (watch.ElapsedSeconds() < seconds || copies < 3) {
      if (!cycle || offset + bytes > dst.size()) offset = 0;
      std::memcpy(dst.data() + offset, src.data(), bytes);
      offset += bytes;
      ++copies;
    }
    return static_cast<double>(bytes) * copies / watch.ElapsedSeconds() / 1e6;
  };
  return {{"memcpy_hot_mb_per_s", rate(false)}, {"memcpy_fresh_mb_per_s", rate(true)}};
}

int RunClient(const BenchFlags& f, const std::string& address, const std::vector<uint64_t>& sizes,
              const std::vector<int>& concurrencies, int max_blocks) {
  auto t = transport::UcxTransport::Create(Ucx(f));
  if (!t.ok()) return 1;
  transport::UcxTransport* ucx = t->get();
  auto node = service::RpcNode::Create(std::move(t).value(), {});
  if (!node.ok()) return 1;
  const int max_workers = *std::max_element(concurrencies.begin(), concurrencies.end());
  // Each worker reads into and stores from its own blocks.
  auto cache = PagedKvCache::Create(BenchSpec(f), 2 * max_blocks * max_workers);
  if (!cache.ok()) return 1;
  auto kv = RegisteredKv::Register(cache->get(), &(*node)->transport());
  if (!kv.ok()) return 1;
  KvPoolClient client(node->get(), {address});
  // The same reads with a lease every time: what a first read of blocks costs, and every read
  // where the pool's memory cannot be mapped (another host, tcp only).
  KvPoolClientOptions leased_options;
  leased_options.direct_reads = false;
  KvPoolClient leased_client(node->get(), {address}, leased_options);
  const uint64_t block_bytes = (*kv)->segment_bytes() * (*kv)->num_segments();
  nlohmann::json out = {{"tls", f.tls},
                        {"block_bytes", block_bytes},
                        {"segment_bytes", (*kv)->segment_bytes()},
                        {"segments_per_block", (*kv)->num_segments()},
                        {"results", nlohmann::json::array()},
                        {"memcpy", nlohmann::json::array()}};
  std::atomic<uint64_t> counter{0};
  auto fresh_chain = [&](int n) {
    std::vector<BlockHash> chain;
    for (int i = 0; i < n; ++i) chain.push_back(MixHash(counter.fetch_add(1) + 1));
    return chain;
  };
  auto store = [&](const std::vector<BlockHash>& hashes, const std::vector<BlockId>& blocks) {
    std::promise<Status> done;
    client.Store(hashes, **kv, blocks, transport::DeadlineAfterMillis(60000),
                 [&done](Status st) { done.set_value(st); });
    return done.get_future().get();
  };
  // Worker w's source and destination blocks for calls of n blocks.
  auto blocks_of = [&](int w, int n, bool destination) {
    std::vector<BlockId> blocks;
    const int first = (2 * w + (destination ? 1 : 0)) * max_blocks;
    for (int i = 0; i < n; ++i) blocks.push_back(first + i);
    return blocks;
  };
  if (f.fill_first) {
    // Every pool slot written once before anything is timed: the pool's memory is faulted in
    // (as on a pool that has been up a while), and the timed Puts evict as a full pool does.
    for (int i = 0; i < 64; ++i) {
      if (Status st = store(fresh_chain(max_blocks), blocks_of(0, max_blocks, false)); !st.ok()) {
        std::fprintf(stderr, "filling the pool: %s\n", st.ToString().c_str());
        return 1;
      }
    }
  }
  for (uint64_t size : sizes) {
    const int n = static_cast<int>(std::max<uint64_t>(1, size / block_bytes));
    const uint64_t bytes = static_cast<uint64_t>(n) * block_bytes;
    (void)store(fresh_chain(n), blocks_of(0, n, false));  // warm-up, connection
    for (int workers : concurrencies) {
      nlohmann::json r = {{"bytes", bytes}, {"blocks", n}, {"concurrency", workers}};
      std::fprintf(stderr, "kvpool_bench: %s, %llu bytes, %d in flight\n", f.tls.c_str(),
                   static_cast<unsigned long long>(bytes), workers);
      // Untimed: the first Store of every worker's blocks. Over sm each side copies straight
      // from memory it maps from the other process, and the first touch of a mapped page
      // faults (~5 us a page on this VM): as on a pool and clients that have been up a while,
      // those are not timed (Get below likewise reads its chains once before timing).
      for (int w = 0; w < workers; ++w) (void)store(fresh_chain(n), blocks_of(w, n, false));
      // Put: fresh hashes every call (write-once).
      Timed put = RunWorkers(workers, f.seconds,
                             [&](int w) { return store(fresh_chain(n), blocks_of(w, n, false)); });
      // Get: each worker its own chain, again and again.
      std::vector<std::vector<BlockHash>> chains;
      Status st = put.error;
      for (int w = 0; w < workers && st.ok(); ++w) {
        chains.push_back(fresh_chain(n));
        st = store(chains.back(), blocks_of(w, n, false));
      }
      KvPoolClient* reader = &client;
      auto fetch = [&](int w) -> Status {
        auto got = reader->Fetch(chains[w], **kv, blocks_of(w, n, true),
                                 transport::DeadlineAfterMillis(60000));
        if (!got.ok()) return got.status();
        if (*got != n) {
          return InternalError("fetched " + std::to_string(*got) + " of " + std::to_string(n));
        }
        return OkStatus();
      };
      for (int w = 0; w < workers && st.ok(); ++w) st = fetch(w);  // untimed, as above
      Timed get{0, 0, st};
      if (st.ok()) get = RunWorkers(workers, f.seconds, fetch);
      reader = &leased_client;
      Timed leased{0, 0, get.error};
      if (get.error.ok()) leased = RunWorkers(workers, f.seconds, fetch);
      if (!put.error.ok() || !leased.error.ok()) {
        r["error"] = (!put.error.ok() ? put.error : leased.error).ToString();
        out["results"].push_back(r);
        continue;
      }
      r["put_mb_per_s"] = static_cast<double>(bytes) * put.calls / put.seconds / 1e6;
      r["put_ms_per_call"] = put.seconds * 1e3 * workers / put.calls;
      r["get_mb_per_s"] = static_cast<double>(bytes) * get.calls / get.seconds / 1e6;
      r["get_ms_per_call"] = get.seconds * 1e3 * workers / get.calls;
      r["get_leased_mb_per_s"] = static_cast<double>(bytes) * leased.calls / leased.seconds / 1e6;
      r["get_leased_ms_per_call"] = leased.seconds * 1e3 * workers / leased.calls;
      if (workers == 1) {
        // A Lookup of the chain: one round trip to the pool, no data.
        Timed lookup = RunWorkers(1, f.seconds, [&](int) {
          return client.Lookup(chains[0], transport::DeadlineAfterMillis(60000)) == n
                     ? OkStatus()
                     : InternalError("lookup missed");
        });
        if (lookup.error.ok()) r["lookup_us_per_call"] = lookup.seconds * 1e6 / lookup.calls;
        // First reads: blocks stored just before (untimed), each read once by the default
        // client -- a prompt prefix a prefill instance meets for the first time.
        double first_seconds = 0;
        int64_t first_calls = 0;
        reader = &client;
        for (Stopwatch watch; watch.ElapsedSeconds() < f.seconds || first_calls < 3;) {
          chains[0] = fresh_chain(n);
          if (Status stored = store(chains[0], blocks_of(0, n, false)); !stored.ok()) break;
          Stopwatch call;
          if (!fetch(0).ok()) break;
          first_seconds += call.ElapsedSeconds();
          ++first_calls;
        }
        if (first_calls > 0) {
          r["get_first_mb_per_s"] = static_cast<double>(bytes) * first_calls / first_seconds / 1e6;
          r["get_first_ms_per_call"] = first_seconds * 1e3 / first_calls;
        }
      }
      out["results"].push_back(r);
    }
    out["memcpy"].push_back(MeasureMemcpy(bytes, 1ull << 30, f.seconds));
    out["memcpy"].back()["bytes"] = bytes;
  }
  auto peer = (*node)->Connect(address, transport::DeadlineAfterMillis(1000));
  if (peer.ok()) {
    auto path = ucx->BulkPath(*peer);
    out["bulk_path"] = path.ok() ? *path : "?";
  }
  (*node)->Shutdown();
  kv->reset();
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace
}  // namespace strata::kvcache

int main(int argc, char** argv) {
  using namespace strata::kvcache;
  strata::log::InitFromEnvironment();
  BenchFlags f;
  CLI::App app{"KV pool Put/Get throughput over UCX"};
  app.add_option("--tls", f.tls);
  app.add_option("--bulk", f.bulk);
  app.add_option("--sizes", f.sizes);
  app.add_option("--seconds", f.seconds);
  app.add_option("--layers", f.layers);
  app.add_option("--block-size", f.block_size);
  app.add_option("--concurrency", f.concurrency,
                 "Comma-separated numbers of calls in flight (threads sharing one client)");
  app.add_option("--spin-us", f.spin_us, "UCX progress threads poll this long before sleeping");
  app.add_option("--fill-first", f.fill_first,
                 "Write every pool slot once before timing (default true)");
  CLI11_PARSE(app, argc, argv);
  if (!strata::transport::ParseBulkMode(f.bulk).ok()) return 2;
  std::vector<uint64_t> sizes;
  std::vector<int> concurrencies;
  try {
    std::stringstream ss(f.sizes);
    for (std::string item; std::getline(ss, item, ',');) sizes.push_back(std::stoull(item));
    std::stringstream cs(f.concurrency);
    for (std::string item; std::getline(cs, item, ',');) concurrencies.push_back(std::stoi(item));
  } catch (const std::exception&) {
    std::fprintf(stderr, "--sizes and --concurrency take comma-separated numbers\n");
    return 2;
  }
  if (sizes.empty() || concurrencies.empty() ||
      *std::min_element(concurrencies.begin(), concurrencies.end()) < 1) {
    std::fprintf(stderr, "--sizes and --concurrency need positive numbers\n");
    return 2;
  }
  const uint64_t block_bytes = BenchSpec(f).BytesPerBlock();
  int max_blocks = 1;
  for (uint64_t s : sizes) max_blocks = std::max<int>(max_blocks, s / block_bytes);
  // Room for every Put of a run without eviction mattering: 64 calls of the largest size.
  const int max_workers = *std::max_element(concurrencies.begin(), concurrencies.end());
  const uint64_t capacity = 64ull * std::max(1, max_workers / 4) * max_blocks * block_bytes;

  int fds[2];
  if (pipe(fds) != 0) return 1;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // the child sigwaits; inherited
  const pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    _exit(RunPool(f, capacity, fds[1]));
  }
  close(fds[1]);
  char buf[256] = {};
  FILE* stream = fdopen(fds[0], "r");
  const bool got = std::fgets(buf, sizeof(buf), stream) != nullptr;
  std::fclose(stream);
  std::string address = got ? buf : "";
  while (!address.empty() && address.back() == '\n') address.pop_back();
  int rc = address.empty() ? 1 : RunClient(f, address, sizes, concurrencies, max_blocks);
  kill(child, SIGTERM);
  waitpid(child, nullptr, 0);
  return rc;
}
