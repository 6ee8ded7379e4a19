// KV pool throughput over UCX between two processes: a forked child runs a KvPoolServer, this
// process is an instance with a KvPoolClient. For each size (bytes of KV per call, whole
// blocks), Store (the pool pulls the blocks: Put) and Fetch (lease, RMA get into local blocks,
// release: Get) are timed end to end. Prints one JSON object on stdout;
// run_kvpool_bench.py runs it next to ucx_perftest and writes bench/results/kvpool.json.
//
//   kvpool_bench --tls tcp|sm,tcp [--sizes 1048576,4194304,16777216] [--seconds 0.5]
//                [--layers 12] [--block-size 16]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
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
  bool fill_first = true;
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

std::vector<BlockHash> FreshChain(int n, uint64_t* counter) {
  std::vector<BlockHash> out;
  for (int i = 0; i < n; ++i) out.push_back(MixHash(++*counter));
  return out;
}

int RunClient(const BenchFlags& f, const std::string& address, const std::vector<uint64_t>& sizes,
              int max_blocks) {
  auto t = transport::UcxTransport::Create(Ucx(f));
  if (!t.ok()) return 1;
  transport::UcxTransport* ucx = t->get();
  auto node = service::RpcNode::Create(std::move(t).value(), {});
  if (!node.ok()) return 1;
  auto cache = PagedKvCache::Create(BenchSpec(f), 2 * max_blocks);
  if (!cache.ok()) return 1;
  auto kv = RegisteredKv::Register(cache->get(), &(*node)->transport());
  if (!kv.ok()) return 1;
  KvPoolClient client(node->get(), {address});
  const uint64_t block_bytes = (*kv)->segment_bytes() * (*kv)->num_segments();
  nlohmann::json out = {{"tls", f.tls},
                        {"block_bytes", block_bytes},
                        {"segment_bytes", (*kv)->segment_bytes()},
                        {"segments_per_block", (*kv)->num_segments()},
                        {"results", nlohmann::json::array()}};
  uint64_t counter = 0;
  auto store = [&](const std::vector<BlockHash>& hashes, const std::vector<BlockId>& blocks) {
    std::promise<Status> done;
    client.Store(hashes, **kv, blocks, transport::DeadlineAfterMillis(60000),
                 [&done](Status st) { done.set_value(st); });
    return done.get_future().get();
  };
  if (f.fill_first) {
    // Every pool slot written once before anything is timed: the pool's memory is faulted in
    // (as on a pool that has been up a while), and the timed Puts evict as a full pool does.
    std::vector<BlockId> src;
    for (int i = 0; i < max_blocks; ++i) src.push_back(i);
    for (int i = 0; i < 64; ++i) {
      if (Status st = store(FreshChain(max_blocks, &counter), src); !st.ok()) {
        std::fprintf(stderr, "filling the pool: %s\n", st.ToString().c_str());
        return 1;
      }
    }
  }
  for (uint64_t size : sizes) {
    const int n = static_cast<int>(std::max<uint64_t>(1, size / block_bytes));
    std::vector<BlockId> src, dst;
    for (int i = 0; i < n; ++i) {
      src.push_back(i);
      dst.push_back(max_blocks + i);
    }
    nlohmann::json r = {{"bytes", static_cast<uint64_t>(n) * block_bytes}, {"blocks", n}};
    // Put: fresh hashes every call (write-once).
    Status st = store(FreshChain(n, &counter), src);  // warm-up, connection
    int iters = 0;
    Stopwatch watch;
    while (st.ok() && (watch.ElapsedSeconds() < f.seconds || iters < 3)) {
      st = store(FreshChain(n, &counter), src);
      ++iters;
    }
    if (!st.ok()) {
      r["error"] = st.ToString();
      out["results"].push_back(r);
      continue;
    }
    r["put_mb_per_s"] = static_cast<double>(n * block_bytes) * iters / watch.ElapsedSeconds() / 1e6;
    r["put_ms_per_call"] = watch.ElapsedMillis() / iters;
    // Get: the same chain again and again.
    const auto chain = FreshChain(n, &counter);
    st = store(chain, src);
    iters = 0;
    watch.Reset();
    while (st.ok() && (watch.ElapsedSeconds() < f.seconds || iters < 3)) {
      auto got = client.Fetch(chain, **kv, dst, transport::DeadlineAfterMillis(60000));
      if (!got.ok()) {
        st = got.status();
      } else if (*got != n) {
        st = InternalError("fetched " + std::to_string(*got) + " of " + std::to_string(n));
      }
      ++iters;
    }
    if (!st.ok()) {
      r["error"] = st.ToString();
    } else {
      r["get_mb_per_s"] =
          static_cast<double>(n * block_bytes) * iters / watch.ElapsedSeconds() / 1e6;
      r["get_ms_per_call"] = watch.ElapsedMillis() / iters;
    }
    out["results"].push_back(r);
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
  app.add_option("--fill-first", f.fill_first,
                 "Write every pool slot once before timing (default true)");
  CLI11_PARSE(app, argc, argv);
  if (!strata::transport::ParseBulkMode(f.bulk).ok()) return 2;
  std::vector<uint64_t> sizes;
  std::stringstream ss(f.sizes);
  for (std::string item; std::getline(ss, item, ',');) sizes.push_back(std::stoull(item));
  const uint64_t block_bytes = BenchSpec(f).BytesPerBlock();
  int max_blocks = 1;
  for (uint64_t s : sizes) max_blocks = std::max<int>(max_blocks, s / block_bytes);
  // Room for every Put of a run without eviction mattering: 64 calls of the largest size.
  const uint64_t capacity = 64ull * max_blocks * block_bytes;

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
  int rc = address.empty() ? 1 : RunClient(f, address, sizes, max_blocks);
  kill(child, SIGTERM);
  waitpid(child, nullptr, 0);
  return rc;
}
