// Workloads: the list of requests a run sends. Every workload is a pure function of its options,
// the tokenizer and the seed (the same seed gives the same prompts, lengths and arrivals).
//
//   random          prompts of input_len tokens (uniform in [len*(1-r), len*(1+r)] with
//                   range_ratio r), output_len likewise
//   prefix          prefix_groups x prefix_requests requests; the requests of a group share a
//                   prefix of prefix_len tokens, then a random suffix of input_len tokens
//                   (range_ratio applies); shuffled
//   sharegpt:FILE   ShareGPT JSON: the first human turn is the prompt, the following gpt turn's
//                   token count the output length (or output_len when output_len_fixed);
//                   filtered and shuffled as vLLM does (lengths >= 4, prompt <= 1024,
//                   prompt + output <= 2048)
//   trace:FILE      Mooncake-style JSONL: timestamp (ms), input_length, output_length,
//                   hash_ids. Each hash id is a block of trace_block_size tokens; equal hash ids
//                   give equal text, so requests sharing leading hash ids share a prefix.
//                   Arrivals follow the timestamps (RequestSpec::arrival_s).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/driver/prompt_maker.h"
#include "bench/driver/request.h"
#include "common/status.h"

namespace strata::bench {

struct WorkloadOptions {
  std::string dataset = "random";
  int num_requests = 1000;  // how many specs to make (prefix: groups x requests instead)
  int input_len = 1024;
  int output_len = 128;
  double range_ratio = 0.0;       // [0, 1)
  bool output_len_fixed = false;  // sharegpt: use output_len instead of the gpt turn's length
  int prefix_groups = 1;
  int prefix_requests = 1;
  int prefix_len = 0;
  int trace_block_size = 512;
  uint64_t seed = 0;
};

// Checks the options alone (no files read): ranges and the dataset name.
Status ValidateWorkloadOptions(const WorkloadOptions& options);

// Builds the requests. `codec` is the model's tokenizer.
StatusOr<std::vector<RequestSpec>> BuildWorkload(const WorkloadOptions& options,
                                                 const TokenCodec& codec);

// True when the dataset carries its own arrival times (trace:).
bool DatasetHasArrivals(const std::string& dataset);

}  // namespace strata::bench
