#include "model/model_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace strata::model {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// The config.json of deepseek-ai/DeepSeek-V3 (fields as published).
json DeepseekV3Json() {
  return json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": false,
    "attention_dropout": 0.0, "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1,
    "ep_size": 1, "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168,
    "initializer_range": 0.02, "intermediate_size": 18432, "kv_lora_rank": 512,
    "max_position_embeddings": 163840, "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256,
    "n_shared_experts": 1, "norm_topk_prob": true, "num_attention_heads": 128,
    "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1, "pretraining_tp": 1, "q_lora_rank": 1536,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3",
                            "quant_method": "fp8", "weight_block_size": [128, 128]},
    "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                     "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
    "seq_aux": true, "tie_word_embeddings": false, "topk_group": 4, "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": true,
    "v_head_dim": 128, "vocab_size": 129280})");
}

// Qwen/Qwen3-30B-A3B.
json Qwen3MoeJson() {
  return json::parse(R"({
    "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": false,
    "attention_dropout": 0.0, "bos_token_id": 151643, "decoder_sparse_step": 1,
    "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 2048,
    "initializer_range": 0.02, "intermediate_size": 6144, "max_position_embeddings": 40960,
    "max_window_layers": 48, "mlp_only_layers": [], "model_type": "qwen3_moe",
    "moe_intermediate_size": 768, "norm_topk_prob": true, "num_attention_heads": 32,
    "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 48,
    "num_key_value_heads": 4, "output_router_logits": false, "rms_norm_eps": 1e-06,
    "rope_scaling": null, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
    "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})");
}

// mistralai/Mixtral-8x7B-v0.1.
json MixtralJson() {
  return json::parse(R"({
    "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
    "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mixtral",
    "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": false,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.02,
    "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "use_cache": true, "vocab_size": 32000})");
}

// meta-llama/Llama-3.1-8B-Instruct.
json LlamaJson() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "use_cache": true, "vocab_size": 128256})");
}

// Qwen/Qwen3-0.6B.
json Qwen3Json() {
  return json::parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
    "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})");
}

TEST(ModelConfigTest, ParsesDeepseekV3) {
  auto c = ParseModelConfig(DeepseekV3Json());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->arch, Arch::kDeepseekV3);
  EXPECT_EQ(c->vocab_size, 129280);
  EXPECT_EQ(c->num_experts, 256);
  EXPECT_EQ(c->num_experts_per_tok, 8);
  EXPECT_EQ(c->shared_expert_intermediate_size, 2048);
  EXPECT_EQ(c->q_lora_rank, 1536);
  EXPECT_EQ(c->QkHeadDim(), 192);
  EXPECT_EQ(c->RopeDim(), 64);
  EXPECT_EQ(c->VHeadDim(), 128);
  EXPECT_TRUE(c->rope_interleave);
  EXPECT_EQ(c->scoring_func, ScoringFunc::kSigmoid);
  EXPECT_EQ(c->topk_method, TopkMethod::kNoauxTc);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kYarn);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_TRUE(c->quantization.enabled);
  EXPECT_EQ(c->quantization.block_rows, 128);
  EXPECT_EQ(c->num_nextn_predict_layers, 1);
  EXPECT_FALSE(c->IsMoeLayer(0));
  EXPECT_FALSE(c->IsMoeLayer(2));
  EXPECT_TRUE(c->IsMoeLayer(3));
  EXPECT_TRUE(c->IsMoeLayer(60));
  EXPECT_FALSE(c->IsMoeLayer(61));
  EXPECT_EQ(c->bos_token_ids, std::vector<int64_t>{0});
  // 192^-0.5 * (0.1 * ln(40) + 1)^2, as DeepSeek computes its softmax scale.
  const double mscale = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(c->AttentionSoftmaxScale(), mscale * mscale / std::sqrt(192.0), 1e-12);
  EXPECT_NEAR(c->AttentionSoftmaxScale(), 0.1352337788608801, 1e-9);
  EXPECT_DOUBLE_EQ(c->RopeAttentionFactor(), 1.0);  // mscale == mscale_all_dim
}

