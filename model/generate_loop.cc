#include "model/generate_loop.h"

#include <algorithm>
#include <chrono>
#include <numeric>

namespace strata::model {
namespace {

double MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

StatusOr<GenerateOutput> GenerateOne(ModelRunner& runner, const std::vector<int32_t>& prompt,
                                     const GenerateOptions& options) {
  if (prompt.empty()) return InvalidArgumentError("the prompt has no tokens");
  if (options.max_tokens < 1) return InvalidArgumentError("max_tokens must be >= 1");
  if (options.prefill_chunk_tokens < 1) {
    return InvalidArgumentError("prefill_chunk_tokens must be >= 1");
  }
  STRATA_RETURN_IF_ERROR(ops::ValidateSamplingOptions(options.sampling));
  const int64_t total = static_cast<int64_t>(prompt.size()) + options.max_tokens;
  const int32_t blocks_needed = BlocksForTokens(total, runner.block_size());
  if (blocks_needed > runner.num_kv_blocks()) {
    return ResourceExhaustedError("the KV cache holds " + std::to_string(runner.num_kv_blocks()) +
                                  " blocks; this request needs " + std::to_string(blocks_needed));
  }
  std::vector<int32_t> table(blocks_needed);
  std::iota(table.begin(), table.end(), 0);

  GenerateOutput out;
  ForwardResult result;
  auto start = std::chrono::steady_clock::now();
  for (size_t begin = 0; begin < prompt.size(); begin += options.prefill_chunk_tokens) {
    size_t end = std::min(prompt.size(), begin + options.prefill_chunk_tokens);
    ForwardBatch batch;
    batch.sequences.push_back({std::span<const int32_t>(prompt.data() + begin, end - begin),
                               static_cast<int32_t>(begin), table,
                               end == prompt.size() ? LogitsMode::kLast : LogitsMode::kNone});
    STRATA_RETURN_IF_ERROR(runner.Forward(batch, &result));
  }
  auto sample = [&]() {
    ops::SampledToken t = ops::SampleToken(result.Row(0), options.sampling, prompt, out.token_ids,
                                           out.token_ids.size());
    out.token_ids.push_back(t.token_id);
    out.sampled.push_back(std::move(t));
    return out.token_ids.back();
  };
  auto is_eos = [&](int32_t id) {
    return !options.ignore_eos &&
           std::find(options.eos_token_ids.begin(), options.eos_token_ids.end(), id) !=
               options.eos_token_ids.end();
  };
  int32_t last = sample();
  out.prefill_ms = MsSince(start);
  start = std::chrono::steady_clock::now();
  while (!is_eos(last) && static_cast<int>(out.token_ids.size()) < options.max_tokens) {
    const int32_t position = static_cast<int32_t>(prompt.size() + out.token_ids.size() - 1);
    ForwardBatch batch;
    batch.sequences.push_back(
        {std::span<const int32_t>(&out.token_ids.back(), 1), position, table, LogitsMode::kLast});
    STRATA_RETURN_IF_ERROR(runner.Forward(batch, &result));
    last = sample();
  }
  out.stopped_on_eos = is_eos(last);
  out.decode_ms = MsSince(start);
  return out;
}

}  // namespace strata::model
