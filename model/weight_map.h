// The Hugging Face tensor names and shapes of each architecture, given its ModelConfig, and a
// check that a checkpoint holds exactly those.
//
// Names are the ones in the checkpoints on the Hub (per-expert tensors, not fused), e.g.
//   DeepSeek-V3  model.layers.{i}.self_attn.{q_a_proj,q_a_layernorm,q_b_proj | q_proj,
//                kv_a_proj_with_mqa,kv_a_layernorm,kv_b_proj,o_proj}.weight
//                model.layers.{i}.mlp.gate.weight, mlp.gate.e_score_correction_bias (noaux_tc),
//                mlp.experts.{e}.{gate,up,down}_proj.weight, mlp.shared_experts.{...}.weight
//   Qwen3(-MoE)  self_attn.{q,k,v,o}_proj.weight, self_attn.{q,k}_norm.weight,
//                mlp.gate.weight, mlp.experts.{e}.{gate,up,down}_proj.weight
//   Mixtral      block_sparse_moe.gate.weight, block_sparse_moe.experts.{e}.{w1,w2,w3}.weight
//                (w1 = gate, w2 = down, w3 = up)
// Shapes are PyTorch's [out_features, in_features] for linear weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace strata::model {

enum class TensorRole {
  kEmbedding,   // model.embed_tokens.weight
  kLmHead,      // lm_head.weight
  kNorm,        // RMSNorm weights (layer norms, q/k norms, latent norms, final norm)
  kLinear,      // projection weights inside decoder layers (attention, MLP, experts)
  kBias,        // linear biases (attention_bias)
  kRouter,      // router weight (mlp.gate.weight / block_sparse_moe.gate.weight)
  kRouterBias,  // DeepSeek e_score_correction_bias (float32 in checkpoints)
};

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  TensorRole role = TensorRole::kLinear;
  int64_t layer = -1;   // decoder layer, -1 outside layers
  int64_t expert = -1;  // routed expert index, -1 otherwise
  // Stored as F8_E4M3 with a `<name>_scale_inv` when the config has FP8 quantization
  // (DeepSeek-V3: every kLinear weight; never embeddings, norms, router, lm_head, biases).
  bool fp8_quantized = false;
};

// Every tensor a checkpoint of `config` holds, in a stable order (embeddings, layers in order,
// final norm, lm_head). FP8 scales are not listed; see ExpectedScaleInvShape().
std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& config);

// Shape of the scale_inv of an fp8 weight of shape [rows, cols].
std::vector<int64_t> ExpectedScaleInvShape(const std::vector<int64_t>& weight_shape,
                                           const Fp8Quantization& quantization);

// Checks that `model` holds exactly the tensors of ExpectedTensors(config): reports every
// missing, unexpected and wrong-shaped (or wrong-dtype) tensor in one InvalidArgument Status.
// Ignored: rotary `inv_freq` buffers and DeepSeek MTP layers (layers num_hidden_layers ..
// num_hidden_layers + num_nextn_predict_layers - 1). With FP8 quantization each fp8 weight
// must be F8_E4M3 with an F32/BF16 scale_inv of ExpectedScaleInvShape(); other tensors (and
// all of them without FP8) must be F32, F16 or BF16.
Status VerifyCheckpoint(const ModelConfig& config, const SafetensorsModel& model);

}  // namespace strata::model
