// Server and scheduler benchmarks (issue 5), results in bench/results/server.json.
//
// 1. Server overhead, in one process so that one monotonic clock times both ends: the real
//    HttpServer + ApiServer + tokenizer/chat template, over a GenerationService that emits one
//    token per active request every --step-us (no model). 64 raw-socket clients stream chat
//    completions at once (from one epoll thread by default, --client threads for a thread
//    each). Per request: client send -> Submit() reached the service (HTTP parse, JSON, chat
//    template, tokenization, admission). Per streamed token: the service emits it -> its SSE
//    chunk reached the client's socket (output processing, detokenization, JSON, SSE framing,
//    socket, loopback; the epoll client takes the kernel's receive timestamp, so its own
//    queueing behind 63 other streams is not counted as server overhead). p50/p99, the load average
//    around the run (latencies on a busy machine measure its scheduler), and CPU time per token,
//    server and client apart, which load does not inflate.
// 2. Continuous batching vs one at a time: the real Engine over a checkpoint (--model), C
//    requests of --prompt-tokens / --output-tokens (ignore EOS, greedy) at C = 1, 8, 32, 64, with
//    max_num_seqs = C and with max_num_seqs = 1; output tokens/s of each.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include "bench/driver/rx_timestamp.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/version.h"
#include "decode/engine.h"
#include "ops/cpu/cpu_features.h"
#include "server/api_server.h"
#include "server/http_server.h"
#include "server/model_text_codec.h"

namespace strata::bench {
namespace {

using nlohmann::json;

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The 1-minute load average (how busy the machine was: the figures are latencies).
double LoadAverage() {
  double avg[3] = {0, 0, 0};
  return getloadavg(avg, 3) >= 1 ? avg[0] : -1.0;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Emits `tokens` (cycled) for every active request, one per step; records when.
class TimedService : public decode::GenerationService {
 public:
  TimedService(std::vector<int32_t> tokens, int step_us)
      : tokens_(std::move(tokens)), step_us_(step_us), thread_([this] { Loop(); }) {}
  ~TimedService() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Status Submit(decode::GenerateRequest r, EventCallback cb) override {
    int64_t now = MonotonicNanos();
    std::lock_guard lock(mu_);
    std::string id = r.request_id;
    submit_ns_[id] = now;
    active_[id] = {std::move(r), std::move(cb), 0};
    cv_.notify_all();
    return OkStatus();
  }
  void Abort(const std::string& id) override {
    std::lock_guard lock(mu_);
    aborted_.push_back(id);
  }
  decode::GenerationStats Stats() const override { return {}; }
  bool Ready() const override { return true; }

  std::map<std::string, int64_t> submit_ns() {
    std::lock_guard lock(mu_);
    return submit_ns_;
  }
  std::map<std::string, std::vector<int64_t>> emit_ns() {
    std::lock_guard lock(emit_mu_);
    return emit_ns_;
  }

 private:
  struct Seq {
    decode::GenerateRequest request;
    EventCallback cb;
    int produced;
  };
  void Loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (active_.empty()) {
        cv_.wait(lock);
        continue;
      }
      std::vector<std::tuple<std::string, EventCallback*, decode::TokenEvent>> out;
      std::vector<std::string> done;
      for (auto& [id, s] : active_) {
        decode::TokenEvent ev;
        if (s.produced == 0) ev.prompt_tokens = static_cast<int>(s.request.prompt_token_ids.size());
        ev.tokens.push_back({tokens_[s.produced % tokens_.size()], 0.0f, {}});
        ++s.produced;
        if (s.produced >= s.request.sampling.max_tokens) {
          ev.finish = decode::FinishReason::kLength;
          done.push_back(id);
        }
        out.emplace_back(id, &s.cb, std::move(ev));
      }
      // Callbacks run without the lock, as the engine's do; map nodes stay put until erased.
      lock.unlock();
      for (auto& [id, cb, ev] : out) {
        {  // recorded before the callback: the client may be done before it returns
          std::lock_guard g(emit_mu_);
          emit_ns_[id].push_back(MonotonicNanos());
        }
        (*cb)(std::move(ev));
      }
      lock.lock();
      for (const auto& id : done) active_.erase(id);
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::microseconds(step_us_));
      lock.lock();
    }
  }

