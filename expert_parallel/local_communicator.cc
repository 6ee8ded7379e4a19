#include <cstring>

#include "expert_parallel/communicator.h"

namespace strata::expert_parallel {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator(ops::Backend* backend, int num_experts)
      : backend_(backend), num_experts_(num_experts) {}

  int rank() const override { return 0; }
  int size() const override { return 1; }
  int num_experts() const override { return num_experts_; }

  Status Dispatch(const DispatchInput& in, Dispatched* out) override {
    const int64_t choices = in.num_tokens * in.top_k;
    counts_.assign(num_experts_ + 1, 0);
    for (int64_t i = 0; i < choices; ++i) {
      int32_t e = in.expert_ids[i];
      if (e < 0 || e >= num_experts_) {
        return InvalidArgumentError("expert id " + std::to_string(e) + " out of range [0, " +
                                    std::to_string(num_experts_) + ")");
      }
      ++counts_[e + 1];
    }
    for (int e = 0; e < num_experts_; ++e) counts_[e + 1] += counts_[e];  // starts
    out->groups.clear();
    for (int e = 0; e < num_experts_; ++e) {
      int64_t n = counts_[e + 1] - counts_[e];
      if (n > 0) out->groups.push_back({e, counts_[e], n});
    }
    out->row_of_choice.resize(choices);
    token_of_row_.resize(choices);
    for (int64_t i = 0; i < choices; ++i) {  // token order within each expert
      int64_t row = counts_[in.expert_ids[i]]++;
      out->row_of_choice[i] = static_cast<int32_t>(row);
      token_of_row_[row] = static_cast<int32_t>(i / in.top_k);
    }
    out->rows.resize(choices * in.hidden_size);
    backend_->GatherRows(in.hidden, in.hidden_size, token_of_row_.data(), choices, in.hidden_size,
                         out->rows.data());
    return OkStatus();
  }

  Status Combine(const DispatchInput& in, const Dispatched& dispatched, const float* expert_out,
                 float* combined) override {
    backend_->WeightedCombine(expert_out, in.hidden_size, in.num_tokens, in.top_k,
                              dispatched.row_of_choice.data(), in.weights, combined);
    return OkStatus();
  }

 private:
  ops::Backend* backend_;
  int num_experts_;
  std::vector<int64_t> counts_;
  std::vector<int32_t> token_of_row_;
};

}  // namespace

std::unique_ptr<Communicator> CreateLocalCommunicator(ops::Backend* backend, int num_experts) {
  return std::make_unique<LocalCommunicator>(backend, num_experts);
}

}  // namespace strata::expert_parallel
