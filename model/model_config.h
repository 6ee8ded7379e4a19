// A typed view of a Hugging Face `config.json` for the architectures Strata serves
// (DESIGN.md §5): DeepseekV3ForCausalLM, Qwen3MoeForCausalLM, MixtralForCausalLM,
// LlamaForCausalLM and Qwen3ForCausalLM.
//
// Every field that changes the math is read and validated once, here; the forward pass reads
// the typed struct and never the JSON. A missing optional field takes the default that
// transformers' config class uses for that model type. An unsupported architecture or value is
// an InvalidArgument Status whose message reads "config.json: <field>: <why>".
//
// Normalization across architectures (so the forward pass has one vocabulary):
//   - num_experts is the number of routed experts (num_experts / n_routed_experts /
//     num_local_experts); 0 for dense models.
//   - moe_intermediate_size is each routed expert's width (Mixtral: intermediate_size).
//   - shared_expert_intermediate_size is the total width of the shared-expert MLP
//     (DeepSeek: n_shared_experts * moe_intermediate_size; Qwen3-MoE/Mixtral: 0).
//   - head_dim is the q/k head width: explicit `head_dim` or hidden_size / num_attention_heads;
//     for DeepSeek MLA it is qk_nope_head_dim + qk_rope_head_dim (the JSON head_dim is ignored).
//   - Mixtral routes with softmax over all experts then renormalizes the top-k:
//     scoring_func kSoftmax, topk_method kGreedy, norm_topk_prob true.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace strata::model {

enum class Arch { kDeepseekV3, kQwen3Moe, kMixtral, kLlama, kQwen3 };

// "DeepseekV3ForCausalLM", ... (the `architectures[0]` string).
std::string_view ArchitectureName(Arch arch);
// "deepseek_v3", "qwen3_moe", "mixtral", "llama", "qwen3" (the `model_type` string).
std::string_view ModelTypeName(Arch arch);
// Parses a model_type string ("deepseek_v3", ...).
StatusOr<Arch> ParseModelType(std::string_view model_type);

enum class RopeScalingType {
  kNone,    // plain RoPE (also rope_type "default")
  kYarn,    // YaRN (DeepSeek-V3, Qwen3 long context)
  kLlama3,  // Llama-3.1 frequency-dependent scaling
};

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  // YaRN.
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;            // 0 when absent from the JSON
  double mscale_all_dim = 0.0;    // 0 when absent from the JSON
  double attention_factor = 0.0;  // explicit cos/sin factor; 0 when absent
  // Llama 3.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;

  bool operator==(const RopeScaling&) const = default;
};

enum class ScoringFunc { kSoftmax, kSigmoid };

// How the router picks its top-k experts.
//   kGreedy              top-k of the scores.
//   kGroupLimitedGreedy  (DeepSeek-V2) group score = max score in the group; keep the
//                        topk_group best groups; top-k of the scores inside them.
//   kNoauxTc             (DeepSeek-V3) choice score = score + e_score_correction_bias; group
//                        score = sum of the top-2 choice scores in the group; keep the
//                        topk_group best groups; top-k of the choice scores inside them; the
//                        weights are the unbiased scores of the chosen experts.
// In every method: if norm_topk_prob, weights /= sum(weights) (+1e-20 for sigmoid); then
// weights *= routed_scaling_factor.
enum class TopkMethod { kGreedy, kGroupLimitedGreedy, kNoauxTc };

// Weight dtype the checkpoint declares (`torch_dtype` or `dtype`).
enum class TorchDtype { kBfloat16, kFloat16, kFloat32 };
std::string_view TorchDtypeName(TorchDtype dtype);  // "bfloat16", ...

// DeepSeek-V3 style fine-grained FP8 (quant_method "fp8", fmt e4m3, dynamic activations):
// the listed linear weights are stored as F8_E4M3 with a float32 `<name>_scale_inv` of shape
// [ceil(rows / block_rows), ceil(cols / block_cols)]; real weight = fp8 * scale_inv.
struct Fp8Quantization {
  bool enabled = false;
  int64_t block_rows = 128;
  int64_t block_cols = 128;

  bool operator==(const Fp8Quantization&) const = default;
};

struct ModelConfig {
  Arch arch = Arch::kLlama;

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // dense MLP width (0 when no layer is dense)
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  // DeepSeek-V3: RoPE rotates interleaved pairs (x[2i], x[2i+1]) instead of the halves
  // (x[i], x[i + d/2]) that the other architectures rotate.
  bool rope_interleave = false;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;         // q/k/v/o biases (DeepSeek: q_a/kv_a/o biases)
  std::vector<int64_t> bos_token_ids;  // empty when null
  std::vector<int64_t> eos_token_ids;  // empty when null
  TorchDtype torch_dtype = TorchDtype::kBfloat16;

