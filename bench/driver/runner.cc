#include "bench/driver/runner.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cmath>
#include <condition_variable>
#include <optional>
#include <thread>

#include "bench/driver/arrivals.h"
#include "bench/driver/stream_connection.h"
#include "common/clock.h"

namespace strata::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::vector<double> LiveStats::TtftSnapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ttfts_ms_;
}
void LiveStats::AddTtft(double ms) {
  std::lock_guard<std::mutex> lock(mu_);
  ttfts_ms_.push_back(ms);
}
void LiveStats::Reset() {
  released = finished = succeeded = failed = aborted = output_tokens = 0;
  start_ns = 0;
  std::lock_guard<std::mutex> lock(mu_);
  ttfts_ms_.clear();
}

namespace {

thread_local int tls_worker_index = -1;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

class Runner::Impl : public StreamObserver {
 public:
  struct Worker {
    asio::io_context io{1};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
    std::thread thread;
    std::vector<std::shared_ptr<StreamConnection>> idle;
  };

  struct Launch {
    int worker;
    RequestRecord* record;
    const RequestSpec* spec;
    int abort_after_tokens;
  };

  Impl(ApiTarget target, tcp::endpoint endpoint, int num_io_threads, bool kernel_timestamps)
      : target_(std::move(target)), endpoint_(endpoint), kernel_timestamps_(kernel_timestamps) {
    for (int i = 0; i < num_io_threads; ++i) {
      auto w = std::make_unique<Worker>();
      w->guard.emplace(w->io.get_executor());
      Worker* raw = w.get();
      w->thread = std::thread([raw, i] {
        tls_worker_index = i;
        raw->io.run();
      });
      workers_.push_back(std::move(w));
    }
  }

  ~Impl() override {
    for (auto& w : workers_) {
      asio::post(w->io, [raw = w.get()] {
        for (auto& c : raw->idle) c->Close("runner stopped");
        raw->idle.clear();
      });
      w->guard.reset();
    }
    for (auto& w : workers_) w->thread.join();
  }

  StatusOr<RunResult> Run(const RunPlan& plan);
  void OnRequestDone(StreamConnection* conn, RequestRecord* record) override;

  LiveStats live_;

 private:
  void LaunchReadyLocked(int worker_hint, std::vector<Launch>* out);
  void StartLaunches(const std::vector<Launch>& launches);
  void StartOnWorker(const Launch& launch);
  bool DoneLocked() const {
    return release_done_ && in_flight_ == 0 && (stop_launching_ || launched_ == released_);
  }
  void FinishLocked();
  void ScheduleNextRelease(uint64_t run_id);
  int64_t ReleaseTimeNs(int64_t index);

  ApiTarget target_;
  tcp::endpoint endpoint_;
  bool kernel_timestamps_;
  std::vector<std::unique_ptr<Worker>> workers_;

