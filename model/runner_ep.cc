// Expert-parallelism hooks of the runner (model_runner.h): forks for a second microbatch stream,
// expert weight access for EPLB, and the empty step of a rank with no tokens.
#include "model/runner_impl.h"

namespace strata::model {

StatusOr<std::unique_ptr<ModelRunner>> RunnerImpl::Fork(
    expert_parallel::Communicator* communicator) {
  std::unique_ptr<RunnerImpl> r(new RunnerImpl());
  r->config_ = config_;
  r->options_ = options_;
  r->options_.communicator = communicator;
  r->stats_ = stats_;
  r->weights_ = weights_;
  r->cache_ = cache_;
  r->kv_spec_ = kv_spec_;
  r->num_kv_blocks_ = num_kv_blocks_;
  r->rope_ = rope_;
  r->attention_scale_ = attention_scale_;
  r->embed_ = embed_;
  r->lm_head_ = lm_head_;
  r->final_norm_ = final_norm_;
  r->layers_ = layers_;
  r->comm_ = communicator;
  if (cuda_ != nullptr) {  // a second stream on the same GPU; null communicator: whole-device MoE
    STRATA_RETURN_IF_ERROR(r->ShareDevice(*this));
    return std::unique_ptr<ModelRunner>(std::move(r));
  }
  ops::CpuBackendOptions bo;
  bo.num_threads = options_.num_threads;
  bo.kernels = options_.kernels;
  STRATA_ASSIGN_OR_RETURN(r->backend_, ops::CreateCpuBackend(bo));
  if (!r->comm_) {
    r->owned_comm_ = expert_parallel::CreateLocalCommunicator(
        r->backend_.get(), static_cast<int>(config_.num_experts));
    r->comm_ = r->owned_comm_.get();
  }
  for (LayerWeights& L : r->layers_) {  // the copy's router must read the copy's bias
    if (L.is_moe && !L.moe.correction_bias.empty()) {
      L.moe.spec.correction_bias = L.moe.correction_bias.data();
    }
  }
  return std::unique_ptr<ModelRunner>(std::move(r));
}

std::span<const ops::MlpWeights> RunnerImpl::ExpertWeights(int layer) const {
  // A device runner holds every expert in device memory: nothing to read on the host.
  if (cuda_ != nullptr) return {};
  if (layer < 0 || layer >= static_cast<int>(layers_.size()) || !layers_[layer].is_moe) return {};
  return layers_[layer].moe.experts;
}

Status RunnerImpl::JoinMoeLayers(ForwardResult* result) {
  for (int l = 0; l < static_cast<int>(layers_.size()); ++l) {
    if (!layers_[l].is_moe) continue;
    STRATA_RETURN_IF_ERROR(cuda_ != nullptr ? MoeDeviceEp(l, 0, nullptr)
                                            : MlpForward(l, 0, nullptr));
  }
  result->vocab_size = config_.vocab_size;
  result->logits.clear();
  result->first_row.clear();
  return OkStatus();
}

}  // namespace strata::model
