// ValidateModelConfig: the ranges and divisibility rules every architecture relies on.
#include <cmath>
#include <string>

#include "model/model_config.h"

namespace strata::model {
namespace {

// Bounds that keep every shape product far from int64 overflow; far above any real model.
constexpr int64_t kMaxDim = 1 << 20;
constexpr int64_t kMaxVocab = 1 << 24;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxExperts = 1 << 16;
constexpr int64_t kMaxPositions = int64_t{1} << 31;

Status FieldError(std::string_view field, std::string_view why) {
  return InvalidArgumentError("config.json: " + std::string(field) + ": " + std::string(why));
}

std::string Str(int64_t v) { return std::to_string(v); }

Status InRange(std::string_view field, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) {
    return FieldError(field, "must be in [" + Str(lo) + ", " + Str(hi) + "], got " + Str(v));
  }
  return OkStatus();
}

Status Positive(std::string_view field, double v) {
  if (!(v > 0) || !std::isfinite(v)) {
    return FieldError(field, "must be a positive number, got " + std::to_string(v));
  }
  return OkStatus();
}

Status ValidateRope(const ModelConfig& c) {
  STRATA_RETURN_IF_ERROR(Positive("rope_theta", c.rope_theta));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == RopeScalingType::kNone) return OkStatus();
  if (!(s.factor >= 1.0) || !std::isfinite(s.factor)) {
    return FieldError("rope_scaling.factor", "must be >= 1, got " + std::to_string(s.factor));
  }
  STRATA_RETURN_IF_ERROR(InRange("rope_scaling.original_max_position_embeddings",
                                 s.original_max_position_embeddings, 1, kMaxPositions));
  if (s.type == RopeScalingType::kYarn) {
    STRATA_RETURN_IF_ERROR(Positive("rope_scaling.beta_fast", s.beta_fast));
    STRATA_RETURN_IF_ERROR(Positive("rope_scaling.beta_slow", s.beta_slow));
    if (s.beta_fast <= s.beta_slow) {
      return FieldError("rope_scaling.beta_fast", "must be greater than beta_slow");
    }
    if (s.mscale < 0 || s.mscale_all_dim < 0 || s.attention_factor < 0) {
      return FieldError("rope_scaling.mscale",
                        "mscale, mscale_all_dim and attention_factor "
                        "must not be negative");
    }
  } else if (s.type == RopeScalingType::kLlama3) {
    STRATA_RETURN_IF_ERROR(Positive("rope_scaling.low_freq_factor", s.low_freq_factor));
    if (!(s.high_freq_factor > s.low_freq_factor) || !std::isfinite(s.high_freq_factor)) {
      return FieldError("rope_scaling.high_freq_factor", "must be greater than low_freq_factor");
    }
  }
  return OkStatus();
}

Status ValidateAttention(const ModelConfig& c) {
  STRATA_RETURN_IF_ERROR(InRange("num_attention_heads", c.num_attention_heads, 1, kMaxHeads));
  STRATA_RETURN_IF_ERROR(
      InRange("num_key_value_heads", c.num_key_value_heads, 1, c.num_attention_heads));
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return FieldError("num_key_value_heads", "num_attention_heads " + Str(c.num_attention_heads) +
                                                 " is not divisible by num_key_value_heads " +
                                                 Str(c.num_key_value_heads));
  }
  if (!c.IsMla()) {
    STRATA_RETURN_IF_ERROR(InRange("head_dim", c.head_dim, 2, 4096));
    if (c.head_dim % 2 != 0) return FieldError("head_dim", "must be even for RoPE");
    return OkStatus();
  }
  if (c.q_lora_rank) STRATA_RETURN_IF_ERROR(InRange("q_lora_rank", *c.q_lora_rank, 1, kMaxDim));
  STRATA_RETURN_IF_ERROR(InRange("kv_lora_rank", c.kv_lora_rank, 1, kMaxDim));
  STRATA_RETURN_IF_ERROR(InRange("qk_nope_head_dim", c.qk_nope_head_dim, 0, 4096));
  STRATA_RETURN_IF_ERROR(InRange("qk_rope_head_dim", c.qk_rope_head_dim, 2, 4096));
  if (c.qk_rope_head_dim % 2 != 0) return FieldError("qk_rope_head_dim", "must be even for RoPE");
  STRATA_RETURN_IF_ERROR(InRange("v_head_dim", c.v_head_dim, 1, 4096));
  STRATA_RETURN_IF_ERROR(InRange("num_nextn_predict_layers", c.num_nextn_predict_layers, 0, 16));
  return OkStatus();
}

