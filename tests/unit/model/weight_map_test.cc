#include "model/weight_map.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "model/gen_model.h"
#include "model/safetensors_writer.h"

namespace strata::model {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

ModelConfig Tiny(Arch arch, bool fp8 = false) {
  auto c = PresetConfig(arch, "tiny", 1000, fp8);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

std::map<std::string, ExpectedTensor> ByName(const ModelConfig& c) {
  std::map<std::string, ExpectedTensor> out;
  for (const auto& t : ExpectedTensors(c)) out[t.name] = t;
  return out;
}

using Shape = std::vector<int64_t>;

TEST(WeightMapTest, DeepseekV3NamesAndShapes) {
  ModelConfig c = Tiny(Arch::kDeepseekV3);  // hidden 64, 4 heads, q_lora 32, kv_lora 32
  auto m = ByName(c);
  EXPECT_EQ(m.at("model.embed_tokens.weight").shape, (Shape{1024, 64}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.q_a_proj.weight").shape, (Shape{32, 64}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.q_a_layernorm.weight").shape, (Shape{32}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.q_b_proj.weight").shape, (Shape{4 * 24, 32}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.kv_a_proj_with_mqa.weight").shape, (Shape{32 + 8, 64}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.kv_a_layernorm.weight").shape, (Shape{32}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.kv_b_proj.weight").shape, (Shape{4 * (16 + 16), 32}));
  EXPECT_EQ(m.at("model.layers.0.self_attn.o_proj.weight").shape, (Shape{64, 4 * 16}));
  // Layer 0 is dense, 1 and 2 are MoE.
  EXPECT_EQ(m.at("model.layers.0.mlp.gate_proj.weight").shape, (Shape{128, 64}));
  EXPECT_EQ(m.count("model.layers.0.mlp.gate.weight"), 0u);
  EXPECT_EQ(m.at("model.layers.1.mlp.gate.weight").shape, (Shape{8, 64}));
  EXPECT_EQ(m.at("model.layers.1.mlp.gate.weight").role, TensorRole::kRouter);
  EXPECT_EQ(m.at("model.layers.1.mlp.gate.e_score_correction_bias").shape, (Shape{8}));
  EXPECT_EQ(m.at("model.layers.2.mlp.experts.7.down_proj.weight").shape, (Shape{64, 32}));
  EXPECT_EQ(m.at("model.layers.2.mlp.experts.7.down_proj.weight").expert, 7);
  EXPECT_EQ(m.at("model.layers.2.mlp.shared_experts.up_proj.weight").shape, (Shape{32, 64}));
  EXPECT_EQ(m.at("lm_head.weight").shape, (Shape{1024, 64}));
  EXPECT_EQ(m.count("model.layers.1.mlp.gate_proj.weight"), 0u);
  EXPECT_EQ(m.count("model.layers.3.input_layernorm.weight"), 0u);

  c.q_lora_rank.reset();
  m = ByName(c);
  EXPECT_EQ(m.at("model.layers.0.self_attn.q_proj.weight").shape, (Shape{4 * 24, 64}));
  EXPECT_EQ(m.count("model.layers.0.self_attn.q_a_proj.weight"), 0u);
}

TEST(WeightMapTest, Fp8MarksLinearWeightsOnly) {
  for (const auto& t : ExpectedTensors(Tiny(Arch::kDeepseekV3, /*fp8=*/true))) {
    const bool linear = t.role == TensorRole::kLinear;
    EXPECT_EQ(t.fp8_quantized, linear) << t.name;
  }
  EXPECT_EQ(ExpectedScaleInvShape({2048, 7168}, {true, 128, 128}), (Shape{16, 56}));
  EXPECT_EQ(ExpectedScaleInvShape({576, 7168}, {true, 128, 128}), (Shape{5, 56}));
  for (const auto& t : ExpectedTensors(Tiny(Arch::kDeepseekV3))) EXPECT_FALSE(t.fp8_quantized);
}

TEST(WeightMapTest, OtherArchitectures) {
  auto qwen3 = ByName(Tiny(Arch::kQwen3));  // tied embeddings
  EXPECT_EQ(qwen3.count("lm_head.weight"), 0u);
  EXPECT_EQ(qwen3.at("model.layers.1.self_attn.q_norm.weight").shape, (Shape{16}));
  EXPECT_EQ(qwen3.at("model.layers.1.self_attn.k_proj.weight").shape, (Shape{2 * 16, 64}));
  EXPECT_EQ(qwen3.size(), 1 + 2 * 11 + 1u);

  auto moe = ByName(Tiny(Arch::kQwen3Moe));
  EXPECT_EQ(moe.at("model.layers.0.mlp.experts.3.gate_proj.weight").shape, (Shape{32, 64}));
  EXPECT_EQ(moe.count("model.layers.0.mlp.gate.e_score_correction_bias"), 0u);
  EXPECT_EQ(moe.count("model.layers.0.mlp.shared_experts.gate_proj.weight"), 0u);
  EXPECT_EQ(moe.count("model.layers.0.self_attn.k_norm.weight"), 1u);

  auto mixtral = ByName(Tiny(Arch::kMixtral));
  EXPECT_EQ(mixtral.at("model.layers.0.block_sparse_moe.gate.weight").shape, (Shape{8, 64}));
  EXPECT_EQ(mixtral.at("model.layers.0.block_sparse_moe.experts.5.w1.weight").shape,
            (Shape{64, 64}));
  EXPECT_EQ(mixtral.at("model.layers.0.block_sparse_moe.experts.5.w2.weight").shape,
            (Shape{64, 64}));
  EXPECT_EQ(mixtral.count("model.layers.0.self_attn.q_norm.weight"), 0u);

  ModelConfig llama_cfg = Tiny(Arch::kLlama);
  llama_cfg.attention_bias = true;
  auto llama = ByName(llama_cfg);
  EXPECT_EQ(llama.at("model.layers.0.self_attn.v_proj.bias").shape, (Shape{32}));
  EXPECT_EQ(llama.at("model.layers.0.mlp.down_proj.weight").shape, (Shape{64, 128}));
  EXPECT_EQ(llama.count("lm_head.weight"), 1u);
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("strata_wm_" + std::to_string(getpid()));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

// Writes a checkpoint holding `specs` (zero-filled) and opens it.
SafetensorsModel WriteAndOpen(const TempDir& dir, const std::vector<TensorSpec>& specs) {
  auto zero = [](size_t, std::span<uint8_t>) { return OkStatus(); };
  EXPECT_TRUE(WriteSafetensors(dir.path(), specs, zero).ok());
  auto model = SafetensorsModel::Open(dir.path());
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  return std::move(*model);
}

TEST(WeightMapTest, VerifyReportsEveryProblemAtOnce) {
  TempDir dir;
  ModelConfig c = Tiny(Arch::kQwen3Moe);
  std::vector<TensorSpec> specs;
  for (const auto& t : ExpectedTensors(c)) specs.push_back({t.name, TensorDtype::kBF16, t.shape});
  specs.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", TensorDtype::kF32, {8}});
  {
    SafetensorsModel model = WriteAndOpen(dir, specs);
    EXPECT_TRUE(VerifyCheckpoint(c, model).ok()) << VerifyCheckpoint(c, model).ToString();
  }
  // A missing expert, an extra tensor, a transposed down projection and an int tensor.
  specs.erase(std::find_if(specs.begin(), specs.end(), [](const TensorSpec& s) {
    return s.name == "model.layers.1.mlp.experts.2.up_proj.weight";
  }));
  specs.push_back({"model.layers.1.mlp.shared_expert.up_proj.weight", TensorDtype::kBF16, {4}});
  for (auto& s : specs) {
    if (s.name == "model.layers.0.mlp.experts.0.down_proj.weight")
      std::swap(s.shape[0], s.shape[1]);
    if (s.name == "model.norm.weight") s.dtype = TensorDtype::kI32;
  }
  SafetensorsModel model = WriteAndOpen(dir, specs);
  Status s = VerifyCheckpoint(c, model);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("1 missing: model.layers.1.mlp.experts.2.up_proj.weight"));
  EXPECT_THAT(s.message(), HasSubstr("model.layers.0.mlp.experts.0.down_proj.weight has shape "
                                     "[32, 64], expected [64, 32]"));
  EXPECT_THAT(s.message(), HasSubstr("model.norm.weight has dtype I32"));
  EXPECT_THAT(s.message(), HasSubstr("1 unexpected: model.layers.1.mlp.shared_expert.up_proj"));
  EXPECT_THAT(s.message(), Not(HasSubstr("inv_freq")));
}

TEST(WeightMapTest, VerifyChecksFp8ScalesAndIgnoresMtpLayers) {
  TempDir dir;
  ModelConfig c = Tiny(Arch::kDeepseekV3, /*fp8=*/true);
  c.num_nextn_predict_layers = 1;
  std::vector<TensorSpec> specs;
  for (const auto& t : ExpectedTensors(c)) {
    if (!t.fp8_quantized) {
      specs.push_back({t.name, TensorDtype::kBF16, t.shape});
      continue;
    }
    specs.push_back({t.name, TensorDtype::kF8E4M3, t.shape});
    specs.push_back(
        {ScaleInvName(t.name), TensorDtype::kF32, ExpectedScaleInvShape(t.shape, c.quantization)});
  }
  specs.push_back({"model.layers.3.eh_proj.weight", TensorDtype::kBF16, {64, 128}});  // MTP
  {
    SafetensorsModel model = WriteAndOpen(dir, specs);
    EXPECT_TRUE(VerifyCheckpoint(c, model).ok()) << VerifyCheckpoint(c, model).ToString();
  }
  for (auto& s : specs) {
    if (s.name == "model.layers.0.self_attn.o_proj.weight") s.dtype = TensorDtype::kBF16;
    if (s.name == "model.layers.0.self_attn.kv_b_proj.weight_scale_inv") s.shape = {2, 2};
  }
  specs.erase(std::find_if(specs.begin(), specs.end(), [](const TensorSpec& s) {
    return s.name == "model.layers.1.mlp.experts.0.up_proj.weight_scale_inv";
  }));
  SafetensorsModel model = WriteAndOpen(dir, specs);
  Status s = VerifyCheckpoint(c, model);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("model.layers.0.self_attn.o_proj.weight has dtype BF16, "
                                     "expected F8_E4M3"));
  EXPECT_THAT(s.message(),
              HasSubstr("kv_b_proj.weight_scale_inv has shape [2, 2], expected [1, 1]"));
  EXPECT_THAT(s.message(),
              HasSubstr("missing: model.layers.1.mlp.experts.0.up_proj.weight_scale_inv"));
}

}  // namespace
}  // namespace strata::model
