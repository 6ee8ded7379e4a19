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
    out->rows.resize(choices * in.hidden_size);
    const size_t row_bytes = in.hidden_size * sizeof(float);
    for (int64_t i = 0; i < choices; ++i) {  // token order within each expert
      int64_t row = counts_[in.expert_ids[i]]++;
      out->row_of_choice[i] = static_cast<int32_t>(row);
      std::memcpy(out->rows.data() + row * in.hidden_size,
                  in.hidden + (i / in.top_k) * in.hidden_size, row_bytes);
    }
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
};

}  // namespace

std::unique_ptr<Communicator> CreateLocalCommunicator(ops::Backend* backend, int num_experts) {
  return std::make_unique<LocalCommunicator>(backend, num_experts);
}

}  // namespace strata::expert_parallel
