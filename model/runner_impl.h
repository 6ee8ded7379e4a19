// Internal to the forward: the ModelRunner implementation shared by model_runner.cc (load,
// batch bookkeeping), forward_attention.cc (GQA, MLA) and forward_mlp.cc (dense, MoE).
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "expert_parallel/communicator.h"
#include "kvcache/kv_cache.h"
#include "model/model_runner.h"
#include "model/weight_loader.h"
#include "ops/cuda/cuda_backend.h"

namespace strata::model {

// RoPE frequencies of `config` (default, YaRN or Llama 3 scaling), as transformers computes them.
ops::RopeTable MakeRopeTable(const ModelConfig& config);

struct GqaWeights {
  ops::WeightView q, k, v, o;
  std::vector<float> q_bias, k_bias, v_bias, o_bias;  // empty without attention_bias
  std::vector<float> q_norm, k_norm;                  // Qwen3: per-head RMSNorm
};

struct MlaWeights {
  bool has_q_lora = false;
  ops::WeightView q_a, q_b, q;  // q_a/q_b with q_lora_rank, else q
  std::vector<float> q_a_norm;
  ops::WeightView kv_a;  // [kv_lora + rope, hidden]
  std::vector<float> kv_a_norm;
  ops::WeightView kv_b;               // [heads * (nope + v), kv_lora]
  std::vector<ops::WeightView> uk_t;  // per head [kv_lora, nope]: k_nope rows of kv_b, transposed
  std::vector<ops::WeightView> uv;    // per head [v, kv_lora]: v rows of kv_b
  ops::WeightView o;
};

struct MoeWeights {
  ops::WeightView router;  // f32 [experts, hidden]
  std::vector<float> correction_bias;
  ops::RouterSpec spec;
  std::vector<ops::MlpWeights> experts;
  bool has_shared = false;
  ops::MlpWeights shared;
};

struct LayerWeights {
  std::vector<float> input_norm, post_norm;
  GqaWeights gqa;
  MlaWeights mla;
  bool is_moe = false;
  ops::MlpWeights mlp;
  MoeWeights moe;
};

// Per-batch token bookkeeping, built once per Forward.
struct BatchTokens {
  std::vector<int32_t> ids;
  std::vector<int32_t> positions;
  std::vector<int32_t> num_keys;                 // position + 1
  std::vector<std::span<const int32_t>> tables;  // per token
  std::vector<int64_t> cache_offsets;            // per token, inside a layer array
  std::vector<int64_t> chunk_begin;              // per sequence: first token index
  int64_t num_tokens() const { return static_cast<int64_t>(ids.size()); }
};

class RunnerImpl final : public ModelRunner {
 public:
  static StatusOr<std::unique_ptr<ModelRunner>> Create(const std::string& dir,
                                                       const RunnerOptions& options);

  const ModelConfig& config() const override { return config_; }
  ~RunnerImpl() override;
  const kvcache::KvCacheSpec& kv_spec() const override { return kv_spec_; }
  int32_t num_kv_blocks() const override { return num_kv_blocks_; }
  const LoadStats& load_stats() const override { return stats_; }
  ops::Backend& backend() override { return *backend_; }
  Status Forward(const ForwardBatch& batch, ForwardResult* result) override;
  kvcache::PagedKvCache* host_kv_cache() override { return cache_.get(); }
  StatusOr<std::unique_ptr<ModelRunner>> Fork(expert_parallel::Communicator* communicator) override;
  std::span<const ops::MlpWeights> ExpertWeights(int layer) const override;

 private:
  RunnerImpl() = default;
  Status LoadWeights(const RunnerOptions& options);
  Status LoadGqa(int layer, GqaWeights* w);
  Status LoadMla(int layer, MlaWeights* w);
  Status LoadMlp(const std::string& prefix, int64_t inter, bool mixtral_names, bool transposed,
                 ops::MlpWeights* w);
  Status LoadMoe(int layer, MoeWeights* w);
  // Copies every matmul weight into the backend's tile layout (Backend::PackWeight); the
  // embedding table and f32 router weights stay as they are.
  void PackWeights();
  Status Validate(const ForwardBatch& batch) const;
  int64_t KvOffset(int32_t block, int slot) const {
    return (static_cast<int64_t>(block) * kv_spec_.block_size + slot) * kv_spec_.TokenElements();
  }