  // Mixture of experts (num_experts == 0: dense).
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  bool norm_topk_prob = false;
  ScoringFunc scoring_func = ScoringFunc::kSoftmax;
  TopkMethod topk_method = TopkMethod::kGreedy;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  double routed_scaling_factor = 1.0;
  int64_t first_k_dense_replace = 0;  // DeepSeek
  int64_t moe_layer_freq = 1;         // DeepSeek
  int64_t n_shared_experts = 0;       // DeepSeek
  int64_t shared_expert_intermediate_size = 0;
  int64_t decoder_sparse_step = 1;       // Qwen3-MoE
  std::vector<int64_t> mlp_only_layers;  // Qwen3-MoE, sorted

  // DeepSeek multi-head latent attention.
  std::optional<int64_t> q_lora_rank;  // nullopt: q_proj directly from the hidden state
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t num_nextn_predict_layers = 0;  // DeepSeek MTP layers, stored after the last layer

  Fp8Quantization quantization;

  bool operator==(const ModelConfig&) const = default;

  bool IsMoe() const { return num_experts > 0; }
  bool IsMla() const { return arch == Arch::kDeepseekV3; }
  // Whether decoder layer `layer` has a routed-expert MLP (else a dense MLP of
  // intermediate_size). DeepSeek: layer >= first_k_dense_replace && layer % moe_layer_freq == 0.
  // Qwen3-MoE: layer not in mlp_only_layers && (layer + 1) % decoder_sparse_step == 0.
  // Mixtral: every layer. Dense archs: none.
  bool IsMoeLayer(int64_t layer) const;
  // q/k head width including the rotary part (MLA: nope + rope; else head_dim).
  int64_t QkHeadDim() const;
  // Width of the rotated part of each q/k head (MLA: qk_rope_head_dim; else head_dim).
  int64_t RopeDim() const;
  // v head width (MLA: v_head_dim; else head_dim).
  int64_t VHeadDim() const;
  // The attention softmax scale: QkHeadDim()^-0.5, times mscale^2 for DeepSeek with YaRN where
  // mscale = YarnGetMscale(factor, mscale_all_dim) (only when mscale_all_dim != 0).
  double AttentionSoftmaxScale() const;
  // The factor YaRN multiplies cos/sin by. DeepSeek (and any YaRN config with both mscale
  // fields): YarnGetMscale(factor, mscale) / YarnGetMscale(factor, mscale_all_dim);
  // otherwise YarnGetMscale(factor, 1). 1 without YaRN.
  double RopeAttentionFactor() const;
  // Layers whose weights the checkpoint stores: num_hidden_layers (MTP layers excluded).
  int64_t NumLayers() const { return num_hidden_layers; }
};

// 0.1 * mscale * ln(factor) + 1 for factor > 1, else 1 (DeepSeek's yarn_get_mscale).
double YarnGetMscale(double factor, double mscale);

// The RoPE inverse frequencies of the RopeDim() / 2 rotated pairs, scaling applied:
//   none    theta^(-2i/d)
//   yarn    DeepSeek's/transformers' YaRN: interpolated (/ factor) below the correction range
//           [floor(low), ceil(high)] of beta_fast/beta_slow over
//           original_max_position_embeddings, extrapolated above it, a linear ramp between
//   llama3  Llama 3.1: wavelengths above original/low_freq_factor divided by factor, below
//           original/high_freq_factor kept, smoothly blended between
// cos/sin are then multiplied by RopeAttentionFactor().
std::vector<double> RopeInvFreq(const ModelConfig& config);

// Parses and validates a config.json object.
StatusOr<ModelConfig> ParseModelConfig(const nlohmann::json& j);
// Reads `path` (a config.json file, or a directory that holds one), parses and validates it.
StatusOr<ModelConfig> LoadModelConfig(const std::string& path);
// Checks the invariants of a (possibly hand-built) config; the same checks ParseModelConfig
// runs. Errors name the HF field: "config.json: <field>: <why>".
Status ValidateModelConfig(const ModelConfig& config);

// The HF config.json for `config`, with every field transformers needs to load the model with
// AutoModelForCausalLM (no custom code). ParseModelConfig(ModelConfigToJson(c)) == c.
nlohmann::json ModelConfigToJson(const ModelConfig& config);

}  // namespace strata::model