TEST(ModelConfigTest, ParsesQwen3Moe) {
  auto c = ParseModelConfig(Qwen3MoeJson());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->arch, Arch::kQwen3Moe);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->num_experts, 128);
  EXPECT_EQ(c->shared_expert_intermediate_size, 0);
  EXPECT_TRUE(c->norm_topk_prob);
  EXPECT_EQ(c->scoring_func, ScoringFunc::kSoftmax);
  EXPECT_TRUE(c->IsMoeLayer(0));
  EXPECT_DOUBLE_EQ(c->AttentionSoftmaxScale(), 1.0 / std::sqrt(128.0));

  json j = Qwen3MoeJson();
  j["mlp_only_layers"] = {3, 1};
  j["decoder_sparse_step"] = 2;
  c = ParseModelConfig(j);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->IsMoeLayer(0));  // (0 + 1) % 2 != 0
  EXPECT_FALSE(c->IsMoeLayer(1));  // mlp_only
  EXPECT_FALSE(c->IsMoeLayer(3));  // mlp_only
  EXPECT_TRUE(c->IsMoeLayer(5));
}

TEST(ModelConfigTest, ParsesMixtralLlamaQwen3) {
  auto mixtral = ParseModelConfig(MixtralJson());
  ASSERT_TRUE(mixtral.ok()) << mixtral.status().ToString();
  EXPECT_EQ(mixtral->num_experts, 8);
  EXPECT_EQ(mixtral->moe_intermediate_size, 14336);
  EXPECT_EQ(mixtral->head_dim, 128);
  EXPECT_TRUE(mixtral->norm_topk_prob);
  EXPECT_TRUE(mixtral->IsMoeLayer(31));

  auto llama = ParseModelConfig(LlamaJson());
  ASSERT_TRUE(llama.ok()) << llama.status().ToString();
  EXPECT_EQ(llama->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(llama->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(llama->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_FALSE(llama->IsMoe());
  EXPECT_FALSE(llama->IsMoeLayer(0));

  auto qwen3 = ParseModelConfig(Qwen3Json());
  ASSERT_TRUE(qwen3.ok()) << qwen3.status().ToString();
  EXPECT_TRUE(qwen3->tie_word_embeddings);
  EXPECT_EQ(qwen3->head_dim, 128);  // explicit, not hidden / heads (64)
}

TEST(ModelConfigTest, RoundTripsThroughJson) {
  for (const json& j :
       {DeepseekV3Json(), Qwen3MoeJson(), MixtralJson(), LlamaJson(), Qwen3Json()}) {
    auto c = ParseModelConfig(j);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    auto again = ParseModelConfig(ModelConfigToJson(*c));
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(*again, *c) << ModelConfigToJson(*c).dump(2);
  }
}

TEST(ModelConfigTest, AcceptsTransformers5RopeParameters) {
  json j = Qwen3Json();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5000.0}};
  j.erase("torch_dtype");
  j["dtype"] = "float16";
  auto c = ParseModelConfig(j);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_DOUBLE_EQ(c->rope_theta, 5000.0);
  EXPECT_EQ(c->torch_dtype, TorchDtype::kFloat16);
}

TEST(ModelConfigTest, DefaultsHeadDimToHiddenOverHeads) {
  json j = Qwen3Json();
  j.erase("head_dim");
  auto c = ParseModelConfig(j);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->head_dim, 64);
}