  // State of the current run, guarded by mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  const RunPlan* plan_ = nullptr;
  RunResult* result_ = nullptr;
  uint64_t run_id_ = 0;
  bool done_ = false;
  bool release_done_ = false;
  bool stop_launching_ = false;
  int64_t released_ = 0;
  int64_t launched_ = 0;
  int64_t in_flight_ = 0;
  uint64_t round_robin_ = 0;
  int64_t timeout_ns_ = 0;
  std::deque<int64_t> release_ns_;  // release times of released, not yet launched requests
  std::optional<ArrivalProcess> arrivals_;
  int64_t next_release_ns_ = 0;
  std::unique_ptr<asio::steady_timer> release_timer_;
  std::unique_ptr<asio::steady_timer> deadline_timer_;
};

StatusOr<RunResult> Runner::Impl::Run(const RunPlan& plan) {
  if (plan.specs == nullptr || plan.specs->empty()) {
    return InvalidArgumentError("the workload has no requests");
  }
  if (plan.num_requests <= 0 && plan.duration_s <= 0) {
    return InvalidArgumentError("give a number of requests or a duration");
  }
  bool unlimited_rate = std::isinf(plan.request_rate) && !plan.use_spec_arrivals;
  if (unlimited_rate && plan.num_requests <= 0 && plan.max_concurrency <= 0) {
    return InvalidArgumentError(
        "a duration at an unlimited request rate needs a max concurrency (or a finite rate)");
  }
  if (plan.use_spec_arrivals && plan.num_requests > static_cast<int64_t>(plan.specs->size())) {
    return InvalidArgumentError("a trace run cannot send more requests than the trace holds");
  }
  auto arrivals = ArrivalProcess::Create(plan.use_spec_arrivals ? 1.0 : plan.request_rate,
                                         plan.burstiness, plan.seed ^ 0xa441u);
  if (!arrivals.ok()) return arrivals.status();

  RunResult result;
  live_.Reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    plan_ = &plan;
    result_ = &result;
    ++run_id_;
    done_ = false;
    timeout_ns_ = static_cast<int64_t>(plan.timeout_s * 1e9);
    stop_launching_ = false;
    released_ = launched_ = in_flight_ = 0;
    release_ns_.clear();
    arrivals_.emplace(std::move(*arrivals));
    result.start_ns = MonotonicNanos();
    live_.start_ns = result.start_ns;
    next_release_ns_ = result.start_ns;
    release_done_ = unlimited_rate;
    if (unlimited_rate) {
      released_ = plan.num_requests > 0 ? plan.num_requests : INT64_MAX;
      live_.released = plan.num_requests;
    }
  }
  uint64_t run_id = run_id_;
  asio::io_context& io0 = workers_[0]->io;
  asio::post(io0, [this, run_id, unlimited_rate] {
    std::vector<Launch> launches;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (run_id != run_id_) return;
      if (plan_->duration_s > 0) {
        deadline_timer_ = std::make_unique<asio::steady_timer>(workers_[0]->io);
        deadline_timer_->expires_at(MonoClock::time_point(std::chrono::nanoseconds(
            result_->start_ns + static_cast<int64_t>(plan_->duration_s * 1e9))));
        deadline_timer_->async_wait([this, run_id](const boost::system::error_code& ec) {
          if (ec) return;
          std::lock_guard<std::mutex> lock(mu_);
          if (run_id != run_id_ || done_) return;
          stop_launching_ = true;
          release_done_ = true;
          if (release_timer_) release_timer_->cancel();
          if (DoneLocked()) FinishLocked();
        });
      }
      if (unlimited_rate) LaunchReadyLocked(-1, &launches);
    }
    if (unlimited_rate) {
      StartLaunches(launches);
    } else {
      release_timer_ = std::make_unique<asio::steady_timer>(workers_[0]->io);
      ScheduleNextRelease(run_id);
    }
  });
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return done_; });
  plan_ = nullptr;
  result_ = nullptr;
  ++run_id_;  // late timer handlers of this run see a different id
  lock.unlock();
  asio::post(io0, [this] {
    if (release_timer_) release_timer_->cancel();
    if (deadline_timer_) deadline_timer_->cancel();
  });
  return result;
}

int64_t Runner::Impl::ReleaseTimeNs(int64_t index) {
  const auto& specs = *plan_->specs;
  if (plan_->use_spec_arrivals) {
    double base = specs[plan_->first_spec % specs.size()].arrival_s;
    double at = specs[(plan_->first_spec + index) % specs.size()].arrival_s;
    return result_->start_ns + static_cast<int64_t>((at - base) * 1e9);
  }
  next_release_ns_ += static_cast<int64_t>(arrivals_->NextGapSeconds() * 1e9);
  return next_release_ns_;
}

// On worker 0: waits for the next arrival, releases it (and any others already due), repeats.
void Runner::Impl::ScheduleNextRelease(uint64_t run_id) {
  int64_t due_ns;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (run_id != run_id_ || release_done_) return;
    bool count_reached = plan_->num_requests > 0 && released_ >= plan_->num_requests;
    due_ns = count_reached ? 0 : ReleaseTimeNs(released_);
    int64_t deadline = result_->start_ns + static_cast<int64_t>(plan_->duration_s * 1e9);
    if (count_reached || (plan_->duration_s > 0 && due_ns >= deadline)) {
      release_done_ = true;
      if (DoneLocked()) FinishLocked();
      return;
    }
  }
  release_timer_->expires_at(MonoClock::time_point(std::chrono::nanoseconds(due_ns)));
  release_timer_->async_wait([this, run_id, due_ns](const boost::system::error_code& ec) {
    if (ec) return;
    std::vector<Launch> launches;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (run_id != run_id_ || release_done_) return;
      ++released_;
      live_.released = released_;
      release_ns_.push_back(due_ns);
      LaunchReadyLocked(-1, &launches);
    }
    StartLaunches(launches);
    ScheduleNextRelease(run_id);
  });
}

