// Disaggregated serving in one process: a router, prefill and decode instances over the
// in-process transport and over UCX (tcp) on 127.0.0.1, on every architecture's tiny
// checkpoint. Greedy outputs equal the embedded engine's bit for bit (DESIGN.md §6); aborts,
// lease expiry and instance loss end requests cleanly and give every KV block back.
#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>

#include "common/clock.h"
#include "common/log.h"
#include "decode/decode_instance.h"
#include "decode/engine.h"
#include "expert_parallel/group/ep_group.h"
#include "kvcache/pool_server.h"
#include "model/gen_model.h"
#include "prefill/prefill_instance.h"
#include "server/cluster_router.h"
#include "service/registration.h"
#include "transport/fault/fault_transport.h"
#include "transport/inproc/inproc_transport.h"
#include "transport/ucx/ucx_transport.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using decode::FinishReason;
using decode::GenerateRequest;
using decode::TokenEvent;

struct Result {
  std::vector<int32_t> tokens;
  FinishReason finish = FinishReason::kNone;
  Status error;
  int prompt_tokens = 0;
  int cached_tokens = 0;
  std::vector<decode::GeneratedToken> prompt_logprobs;
};

class Collector {
 public:
  decode::GenerationService::EventCallback Callback(const std::string& id) {
    {
      std::lock_guard lock(mu_);
      results_[id];  // listed as unfinished until it ends
    }
    return [this, id](TokenEvent ev) {
      std::lock_guard lock(mu_);
      Result& r = results_[id];
      for (const auto& t : ev.tokens) r.tokens.push_back(t.token_id);
      if (!ev.prompt_logprobs.empty()) r.prompt_logprobs = ev.prompt_logprobs;
      if (ev.prompt_tokens > 0) {
        r.prompt_tokens = ev.prompt_tokens;
        r.cached_tokens = ev.cached_tokens;
      }
      if (ev.finish != FinishReason::kNone) {
        EXPECT_EQ(r.finish, FinishReason::kNone) << id << " finished twice";
        r.finish = ev.finish;
        r.error = ev.error;
        ++done_;
        cv_.notify_all();
      }
    };
  }
  bool WaitFor(int n, int timeout_ms = 60000) {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return done_ >= n; })) {
      return true;
    }
    for (const auto& [id, r] : results_) {
      if (r.finish == FinishReason::kNone) {
        ADD_FAILURE() << id << " has not finished (" << r.tokens.size() << " tokens so far)";
      }
    }
    return false;
  }
  Result Get(const std::string& id) {
    std::lock_guard lock(mu_);
    return results_[id];
  }
  int Count() {  // finished requests
    std::lock_guard lock(mu_);
    return done_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Result> results_;
  int done_ = 0;
};

