#include "bench/driver/progress.h"

#include <unistd.h>

#include <algorithm>

#include "bench/driver/metrics.h"
#include "common/clock.h"

namespace strata::bench {

bool IsTerminal(std::FILE* f) { return ::isatty(::fileno(f)) == 1; }

ProgressReporter::ProgressReporter(const LiveStats& live, int64_t total, double duration_s,
                                   bool tty, double plain_interval_s, std::FILE* out)
    : live_(live),
      total_(total),
      duration_s_(duration_s),
      tty_(tty),
      interval_s_(tty ? 0.25 : plain_interval_s),
      out_(out) {
  thread_ = std::thread([this] { Loop(); });
}

ProgressReporter::~ProgressReporter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  if (tty_) {
    std::fprintf(out_, "\r%s\n", Line().c_str());
    std::fflush(out_);
  }
}

std::string ProgressReporter::Line() const {
  int64_t start = live_.start_ns.load();
  double elapsed = start > 0 ? (MonotonicNanos() - start) * 1e-9 : 0.0;
  int64_t done = live_.finished.load();
  double fraction = total_ > 0 ? static_cast<double>(done) / total_
                               : (duration_s_ > 0 ? elapsed / duration_s_ : 0.0);
  fraction = std::clamp(fraction, 0.0, 1.0);
  std::vector<double> ttfts = live_.TtftSnapshot();
  std::sort(ttfts.begin(), ttfts.end());
  double rps = elapsed > 0 ? live_.succeeded.load() / elapsed : 0.0;
  double tps = elapsed > 0 ? live_.output_tokens.load() / elapsed : 0.0;
  char buf[256];
  std::string bar;
  if (tty_) {
    int width = 24, filled = static_cast<int>(fraction * width);
    bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
  }
  std::string count =
      total_ > 0 ? std::to_string(done) + "/" + std::to_string(total_) : std::to_string(done);
  std::snprintf(
      buf, sizeof(buf), "%s%s done  %.1fs  %.1f req/s  %.0f tok/s  p50 TTFT %.1f ms  failed %lld",
      bar.c_str(), count.c_str(), elapsed, rps, tps, ttfts.empty() ? 0.0 : Percentile(ttfts, 50),
      static_cast<long long>(live_.failed.load()));
  return buf;
}

void ProgressReporter::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::duration<double>(interval_s_), [this] { return stop_; });
    if (stop_) break;
    std::string line = Line();
    if (tty_) {
      std::fprintf(out_, "\r%s\033[K", line.c_str());
    } else {
      std::fprintf(out_, "progress: %s\n", line.c_str());
    }
    std::fflush(out_);
  }
}

}  // namespace strata::bench
