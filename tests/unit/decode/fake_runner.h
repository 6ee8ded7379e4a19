// A ModelRunner double for scheduler tests. Its "KV cache" stores the token id written at each
// (block, slot); a chunk's logits are a function of the tokens it reads back through the block
// table for positions [0, end). So a wrong block table, a bad prefix-cache reuse or a lost block
// after preemption changes the output, and the expected output of any request is computed by
// NextToken() over the plain token sequence.
#pragma once

#include <cmath>
#include <mutex>

#include "model/model_runner.h"
#include "ops/backend.h"

namespace strata::decode::testing {

class FakeRunner : public model::ModelRunner {
 public:
  static constexpr int64_t kVocab = 64;

  FakeRunner(int block_size, int32_t num_blocks) : num_blocks_(num_blocks) {
    config_.vocab_size = kVocab;
    config_.max_position_embeddings = 4096;
    spec_.block_size = block_size;
    kv_.assign(static_cast<size_t>(num_blocks) * block_size, -1);
    backend_ = std::move(*ops::CreateCpuBackend({}));
  }

  // The greedy next token after `seq`: never 0 (0 is the EOS of tests that want one only when
  // the sum is a multiple of 97).
  static int32_t NextToken(std::span<const int32_t> seq) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t t : seq) h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ull;
    return static_cast<int32_t>(1 + h % (kVocab - 1));
  }
  static void Logits(std::span<const int32_t> seq, float* out) {
    int32_t best = NextToken(seq);
    for (int64_t v = 0; v < kVocab; ++v) {
      out[v] = static_cast<float>(std::sin(static_cast<double>(v * 7 + seq.size())));
    }
    out[best] = 4.0f;
  }

  const model::ModelConfig& config() const override { return config_; }
  const kvcache::KvCacheSpec& kv_spec() const override { return spec_; }
  int32_t num_kv_blocks() const override { return num_blocks_; }
  const model::LoadStats& load_stats() const override { return stats_; }
  ops::Backend& backend() override { return *backend_; }

  Status Forward(const model::ForwardBatch& batch, model::ForwardResult* result) override {
    const int bs = spec_.block_size;
    result->vocab_size = kVocab;
    result->logits.clear();
    result->first_row.clear();
    max_batch_size_ = std::max(max_batch_size_, static_cast<int>(batch.sequences.size()));
    int64_t tokens = 0;
    for (const auto& c : batch.sequences) tokens += static_cast<int64_t>(c.token_ids.size());
    max_batch_tokens_ = std::max(max_batch_tokens_, tokens);
    for (size_t s = 0; s < batch.sequences.size(); ++s) {
      const auto& c = batch.sequences[s];
      int64_t end = c.start_position + static_cast<int64_t>(c.token_ids.size());
      if (c.token_ids.empty()) return InvalidArgumentError("empty chunk");
      if (static_cast<int64_t>(c.block_table.size()) * bs < end) {
        return InvalidArgumentError("block table too short for sequence " + std::to_string(s));
      }
      for (int32_t b : c.block_table) {
        if (b < 0 || b >= num_blocks_) return InvalidArgumentError("block id out of range");
      }
    }
    for (const auto& c : batch.sequences) {
      for (size_t i = 0; i < c.token_ids.size(); ++i) {
        int64_t pos = c.start_position + static_cast<int64_t>(i);
        kv_[Slot(c.block_table, pos)] = c.token_ids[i];
      }
    }
    for (const auto& c : batch.sequences) {
      if (c.logits == model::LogitsMode::kNone) {
        result->first_row.push_back(-1);
        continue;
      }
      int64_t end = c.start_position + static_cast<int64_t>(c.token_ids.size());
      std::vector<int32_t> seen(static_cast<size_t>(end));
      for (int64_t p = 0; p < end; ++p) seen[p] = kv_[Slot(c.block_table, p)];
      result->first_row.push_back(static_cast<int64_t>(result->logits.size()) / kVocab);
      // kAll: one row per chunk token, each over the tokens up to and including it.
      int64_t first = c.logits == model::LogitsMode::kAll ? c.start_position + 1 : end;
      for (int64_t row_end = first; row_end <= end; ++row_end) {
        result->logits.resize(result->logits.size() + kVocab);
        Logits(std::span<const int32_t>(seen.data(), static_cast<size_t>(row_end)),
               result->logits.data() + result->logits.size() - kVocab);
      }
      if (c.logits == model::LogitsMode::kAll) ++num_all_logits_chunks_;
    }
    return OkStatus();
  }

  int max_batch_size() const { return max_batch_size_; }
  int64_t max_batch_tokens() const { return max_batch_tokens_; }
  int num_all_logits_chunks() const { return num_all_logits_chunks_; }

 private:
  size_t Slot(std::span<const int32_t> table, int64_t pos) const {
    const int bs = spec_.block_size;
    return static_cast<size_t>(table[pos / bs]) * bs + static_cast<size_t>(pos % bs);
  }

  model::ModelConfig config_;
  kvcache::KvCacheSpec spec_;
  model::LoadStats stats_;
  int32_t num_blocks_;
  std::vector<int32_t> kv_;
  std::unique_ptr<ops::Backend> backend_;
  int max_batch_size_ = 0;
  int64_t max_batch_tokens_ = 0;
  int num_all_logits_chunks_ = 0;
};

// The greedy output the model gives for `prompt`, computed without any cache.
inline std::vector<int32_t> ReferenceGreedy(std::vector<int32_t> prompt, int max_tokens,
                                            int32_t eos = -1) {
  std::vector<int32_t> out;
  for (int i = 0; i < max_tokens; ++i) {
    int32_t t = FakeRunner::NextToken(prompt);
    out.push_back(t);
    prompt.push_back(t);
    if (t == eos) break;
  }
  return out;
}

}  // namespace strata::decode::testing