void Runner::Impl::LaunchReadyLocked(int worker_hint, std::vector<Launch>* out) {
  const RunPlan& plan = *plan_;
  const auto& specs = *plan.specs;
  while (!stop_launching_ && launched_ < released_ &&
         (plan.max_concurrency <= 0 || in_flight_ < plan.max_concurrency)) {
    int64_t index = launched_++;
    ++in_flight_;
    RequestRecord& rec = result_->records.emplace_back();
    const RequestSpec& spec = specs[(plan.first_spec + static_cast<size_t>(index)) % specs.size()];
    rec.index = index;
    rec.input_len = spec.input_len;
    rec.max_tokens = spec.output_len;
    if (release_ns_.empty()) {
      rec.scheduled_ns = result_->start_ns;
    } else {
      rec.scheduled_ns = release_ns_.front();
      release_ns_.pop_front();
    }
    int abort_after = spec.abort_after_tokens;
    if (abort_after == 0 && plan.abort_fraction > 0) {
      uint64_t h = SplitMix64(plan.seed * 0x100000001b3ULL + static_cast<uint64_t>(index));
      double u = static_cast<double>(h >> 11) * 0x1.0p-53;
      if (u < plan.abort_fraction) {
        int span = std::max(1, spec.output_len / 2);
        abort_after = 1 + static_cast<int>(SplitMix64(h) % static_cast<uint64_t>(span));
      }
    }
    int worker =
        worker_hint >= 0 ? worker_hint : static_cast<int>(round_robin_++ % workers_.size());
    out->push_back({worker, &rec, &spec, abort_after});
  }
}

void Runner::Impl::StartLaunches(const std::vector<Launch>& launches) {
  for (const Launch& launch : launches) {
    if (launch.worker == tls_worker_index) {
      StartOnWorker(launch);
    } else {
      asio::post(workers_[launch.worker]->io, [this, launch] { StartOnWorker(launch); });
    }
  }
}

void Runner::Impl::StartOnWorker(const Launch& launch) {
  Worker& w = *workers_[launch.worker];
  std::shared_ptr<StreamConnection> conn;
  if (!w.idle.empty()) {
    conn = std::move(w.idle.back());
    w.idle.pop_back();
  } else {
    conn = std::make_shared<StreamConnection>(w.io, endpoint_, this, kernel_timestamps_);
  }
  launch.record->itl_ns.reserve(static_cast<size_t>(std::max(0, launch.spec->output_len)));
  StreamRequest request;
  request.http_bytes =
      BuildHttpRequest(target_, BuildRequestBody(target_, *launch.spec),
                       plan_->request_id_prefix + std::to_string(launch.record->index));
  request.record = launch.record;
  request.abort_after_tokens = launch.abort_after_tokens;
  request.timeout_ns = timeout_ns_;
  conn->Start(std::move(request));
}

void Runner::Impl::OnRequestDone(StreamConnection* conn, RequestRecord* record) {
  int worker = tls_worker_index;
  if (conn->reusable()) workers_[worker]->idle.push_back(conn->shared_from_this());
  ++live_.finished;
  if (record->aborted) {
    ++live_.aborted;
  } else if (record->success) {
    ++live_.succeeded;
    live_.output_tokens += record->output_tokens;
    if (record->first_token_ns != 0) live_.AddTtft(record->TtftMs());
  } else {
    ++live_.failed;
  }
  std::vector<Launch> launches;
  {
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
    if (result_ != nullptr) result_->end_ns = std::max(result_->end_ns, record->end_ns);
    LaunchReadyLocked(worker, &launches);
    if (DoneLocked()) FinishLocked();
  }
  StartLaunches(launches);
}

void Runner::Impl::FinishLocked() {
  if (done_) return;
  if (result_->end_ns == 0) result_->end_ns = MonotonicNanos();
  done_ = true;
  cv_.notify_all();
}

StatusOr<std::unique_ptr<Runner>> Runner::Create(ApiTarget target, int num_io_threads,
                                                 bool kernel_timestamps) {
  if (num_io_threads < 1 || num_io_threads > 64) {
    return InvalidArgumentError("io threads must be in [1, 64], not " +
                                std::to_string(num_io_threads));
  }
  asio::io_context io;
  tcp::resolver resolver(io);
  boost::system::error_code ec;
  auto results = resolver.resolve(target.host, std::to_string(target.port), ec);
  if (ec || results.empty()) {
    return UnavailableError("cannot resolve '" + target.host + "': " + ec.message());
  }
  tcp::endpoint endpoint = results.begin()->endpoint();
  for (const auto& r : results) {  // prefer IPv4: "localhost" servers often bind 127.0.0.1 only
    if (r.endpoint().address().is_v4()) {
      endpoint = r.endpoint();
      break;
    }
  }
  return std::unique_ptr<Runner>(new Runner(
      std::make_unique<Impl>(std::move(target), endpoint, num_io_threads, kernel_timestamps)));
}

Runner::Runner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Runner::~Runner() = default;
StatusOr<RunResult> Runner::Run(const RunPlan& plan) { return impl_->Run(plan); }
LiveStats& Runner::live() { return impl_->live_; }

}  // namespace strata::bench