  std::vector<int32_t> tokens_;
  int step_us_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, Seq> active_;
  std::map<std::string, int64_t> submit_ns_;
  std::map<std::string, std::vector<int64_t>> emit_ns_;
  std::vector<std::string> aborted_;
  std::mutex emit_mu_;
  std::thread thread_;
};

struct ClientResult {
  int64_t send_ns = 0;
  std::string request_id;  // the service's id: "<response id>-0"
  std::vector<int64_t> chunk_ns;
  bool ok = false;
};

void ScanEvents(std::string& buf, size_t* scan, int64_t now, ClientResult* r);

// One streaming chat request over a fresh connection (a thread per stream); times each SSE data
// chunk.
ClientResult StreamOnce(int port, const std::string& body) {
  ClientResult r;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return r;
  }
  std::string req =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: b\r\nConnection: close\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  r.send_ns = MonotonicNanos();
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return r;
  }
  std::string buf;
  size_t scan = 0;
  char tmp[65536];
  while (true) {
    ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) break;
    int64_t now = MonotonicNanos();
    buf.append(tmp, static_cast<size_t>(n));
    ScanEvents(buf, &scan, now, &r);
  }
  close(fd);
  if (!r.ok) std::cerr << "incomplete stream: " << buf.substr(0, 600) << "\n";
  return r;
}

// Parses the SSE events that completed in `buf` since `*scan`; each data event read at `now`.
void ScanEvents(std::string& buf, size_t* scan, int64_t now, ClientResult* r) {
  size_t pos;
  while ((pos = buf.find("data: ", *scan)) != std::string::npos) {
    size_t end = buf.find("\n\n", pos);
    if (end == std::string::npos) break;
    std::string_view payload(buf.data() + pos + 6, end - pos - 6);
    *scan = end + 2;
    if (payload == "[DONE]") {
      r->ok = true;
      continue;
    }
    if (r->request_id.empty()) {
      auto j = json::parse(payload, nullptr, false);
      if (j.is_object()) r->request_id = j.value("id", "") + "-0";
    }
    r->chunk_ns.push_back(now);
  }
}

