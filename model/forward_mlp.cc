// MLP layers: dense SwiGLU and MoE (router -> Communicator dispatch -> grouped experts ->
// combine -> + shared experts).
#include "model/runner_impl.h"

namespace strata::model {

expert_parallel::DispatchInput RunnerImpl::RoutedTokens(int layer, int64_t T, int top_k) const {
  expert_parallel::DispatchInput in;
  in.hidden = x_.data();
  in.num_tokens = T;
  in.hidden_size = config_.hidden_size;
  in.expert_ids = route_ids_.data();
  in.weights = route_weights_.data();
  in.top_k = top_k;
  in.layer = layer;
  return in;
}

Status RunnerImpl::MlpForward(int layer, int64_t T, float* out) {
  const ModelConfig& c = config_;
  const LayerWeights& L = layers_[layer];
  ops::Backend& be = *backend_;
  const int64_t hidden = c.hidden_size;
  const ops::ExpertGroup all{0, 0, T};
  if (!L.is_moe) {
    be.GroupedExpertMlp(x_.data(), hidden, std::span<const ops::ExpertGroup>(&all, 1),
                        std::span<const ops::MlpWeights>(&L.mlp, 1), out);
    return OkStatus();
  }
  const MoeWeights& m = L.moe;
  const int e = m.spec.num_experts, k = m.spec.top_k;
  router_logits_.resize(T * e);
  route_ids_.resize(T * k);
  route_weights_.resize(T * k);
  ops::MatmulOutput ro{m.router, router_logits_.data(), e};
  if (T > 0) {  // T == 0: an EP rank with no tokens joining the layer's dispatch/combine
    be.Matmul(x_.data(), T, hidden, std::span<const ops::MatmulOutput>(&ro, 1));
    be.MoeRoute(router_logits_.data(), T, m.spec, route_ids_.data(), route_weights_.data());
  }
  const expert_parallel::DispatchInput in = RoutedTokens(layer, T, k);
  STRATA_RETURN_IF_ERROR(comm_->Dispatch(in, &dispatched_));
  expert_out_.resize(dispatched_.num_rows() * hidden);
  if (!dispatched_.groups.empty()) {
    be.GroupedExpertMlp(dispatched_.rows.data(), hidden, dispatched_.groups, m.experts,
                        expert_out_.data());
  }
  STRATA_RETURN_IF_ERROR(comm_->Combine(in, dispatched_, expert_out_.data(), out));
  if (m.has_shared && T > 0) {
    tmp_.resize(T * hidden);
    be.GroupedExpertMlp(x_.data(), hidden, std::span<const ops::ExpertGroup>(&all, 1),
                        std::span<const ops::MlpWeights>(&m.shared, 1), tmp_.data());
    be.Add(out, hidden, tmp_.data(), hidden, T, hidden);
  }
  return OkStatus();
}

}  // namespace strata::model
