// model::ModelRunner: loads a Hugging Face checkpoint directory and runs the forward pass of
// batches that mix prefill chunks and decode tokens over a paged KV cache (DESIGN.md §4).
//
// Supported: DeepseekV3ForCausalLM (MLA, YaRN, DeepSeekMoE, FP8 block weights dequantized to
// bf16 at load), Qwen3MoeForCausalLM, MixtralForCausalLM, LlamaForCausalLM, Qwen3ForCausalLM.
// Weights stay bf16 (mmap'd as is when the file is bf16; converted once otherwise);
// activations are f32; the KV cache is bf16.
//
// KV ownership: the runner owns the KV storage (num_kv_blocks() blocks of block_size() tokens).
// Which block holds what is the caller's business: it allocates block ids from a
// kvcache::BlockPool(num_kv_blocks()) and passes each sequence's block table. A chunk writes the
// KV of its tokens at positions [start_position, start_position + n) and reads positions
// [0, start_position + n) of the same table, so the blocks covering earlier positions must
// hold what earlier chunks (or a prefix-cache hit with equal tokens) wrote there.
//
// Determinism: logits of a sequence are bit-identical whatever the other sequences of the batch
// and whatever num_threads (DESIGN.md §6). Decode tokens (chunks of one token) and longer prefill
// chunks take different MLA paths (absorbed vs naive), so a token's logits depend on the chunk
// length it was computed in, never on the batch.
// Thread-safety: Forward() runs one batch at a time; call it from one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "kvcache/kv_cache.h"
#include "model/model_config.h"
#include "ops/backend.h"

namespace strata::expert_parallel {
class Communicator;
}

namespace strata::model {

// Test-only deliberate layout mistakes (DESIGN.md §5 sensitivity tests). Never set in serving.
enum class ForwardMistake {
  kNone,
  kRopeLayout,       // rotate interleaved pairs instead of halves, or the reverse
  kSwapGateUp,       // gate_proj and up_proj swapped in every MLP and expert
  kTransposeExpert,  // each expert's down_proj read as if stored transposed (dense MLP if none)
};

struct RunnerOptions {
  // Where the forward runs: "cpu" (default), "cuda" or "cuda:N" (device N). On a device every
  // weight (bf16), activation and the KV cache live in device memory; logits are copied back.
  // Load returns kUnavailable when the build has no CUDA or the device is missing.
  std::string device = "cpu";
  int num_threads = 1;
  ops::CpuKernels kernels = ops::CpuKernels::kAuto;
  int kv_block_size = 16;
  // KV blocks to allocate; 0 = as many as fit in kv_cache_bytes.
  int32_t num_kv_blocks = 0;
  int64_t kv_cache_bytes = int64_t{1} << 30;
  // Touch every mmap'd weight page at load so the first forward does not fault them in.
  bool prefault_weights = true;
  ForwardMistake mistake = ForwardMistake::kNone;
  // Expert parallelism (expert_parallel/, DESIGN.md §4): the MoE layers' communicator (not
  // owned; must outlive the runner). Null: a local EP=1 communicator (exact f32). With one set,
  // Forward also takes an empty batch: the rank then joins every MoE layer's dispatch and
  // combine with no tokens (EP ranks run in lock-step) and returns no logits.
  expert_parallel::Communicator* communicator = nullptr;
};

enum class LogitsMode { kNone, kLast, kAll };

struct SequenceChunk {
  std::span<const int32_t> token_ids;    // the new tokens, at least one
  int32_t start_position = 0;            // tokens of this sequence already in the KV cache
  std::span<const int32_t> block_table;  // covers start_position + token_ids.size() tokens
  LogitsMode logits = LogitsMode::kLast;
};

struct ForwardBatch {
  std::vector<SequenceChunk> sequences;
  // Called on the forward's thread as soon as layer `layer`'s KV of every chunk is written (the
  // prefill instance starts pushing that layer to decode while later layers compute). Optional.
  std::function<void(int layer)> on_layer_kv_written;
};

struct ForwardResult {
  int64_t vocab_size = 0;
  // Rows of logits, sequence by sequence: kLast gives one row (the chunk's last token), kAll one
  // per token, kNone none.
  std::vector<float> logits;
  std::vector<int64_t> first_row;  // per sequence: its first row, or -1 with kNone