// All streams from one thread over epoll, as a load generator does (wrk, k6): with a thread per
// stream on a small machine, the clients' own wake-ups would dominate what is measured.
std::vector<ClientResult> StreamAllEpoll(int port, const std::vector<std::string>& bodies) {
  struct Stream {
    int fd = -1;
    std::string buf;
    size_t scan = 0;
    ClientResult r;
  };
  std::vector<Stream> streams(bodies.size());
  int ep = epoll_create1(0);
  for (size_t i = 0; i < bodies.size(); ++i) {
    Stream& st = streams[i];
    st.fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(st.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (connect(st.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(st.fd);
      st.fd = -1;
      continue;
    }
    EnableRxTimestamps(st.fd);  // a token counts as read when it reached the socket
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, st.fd, &ev);
  }
  int open = 0;
  for (size_t i = 0; i < bodies.size(); ++i) {
    Stream& st = streams[i];
    if (st.fd < 0) continue;
    std::string req =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: b\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nContent-Length: " +
        std::to_string(bodies[i].size()) + "\r\n\r\n" + bodies[i];
    st.r.send_ns = MonotonicNanos();
    if (send(st.fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      close(st.fd);
      st.fd = -1;
      continue;
    }
    ++open;
  }
  char tmp[65536];
  epoll_event events[128];
  while (open > 0) {
    int n = epoll_wait(ep, events, 128, 30'000);
    if (n <= 0) break;  // 30 s without a byte: the rest count as incomplete
    for (int e = 0; e < n; ++e) {
      Stream& st = streams[events[e].data.u64];
      int64_t rx = 0;
      ssize_t got = RecvTimestamped(st.fd, tmp, sizeof(tmp), MonotonicNanos(), &rx);
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (got <= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, st.fd, nullptr);
        close(st.fd);
        st.fd = -1;
        --open;
        continue;
      }
      st.buf.append(tmp, static_cast<size_t>(got));
      ScanEvents(st.buf, &st.scan, rx, &st.r);
    }
  }
  close(ep);
  std::vector<ClientResult> out;
  for (auto& st : streams) {
    if (st.fd >= 0) close(st.fd);
    if (!st.r.ok) std::cerr << "incomplete stream: " << st.buf.substr(0, 600) << "\n";
    out.push_back(std::move(st.r));
  }
  return out;
}

json ServerOverhead(const std::string& tokenizer_dir, int concurrency, int rounds, int tokens,
                    int step_us, bool client_epoll, int http_threads) {
  const double load_before = LoadAverage();
  auto codec = server::ModelTextCodec::Load(tokenizer_dir);
  if (!codec.ok()) {
    std::cerr << "tokenizer: " << codec.status().ToString() << "\n";
    std::exit(1);
  }
  // Whole-word ASCII tokens: each one is a complete piece of text and becomes one SSE chunk.
  auto ids = (*codec)->Encode(" the quick brown fox jumps over the lazy dog", false);
  TimedService service(*ids, step_us);
  MetricsRegistry registry;
  server::ApiServerOptions api_opt;
  api_opt.served_model_name = "bench";
  api_opt.max_model_len = 4096;
  server::ApiServer api(api_opt, &registry);
  api.SetBackend(&service, codec->get());
  server::HttpServerOptions http_opt;
  http_opt.port = 0;
  http_opt.num_threads = http_threads;
  server::HttpServer http(http_opt,
                          [&](server::HttpRequest r, std::shared_ptr<server::Exchange> e) {
                            api.Handle(std::move(r), std::move(e));
                          });
  if (!http.Start().ok()) std::exit(1);

  std::vector<ClientResult> results;
  std::mutex mu;
  // CPU time, which a busy machine does not inflate as it does latencies: the whole process
  // (HTTP threads, the OpenAI layer run from the service's callbacks, the fake service) less
  // the epoll client's own thread.
  const double process_cpu_before = ProcessCpuSeconds();
  double client_cpu_s = 0;
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::string> bodies;
    for (int c = 0; c < concurrency; ++c) {
      json body = {{"model", "bench"},
                   {"stream", true},
                   {"max_tokens", tokens},
                   {"messages",
                    {{{"role", "user"},
                      {"content", "client " + std::to_string(c) + " round " +
                                      std::to_string(round) + ": write a long story"}}}}};
      bodies.push_back(body.dump());
    }
    if (client_epoll) {
      const double client_before = ThreadCpuSeconds();
      for (auto& r : StreamAllEpoll(http.port(), bodies)) results.push_back(std::move(r));
      client_cpu_s += ThreadCpuSeconds() - client_before;
      continue;
    }
    std::vector<std::thread> threads;
    for (int c = 0; c < concurrency; ++c) {
      threads.emplace_back([&, c] {
        auto r = StreamOnce(http.port(), bodies[c]);
        std::lock_guard lock(mu);
        results.push_back(std::move(r));
      });
    }
    for (auto& t : threads) t.join();
  }
  const double process_cpu_s = ProcessCpuSeconds() - process_cpu_before;
  http.Stop();
  auto submits = service.submit_ns();
  auto emits = service.emit_ns();
  std::vector<double> request_us, token_us;
  int complete = 0;
  for (const auto& r : results) {
    if (!r.ok || static_cast<int>(r.chunk_ns.size()) != tokens) continue;
    auto s = submits.find(r.request_id);
    auto e = emits.find(r.request_id);
    if (s == submits.end() || e == emits.end() || e->second.size() != r.chunk_ns.size()) {
      std::cerr << "stream " << r.request_id << ": " << r.chunk_ns.size()
                << " chunks for its tokens (a token without text of its own?)\n";
      continue;
    }
    ++complete;
    request_us.push_back(static_cast<double>(s->second - r.send_ns) * 1e-3);
    for (size_t k = 0; k < r.chunk_ns.size(); ++k) {
      token_us.push_back(static_cast<double>(r.chunk_ns[k] - e->second[k]) * 1e-3);
    }
  }
  const double total_tokens = static_cast<double>(rounds) * concurrency * tokens;
  json cpu = {{"what",
               "CPU time per streamed token: everything but the client (HTTP threads, output "
               "processing, JSON, SSE, the kernel's send path, and the fake service's own "
               "bookkeeping), and the whole process"},
              {"process_us_per_token", process_cpu_s * 1e6 / total_tokens}};
  if (client_epoll) {
    cpu["server_us_per_token"] = (process_cpu_s - client_cpu_s) * 1e6 / total_tokens;
    cpu["client_us_per_token"] = client_cpu_s * 1e6 / total_tokens;
  }
  return {{"cpu", cpu},
          {"concurrency", concurrency},
          {"requests", static_cast<int>(results.size())},
          {"complete_streams", complete},
          {"tokens_per_request", tokens},
          {"service_step_us", step_us},
          {"client", client_epoll ? "one epoll thread for every stream, kernel receive timestamps"
                                  : "one blocking thread per stream"},
          {"load_average_before", load_before},
          {"load_average_after", LoadAverage()},
          {"http_threads", http_opt.num_threads},
          {"request_overhead_us",
           {{"what",
             "client send -> GenerationService::Submit (HTTP, JSON, chat template, "
             "tokenizer, admission)"},
            {"p50", Percentile(request_us, 0.5)},
            {"p99", Percentile(request_us, 0.99)}}},
          {"token_overhead_us",
           {{"what",
             "token emitted by the service -> its SSE chunk at the client's socket "
             "(detokenize, stop/holdback, JSON, SSE, socket)"},
            {"p50", Percentile(token_us, 0.5)},
            {"p99", Percentile(token_us, 0.99)},
            {"target_p99", 1000.0},
            {"p99_over_target", Percentile(token_us, 0.99) / 1000.0},
            {"samples", static_cast<int>(token_us.size())}}}};
}

double EngineTokensPerSecond(const std::string& model_dir, int threads, int max_num_seqs,
                             int num_requests, int prompt_tokens, int output_tokens) {
  model::RunnerOptions ro;
  ro.num_threads = threads;
  ro.kv_cache_bytes = 256 << 20;
  auto runner = model::ModelRunner::Load(model_dir, ro);
  if (!runner.ok()) {
    std::cerr << "model: " << runner.status().ToString() << "\n";
    std::exit(1);
  }
  int64_t vocab = (*runner)->config().vocab_size;
  decode::SchedulerOptions so;
  so.max_num_seqs = max_num_seqs;
  so.max_model_len = prompt_tokens + output_tokens + 1;
  so.enable_prefix_caching = false;  // distinct prompts anyway; measure batching alone
  decode::Engine engine(so, std::move(*runner));
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  int64_t generated = 0;
  {
    // Untimed warm-up: the first forwards fault the mapped weights in (every expert, through a
    // prompt long enough to route to all of them), which would otherwise be charged to
    // whichever configuration runs first and to the short runs most.
    decode::GenerateRequest warm;
    warm.request_id = "warm-up";
    for (int t = 0; t < std::min(128, so.max_model_len - 3); ++t) {
      warm.prompt_token_ids.push_back(static_cast<int32_t>((7 + t * 15485863LL) % vocab));
    }
    warm.sampling.temperature = 0.0f;
    warm.sampling.max_tokens = 2;
    warm.sampling.ignore_eos = true;
    bool warm_done = false;
    Status st = engine.Submit(std::move(warm), [&](decode::TokenEvent ev) {
      std::lock_guard lock(mu);
      if (ev.finish != decode::FinishReason::kNone) warm_done = true;
      cv.notify_all();
    });
    if (!st.ok()) {
      std::cerr << st.ToString() << "\n";
      std::exit(1);
    }
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return warm_done; });
  }
  Stopwatch watch;
  for (int i = 0; i < num_requests; ++i) {
    decode::GenerateRequest r;
    r.request_id = "b" + std::to_string(i);
    for (int t = 0; t < prompt_tokens; ++t) {
      r.prompt_token_ids.push_back(static_cast<int32_t>((1000 + i * 7919 + t * 104729) % vocab));
    }
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = output_tokens;
    r.sampling.ignore_eos = true;
    Status st = engine.Submit(std::move(r), [&](decode::TokenEvent ev) {
      std::lock_guard lock(mu);
      generated += static_cast<int64_t>(ev.tokens.size());
      if (ev.finish != decode::FinishReason::kNone) {
        ++done;
        cv.notify_all();
      }
    });
    if (!st.ok()) {
      std::cerr << st.ToString() << "\n";
      std::exit(1);
    }
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done == num_requests; });
  return static_cast<double>(generated) / watch.ElapsedSeconds();
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) {
  using namespace strata;
  using nlohmann::json;
  CLI::App app{"Server overhead and continuous-batching benchmark"};
  std::string model_dir, tokenizer_dir, out = "bench/results/server.json", preset = "tiny";
  int concurrency = 64, rounds = 4, tokens = 64, step_us = 2000, threads = 1, http_threads = 2;
  int prompt_tokens = 32, output_tokens = 32;
  std::string client = "epoll";
  bool skip_overhead = false, skip_batching = false;
  std::vector<int> concurrencies = {1, 8, 32, 64};
  app.add_option("--model", model_dir, "checkpoint for the batching benchmark")->required();
  app.add_option("--client", client, "overhead clients: epoll (one thread) or threads (one each)")
      ->check(CLI::IsMember({"epoll", "threads"}));
  app.add_flag("--skip-overhead", skip_overhead, "keep the overhead part of --out as it is");
  app.add_flag("--skip-batching", skip_batching, "keep the batching part of --out as it is");
  app.add_option("--batching-concurrency", concurrencies, "concurrencies of the batching part");
  app.add_option("--tokenizer", tokenizer_dir, "tokenizer dir (default: --model)");
  app.add_option("--preset", preset, "name of the checkpoint's preset, for the record");
  app.add_option("--out", out, "result JSON");
  app.add_option("--concurrency", concurrency, "streams at once (overhead part)");
  app.add_option("--rounds", rounds, "rounds of --concurrency streams");
  app.add_option("--tokens", tokens, "tokens per stream (overhead part)");
  app.add_option("--step-us", step_us, "service step interval (overhead part)");
  app.add_option("--threads", threads, "model threads (batching part)");
  app.add_option("--http-threads", http_threads, "HTTP server threads (overhead part)")
      ->check(CLI::Range(1, 64));
  app.add_option("--prompt-tokens", prompt_tokens, "prompt length (batching part)");
  app.add_option("--output-tokens", output_tokens, "output length (batching part)");
  CLI11_PARSE(app, argc, argv);
  if (tokenizer_dir.empty()) tokenizer_dir = model_dir;
  log::SetLevel(log::Level::kWarn);

  json result = json::object();
  if (skip_overhead || skip_batching) {  // the part not run keeps its earlier figures
    std::ifstream in(out);
    if (in) result = json::parse(in, nullptr, false);
    if (!result.is_object()) result = json::object();
  }
  result["benchmark"] = "server";
  result["git_sha"] = kGitSha;
  result["version"] = kVersion;
  const auto& cpu = ops::GetCpuFeatures();
  result["machine"] = {
      {"cpu", cpu.model_name}, {"cores", cpu.num_cores}, {"features", cpu.Describe()}};
  if (!skip_overhead) {
    std::cerr << "server overhead: " << concurrency << " streams x " << rounds << " rounds\n";
    result["server_overhead"] = bench::ServerOverhead(tokenizer_dir, concurrency, rounds, tokens,
                                                      step_us, client == "epoll", http_threads);
    result["server_overhead"]["git_sha"] = kGitSha;
    std::cerr << result["server_overhead"].dump(2) << "\n";
  }
  if (skip_batching) {
    std::ofstream(out) << result.dump(2) << "\n";
    std::cout << result.dump(2) << "\n";
    return 0;
  }
  json batching = json::array();
  const double load_before = bench::LoadAverage();
  for (int c : concurrencies) {
    double cont =
        bench::EngineTokensPerSecond(model_dir, threads, c, c, prompt_tokens, output_tokens);
    double single = c == 1 ? cont
                           : bench::EngineTokensPerSecond(model_dir, threads, 1, c, prompt_tokens,
                                                          output_tokens);
    batching.push_back({{"concurrency", c},
                        {"continuous_batching_tokens_per_s", cont},
                        {"one_at_a_time_tokens_per_s", single},
                        {"speedup", cont / single}});
    std::cerr << batching.back().dump() << "\n";
  }
  result["batching"] = {{"preset", preset},
                        {"model", model_dir},
                        {"threads", threads},
                        {"prompt_tokens", prompt_tokens},
                        {"output_tokens", output_tokens},
                        {"git_sha", kGitSha},
                        {"load_average_before", load_before},
                        {"load_average_after", bench::LoadAverage()},
                        {"runs", batching}};
  std::ofstream(out) << result.dump(2) << "\n";
  std::cout << result.dump(2) << "\n";
  return 0;
}