  // Device path (forward_device.cc): uploads the weights and allocates the KV cache at load;
  // the forward mirrors the CPU one with every tensor in device memory.
  Status InitDevice();
  // A fork's device state: its own backend (stream) and workspace, the parent's weights, KV
  // cache and expert tables.
  Status ShareDevice(const RunnerImpl& parent);
  StatusOr<void*> DeviceCopy(const void* host, size_t bytes);
  Status UploadView(ops::WeightView* w);
  Status UploadVector(const std::vector<float>& v);
  const float* Dev(const std::vector<float>& v) const;
  ops::KvLayerView DeviceLayerView(int layer) const;
  struct DevBuffer {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  template <typename T>
  StatusOr<T*> Work(DevBuffer& b, int64_t n);
  Status ForwardDevice(const ForwardBatch& batch, const BatchTokens& bt, ForwardResult* result);
  Status GqaDevice(int layer, const BatchTokens& bt, float* out);
  Status MlaDevice(int layer, const ForwardBatch& batch, const BatchTokens& bt, float* out);
  Status MlpDevice(int layer, int64_t num_tokens, float* out);
  // The routed experts of a device forward under expert parallelism: routing on the device,
  // dispatch/combine through comm_ in host memory, the rank's experts on the device.
  Status MoeDeviceEp(int layer, int64_t num_tokens, float* out);

  // Each reads x_ [T, hidden] and writes out [T, hidden].
  void GqaForward(int layer, const BatchTokens& bt, float* out);
  void MlaForward(int layer, const ForwardBatch& batch, const BatchTokens& bt, float* out);
  Status MlpForward(int layer, int64_t num_tokens, float* out);
  // The dispatch input of a MoE layer: x_ [T, hidden] routed to route_ids_ / route_weights_.
  expert_parallel::DispatchInput RoutedTokens(int layer, int64_t num_tokens, int top_k) const;
  // An empty batch under expert parallelism: every MoE layer's dispatch/combine with no tokens.
  Status JoinMoeLayers(ForwardResult* result);

  ModelConfig config_;
  RunnerOptions options_;
  LoadStats stats_;
  std::unique_ptr<ops::Backend> backend_;
  std::shared_ptr<WeightLoader> weights_;         // shared with forks
  std::shared_ptr<kvcache::PagedKvCache> cache_;  // CPU only; shared with forks
  kvcache::KvCacheSpec kv_spec_;
  int32_t num_kv_blocks_ = 0;
  std::unique_ptr<expert_parallel::Communicator> owned_comm_;  // the local one, if used
  expert_parallel::Communicator* comm_ = nullptr;
  ops::RopeTable rope_;
  float attention_scale_ = 1.0f;

  ops::WeightView embed_, lm_head_;
  std::vector<float> final_norm_;
  std::vector<LayerWeights> layers_;

  // Workspace, reused across batches.
  std::vector<float> h_, x_, attn_, mlp_, tmp_;
  std::vector<float> q_, k_, v_, heads_, qa_, kv_;
  std::vector<float> qd_, qlat_, olat_, od_, lat_, kvb_;
  std::vector<bf16> kexp_, vexp_;
  std::vector<int64_t> row_offsets_;
  std::vector<float> router_logits_, route_weights_, expert_out_;
  std::vector<int32_t> route_ids_;
  expert_parallel::Dispatched dispatched_;

  // Device state (null / empty on the CPU).
  ops::CudaBackend* cuda_ = nullptr;
  std::vector<void*> device_allocs_;                        // weights, KV; freed with the runner
  std::unordered_map<const float*, const float*> dev_vec_;  // host vector -> its device copy
  std::vector<bf16*> dev_k_, dev_v_;                        // per layer (MLA: k only)
  std::vector<std::shared_ptr<ops::DeviceExperts>> dev_experts_;  // per layer, null if dense
  const int32_t* dev_iota_ = nullptr;                             // 0, 1, 2, ...
  int64_t dev_iota_n_ = 0;
  const float* d_x_ = nullptr;  // x_ on the device during ForwardDevice
  const int32_t* d_pos_ = nullptr;
  const int64_t* d_off_ = nullptr;
  DevBuffer w_ids_, w_pos_, w_off_, w_h_, w_x_, w_attn_, w_mlp_, w_tmp_, w_q_, w_k_, w_v_, w_heads_,
      w_qa_, w_kv_, w_qd_, w_qlat_, w_olat_, w_od_, w_lat_, w_kvb_, w_kexp_, w_vexp_, w_router_,
      w_rows_, w_logits_, w_idx_, w_eoff_, w_ep_ids_, w_ep_weights_, w_ep_rows_, w_ep_out_;
};

}  // namespace strata::model