  // Logits of sequence `seq`, row `i` of its rows (kLast: i = 0).
  std::span<const float> Row(size_t seq, int64_t i = 0) const {
    return {logits.data() + (first_row[seq] + i) * vocab_size, static_cast<size_t>(vocab_size)};
  }
};

struct LoadStats {
  double load_ms = 0;
  int64_t weight_bytes = 0;  // every weight the forward reads
  // Weight bytes one decode token reads: attention, dense MLPs, top-k routed + shared experts of
  // every layer, router, the lm_head row block (all of it) and one embedding row.
  int64_t decode_bytes_per_token = 0;
  // Multiply-adds per token in linear layers (the same weights), for FLOP figures.
  int64_t macs_per_token = 0;
};

class ModelRunner {
 public:
  // Reads config.json and the safetensors of `dir`; kInvalidArgument / kNotFound / kDataLoss
  // with the file and tensor named when something is missing, mis-shaped or unsupported.
  static StatusOr<std::unique_ptr<ModelRunner>> Load(const std::string& dir,
                                                     const RunnerOptions& options);
  virtual ~ModelRunner() = default;

  virtual const ModelConfig& config() const = 0;
  virtual const kvcache::KvCacheSpec& kv_spec() const = 0;
  virtual int32_t num_kv_blocks() const = 0;
  int block_size() const { return kv_spec().block_size; }
  virtual const LoadStats& load_stats() const = 0;
  virtual ops::Backend& backend() = 0;

  // Runs one batch. kInvalidArgument (naming the sequence) for an empty chunk, a token id out of
  // the vocabulary, a position past max_position_embeddings, a block table too short or with ids
  // outside [0, num_kv_blocks()). On error nothing was written to the KV cache.
  virtual Status Forward(const ForwardBatch& batch, ForwardResult* result) = 0;
  // The paged KV storage when it is in host memory (the CPU device), for moving blocks to and
  // from other processes (kvcache/kv_transfer.h); null when it lives in device memory.
  virtual kvcache::PagedKvCache* host_kv_cache() { return nullptr; }

  // --- Expert parallelism hooks (used by expert_parallel/group; implemented in runner_ep.cc).
  // A runner that shares this one's weights and KV cache but has its own workspace, backend and
  // `communicator` (not owned; null: local): a second microbatch stream. The two may run Forward
  // at the same time on disjoint sequences (disjoint KV blocks) provided only one of them runs
  // backend ops at a time (the communicators hand over an expert_parallel::ComputeGate while
  // they wait). The fork must not outlive this runner. Runners that cannot share their state
  // this way (test doubles) keep the default: kFailedPrecondition.
  virtual StatusOr<std::unique_ptr<ModelRunner>> Fork(expert_parallel::Communicator* communicator) {
    (void)communicator;
    return FailedPreconditionError("this ModelRunner cannot be forked (microbatching needs it)");
  }
  // Routed experts' weights of `layer` in host memory, by expert id (empty for a dense layer, a
  // device runner, and by default: a runner that exposes none).
  virtual std::span<const ops::MlpWeights> ExpertWeights(int layer) const {
    (void)layer;
    return {};
  }
  // Lock-step runners (a data-parallel EP rank): true when a peer rank has begun a step this
  // runner must join; its driver then calls Forward soon, with an empty batch if it has nothing
  // to run. `wake` (null: none) runs on another thread whenever that may have become true; it
  // must only notify the driver. Plain runners: never.
  virtual bool PeerStepPending() const { return false; }
  virtual void SetPeerStepWake(std::function<void()> wake) { (void)wake; }
};

// RunnerOptions::device "cuda" -> 0, "cuda:N" -> N; kInvalidArgument otherwise ("cpu" too).
StatusOr<int> ParseCudaDevice(const std::string& device);

// Blocks needed to hold `num_tokens` tokens.
inline int32_t BlocksForTokens(int64_t num_tokens, int block_size) {
  return static_cast<int32_t>((num_tokens + block_size - 1) / block_size);
}

}  // namespace strata::model