TEST(ModelConfigTest, YarnAttentionFactorWithoutMscaleFields) {
  json j = Qwen3Json();
  j["rope_scaling"] = {
      {"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
  auto c = ParseModelConfig(j);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_NEAR(c->RopeAttentionFactor(), 0.1 * std::log(4.0) + 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(c->AttentionSoftmaxScale(), 1.0 / std::sqrt(128.0));  // only MLA squares it
}

TEST(ModelConfigTest, RopeInvFreqPlain) {
  auto c = ParseModelConfig(Qwen3Json());  // head_dim 128, theta 1e6
  ASSERT_TRUE(c.ok());
  std::vector<double> f = RopeInvFreq(*c);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_NEAR(f[32], std::pow(1e6, -0.5), 1e-15);
}

TEST(ModelConfigTest, RopeInvFreqLlama3) {
  auto c = ParseModelConfig(LlamaJson());  // 128 dims, theta 5e5, factor 8 over 8192, 1 / 4
  ASSERT_TRUE(c.ok());
  std::vector<double> f = RopeInvFreq(*c);
  ASSERT_EQ(f.size(), 64u);
  for (int i = 0; i < 64; ++i) {
    const double raw = std::pow(500000.0, -2.0 * i / 128);
    const double wavelen = 2 * M_PI / raw;
    if (wavelen < 8192 / 4.0) EXPECT_DOUBLE_EQ(f[i], raw) << i;         // high frequency: kept
    if (wavelen > 8192 / 1.0) EXPECT_DOUBLE_EQ(f[i], raw / 8) << i;     // low frequency: / 8
    if (wavelen >= 2048 && wavelen <= 8192) EXPECT_LT(f[i], raw) << i;  // blended
  }
  EXPECT_NEAR(f[40], 3.428102195952591e-05, 1e-15);  // reference (transformers formula)
}

TEST(ModelConfigTest, RopeInvFreqYarnDeepseek) {
  auto c = ParseModelConfig(DeepseekV3Json());  // rope dim 64, factor 40 over 4096
  ASSERT_TRUE(c.ok());
  std::vector<double> f = RopeInvFreq(*c);
  ASSERT_EQ(f.size(), 32u);
  // DeepSeek's yarn_find_correction_range(32, 1, 64, 10000, 4096) is [10, 23].
  for (int i = 0; i < 32; ++i) {
    const double raw = std::pow(10000.0, -2.0 * i / 64);
    if (i <= 10) EXPECT_DOUBLE_EQ(f[i], raw) << i;
    if (i >= 23) EXPECT_DOUBLE_EQ(f[i], raw / 40) << i;
  }
  const double raw15 = std::pow(10000.0, -30.0 / 64), ramp = 5.0 / 13;
  EXPECT_NEAR(f[15], raw15 / 40 * ramp + raw15 * (1 - ramp), 1e-15);
  EXPECT_NEAR(f[15], 0.008334508951020777, 1e-12);
}

struct BadCase {
  const char* name;
  json (*base)();
  void (*mutate)(json&);
  const char* field;  // expected in "config.json: <field>"
};

const BadCase kBadCases[] = {
    {"gelu", Qwen3Json, [](json& j) { j["hidden_act"] = "gelu"; }, "hidden_act"},
    {"kv_heads_divide", LlamaJson, [](json& j) { j["num_key_value_heads"] = 3; },
     "num_key_value_heads"},
    {"kv_heads_more", LlamaJson, [](json& j) { j["num_key_value_heads"] = 64; },
     "num_key_value_heads"},
    {"topk_too_big", Qwen3MoeJson, [](json& j) { j["num_experts_per_tok"] = 129; },
     "num_experts_per_tok"},
    {"experts_zero", MixtralJson, [](json& j) { j["num_local_experts"] = 0; }, "num_local_experts"},
    {"n_group_divides", DeepseekV3Json, [](json& j) { j["n_group"] = 7; }, "n_group"},
    {"topk_group_range", DeepseekV3Json, [](json& j) { j["topk_group"] = 9; }, "topk_group"},
    {"topk_exceeds_groups", DeepseekV3Json,
     [](json& j) {
       j["topk_group"] = 1;
       j["num_experts_per_tok"] = 33;
     },
     "num_experts_per_tok"},
    {"unknown_arch", LlamaJson, [](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; },
     "architectures"},
    {"type_mismatch", LlamaJson, [](json& j) { j["model_type"] = "qwen3"; }, "model_type"},
    {"rope_dynamic", LlamaJson,
     [](json& j) {
       j["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
     },
     "rope_scaling.rope_type"},
    {"yarn_factor", DeepseekV3Json, [](json& j) { j["rope_scaling"]["factor"] = 0.5; },
     "rope_scaling.factor"},
    {"quant_awq", DeepseekV3Json, [](json& j) { j["quantization_config"]["quant_method"] = "awq"; },
     "quantization_config.quant_method"},
    {"quant_static", DeepseekV3Json,
     [](json& j) { j["quantization_config"]["activation_scheme"] = "static"; },
     "quantization_config.activation_scheme"},
    {"quant_no_blocks", DeepseekV3Json,
     [](json& j) { j["quantization_config"].erase("weight_block_size"); },
     "quantization_config.weight_block_size"},
    {"vocab_negative", Qwen3Json, [](json& j) { j["vocab_size"] = -1; }, "vocab_size"},
    {"vocab_string", Qwen3Json, [](json& j) { j["vocab_size"] = "big"; }, "vocab_size"},
    {"head_dim_odd", Qwen3Json, [](json& j) { j["head_dim"] = 127; }, "head_dim"},
    {"hidden_missing", Qwen3Json, [](json& j) { j.erase("hidden_size"); }, "hidden_size"},
    {"q_lora_missing", DeepseekV3Json, [](json& j) { j.erase("q_lora_rank"); }, "q_lora_rank"},
    {"rope_dim_odd", DeepseekV3Json, [](json& j) { j["qk_rope_head_dim"] = 63; },
     "qk_rope_head_dim"},
    {"eos_range", LlamaJson,
     [](json& j) {
       j["eos_token_id"] = {128001, 200000};
     },
     "eos_token_id"},
    {"mlp_only_range", Qwen3MoeJson, [](json& j) { j["mlp_only_layers"] = {48}; },
     "mlp_only_layers"},
    {"sliding", Qwen3Json, [](json& j) { j["use_sliding_window"] = true; }, "use_sliding_window"},
    {"mixtral_sliding", MixtralJson, [](json& j) { j["sliding_window"] = 4096; }, "sliding_window"},
    {"scoring", DeepseekV3Json, [](json& j) { j["scoring_func"] = "tanh"; }, "scoring_func"},
    {"topk_method", DeepseekV3Json, [](json& j) { j["topk_method"] = "random"; }, "topk_method"},
    {"eps_zero", LlamaJson, [](json& j) { j["rms_norm_eps"] = 0.0; }, "rms_norm_eps"},
    {"tie_string", LlamaJson, [](json& j) { j["tie_word_embeddings"] = "yes"; },
     "tie_word_embeddings"},
    {"dtype", LlamaJson, [](json& j) { j["torch_dtype"] = "int4"; }, "torch_dtype"},
    {"mlp_bias", LlamaJson, [](json& j) { j["mlp_bias"] = true; }, "mlp_bias"},
    {"qwen3moe_shared", Qwen3MoeJson, [](json& j) { j["shared_expert_intermediate_size"] = 512; },
     "shared_expert_intermediate_size"},
    {"scaling_factor", DeepseekV3Json, [](json& j) { j["routed_scaling_factor"] = -1.0; },
     "routed_scaling_factor"},
    {"dense_replace", DeepseekV3Json, [](json& j) { j["first_k_dense_replace"] = 62; },
     "first_k_dense_replace"},
    {"partial_rotary", LlamaJson, [](json& j) { j["partial_rotary_factor"] = 0.5; },
     "partial_rotary_factor"},
    {"yarn_truncate", DeepseekV3Json, [](json& j) { j["rope_scaling"]["truncate"] = false; },
     "rope_scaling.truncate"},
    {"layer_types", Qwen3Json,
     [](json& j) {
       j["layer_types"] = {"full_attention", "sliding_attention"};
     },
     "layer_types"},
};

TEST(ModelConfigTest, BadValuesNameTheField) {
  for (const auto& bad : kBadCases) {
    SCOPED_TRACE(bad.name);
    json j = bad.base();
    bad.mutate(j);
    auto c = ParseModelConfig(j);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(c.status().message(), HasSubstr(std::string("config.json: ") + bad.field + ":"));
  }
}

TEST(ModelConfigTest, NonObjectIsRejected) {
  EXPECT_EQ(ParseModelConfig(json::array()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadModelConfig("/nonexistent/dir").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata::model
