// EpEndpoint::BeginStep: the per-step exchange and the EPLB placement swap.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "expert_parallel/ep_endpoint_impl.h"

namespace strata::expert_parallel {

StatusOr<StepInfo> EpEndpoint::BeginStep(int64_t num_tokens, bool stop) {
  Impl& im = *impl_;
  const int rank = options_.rank, size = options_.size;
  STRATA_RETURN_IF_ERROR(im.FailedStatus());
  StepMessage mine{im.step, num_tokens, im.ready_version.load(), stop ? 1u : 0u};
  if (im.collective) {  // one all-to-all of the step records
    std::vector<StepMessage> out(size, mine), in(size);
    std::vector<size_t> out_bytes(size, sizeof(StepMessage)), in_bytes(size, 0);
    int64_t wait_ns = 0;
    Status st = im.collective->AllToAll(reinterpret_cast<const uint8_t*>(out.data()),
                                        reinterpret_cast<uint8_t*>(in.data()), sizeof(StepMessage),
                                        out_bytes.data(), in_bytes.data(), nullptr, &wait_ns);
    if (!st.ok()) {
      im.Fail(st);
      return st;
    }
    std::lock_guard<std::mutex> lock(im.mu);
    for (int r = 0; r < size; ++r) {
      if (r != rank && in_bytes[r] == sizeof(StepMessage)) im.step_messages[r].push_back(in[r]);
    }
  }
  for (int r = 0; r < size && !im.collective; ++r) {
    if (r == rank) continue;
    Status st = im.transport->Send(im.peers[r], kEpStep,
                                   std::string(reinterpret_cast<const char*>(&mine), sizeof(mine)));
    if (!st.ok()) {
      im.Fail(st);
      return st;
    }
  }
  StepInfo info;
  info.step = im.step;
  info.max_tokens = num_tokens;
  info.total_tokens = num_tokens;
  info.stop = stop;
  uint64_t min_ready = mine.ready_version;
  {
    const auto deadline = transport::DeadlineAfterMillis(options_.timeout_ms);
    std::unique_lock<std::mutex> lock(im.mu);
    for (int r = 0; r < size; ++r) {
      if (r == rank) continue;
      auto& q = im.step_messages[r];
      while (q.empty() && im.failed.ok()) {
        if (im.cv.wait_until(lock, deadline) == std::cv_status::timeout && q.empty()) {
          im.failed = DeadlineExceededError("EP rank " + std::to_string(rank) + ": step " +
                                            std::to_string(im.step) +
                                            " timed out waiting for rank " + std::to_string(r));
          im.cv.notify_all();
        }
      }
      if (q.empty()) return im.failed;
      StepMessage s = q.front();
      q.pop_front();
      if (s.step != im.step) {
        im.failed = DataLossError("EP rank " + std::to_string(rank) + ": rank " +
                                  std::to_string(r) + " is at step " + std::to_string(s.step) +
                                  ", this rank at " + std::to_string(im.step));
        im.cv.notify_all();
        return im.failed;
      }
      info.max_tokens = std::max(info.max_tokens, s.num_tokens);
      info.total_tokens += s.num_tokens;
      info.stop = info.stop || s.stop != 0;
      min_ready = std::min(min_ready, s.ready_version);
    }
    // Every rank saw the same records: the same decisions follow on every rank.
    if (im.pending && min_ready >= im.pending->version()) {
      im.placement = std::move(im.pending);
      im.pending.reset();
      info.swapped = true;
      std::fill(im.stats.received_since_swap.begin(), im.stats.received_since_swap.end(), 0);
      ++im.stats.swaps;
      im.stats.placement_version = im.placement->version();
    }
    info.placement_version = im.placement->version();
  }
  ++im.step;
  if (info.stop && im.transport) {
    // Leave together: a rank that closed its connections as soon as it saw the stop would fail
    // the ranks still waiting for this step's records. Each says bye once it has them all and
    // waits (bounded) for everyone's; the stop step succeeds either way (the work is done).
    {
      std::lock_guard<std::mutex> lock(im.mu);
      im.stopping = true;
    }
    for (int r = 0; r < size; ++r) {
      if (r != rank) (void)im.transport->Send(im.peers[r], kEpBye, std::string());
    }
    const auto deadline = transport::DeadlineAfterMillis(options_.timeout_ms);
    std::unique_lock<std::mutex> lock(im.mu);
    auto all_said_bye = [&] {
      for (int r = 0; r < size; ++r) {
        if (r != rank && !im.bye_from[r]) return false;
      }
      return true;
    };
    while (!all_said_bye() && im.failed.ok()) {
      if (im.cv.wait_until(lock, deadline) == std::cv_status::timeout) break;
    }
    if (!all_said_bye()) {
      log::Warn("EP rank {}: not every rank said bye after the stop step", rank);
    }
    return info;
  }
  if (info.swapped) {
    log::Info("EP rank {}: placement version {} in use from step {}", rank, info.placement_version,
              info.step);
  }
  // EPLB: plan from the window that ended with the previous step. The counts are the same on
  // every rank (all histograms travel to all ranks), so is the plan.
  if (options_.eplb_window_steps > 0 && !info.stop) {
    ++im.steps_in_window;
    bool busy = im.pending != nullptr;
    if (!busy && im.steps_in_window > options_.eplb_window_steps) {
      ExpertLoad window;
      std::shared_ptr<const Placement> current;
      {
        std::lock_guard<std::mutex> lock(im.mu);
        window = im.window_load;
        // Older windows keep half their weight: plans follow the recent load without
        // forgetting it at once (an exponential moving average over windows).
        for (int64_t& c : im.window_load.counts) c /= 2;
        current = im.placement;
      }
      im.steps_in_window = 1;
      STRATA_ASSIGN_OR_RETURN(Placement plan, PlanPlacement(window, size, current->num_slots(),
                                                            current->version() + 1));
      // Swap only for a real gain: the worst layer's predicted max/mean load must drop by 2%.
      double ratio_now = 1.0, ratio_next = 1.0;
      for (int l = 0; l < options_.num_layers; ++l) {
        if (window.LayerTotal(l) == 0) continue;
        ratio_now = std::max(ratio_now, MaxMeanRatio(PredictedRankLoads(*current, window, l)));
        ratio_next = std::max(ratio_next, MaxMeanRatio(PredictedRankLoads(plan, window, l)));
      }
      if (ratio_next < ratio_now * 0.98) {
        auto next = std::make_shared<const Placement>(std::move(plan));
        if (im.prep_thread.joinable()) im.prep_thread.join();
        {
          std::lock_guard<std::mutex> lock(im.mu);
          im.pending = next;
        }
        Impl* p = &im;
        im.prep_thread = std::thread([p, next, rank] {
          Status st = p->preparer ? p->preparer(*next, rank) : OkStatus();
          if (!st.ok()) {
            p->Fail(st);
            return;
          }
          p->ready_version.store(next->version());
        });
      }
    }
  }
  return info;
}

}  // namespace strata::expert_parallel