Status ValidateMoe(const ModelConfig& c) {
  if (c.arch == Arch::kLlama || c.arch == Arch::kQwen3) return OkStatus();
  const char* experts_field = c.arch == Arch::kDeepseekV3 ? "n_routed_experts"
                              : c.arch == Arch::kMixtral  ? "num_local_experts"
                                                          : "num_experts";
  STRATA_RETURN_IF_ERROR(InRange(experts_field, c.num_experts, 1, kMaxExperts));
  STRATA_RETURN_IF_ERROR(InRange("num_experts_per_tok", c.num_experts_per_tok, 1, c.num_experts));
  const char* width_field =
      c.arch == Arch::kMixtral ? "intermediate_size" : "moe_intermediate_size";
  STRATA_RETURN_IF_ERROR(InRange(width_field, c.moe_intermediate_size, 1, kMaxDim));
  STRATA_RETURN_IF_ERROR(Positive("routed_scaling_factor", c.routed_scaling_factor));
  if (c.arch == Arch::kQwen3Moe) {
    STRATA_RETURN_IF_ERROR(
        InRange("decoder_sparse_step", c.decoder_sparse_step, 1, c.num_hidden_layers));
    for (int64_t layer : c.mlp_only_layers) {
      STRATA_RETURN_IF_ERROR(InRange("mlp_only_layers", layer, 0, c.num_hidden_layers - 1));
    }
  }
  if (c.arch != Arch::kDeepseekV3) return OkStatus();
  STRATA_RETURN_IF_ERROR(
      InRange("first_k_dense_replace", c.first_k_dense_replace, 0, c.num_hidden_layers));
  STRATA_RETURN_IF_ERROR(InRange("moe_layer_freq", c.moe_layer_freq, 1, c.num_hidden_layers));
  STRATA_RETURN_IF_ERROR(InRange("n_shared_experts", c.n_shared_experts, 0, kMaxExperts));
  if (c.topk_method == TopkMethod::kGreedy) return OkStatus();
  STRATA_RETURN_IF_ERROR(InRange("n_group", c.n_group, 1, c.num_experts));
  if (c.num_experts % c.n_group != 0) {
    return FieldError("n_group", "n_routed_experts " + Str(c.num_experts) +
                                     " is not divisible by n_group " + Str(c.n_group));
  }
  STRATA_RETURN_IF_ERROR(InRange("topk_group", c.topk_group, 1, c.n_group));
  const int64_t per_group = c.num_experts / c.n_group;
  if (c.num_experts_per_tok > c.topk_group * per_group) {
    return FieldError("num_experts_per_tok",
                      Str(c.num_experts_per_tok) + " exceeds the " + Str(c.topk_group * per_group) +
                          " experts in topk_group " + Str(c.topk_group) + " groups");
  }
  if (c.topk_method == TopkMethod::kNoauxTc && per_group < 2) {
    return FieldError("n_group", "noaux_tc scores each group by its top-2 experts; each of the " +
                                     Str(c.n_group) + " groups has " + Str(per_group));
  }
  return OkStatus();
}

}  // namespace

Status ValidateModelConfig(const ModelConfig& c) {
  STRATA_RETURN_IF_ERROR(InRange("vocab_size", c.vocab_size, 1, kMaxVocab));
  STRATA_RETURN_IF_ERROR(InRange("hidden_size", c.hidden_size, 1, kMaxDim));
  STRATA_RETURN_IF_ERROR(InRange("num_hidden_layers", c.num_hidden_layers, 1, kMaxLayers));
  STRATA_RETURN_IF_ERROR(
      InRange("max_position_embeddings", c.max_position_embeddings, 1, kMaxPositions));
  if (!(c.rms_norm_eps > 0 && c.rms_norm_eps < 1)) {
    return FieldError("rms_norm_eps", "must be in (0, 1), got " + std::to_string(c.rms_norm_eps));
  }
  STRATA_RETURN_IF_ERROR(ValidateAttention(c));
  STRATA_RETURN_IF_ERROR(ValidateRope(c));
  STRATA_RETURN_IF_ERROR(ValidateMoe(c));
  bool any_dense = false;
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    any_dense = any_dense || !c.IsMoeLayer(layer);
  }
  if (any_dense || c.arch == Arch::kMixtral) {
    STRATA_RETURN_IF_ERROR(InRange("intermediate_size", c.intermediate_size, 1, kMaxDim));
  } else {
    STRATA_RETURN_IF_ERROR(InRange("intermediate_size", c.intermediate_size, 0, kMaxDim));
  }
  for (int64_t id : c.bos_token_ids) {
    STRATA_RETURN_IF_ERROR(InRange("bos_token_id", id, 0, c.vocab_size - 1));
  }
  for (int64_t id : c.eos_token_ids) {
    STRATA_RETURN_IF_ERROR(InRange("eos_token_id", id, 0, c.vocab_size - 1));
  }
  if (c.quantization.enabled) {
    STRATA_RETURN_IF_ERROR(
        InRange("quantization_config.weight_block_size", c.quantization.block_rows, 1, kMaxDim));
    STRATA_RETURN_IF_ERROR(
        InRange("quantization_config.weight_block_size", c.quantization.block_cols, 1, kMaxDim));
  }
  return OkStatus();
}

}  // namespace strata::model
