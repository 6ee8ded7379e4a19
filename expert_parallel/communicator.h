// expert_parallel::Communicator: how an MoE layer's tokens reach the experts that compute them
// and come back (DESIGN.md §4). The forward always goes through it, even at EP=1, so expert
// parallelism and microbatching plug in without forking the forward:
//
//   route (ops::Backend::MoeRoute) -> Dispatch -> GroupedExpertMlp on the rows this rank got
//   -> Combine -> (+ shared experts)
//
// Dispatch gathers, for this rank's experts, one row per (token, chosen expert) pair, grouped by
// expert (ExpertGroup.expert is the expert id the rank's weights are indexed by). Combine takes
// the expert outputs of those rows and writes, for every local token, the sum over its top_k
// choices in top-k order of weight * expert output (ops::Backend::WeightedCombine), so the
// result of a token never depends on the other tokens of the batch.
// Thread-safety: one MoE layer at a time per communicator (the forward's thread).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "ops/backend.h"

namespace strata::expert_parallel {

struct DispatchInput {
  const float* hidden = nullptr;  // [num_tokens, hidden_size]
  int64_t num_tokens = 0;
  int64_t hidden_size = 0;
  const int32_t* expert_ids = nullptr;  // [num_tokens, top_k], best first
  const float* weights = nullptr;       // [num_tokens, top_k]
  int top_k = 0;
  int layer = 0;  // the model layer index (placement and load statistics are per layer)
};

// What this rank computes. Filled by Dispatch; read by the caller and by Combine.
struct Dispatched {
  std::vector<float> rows;               // [num_rows, hidden_size]
  std::vector<ops::ExpertGroup> groups;  // rows of each local expert, by expert id
  std::vector<int32_t> row_of_choice;    // [num_tokens * top_k] (implementation bookkeeping)
  int64_t num_rows() const {
    return groups.empty() ? 0 : groups.back().row_begin + groups.back().num_rows;
  }
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int num_experts() const = 0;
  // Fails with kInvalidArgument when an expert id is out of range.
  virtual Status Dispatch(const DispatchInput& in, Dispatched* out) = 0;
  // expert_out: [out.num_rows(), hidden_size] outputs for dispatched.rows. Writes
  // combined [in.num_tokens, hidden_size].
  virtual Status Combine(const DispatchInput& in, const Dispatched& dispatched,
                         const float* expert_out, float* combined) = 0;
};

// Other implementations: EpEndpoint::NewCommunicator (ep_endpoint.h: any EP size over a
// transport::Transport, INT8/BF16 dispatch, BF16 combine) and, with CUDA, the NCCL communicator
// (nccl_communicator.h).

// EP = 1: every expert is local; dispatch is a gather sorted by expert (tokens in order within
// an expert), combine a weighted sum on `backend` (not owned, must outlive the communicator).
std::unique_ptr<Communicator> CreateLocalCommunicator(ops::Backend* backend, int num_experts);

}  // namespace strata::expert_parallel
