#include "expert_parallel/group/ep_runner.h"

#include <thread>

#include "model/model_config.h"

namespace strata::expert_parallel {

StatusOr<std::unique_ptr<EpRunner>> EpRunner::Create(const std::string& model_dir,
                                                     model::RunnerOptions runner_options,
                                                     std::unique_ptr<EpEndpoint> endpoint,
                                                     EpRunnerOptions options) {
  std::unique_ptr<EpRunner> r(new EpRunner());
  r->options_ = options;
  r->gate_ = std::make_unique<ComputeGate>();
  r->comm0_ = endpoint->NewCommunicator(0, r->gate_.get());
  if (endpoint->options().num_streams > 1) {
    r->comm1_ = endpoint->NewCommunicator(1, r->gate_.get());
  } else {
    r->options_.microbatch = false;
  }
  r->endpoint_ = std::move(endpoint);
  runner_options.communicator = r->comm0_.get();
  STRATA_ASSIGN_OR_RETURN(r->runner_, model::ModelRunner::Load(model_dir, runner_options));
  const model::ModelConfig& c = r->runner_->config();
  const EpOptions& eo = r->endpoint_->options();
  if (c.hidden_size != eo.hidden || c.num_experts != eo.num_experts ||
      c.num_experts_per_tok != eo.top_k || c.NumLayers() != eo.num_layers) {
    return InvalidArgumentError("EP: the endpoint was built for another model shape");
  }
  if (r->comm1_) {
    STRATA_ASSIGN_OR_RETURN(r->fork_, r->runner_->Fork(r->comm1_.get()));
  }
  model::ModelRunner* runner = r->runner_.get();
  r->endpoint_->SetExpertPreparer(
      [runner](const Placement& p, int rank) { return PrefaultExperts(*runner, p, rank); });
  return r;
}

EpRunner::~EpRunner() {
  endpoint_->SetStepListener(nullptr);  // its driver is gone
  // A leader that goes away tells the group to stop first (workers then exit cleanly).
  if (!stopped_) (void)Stop();
  // The endpoint goes last: runners and communicators use it.
  fork_.reset();
  runner_.reset();
  comm1_.reset();
  comm0_.reset();
}

Status EpRunner::Forward(const model::ForwardBatch& batch, model::ForwardResult* result) {
  if (stopped_) return CancelledError("EP group stopped");
  int64_t tokens = 0;
  for (const auto& s : batch.sequences) tokens += static_cast<int64_t>(s.token_ids.size());
  STRATA_ASSIGN_OR_RETURN(StepInfo info, endpoint_->BeginStep(tokens, false));
  if (info.stop) {
    stopped_ = true;
    return CancelledError("EP group stopped by another rank");
  }
  return RunStep(batch, info, result);
}

Status EpRunner::ServeUntilStop() {
  model::ForwardBatch empty;
  model::ForwardResult result;
  while (!stopped_) {
    STRATA_ASSIGN_OR_RETURN(StepInfo info, endpoint_->BeginStep(0, false));
    if (info.stop) {
      stopped_ = true;
      break;
    }
    STRATA_RETURN_IF_ERROR(RunStep(empty, info, &result));
  }
  return OkStatus();
}

Status EpRunner::Stop() {
  if (stopped_) return OkStatus();
  stopped_ = true;
  return endpoint_->BeginStep(0, true).status();
}

Status EpRunner::RunStep(const model::ForwardBatch& batch, const StepInfo& info,
                         model::ForwardResult* result) {
  ++steps_;
  const bool split = options_.microbatch && info.max_tokens >= options_.microbatch_min_tokens;
  if (!split) {
    gate_->Acquire();
    Status st = runner_->Forward(batch, result);
    gate_->Release();
    return st;
  }
  ++microbatched_steps_;
  // Split by whole sequences at about half the tokens (a chunk's tokens stay together: MLA's
  // path depends on the chunk length).
  int64_t total = 0, half = 0;
  for (const auto& s : batch.sequences) total += static_cast<int64_t>(s.token_ids.size());
  size_t cut = 0;
  while (cut < batch.sequences.size() && 2 * half < total) {
    half += static_cast<int64_t>(batch.sequences[cut++].token_ids.size());
  }
  model::ForwardBatch mb0, mb1;
  mb0.sequences.assign(batch.sequences.begin(), batch.sequences.begin() + cut);
  mb1.sequences.assign(batch.sequences.begin() + cut, batch.sequences.end());
  Status st1;
  std::thread second([&] {
    gate_->Acquire();
    st1 = fork_->Forward(mb1, &result1_);
    gate_->Release();
  });
  gate_->Acquire();
  Status st0 = runner_->Forward(mb0, result);
  gate_->Release();
  second.join();
  STRATA_RETURN_IF_ERROR(st0);
  STRATA_RETURN_IF_ERROR(st1);
  // Rows of microbatch 1 follow those of microbatch 0, as the sequences do.
  const int64_t rows0 = static_cast<int64_t>(result->logits.size()) /
                        std::max<int64_t>(1, runner_->config().vocab_size);
  result->vocab_size = runner_->config().vocab_size;
  result->logits.insert(result->logits.end(), result1_.logits.begin(), result1_.logits.end());
  for (int64_t f : result1_.first_row) result->first_row.push_back(f < 0 ? -1 : f + rows0);
  return OkStatus();
}

EpRunnerStats EpRunner::stats() const {
  EpRunnerStats s;
  s.steps = steps_;
  s.microbatched_steps = microbatched_steps_;
  s.ep = endpoint_->stats();
  s.overlap = gate_->stats();
  return s;
}

void EpRunner::ResetStats() {
  steps_ = 0;
  microbatched_steps_ = 0;
  endpoint_->ResetStats();
  gate_->ResetStats();
}

Status PrefaultExperts(const model::ModelRunner& runner, const Placement& placement, int rank) {
  volatile uint8_t sink = 0;
  for (int l = 0; l < placement.num_layers(); ++l) {
    auto experts = runner.ExpertWeights(l);
    if (experts.empty()) continue;
    for (int32_t e : placement.ExpertsOnRank(l, rank)) {
      if (e < 0 || e >= static_cast<int32_t>(experts.size())) {
        return InvalidArgumentError("EP placement names expert " + std::to_string(e) +
                                    "; the model has " + std::to_string(experts.size()));
      }
      for (const ops::WeightView* w : {&experts[e].gate, &experts[e].up, &experts[e].down}) {
        const auto* p = static_cast<const uint8_t*>(w->data);
        const int64_t bytes = w->rows * w->cols * static_cast<int64_t>(ops::DTypeSize(w->dtype));
        uint8_t acc = 0;
        for (int64_t i = 0; i < bytes; i += 4096) acc ^= p[i];
        sink = sink ^ acc;
      }
    }
  }
  (void)sink;
  return OkStatus();
}

}  // namespace strata::expert_parallel
