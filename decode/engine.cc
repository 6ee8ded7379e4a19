#include "decode/engine.h"

#include <chrono>

#include "common/clock.h"
#include "common/log.h"

namespace strata::decode {

Engine::Engine(SchedulerOptions options, std::unique_ptr<model::ModelRunner> runner)
    : runner_(std::move(runner)),
      scheduler_(options, runner_.get()),
      max_waiting_(options.max_waiting),
      join_peer_steps_(options.join_peer_steps) {
  stats_ = scheduler_.Stats();
  if (join_peer_steps_) {
    // A peer rank began a step: wake the loop (taking mu_ orders this after its wait check).
    runner_->SetPeerStepWake([this] {
      { std::lock_guard lock(mu_); }
      cv_.notify_all();
    });
  }
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() { Shutdown(); }

Status Engine::Submit(GenerateRequest request, EventCallback on_event) {
  STRATA_RETURN_IF_ERROR(scheduler_.Validate(request));
  {
    std::lock_guard lock(mu_);
    if (!accepting_ || stop_) return UnavailableError("the engine is shutting down");
    if (stats_.num_waiting + static_cast<int>(incoming_.size()) >= max_waiting_) {
      return ResourceExhaustedError("the queue is full (" + std::to_string(max_waiting_) +
                                    " requests waiting); retry later");
    }
    incoming_.push_back({std::move(request), std::move(on_event)});
    ++num_active_;
  }
  cv_.notify_one();
  return OkStatus();
}

void Engine::Abort(const std::string& request_id) {
  {
    std::lock_guard lock(mu_);
    aborts_.push_back(request_id);
  }
  cv_.notify_one();
}

void Engine::Post(StepTask task) {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

GenerationStats Engine::Stats() const {
  std::lock_guard lock(mu_);
  GenerationStats s = stats_;
  s.num_waiting += static_cast<int>(incoming_.size());
  return s;
}

bool Engine::Ready() const {
  std::lock_guard lock(mu_);
  return accepting_ && !stop_;
}

void Engine::Loop() {
  std::vector<PendingEvent> events;
  while (true) {
    std::vector<Incoming> incoming;
    std::vector<std::string> aborts;
    std::vector<StepTask> tasks;
    bool stop;
    {
      std::unique_lock lock(mu_);
      auto has_work = [&] {
        return stop_ || !incoming_.empty() || !aborts_.empty() || !tasks_.empty() ||
               scheduler_.HasWork() || (join_peer_steps_ && runner_->PeerStepPending());
      };
      if (scheduler_.num_reserved() > 0) {
        // Reservations expire on their own: look again now and then.
        cv_.wait_for(lock, std::chrono::milliseconds(20), has_work);
      } else {
        cv_.wait(lock, has_work);
      }
      incoming.swap(incoming_);
      aborts.swap(aborts_);
      tasks.swap(tasks_);
      stop = stop_;
    }
    events.clear();
    for (auto& in : incoming) {
      std::string id = in.request.request_id;
      auto cb = std::move(in.on_event);
      Status st = scheduler_.Add(std::move(in.request), cb);
      if (!st.ok()) {
        TokenEvent ev;
        ev.finish = FinishReason::kError;
        ev.error = st;
        cb(std::move(ev));
      }
    }
    for (auto& task : tasks) task(scheduler_);
    for (const auto& id : aborts) scheduler_.Abort(id);
    bool idle = false;
    if (stop) {
      scheduler_.AbortAll(&events);
    } else {
      int64_t steps_before = scheduler_.num_steps();
      Status st = scheduler_.Step(&events);
      if (!st.ok()) log::Error("engine step failed: {}", st.ToString());
      idle = scheduler_.num_steps() == steps_before && events.empty();
      if (idle && join_peer_steps_ && runner_->PeerStepPending()) {
        // Nothing of our own to run: join the peer's step (its MoE layers need this rank).
        model::ForwardBatch empty;
        model::ForwardResult result;
        Status st = runner_->Forward(empty, &result);
        if (!st.ok() && st.code() != StatusCode::kCancelled) {  // cancelled: the group stopped
          log::Warn("joining a peer's step failed: {}", st.ToString());
        }
        idle = false;
      }
    }
    // Publish the step's stats before the events: a caller told "finished" must already see
    // that request's KV blocks freed and it no longer running.
    {
      std::lock_guard lock(mu_);
      stats_ = scheduler_.Stats();
    }
    for (auto& ev : events) (*ev.callback)(std::move(ev.event));
    if (step_observer_) step_observer_();
    {
      std::lock_guard lock(mu_);
      num_active_ = static_cast<int>(incoming_.size()) + scheduler_.num_sequences();
    }
    num_steps_.store(scheduler_.num_steps());
    num_preemptions_.store(scheduler_.num_preemptions());
    cv_.notify_all();  // Drain() waits on num_active_
    if (stop) break;
    // Work that cannot be scheduled yet (waiting for blocks) must not spin.
    if (idle) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

int Engine::Drain(int64_t timeout_ms) {
  std::unique_lock lock(mu_);
  accepting_ = false;
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return num_active_ == 0; });
  int left = num_active_;
  lock.unlock();
  if (left > 0) log::Warn("drain timed out; aborting {} request(s)", left);
  return left;
}

void Engine::Shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
    accepting_ = false;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (join_peer_steps_) runner_->SetPeerStepWake(nullptr);  // it would touch a dead engine
}

}  // namespace strata::decode
