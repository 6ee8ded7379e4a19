// A fast fake OpenAI-compatible server for measuring `strata bench` itself: it answers at once
// (or after --delay-us per token) with --tokens-per-response tokens, so the driver, not the
// server, is what is measured. Serves until SIGINT/SIGTERM. Prints "listening on PORT" once
// ready (with --port 0 the port is chosen by the system).
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>

#include "bench/driver/fake_server.h"
#include "common/config.h"

int main(int argc, char** argv) {
  CLI::App app{"Fake OpenAI server for driver benchmarks", "fake_openai_server"};
  strata::bench::FakeServerOptions opt;
  int64_t delay_us = 0;
  int64_t first_delay_us = 0;
  opt.tokens_per_response = 16;
  strata::AddFlag(app, "host", &opt.host, "Address to bind");
  strata::AddFlag(app, "port", &opt.port, "Port (0 = any free one)");
  strata::AddFlag(app, "threads", &opt.num_threads, "Server threads");
  strata::AddFlag(app, "tokens-per-response", &opt.tokens_per_response,
                  "Tokens per response (0 = the request's max_tokens)");
  strata::AddFlag(app, "delay-us", &delay_us, "Gap between tokens, microseconds");
  strata::AddFlag(app, "first-token-delay-us", &first_delay_us,
                  "Time to the first token, microseconds");
  strata::AddFlag(app, "fail-every", &opt.fail_every,
                  "Every Nth request gets HTTP 500 (0 = never)");
  auto outcome = strata::ParseCommandLine(app, argc, argv);
  if (outcome.kind == strata::ParseOutcome::Kind::kHelpShown) return 0;
  if (outcome.kind == strata::ParseOutcome::Kind::kError) return outcome.exit_code;
  if (delay_us > 0) opt.inter_token_delays_us = {delay_us};
  opt.first_token_delay_us = first_delay_us;
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // server threads inherit the mask
  auto server = strata::bench::FakeOpenAiServer::Start(opt);
  if (!server.ok()) {
    std::fprintf(stderr, "fake_openai_server: %s\n", server.status().message().c_str());
    return 1;
  }
  std::printf("listening on %u\n", (*server)->port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  (*server)->Stop();
  std::printf("served %lld generation requests\n",
              static_cast<long long>((*server)->num_generation_requests()));
  return 0;
}
