// ModelConfigToJson: the HF config.json of a ModelConfig, in the field names and conventions of
// the checkpoints on the Hub (transformers 4.x `rope_scaling` / `torch_dtype`, which 5.x reads).
#include "model/model_config.h"

namespace strata::model {
namespace {

using nlohmann::json;

json TokenIds(const std::vector<int64_t>& ids) {
  if (ids.empty()) return nullptr;
  if (ids.size() == 1) return ids[0];
  return ids;
}

json RopeScalingJson(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  switch (s.type) {
    case RopeScalingType::kNone:
      return nullptr;
    case RopeScalingType::kYarn: {
      json j = {{"rope_type", "yarn"},
                {"factor", s.factor},
                {"original_max_position_embeddings", s.original_max_position_embeddings},
                {"beta_fast", s.beta_fast},
                {"beta_slow", s.beta_slow}};
      if (c.arch == Arch::kDeepseekV3) j["type"] = "yarn";  // the original remote code reads it
      if (s.mscale != 0) j["mscale"] = s.mscale;
      if (s.mscale_all_dim != 0) j["mscale_all_dim"] = s.mscale_all_dim;
      if (s.attention_factor != 0) j["attention_factor"] = s.attention_factor;
      return j;
    }
    case RopeScalingType::kLlama3:
      return {{"rope_type", "llama3"},
              {"factor", s.factor},
              {"original_max_position_embeddings", s.original_max_position_embeddings},
              {"low_freq_factor", s.low_freq_factor},
              {"high_freq_factor", s.high_freq_factor}};
  }
  return nullptr;
}

std::string_view TopkMethodName(TopkMethod m) {
  switch (m) {
    case TopkMethod::kGreedy:
      return "greedy";
    case TopkMethod::kGroupLimitedGreedy:
      return "group_limited_greedy";
    case TopkMethod::kNoauxTc:
      return "noaux_tc";
  }
  return "greedy";
}

void AddDeepseekFields(const ModelConfig& c, json& j) {
  j["q_lora_rank"] = c.q_lora_rank ? json(*c.q_lora_rank) : json(nullptr);
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["qk_nope_head_dim"] = c.qk_nope_head_dim;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["rope_interleave"] = c.rope_interleave;
  j["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  j["n_routed_experts"] = c.num_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["n_shared_experts"] = c.n_shared_experts;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["scoring_func"] = c.scoring_func == ScoringFunc::kSigmoid ? "sigmoid" : "softmax";
  j["topk_method"] = TopkMethodName(c.topk_method);
  j["n_group"] = c.n_group;
  j["topk_group"] = c.topk_group;
  j["routed_scaling_factor"] = c.routed_scaling_factor;
  j["first_k_dense_replace"] = c.first_k_dense_replace;
  j["moe_layer_freq"] = c.moe_layer_freq;
  j["ep_size"] = 1;
  j["aux_loss_alpha"] = 0.001;
  j["seq_aux"] = true;
  j["pretraining_tp"] = 1;
}

}  // namespace

json ModelConfigToJson(const ModelConfig& c) {
  json j;
  j["architectures"] = {std::string(ArchitectureName(c.arch))};
  j["model_type"] = std::string(ModelTypeName(c.arch));
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  if (!c.IsMla()) j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = RopeScalingJson(c);
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.arch != Arch::kMixtral) j["attention_bias"] = c.attention_bias;
  j["attention_dropout"] = 0.0;
  j["hidden_act"] = "silu";
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  j["bos_token_id"] = TokenIds(c.bos_token_ids);
  j["eos_token_id"] = TokenIds(c.eos_token_ids);
  j["torch_dtype"] = std::string(TorchDtypeName(c.torch_dtype));
  switch (c.arch) {
    case Arch::kDeepseekV3:
      AddDeepseekFields(c, j);
      break;
    case Arch::kQwen3Moe:
      j["num_experts"] = c.num_experts;
      j["num_experts_per_tok"] = c.num_experts_per_tok;
      j["moe_intermediate_size"] = c.moe_intermediate_size;
      j["norm_topk_prob"] = c.norm_topk_prob;
      j["decoder_sparse_step"] = c.decoder_sparse_step;
      j["mlp_only_layers"] = c.mlp_only_layers;
      j["output_router_logits"] = false;
      j["router_aux_loss_coef"] = 0.001;
      [[fallthrough]];
    case Arch::kQwen3:
      j["use_sliding_window"] = false;
      j["sliding_window"] = nullptr;
      j["max_window_layers"] = c.num_hidden_layers;
      break;
    case Arch::kMixtral:
      j["num_local_experts"] = c.num_experts;
      j["num_experts_per_tok"] = c.num_experts_per_tok;
      j["sliding_window"] = nullptr;
      j["output_router_logits"] = false;
      j["router_aux_loss_coef"] = 0.02;
      j["router_jitter_noise"] = 0.0;
      break;
    case Arch::kLlama:
      j["mlp_bias"] = false;
      j["pretraining_tp"] = 1;
      break;
  }
  if (c.quantization.enabled) {
    j["quantization_config"] = {
        {"quant_method", "fp8"},
        {"fmt", "e4m3"},
        {"activation_scheme", "dynamic"},
        {"weight_block_size", {c.quantization.block_rows, c.quantization.block_cols}}};
  }
  return j;
}

}  // namespace strata::model
