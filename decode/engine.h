// The embedded generation engine: a GenerationService that runs the Scheduler's step loop on
// its own thread over a ModelRunner in this process (DESIGN.md §3, embedded mode).
//
// Submit/Abort/Stats/Ready may be called from any thread. Requests are validated on the
// caller's thread (vocabulary, context length, KV capacity, sampling ranges) and queued; the
// step thread picks them up before its next step. Callbacks run on the step thread with no
// engine lock held, so they may call Abort().
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "decode/generation.h"
#include "decode/scheduler.h"
#include "model/model_runner.h"

namespace strata::decode {

class Engine : public GenerationService {
 public:
  // Starts the step thread. The engine owns the runner.
  Engine(SchedulerOptions options, std::unique_ptr<model::ModelRunner> runner);
  ~Engine() override;  // Shutdown()

  Status Submit(GenerateRequest request, EventCallback on_event) override;
  void Abort(const std::string& request_id) override;
  GenerationStats Stats() const override;
  bool Ready() const override;

  // Runs `task` on the step thread before the next step, with the scheduler (disaggregated
  // roles reserve, activate and preload requests this way; the scheduler is not thread-safe).
  // Tasks must not finish requests (no events); they are dropped after Shutdown().
  using StepTask = std::function<void(Scheduler&)>;
  void Post(StepTask task);
  // Called on the step thread after each step's events were delivered (a disaggregated decode
  // instance sends the step's TokenBatch then). Set it before the first Submit/Post.
  void SetStepObserver(std::function<void()> observer) { step_observer_ = std::move(observer); }
  // The checks Submit runs (vocabulary, context, KV capacity, sampling ranges). Thread-safe.
  Status Validate(const GenerateRequest& request) const { return scheduler_.Validate(request); }

  // Stops admitting (Submit answers kUnavailable), lets the requests in flight finish for up to
  // `timeout_ms`, then aborts what is left. Returns the number of requests aborted.
  int Drain(int64_t timeout_ms);
  // Aborts everything and joins the step thread. Idempotent.
  void Shutdown();

  int64_t num_steps() const { return num_steps_.load(); }
  int64_t num_preemptions() const { return num_preemptions_.load(); }
  model::ModelRunner& runner() { return *runner_; }

 private:
  struct Incoming {
    GenerateRequest request;
    EventCallback on_event;
  };
  void Loop();

  std::unique_ptr<model::ModelRunner> runner_;
  Scheduler scheduler_;  // step thread only (Validate is const and pure)
  int max_waiting_;
  bool join_peer_steps_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Incoming> incoming_;
  std::vector<std::string> aborts_;
  std::vector<StepTask> tasks_;
  std::function<void()> step_observer_;
  bool stop_ = false;
  bool accepting_ = true;
  GenerationStats stats_;  // snapshot after each step
  int num_active_ = 0;     // submitted (queued or in the scheduler) and not finished

  std::atomic<int64_t> num_steps_{0};
  std::atomic<int64_t> num_preemptions_{0};
  std::thread thread_;
};

}  // namespace strata::decode