GenerateRequest Greedy(const std::string& id, std::vector<int32_t> prompt, int max_tokens) {
  GenerateRequest r;
  r.request_id = id;
  r.prompt_token_ids = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

std::vector<int32_t> Prompt(int n, int salt, int64_t vocab) {
  std::vector<int32_t> p;
  for (int i = 0; i < n; ++i)
    p.push_back(static_cast<int32_t>((i * 7919 + salt * 104729) % (vocab - 10) + 5));
  return p;
}

std::unique_ptr<model::ModelRunner> LoadRunner(const std::string& dir, int block_size) {
  model::RunnerOptions ro;
  ro.num_threads = 1;
  ro.kv_block_size = block_size;
  ro.num_kv_blocks = 256;
  auto r = model::ModelRunner::Load(dir, ro);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : nullptr;
}

decode::SchedulerOptions SchedOpts(const model::ModelRunner& r) {
  decode::SchedulerOptions so;
  so.max_num_seqs = 16;
  so.max_num_batched_tokens = 64;
  so.max_model_len = 512;
  for (int64_t id : r.config().eos_token_ids) so.eos_token_ids.push_back(static_cast<int32_t>(id));
  return so;
}

enum class Kind { kInproc, kUcxTcp };

struct Cluster {
  std::shared_ptr<transport::InprocFabric> fabric;
  std::vector<std::unique_ptr<kvcache::KvPoolServer>> pools;
  std::unique_ptr<server::ClusterRouter> router;
  std::vector<std::unique_ptr<prefill::PrefillInstance>> prefills;
  std::vector<std::unique_ptr<decode::DecodeInstance>> decodes;
};

std::unique_ptr<transport::Transport> NewTransport(Kind kind, Cluster& c) {
  if (kind == Kind::kInproc) return transport::NewInprocTransport(c.fabric);
  transport::UcxOptions o;
  o.tls = "tcp";
  auto t = transport::UcxTransport::Create(o);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(*t) : nullptr;
}

std::string Listen(Kind kind) { return kind == Kind::kInproc ? "node:0" : "127.0.0.1:0"; }

// `prefill_transfer_delay_ms` > 0 slows every KV transfer the prefill instances start (their
// transports wrapped in a FaultTransport).
std::unique_ptr<Cluster> StartCluster(
    Kind kind, const std::string& dir, int num_p, int num_d, int p_block = 16, int d_block = 16,
    int num_pools = 0, bool prefill_prefix_cache = true, int prefill_transfer_delay_ms = 0,
    server::RoutingPolicy routing = server::RoutingPolicy::kLoad) {
  auto c = std::make_unique<Cluster>();
  c->fabric = transport::NewInprocFabric();
  std::vector<std::string> pool_addresses;
  for (int i = 0; i < num_pools; ++i) {
    kvcache::KvPoolServerOptions po;
    po.capacity_bytes = 8 << 20;
    po.try_huge_pages = false;
    po.instance_id = "kvcache-" + std::to_string(i);
    auto pool = kvcache::KvPoolServer::Create(NewTransport(kind, *c), po);
    EXPECT_TRUE(pool.ok()) << pool.status().ToString();
    if (!pool.ok()) return nullptr;
    auto addr = (*pool)->Listen(Listen(kind));
    EXPECT_TRUE(addr.ok()) << addr.status().ToString();
    if (!addr.ok()) return nullptr;
    pool_addresses.push_back(*addr);
    c->pools.push_back(std::move(*pool));
  }
  auto probe = LoadRunner(dir, 16);
  if (!probe) return nullptr;
  server::RouterOptions ro;
  ro.listen = Listen(kind);
  ro.vocab_size = probe->config().vocab_size;
  ro.max_model_len = 512;
  ro.heartbeat_interval_ms = 100;
  ro.instance_lease_ms = 1000;
  ro.routing = routing;
  auto router = server::ClusterRouter::Start(ro, NewTransport(kind, *c));
  EXPECT_TRUE(router.ok()) << router.status().ToString();
  if (!router.ok()) return nullptr;
  c->router = std::move(*router);
  for (int i = 0; i < num_p + num_d; ++i) {
    const bool is_p = i < num_p;
    auto runner = LoadRunner(dir, is_p ? p_block : d_block);
    decode::InstanceConfig ic;
    ic.instance_id = (is_p ? "prefill-" : "decode-") + std::to_string(i);
    ic.listen = Listen(kind);
    ic.router = c->router->address();
    ic.scheduler = SchedOpts(*runner);  // before the runner moves
    ic.transfer_timeout_ms = 10000;
    if (is_p) {
      ic.kvcache = pool_addresses;
      ic.scheduler.enable_prefix_caching = prefill_prefix_cache;
      std::unique_ptr<transport::Transport> t = NewTransport(kind, *c);
      if (prefill_transfer_delay_ms > 0) {
        auto slow = std::make_unique<transport::FaultTransport>(std::move(t));
        slow->SetTransferDelay(std::chrono::milliseconds(prefill_transfer_delay_ms));
        t = std::move(slow);
      }
      auto p = prefill::PrefillInstance::Start(ic, std::move(runner), std::move(t));
      EXPECT_TRUE(p.ok()) << p.status().ToString();
      if (!p.ok()) return nullptr;
      c->prefills.push_back(std::move(*p));
    } else {
      auto d = decode::DecodeInstance::Start(ic, std::move(runner), NewTransport(kind, *c));
      EXPECT_TRUE(d.ok()) << d.status().ToString();
      if (!d.ok()) return nullptr;
      c->decodes.push_back(std::move(*d));
    }
  }
  auto deadline = transport::DeadlineAfterMillis(10000);
  while (!c->router->Ready() && MonoClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(c->router->Ready());
  return c;
}

class ClusterTest : public ::testing::TestWithParam<model::Arch> {
 protected:
  // The checkpoints are made once for every suite of this file (removed at exit).
  static void SetUpTestSuite() {
    log::InitFromEnvironment();  // STRATA_LOG_LEVEL=debug shows the router's decisions
    const char* assets = std::getenv("STRATA_TEST_ASSETS");
    if (root_ != nullptr || !assets || !fs::exists(fs::path(assets) / "tokenizers")) return;
    std::atexit([] {
      if (root_) fs::remove_all(*root_);
    });
    root_ =
        new fs::path(fs::temp_directory_path() / ("strata_cluster_" + std::to_string(getpid())));
    for (model::Arch a : {model::Arch::kDeepseekV3, model::Arch::kQwen3Moe, model::Arch::kMixtral,
                          model::Arch::kLlama, model::Arch::kQwen3}) {
      model::GenModelOptions o;
      o.arch = a;
      const char* tok = a == model::Arch::kDeepseekV3                            ? "deepseek_v3"
                        : a == model::Arch::kLlama || a == model::Arch::kMixtral ? "llama3"
                                                                                 : "qwen3";
      o.tokenizer_dir = (fs::path(assets) / "tokenizers" / tok).string();
      o.out_dir = (*root_ / std::string(model::ModelTypeName(a))).string();
      o.seed = 5;
      o.num_threads = 1;
      Status st = model::GenerateModel(o);
      if (!st.ok()) ADD_FAILURE() << st.message();
    }
  }
  void SetUp() override {
    if (!root_)
      GTEST_SKIP() << "STRATA_TEST_ASSETS/tokenizers missing (run scripts/fetch-test-assets)";
  }
  static std::string Dir(model::Arch a) {
    return (*root_ / std::string(model::ModelTypeName(a))).string();
  }

  // The embedded engine's outputs for `requests`.
  static std::map<std::string, std::vector<int32_t>> Embedded(
      const std::string& dir, const std::vector<GenerateRequest>& requests) {
    auto runner = LoadRunner(dir, 16);
    decode::SchedulerOptions so = SchedOpts(*runner);
    decode::Engine engine(so, std::move(runner));
    Collector col;
    for (const auto& r : requests) EXPECT_TRUE(engine.Submit(r, col.Callback(r.request_id)).ok());
    EXPECT_TRUE(col.WaitFor(static_cast<int>(requests.size())));
    std::map<std::string, std::vector<int32_t>> out;
    for (const auto& r : requests) out[r.request_id] = col.Get(r.request_id).tokens;
    return out;
  }

  static fs::path* root_;
};
fs::path* ClusterTest::root_ = nullptr;

void ExpectBaseline(Cluster& c) {
  auto deadline = transport::DeadlineAfterMillis(5000);
  while (MonoClock::now() < deadline) {
    bool clean = true;
    for (auto& d : c.decodes) clean = clean && d->Stats().kv_blocks_used == 0;
    for (auto& p : c.prefills) clean = clean && p->EngineStats().kv_blocks_used == 0;
    if (clean) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& d : c.decodes) EXPECT_EQ(d->Stats().kv_blocks_used, 0) << "decode KV blocks leaked";
  for (auto& p : c.prefills)
    EXPECT_EQ(p->EngineStats().kv_blocks_used, 0) << "prefill KV blocks leaked";
}

// Shuts down decode instance 0 under load, then prefill instance 0 (of at least two each):
// every request ends (served by the others, or kUnavailable), none hangs, and what is left
// serves and holds no block. `col` has finished requests already.
void LoseADecodeAndAPrefillUnderLoad(Cluster& c, int64_t vocab, Collector& col) {
  const int done = col.Count();
  // A decode instance goes away under load: its requests end (error or retried), none hangs.
  for (int i = 0; i < 6; ++i) {
    std::string id = "d" + std::to_string(i);
    ASSERT_TRUE(c.router->Submit(Greedy(id, Prompt(30 + i, i, vocab), 120), col.Callback(id)).ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  c.decodes[0]->Shutdown();
  ASSERT_TRUE(col.WaitFor(done + 6));
  int ok = 0;
  for (int i = 0; i < 6; ++i) {
    Result r = col.Get("d" + std::to_string(i));
    if (r.finish == FinishReason::kLength) {
      ++ok;
      EXPECT_EQ(r.tokens.size(), 120u);
    } else {
      EXPECT_EQ(r.finish, FinishReason::kError);
      EXPECT_EQ(r.error.code(), StatusCode::kUnavailable) << r.error.ToString();
    }
  }
  EXPECT_GT(ok, 0) << "the surviving decode instance served nothing";

  // A prefill instance goes away: requests not yet prefilled move to the other one.
  for (int i = 0; i < 6; ++i) {
    std::string id = "p" + std::to_string(i);
    ASSERT_TRUE(c.router->Submit(Greedy(id, Prompt(200 + i, i, vocab), 4), col.Callback(id)).ok());
  }
  c.prefills[0]->Shutdown();
  ASSERT_TRUE(col.WaitFor(done + 12));
  for (int i = 0; i < 6; ++i) {
    Result r = col.Get("p" + std::to_string(i));
    EXPECT_TRUE(r.finish == FinishReason::kLength || r.error.code() == StatusCode::kUnavailable)
        << r.error.ToString();
  }
  // What is left of the cluster still serves, and holds no block.
  ASSERT_TRUE(
      c.router->Submit(Greedy("after", Prompt(17, 3, vocab), 5), col.Callback("after")).ok());
  ASSERT_TRUE(col.WaitFor(done + 13));
  EXPECT_EQ(col.Get("after").finish, FinishReason::kLength) << col.Get("after").error.ToString();
  c.decodes.erase(c.decodes.begin());
  c.prefills.erase(c.prefills.begin());
  ExpectBaseline(c);
}

TEST_P(ClusterTest, GreedyOutputsEqualEmbeddedOverInproc) {
  const std::string dir = Dir(GetParam());
  auto probe = LoadRunner(dir, 16);
  const int64_t vocab = probe->config().vocab_size;
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 6; ++i)
    reqs.push_back(Greedy("r" + std::to_string(i), Prompt(5 + 23 * i, i, vocab), 12));
  auto expected = Embedded(dir, reqs);
  auto c = StartCluster(Kind::kInproc, dir, 2, 2);
  ASSERT_NE(c, nullptr);
  Collector col;
  for (const auto& r : reqs) ASSERT_TRUE(c->router->Submit(r, col.Callback(r.request_id)).ok());
  ASSERT_TRUE(col.WaitFor(static_cast<int>(reqs.size())));
  for (const auto& r : reqs) {
    Result got = col.Get(r.request_id);
    EXPECT_EQ(got.finish, FinishReason::kLength) << r.request_id << ": " << got.error.ToString();
    EXPECT_EQ(got.tokens, expected[r.request_id]) << r.request_id;
    EXPECT_EQ(got.prompt_tokens, static_cast<int>(r.prompt_token_ids.size()));
  }
  ExpectBaseline(*c);
}

// UCX tcp between the roles, and prefill and decode with different block sizes (the KV handoff
// follows token runs, not blocks).
class ClusterUcxTest : public ClusterTest {};
TEST_P(ClusterUcxTest, GreedyOutputsEqualEmbeddedWithDifferentBlockSizes) {
  const std::string dir = Dir(GetParam());
  auto probe = LoadRunner(dir, 16);
  const int64_t vocab = probe->config().vocab_size;
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 4; ++i)
    reqs.push_back(Greedy("u" + std::to_string(i), Prompt(9 + 31 * i, i + 7, vocab), 10));
  auto expected = Embedded(dir, reqs);
  auto c = StartCluster(Kind::kUcxTcp, dir, 1, 2, /*p_block=*/16, /*d_block=*/8);
  ASSERT_NE(c, nullptr);
  Collector col;
  for (const auto& r : reqs) ASSERT_TRUE(c->router->Submit(r, col.Callback(r.request_id)).ok());
  ASSERT_TRUE(col.WaitFor(static_cast<int>(reqs.size())));
  for (const auto& r : reqs) {
    Result got = col.Get(r.request_id);
    EXPECT_EQ(got.finish, FinishReason::kLength) << r.request_id << ": " << got.error.ToString();
    EXPECT_EQ(got.tokens, expected[r.request_id]) << r.request_id;
  }
  EXPECT_GT(c->prefills[0]->Stats().kv_bytes_pushed, 0);
  ExpectBaseline(*c);
}

// Aborts at every stage, a decode instance that goes away and a prefill instance that goes
// away: every request ends (none hangs) and no KV block stays taken.
class ClusterFaultTest : public ClusterTest {};

// Stateless routing (DESIGN.md §3: "a stateless mode must stay correct"): round-robin and random
// choices give the embedded engine's greedy outputs; round-robin spreads the requests evenly.
class ClusterRoutingTest : public ClusterTest {};

TEST_P(ClusterRoutingTest, RoundRobinAndRandomGiveTheSameOutputs) {
  const std::string dir = Dir(GetParam());
  auto probe = LoadRunner(dir, 16);
  const int64_t vocab = probe->config().vocab_size;
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 8; ++i)
    reqs.push_back(Greedy("r" + std::to_string(i), Prompt(7 + 19 * i, i, vocab), 6));
  auto expected = Embedded(dir, reqs);
  for (server::RoutingPolicy policy :
       {server::RoutingPolicy::kRoundRobin, server::RoutingPolicy::kRandom}) {
    const bool round_robin = policy == server::RoutingPolicy::kRoundRobin;
    SCOPED_TRACE(round_robin ? "round-robin" : "random");
    auto c = StartCluster(Kind::kInproc, dir, 2, 2, 16, 16, 0, true, 0, policy);
    ASSERT_NE(c, nullptr);
    Collector col;
    // One at a time: the load policy would then send every request to the same idle instances.
    for (size_t i = 0; i < reqs.size(); ++i) {
      ASSERT_TRUE(c->router->Submit(reqs[i], col.Callback(reqs[i].request_id)).ok());
      ASSERT_TRUE(col.WaitFor(static_cast<int>(i) + 1));
    }
    for (const auto& r : reqs) {
      Result got = col.Get(r.request_id);
      EXPECT_EQ(got.finish, FinishReason::kLength) << r.request_id << ": " << got.error.ToString();
      EXPECT_EQ(got.tokens, expected[r.request_id]) << r.request_id;
    }
    std::map<std::string, int64_t> routed;
    for (const server::InstanceInfo& in : c->router->Instances()) {
      if (in.routed > 0) routed[in.id] = in.routed;  // random may give one nothing (1 in 128)
    }
    decode::GenerationStats stats = c->router->Stats();
    EXPECT_EQ(stats.requests_routed, routed);
    std::map<std::string, std::string> roles;
    for (const decode::InstanceStats& in : stats.instances) roles[in.id] = in.role;
    EXPECT_EQ(roles, (std::map<std::string, std::string>{{"prefill-0", "prefill"},
                                                         {"prefill-1", "prefill"},
                                                         {"decode-2", "decode"},
                                                         {"decode-3", "decode"}}));
    int64_t total = 0;
    for (const auto& [id, n] : routed) total += n;
    EXPECT_EQ(total, 2 * static_cast<int64_t>(reqs.size()));  // one prefill and one decode each
    if (round_robin) {
      for (const auto& [id, n] : routed) EXPECT_EQ(n, 4) << id;
    }
    ExpectBaseline(*c);
    // Lost instances are passed over as under the load policy: nothing hangs or leaks.
    LoseADecodeAndAPrefillUnderLoad(*c, vocab, col);
  }
}

TEST(ClusterRouterTest, RoutingPolicyNames) {
  EXPECT_EQ(*server::ParseRoutingPolicy("load"), server::RoutingPolicy::kLoad);
  EXPECT_EQ(*server::ParseRoutingPolicy("round-robin"), server::RoutingPolicy::kRoundRobin);
  EXPECT_EQ(*server::ParseRoutingPolicy("random"), server::RoutingPolicy::kRandom);
  for (server::RoutingPolicy p : {server::RoutingPolicy::kLoad, server::RoutingPolicy::kRoundRobin,
                                  server::RoutingPolicy::kRandom}) {
    EXPECT_EQ(*server::ParseRoutingPolicy(server::RoutingPolicyName(p)), p);
  }
  StatusOr<server::RoutingPolicy> bad = server::ParseRoutingPolicy("cache");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("load, round-robin or random"), std::string::npos);
}
TEST_P(ClusterFaultTest, AbortsAndLostInstancesEndEveryRequest) {
  const std::string dir = Dir(GetParam());
  auto probe = LoadRunner(dir, 16);
  const int64_t vocab = probe->config().vocab_size;
  auto c = StartCluster(Kind::kInproc, dir, 2, 2);
  ASSERT_NE(c, nullptr);
  Collector col;
  // Aborts right away and mid-generation.
  for (int i = 0; i < 8; ++i) {
    std::string id = "a" + std::to_string(i);
    ASSERT_TRUE(
        c->router->Submit(Greedy(id, Prompt(20 + i, i, vocab), 200), col.Callback(id)).ok());
    if (i % 2 == 0) c->router->Abort(id);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (int i = 1; i < 8; i += 2) c->router->Abort("a" + std::to_string(i));
  ASSERT_TRUE(col.WaitFor(8));
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(col.Get("a" + std::to_string(i)).finish, FinishReason::kAbort);
  ExpectBaseline(*c);

  LoseADecodeAndAPrefillUnderLoad(*c, vocab, col);
}

// With KV pools (and no prefix cache of the prefill instances' own): a repeated long prompt
// reads its full blocks from the pool instead of computing them, reports them as cached, and
// the output is unchanged.
TEST_P(ClusterUcxTest, RepeatedPromptHitsTheKvPool) {
  const std::string dir = Dir(GetParam());
  auto probe = LoadRunner(dir, 16);
  const int64_t vocab = probe->config().vocab_size;
  std::vector<int32_t> prompt = Prompt(150, 42, vocab);
  auto expected = Embedded(dir, {Greedy("x", prompt, 8)});
  auto c = StartCluster(Kind::kUcxTcp, dir, 2, 1, 16, 16, /*num_pools=*/2,
                        /*prefill_prefix_cache=*/false);
  ASSERT_NE(c, nullptr);
  Collector col;
  ASSERT_TRUE(c->router->Submit(Greedy("first", prompt, 8), col.Callback("first")).ok());
  ASSERT_TRUE(col.WaitFor(1));
  EXPECT_EQ(col.Get("first").tokens, expected["x"]);
  EXPECT_EQ(col.Get("first").cached_tokens, 0);
  // The offer to the pool completes in the background.
  auto deadline = transport::DeadlineAfterMillis(5000);
  int64_t stored = 0;
  while (MonoClock::now() < deadline) {
    stored = 0;
    for (auto& p : c->pools) stored += p->Stats().held_blocks;
    if (stored >= 9) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(stored, 9) << "150 tokens make 9 full blocks of 16";
  for (int i = 0; i < 2; ++i) {
    std::string id = "again" + std::to_string(i);
    ASSERT_TRUE(c->router->Submit(Greedy(id, prompt, 8), col.Callback(id)).ok());
    ASSERT_TRUE(col.WaitFor(2 + i));
    Result r = col.Get(id);
    EXPECT_EQ(r.tokens, expected["x"]) << id;
    EXPECT_EQ(r.cached_tokens, 144) << id << ": 9 blocks from the pool";
  }
  int64_t hit_tokens = 0;
  for (auto& p : c->prefills) hit_tokens += p->Stats().pool_hit_tokens;
  EXPECT_EQ(hit_tokens, 288);
  ExpectBaseline(*c);
}

// Completions' echo with logprobs: prefill computes the prompt logprobs and they reach the
// server with the first token, equal to the embedded engine's; a repeated prompt still scores
// every token (nothing of it comes from the KV pool).
TEST_P(ClusterUcxTest, PromptLogprobsCrossTheWire) {
  const std::string dir = Dir(GetParam());
  auto probe = LoadRunner(dir, 16);
  GenerateRequest req = Greedy("echo", Prompt(40, 11, probe->config().vocab_size), 3);
  req.sampling.num_prompt_logprobs = 2;
  req.sampling.num_top_logprobs = 1;
  Result want;
  {
    auto runner = LoadRunner(dir, 16);
    decode::SchedulerOptions so = SchedOpts(*runner);  // before the runner moves
    decode::Engine engine(so, std::move(runner));
    Collector col;
    ASSERT_TRUE(engine.Submit(req, col.Callback("echo")).ok());
    ASSERT_TRUE(col.WaitFor(1));
    want = col.Get("echo");
  }
  ASSERT_EQ(want.prompt_logprobs.size(), 39u);
  auto c = StartCluster(Kind::kUcxTcp, dir, 1, 1, 16, 16, /*num_pools=*/1,
                        /*prefill_prefix_cache=*/false);
  ASSERT_NE(c, nullptr);
  Collector col;
  for (int i = 0; i < 2; ++i) {
    std::string id = "echo" + std::to_string(i);
    GenerateRequest r = req;
    r.request_id = id;
    ASSERT_TRUE(c->router->Submit(r, col.Callback(id)).ok());
    ASSERT_TRUE(col.WaitFor(i + 1));
    Result got = col.Get(id);
    EXPECT_EQ(got.finish, FinishReason::kLength) << got.error.ToString();
    EXPECT_EQ(got.tokens, want.tokens);
    ASSERT_EQ(got.prompt_logprobs.size(), want.prompt_logprobs.size()) << id;
    for (size_t k = 0; k < want.prompt_logprobs.size(); ++k) {
      const auto& a = got.prompt_logprobs[k];
      const auto& b = want.prompt_logprobs[k];
      EXPECT_EQ(a.token_id, req.prompt_token_ids[k + 1]);
      EXPECT_EQ(a.token_id, b.token_id);
      EXPECT_EQ(a.logprob, b.logprob) << id << " prompt token " << k + 1;
      ASSERT_EQ(a.top_logprobs.size(), 2u);
      for (size_t t = 0; t < 2; ++t) {
        EXPECT_EQ(a.top_logprobs[t].token_id, b.top_logprobs[t].token_id);
        EXPECT_EQ(a.top_logprobs[t].logprob, b.top_logprobs[t].logprob);
      }
    }
    EXPECT_EQ(got.cached_tokens, 0) << "prompt logprobs need every prompt token computed";
  }
  ExpectBaseline(*c);
}

// A request whose deadline passes while it decodes ends with kDeadlineExceeded and frees its KV.
TEST_P(ClusterFaultTest, DeadlineEndsARequest) {
  const std::string dir = Dir(GetParam());
  auto probe = LoadRunner(dir, 16);
  auto c = StartCluster(Kind::kInproc, dir, 1, 1);
  ASSERT_NE(c, nullptr);
  Collector col;
  GenerateRequest r = Greedy("late", Prompt(12, 1, probe->config().vocab_size), 400);
  r.deadline_ns = MonotonicNanos() + 30 * 1000000;
  ASSERT_TRUE(c->router->Submit(r, col.Callback("late")).ok());
  ASSERT_TRUE(col.WaitFor(1));
  Result got = col.Get("late");
  EXPECT_EQ(got.finish, FinishReason::kError);
  EXPECT_EQ(got.error.code(), StatusCode::kDeadlineExceeded) << got.error.ToString();
  ExpectBaseline(*c);
}

// Prefill and decode as data-parallel EP groups of two ranks each (threads; EP over the
// in-process transport, BF16 dispatch): each rank is an instance with its own scheduler and KV
// cache, the router sees rank 0 only, and rank 0 spreads the requests over both. Greedy outputs
// equal one EP rank's (with BF16 dispatch the results do not depend on the EP size); both ranks
// serve; every rank's KV returns to 0; a failed decode rank ends every request with an error,
// none hangs.
class ClusterEpTest : public ClusterTest {
 protected:
  // Every prompt in one chunk, here and in the reference: MLA takes another path for a chunk of
  // one token, and how a long prompt is chunked depends on what else its rank runs.
  static decode::SchedulerOptions EpSchedOpts(const model::ModelRunner& r) {
    decode::SchedulerOptions so = SchedOpts(r);
    so.max_num_batched_tokens = 512;
    return so;
  }
  static std::vector<std::unique_ptr<expert_parallel::EpRunner>> EpRanks(const std::string& dir,
                                                                         int size) {
    model::RunnerOptions ro;
    ro.num_threads = 1;
    ro.kv_block_size = 16;
    ro.num_kv_blocks = 256;
    expert_parallel::EpGroupOptions g;
    g.size = size;
    g.transport = "inproc";
    g.dispatch_dtype = expert_parallel::WireDType::kBf16;
    g.timeout_ms = 10000;
    auto ranks = expert_parallel::CreateThreadGroup(dir, ro, g);
    EXPECT_TRUE(ranks.ok()) << ranks.status().ToString();
    return ranks.ok() ? std::move(*ranks)
                      : std::vector<std::unique_ptr<expert_parallel::EpRunner>>();
  }
  // Rank r of a 2-rank data-parallel group named `name`; `leader` is rank 0's address (r > 0).
  static decode::InstanceConfig RankConfig(const std::string& name, int r, const Cluster& c,
                                           const model::ModelRunner& runner,
                                           const std::string& leader) {
    decode::InstanceConfig ic;
    ic.instance_id = r == 0 ? name : name + "/rank1";
    ic.listen = Listen(Kind::kInproc);
    ic.router = c.router->address();
    ic.scheduler = EpSchedOpts(runner);
    ic.scheduler.join_peer_steps = true;
    ic.ep_size = 2;
    ic.ep_rank = r;
    if (r > 0) ic.group_leader = leader;
    return ic;
  }
};

TEST_P(ClusterEpTest, DataParallelGroupsServeOnEveryRank) {
  const std::string dir = Dir(GetParam());
  auto probe = LoadRunner(dir, 16);
  const int64_t vocab = probe->config().vocab_size;
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 8; ++i)
    reqs.push_back(Greedy("e" + std::to_string(i), Prompt(6 + 13 * i, i + 3, vocab), 10));

  // The reference: one EP rank (the EP dispatch path at EP=1).
  std::map<std::string, std::vector<int32_t>> expected;
  {
    auto one = EpRanks(dir, 1);
    ASSERT_EQ(one.size(), 1u);
    decode::SchedulerOptions so = EpSchedOpts(*one[0]);  // before the runner moves
    decode::Engine engine(so, std::move(one[0]));
    Collector col;
    for (const auto& r : reqs) ASSERT_TRUE(engine.Submit(r, col.Callback(r.request_id)).ok());
    ASSERT_TRUE(col.WaitFor(static_cast<int>(reqs.size())));
    for (const auto& r : reqs) expected[r.request_id] = col.Get(r.request_id).tokens;
  }

  Cluster c;
  c.fabric = transport::NewInprocFabric();
  server::RouterOptions ro;
  ro.listen = Listen(Kind::kInproc);
  ro.vocab_size = vocab;
  ro.max_model_len = 512;
  ro.heartbeat_interval_ms = 100;
  ro.instance_lease_ms = 1000;
  auto router = server::ClusterRouter::Start(ro, NewTransport(Kind::kInproc, c));
  ASSERT_TRUE(router.ok()) << router.status().ToString();
  c.router = std::move(*router);
  // Prefill as a data-parallel group of two ranks as well.
  auto prefill_ranks = EpRanks(dir, 2);
  ASSERT_EQ(prefill_ranks.size(), 2u);
  for (int r = 0; r < 2; ++r) {
    decode::InstanceConfig ic =
        RankConfig("prefill-0", r, c, *prefill_ranks[r], r > 0 ? c.prefills[0]->address() : "");
    auto p = prefill::PrefillInstance::Start(ic, std::move(prefill_ranks[r]),
                                             NewTransport(Kind::kInproc, c));
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    c.prefills.push_back(std::move(*p));
  }
  ASSERT_TRUE(c.prefills[1]->WaitRegistered(transport::DeadlineAfterMillis(10000)));
  auto ranks = EpRanks(dir, 2);
  ASSERT_EQ(ranks.size(), 2u);
  expert_parallel::EpRunner* rank1 = ranks[1].get();
  for (int r = 0; r < 2; ++r) {
    decode::InstanceConfig ic =
        RankConfig("decode-0", r, c, *ranks[r], r > 0 ? c.decodes[0]->address() : "");
    auto d = decode::DecodeInstance::Start(ic, std::move(ranks[r]), NewTransport(Kind::kInproc, c));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    c.decodes.push_back(std::move(*d));
  }
  ASSERT_TRUE(c.decodes[1]->WaitRegistered(transport::DeadlineAfterMillis(10000)));
  auto deadline = transport::DeadlineAfterMillis(10000);
  while (!c.router->Ready() && MonoClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(c.router->Ready());
  ASSERT_EQ(c.router->Instances().size(), 2u) << "the router sees one decode instance";

  Collector col;
  for (const auto& r : reqs) ASSERT_TRUE(c.router->Submit(r, col.Callback(r.request_id)).ok());
  ASSERT_TRUE(col.WaitFor(static_cast<int>(reqs.size())));
  for (const auto& r : reqs) {
    Result got = col.Get(r.request_id);
    EXPECT_EQ(got.finish, FinishReason::kLength) << r.request_id << ": " << got.error.ToString();
    EXPECT_EQ(got.tokens, expected[r.request_id]) << r.request_id;
  }
  for (const auto& per_rank : {c.decodes[0]->RequestsPerRank(), c.prefills[0]->RequestsPerRank()}) {
    ASSERT_EQ(per_rank.size(), 2u);
    EXPECT_GT(per_rank[0], 0) << "rank 0 served nothing";
    EXPECT_GT(per_rank[1], 0) << "rank 1 served nothing";
    EXPECT_EQ(per_rank[0] + per_rank[1], static_cast<int64_t>(reqs.size()));
  }
  auto every_rank_clean = [&] {
    auto until = transport::DeadlineAfterMillis(5000);
    while (MonoClock::now() < until) {
      bool clean = c.decodes[0]->Stats().kv_blocks_used == 0 &&
                   c.decodes[0]->Stats().num_running == 0 &&
                   c.prefills[0]->InstanceStats().num_running == 0;
      for (int r = 0; r < 2; ++r) {
        clean = clean && c.decodes[r]->EngineStats().kv_blocks_used == 0 &&
                c.prefills[r]->EngineStats().kv_blocks_used == 0;
      }
      if (clean) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  EXPECT_TRUE(every_rank_clean()) << "KV blocks stay used on some rank";

  // Rank 1 fails under load: the group fails, every request ends (an error, or done before),
  // none hangs, and the KV comes back on both ranks.
  for (int i = 0; i < 4; ++i) {
    std::string id = "f" + std::to_string(i);
    ASSERT_TRUE(c.router->Submit(Greedy(id, Prompt(20 + i, i, vocab), 300), col.Callback(id)).ok());
  }
  auto started = transport::DeadlineAfterMillis(5000);
  while (c.decodes[0]->Stats().num_running < 4 && MonoClock::now() < started) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  rank1->endpoint().Abort(InternalError("test: rank 1 dies"));
  ASSERT_TRUE(col.WaitFor(static_cast<int>(reqs.size()) + 4, 30000));
  for (int i = 0; i < 4; ++i) {
    Result r = col.Get("f" + std::to_string(i));
    EXPECT_TRUE(r.finish == FinishReason::kError || r.finish == FinishReason::kLength)
        << "f" << i << ": " << static_cast<int>(r.finish);
  }
  EXPECT_TRUE(every_rank_clean()) << "KV blocks stay used after the group failed";
}

// Requests admitted together overlap their waits on the network: with every KV transfer of the
// prefill slowed down, the pool holds the read leases of two requests at once (one admission at
// a time would take them one after the other), and both still get their pool hit.
TEST_P(ClusterFaultTest, PoolReadsOfRequestsAdmittedTogetherOverlap) {
  const std::string dir = Dir(GetParam());
  auto probe = LoadRunner(dir, 16);
  const std::vector<int32_t> prompt = Prompt(150, 43, probe->config().vocab_size);
  auto expected = Embedded(dir, {Greedy("x", prompt, 4)});
  auto c = StartCluster(Kind::kInproc, dir, 1, 1, 16, 16, /*num_pools=*/1,
                        /*prefill_prefix_cache=*/false, /*prefill_transfer_delay_ms=*/300);
  ASSERT_NE(c, nullptr);
  Collector col;
  ASSERT_TRUE(c->router->Submit(Greedy("first", prompt, 4), col.Callback("first")).ok());
  ASSERT_TRUE(col.WaitFor(1));
  kvcache::KvPoolServer& pool = *c->pools[0];
  auto eventually = [](const std::function<bool()>& pred) {
    const auto deadline = transport::DeadlineAfterMillis(10000);
    while (MonoClock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return pred();
  };
  ASSERT_TRUE(eventually([&] { return pool.Stats().held_blocks == 9; }));
  ASSERT_TRUE(c->router->Submit(Greedy("a", prompt, 4), col.Callback("a")).ok());
  ASSERT_TRUE(c->router->Submit(Greedy("b", prompt, 4), col.Callback("b")).ok());
  EXPECT_TRUE(eventually([&] { return pool.Stats().active_leases == 2; }))
      << "the two requests' pool reads did not overlap";
  ASSERT_TRUE(col.WaitFor(3));
  for (const char* id : {"a", "b"}) {
    EXPECT_EQ(col.Get(id).tokens, expected["x"]) << id;
    EXPECT_EQ(col.Get(id).cached_tokens, 144) << id;
  }
  ExpectBaseline(*c);
}

INSTANTIATE_TEST_SUITE_P(Archs, ClusterTest,
                         ::testing::Values(model::Arch::kDeepseekV3, model::Arch::kQwen3Moe,
                                           model::Arch::kMixtral, model::Arch::kLlama,
                                           model::Arch::kQwen3),
                         [](const auto& info) {
                           return std::string(model::ModelTypeName(info.param));
                         });
// UCX covers one MLA and one GQA architecture; the fault paths one architecture.
INSTANTIATE_TEST_SUITE_P(Archs, ClusterUcxTest,
                         ::testing::Values(model::Arch::kDeepseekV3, model::Arch::kQwen3Moe),
                         [](const auto& info) {
                           return std::string(model::ModelTypeName(info.param));
                         });
INSTANTIATE_TEST_SUITE_P(Archs, ClusterEpTest,
                         ::testing::Values(model::Arch::kDeepseekV3, model::Arch::kQwen3Moe),
                         [](const auto& info) {
                           return std::string(model::ModelTypeName(info.param));
                         });
INSTANTIATE_TEST_SUITE_P(Archs, ClusterRoutingTest, ::testing::Values(model::Arch::kDeepseekV3),
                         [](const auto& info) {
                           return std::string(model::ModelTypeName(info.param));
                         });
INSTANTIATE_TEST_SUITE_P(Archs, ClusterFaultTest, ::testing::Values(model::Arch::kLlama),
                         [](const auto& info) {
                           return std::string(model::ModelTypeName(info.param));
                         });

// A KV pool registers only to report its figures (the server's /metrics): the router keeps them
// and routes nothing to it, and until prefill and decode instances come it says what it waits for.
TEST(ClusterRouterTest, KvPoolsReportTheirFiguresAndTheRouterSaysWhatItWaitsFor) {
  Cluster c;
  c.fabric = transport::NewInprocFabric();
  server::RouterOptions ro;
  ro.listen = Listen(Kind::kInproc);
  ro.vocab_size = 100;
  ro.max_model_len = 64;
  ro.model_name = "served-model";
  ro.heartbeat_interval_ms = 50;
  ro.instance_lease_ms = 1000;
  auto router = server::ClusterRouter::Start(ro, NewTransport(Kind::kInproc, c));
  ASSERT_TRUE(router.ok()) << router.status().ToString();
  const std::string waiting = "no prefill or decode instance is registered with the router at " +
                              (*router)->address() + " (0 prefill, 0 decode)";
  EXPECT_FALSE((*router)->Ready());
  EXPECT_NE((*router)->NotReadyReason().find(waiting), std::string::npos)
      << (*router)->NotReadyReason();

  kvcache::KvPoolServerOptions po;
  po.capacity_bytes = 4 << 20;
  po.try_huge_pages = false;
  po.instance_id = "kvcache-0";
  auto pool = kvcache::KvPoolServer::Create(NewTransport(Kind::kInproc, c), po);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  auto address = (*pool)->Listen(Listen(Kind::kInproc));
  ASSERT_TRUE(address.ok());
  service::RegistrationOptions reg;
  reg.router_address = (*router)->address();
  reg.instance.set_instance_id("kvcache-0");
  reg.instance.set_role(v1::ROLE_KVCACHE);  // no model, no capacity: a pool serves any model
  reg.instance.set_address(*address);
  kvcache::KvPoolServer* raw = pool->get();
  service::Registration registration(&raw->node(), reg, [raw] {
    v1::Load load;
    *load.mutable_kv_pool() = raw->Load();
    return load;
  });
  ASSERT_TRUE(registration.WaitRegistered(transport::DeadlineAfterMillis(5000)));
  const auto deadline = transport::DeadlineAfterMillis(5000);
  auto figures = [&] {
    auto pools = (*router)->Stats().kv_pools;
    return pools.count("kvcache-0") ? pools["kvcache-0"].capacity_bytes() : 0;
  };
  while (figures() != uint64_t{4} << 20 && MonoClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(figures(), uint64_t{4} << 20);
  EXPECT_FALSE((*router)->Ready()) << "a pool is no prefill or decode instance";
  EXPECT_NE((*router)->NotReadyReason().find(waiting), std::string::npos);
  registration.Stop();
  (*pool)->Shutdown();
  (*router)->Shutdown();
}

}  // namespace
}  // namespace strata
