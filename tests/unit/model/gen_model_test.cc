#include "model/gen_model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "model/fp8.h"
#include "model/safetensors.h"
#include "model/weight_map.h"

namespace strata::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

constexpr Arch kArchs[] = {Arch::kDeepseekV3, Arch::kQwen3Moe, Arch::kMixtral, Arch::kLlama,
                           Arch::kQwen3};

class GenModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("strata_gen_" + std::to_string(getpid()));
    fs::create_directories(root_ / "tok");
    // A small synthetic tokenizer: ids 0..299 plus <s>=300, </s>=301 -> vocab 384.
    json vocab = json::object();
    for (int i = 0; i < 300; ++i) vocab["t" + std::to_string(i)] = i;
    json tokenizer = {
        {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
        {"added_tokens", {{{"id", 300}, {"content", "<s>"}}, {{"id", 301}, {"content", "</s>"}}}}};
    std::ofstream(root_ / "tok/tokenizer.json") << tokenizer.dump();
    std::ofstream(root_ / "tok/tokenizer_config.json")
        << R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}})";
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string Dir(const std::string& name) const { return (root_ / name).string(); }

  GenModelOptions Options(Arch arch, const std::string& out, uint64_t seed = 1) const {
    GenModelOptions o;
    o.arch = arch;
    o.preset = "tiny";
    o.tokenizer_dir = Dir("tok");
    o.out_dir = Dir(out);
    o.seed = seed;
    o.num_threads = 2;
    return o;
  }

  static std::string ReadAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static std::vector<float> Read(const SafetensorsModel& m, const std::string& name) {
    auto v = ReadTensorAsFloat(m, name);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : std::vector<float>{};
  }

  static void MeanStd(const std::vector<float>& v, double* mean, double* std) {
    double s = 0, s2 = 0;
    for (float x : v) s += x;
    *mean = s / v.size();
    for (float x : v) s2 += (x - *mean) * (x - *mean);
    *std = std::sqrt(s2 / v.size());
  }

  fs::path root_;
};

TEST_F(GenModelTest, EveryArchitectureTinyLoadsAndVerifies) {
  for (Arch arch : kArchs) {
    for (bool fp8 : {false, true}) {
      SCOPED_TRACE(std::string(ModelTypeName(arch)) + (fp8 ? " fp8" : " bf16"));
      GenModelOptions o = Options(arch, std::string(ModelTypeName(arch)) + (fp8 ? "_fp8" : ""));
      o.fp8 = fp8;
      ASSERT_TRUE(GenerateModel(o).ok());
      auto config = LoadModelConfig(o.out_dir);
      ASSERT_TRUE(config.ok()) << config.status().ToString();
      auto expected = PresetConfig(arch, "tiny", 302, fp8);
      ASSERT_TRUE(expected.ok());
      expected->bos_token_ids = {300};
      expected->eos_token_ids = {301};
      EXPECT_EQ(*config, *expected) << ReadAll(o.out_dir + "/config.json");
      EXPECT_EQ(config->vocab_size, 384);
      EXPECT_EQ(config->hidden_size, 64);
      EXPECT_EQ(config->num_attention_heads, 4);
      if (arch != Arch::kLlama && arch != Arch::kQwen3) {
        EXPECT_EQ(config->num_experts, 8);
        EXPECT_EQ(config->num_experts_per_tok, 2);
      }
      auto model = SafetensorsModel::Open(o.out_dir);
      ASSERT_TRUE(model.ok()) << model.status().ToString();
      Status verify = VerifyCheckpoint(*config, *model);
      EXPECT_TRUE(verify.ok()) << verify.ToString();
      EXPECT_TRUE(fs::exists(o.out_dir + "/tokenizer.json"));
      EXPECT_TRUE(fs::exists(o.out_dir + "/tokenizer_config.json"));
      json gen = json::parse(ReadAll(o.out_dir + "/generation_config.json"));
      EXPECT_EQ(gen["eos_token_id"], 301);
      EXPECT_EQ(gen["bos_token_id"], 300);
      const TensorView* embed = model->Find("model.embed_tokens.weight");
      ASSERT_NE(embed, nullptr);
      EXPECT_EQ(embed->dtype, TensorDtype::kBF16);
      const std::string q = arch == Arch::kDeepseekV3 ? "model.layers.0.self_attn.q_b_proj.weight"
                                                      : "model.layers.0.self_attn.q_proj.weight";
      EXPECT_EQ(model->Find(q)->dtype, fp8 ? TensorDtype::kF8E4M3 : TensorDtype::kBF16);
    }
  }
}

TEST_F(GenModelTest, SameSeedSameBytesDifferentSeedDifferentBytes) {
  GenModelOptions a = Options(Arch::kDeepseekV3, "a", 7);
  GenModelOptions b = Options(Arch::kDeepseekV3, "b", 7);
  b.num_threads = 1;  // the thread count does not change the values
  GenModelOptions c = Options(Arch::kDeepseekV3, "c", 8);
  for (auto* o : {&a, &b, &c}) {
    o->fp8 = true;
    ASSERT_TRUE(GenerateModel(*o).ok());
  }
  const std::string bytes_a = ReadAll(a.out_dir + "/model.safetensors");
  EXPECT_GT(bytes_a.size(), 100000u);
  EXPECT_EQ(bytes_a, ReadAll(b.out_dir + "/model.safetensors"));
  EXPECT_EQ(ReadAll(a.out_dir + "/config.json"), ReadAll(b.out_dir + "/config.json"));
  const std::string bytes_c = ReadAll(c.out_dir + "/model.safetensors");
  ASSERT_EQ(bytes_a.size(), bytes_c.size());
  EXPECT_NE(bytes_a, bytes_c);
  // Every tensor differs between seeds, not just one (a one-element FP8 scale is the block's
  // amax / 448 and may repeat).
  auto ma = SafetensorsModel::Open(a.out_dir);
  auto mc = SafetensorsModel::Open(c.out_dir);
  ASSERT_TRUE(ma.ok() && mc.ok());
  for (const auto& name : ma->names()) {
    const TensorView* ta = ma->Find(name);
    const TensorView* tc = mc->Find(name);
    if (ta->NumElements() < 4) continue;
    EXPECT_NE(std::memcmp(ta->data, tc->data, ta->bytes), 0) << name;
  }
}

TEST_F(GenModelTest, ShardedCheckpointHoldsTheSameTensors) {
  GenModelOptions one = Options(Arch::kQwen3Moe, "one", 3);
  GenModelOptions many = Options(Arch::kQwen3Moe, "many", 3);
  many.max_shard_bytes = 16 << 10;
  ASSERT_TRUE(GenerateModel(one).ok());
  ASSERT_TRUE(GenerateModel(many).ok());
  EXPECT_TRUE(fs::exists(many.out_dir + "/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(many.out_dir + "/model.safetensors"));
  auto m1 = SafetensorsModel::Open(one.out_dir);
  auto m2 = SafetensorsModel::Open(many.out_dir);
  ASSERT_TRUE(m1.ok() && m2.ok());
  EXPECT_GT(m2->files().size(), 3u);
  ASSERT_EQ(m1->names(), m2->names());
  for (const auto& name : m1->names()) {
    const TensorView* t1 = m1->Find(name);
    const TensorView* t2 = m2->Find(name);
    ASSERT_EQ(t1->bytes, t2->bytes);
    EXPECT_EQ(std::memcmp(t1->data, t2->data, t1->bytes), 0) << name;
  }
  // Regenerating unsharded into the sharded directory removes the stale shards.
  many.max_shard_bytes = 1ull << 30;
  ASSERT_TRUE(GenerateModel(many).ok());
  EXPECT_FALSE(fs::exists(many.out_dir + "/model.safetensors.index.json"));
  auto m3 = SafetensorsModel::Open(many.out_dir);
  ASSERT_TRUE(m3.ok()) << m3.status().ToString();
}

TEST_F(GenModelTest, Fp8WeightsDequantizeToTheBf16Weights) {
  GenModelOptions bf = Options(Arch::kDeepseekV3, "bf", 5);
  GenModelOptions f8 = Options(Arch::kDeepseekV3, "f8", 5);
  f8.fp8 = true;
  ASSERT_TRUE(GenerateModel(bf).ok());
  ASSERT_TRUE(GenerateModel(f8).ok());
  auto mb = SafetensorsModel::Open(bf.out_dir);
  auto mf = SafetensorsModel::Open(f8.out_dir);
  ASSERT_TRUE(mb.ok() && mf.ok());
  int checked = 0;
  for (const auto& name : mf->names()) {
    const TensorView* t = mf->Find(name);
    if (t->dtype != TensorDtype::kF8E4M3) continue;
    ++checked;
    // Each block's largest magnitude maps to +-448 (scale_inv = amax / 448).
    bool has_max = false;
    for (size_t i = 0; i < t->bytes; ++i) has_max |= (t->data[i] & 0x7f) == 0x7e;
    EXPECT_TRUE(has_max) << name;
    const std::vector<float> deq = Read(*mf, name);
    const std::vector<float> ref = Read(*mb, name);
    ASSERT_EQ(deq.size(), ref.size());
    double err = 0, norm = 0;
    for (size_t i = 0; i < deq.size(); ++i) {
      err += std::fabs(deq[i] - ref[i]);
      norm += std::fabs(ref[i]);
    }
    EXPECT_LT(err / norm, 0.04) << name;  // e4m3 keeps 3 mantissa bits
  }
  EXPECT_GT(checked, 50);
}

TEST_F(GenModelTest, TinyScalesAreSensitiveAndBenchScalesRealistic) {
  GenModelOptions tiny = Options(Arch::kQwen3, "tiny", 9);
  ASSERT_TRUE(GenerateModel(tiny).ok());
  GenModelOptions real = Options(Arch::kQwen3, "real", 9);
  real.scales = RealisticInitScales();
  ASSERT_TRUE(GenerateModel(real).ok());
  auto mt = SafetensorsModel::Open(tiny.out_dir);
  auto mr = SafetensorsModel::Open(real.out_dir);
  ASSERT_TRUE(mt.ok() && mr.ok());
  double mean, std;
  MeanStd(Read(*mt, "model.embed_tokens.weight"), &mean, &std);
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(std, 1.0, 0.02);
  MeanStd(Read(*mt, "model.layers.0.self_attn.q_proj.weight"), &mean, &std);
  EXPECT_NEAR(std, 2.0 / 8.0, 0.01);  // gain 2 / sqrt(64)
  MeanStd(Read(*mt, "model.layers.1.input_layernorm.weight"), &mean, &std);
  EXPECT_NEAR(mean, 1.0, 0.05);
  EXPECT_GT(std, 0.03);
  MeanStd(Read(*mt, "model.layers.1.self_attn.q_norm.weight"), &mean, &std);
  EXPECT_NEAR(mean, 2.0, 0.1);
  MeanStd(Read(*mr, "model.layers.0.mlp.up_proj.weight"), &mean, &std);
  EXPECT_NEAR(std, 0.02, 0.001);
  MeanStd(Read(*mr, "model.norm.weight"), &mean, &std);
  EXPECT_EQ(mean, 1.0);
  EXPECT_EQ(std, 0.0);
}

// Counts how often each expert is in the top-k for router inputs built from the embeddings.
std::vector<int> RouteEmbeddings(const SafetensorsModel& m, const ModelConfig& c,
                                 const std::string& gate, const std::string& norm) {
  const std::vector<float> emb = ReadTensorAsFloat(m, "model.embed_tokens.weight").value();
  const std::vector<float> w = ReadTensorAsFloat(m, gate).value();
  const std::vector<float> g = ReadTensorAsFloat(m, norm).value();
  const int64_t h = c.hidden_size, e = c.num_experts;
  std::vector<int> counts(e, 0);
  for (int64_t row = 0; row < c.vocab_size; ++row) {
    const float* x = &emb[row * h];
    double ss = 0;
    for (int64_t k = 0; k < h; ++k) ss += x[k] * x[k];
    const double inv = 1.0 / std::sqrt(ss / h + 1e-6);
    std::vector<std::pair<double, int>> logits(e);
    for (int64_t j = 0; j < e; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < h; ++k) dot += w[j * h + k] * x[k] * inv * g[k];
      logits[j] = {dot, static_cast<int>(j)};
    }
    std::partial_sort(logits.begin(), logits.begin() + c.num_experts_per_tok, logits.end(),
                      std::greater<>());
    for (int64_t k = 0; k < c.num_experts_per_tok; ++k) ++counts[logits[k].second];
  }
  return counts;
}

TEST_F(GenModelTest, RouterSkewMakesTheFirstExpertsHot) {
  for (Arch arch : {Arch::kQwen3Moe, Arch::kMixtral}) {
    SCOPED_TRACE(std::string(ModelTypeName(arch)));
    GenModelOptions plain = Options(arch, "plain", 4);
    GenModelOptions skew = Options(arch, "skew", 4);
    skew.router_skew = 6.0;
    ASSERT_TRUE(GenerateModel(plain).ok());
    ASSERT_TRUE(GenerateModel(skew).ok());
    const ModelConfig c = LoadModelConfig(plain.out_dir).value();
    const std::string prefix = "model.layers.0.";
    const std::string gate =
        prefix + (arch == Arch::kMixtral ? "block_sparse_moe.gate.weight" : "mlp.gate.weight");
    const std::string norm = prefix + "post_attention_layernorm.weight";
    auto mp = SafetensorsModel::Open(plain.out_dir);
    auto ms = SafetensorsModel::Open(skew.out_dir);
    ASSERT_TRUE(mp.ok() && ms.ok());
    const double fair = c.vocab_size * c.num_experts_per_tok / double(c.num_experts);
    std::vector<int> before = RouteEmbeddings(*mp, c, gate, norm);
    std::vector<int> after = RouteEmbeddings(*ms, c, gate, norm);
    EXPECT_LT(before[0], 2.0 * fair);
    EXPECT_GT(after[0], 3.0 * fair);  // expert 0 is in (nearly) every top-2
    EXPECT_LT(after[7], before[7] + 1);
  }
  GenModelOptions ds = Options(Arch::kDeepseekV3, "ds_skew", 4);
  ds.router_skew = 3.0;
  ASSERT_TRUE(GenerateModel(ds).ok());
  auto m = SafetensorsModel::Open(ds.out_dir);
  ASSERT_TRUE(m.ok());
  const TensorView* bias = m->Find("model.layers.1.mlp.gate.e_score_correction_bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_EQ(bias->dtype, TensorDtype::kF32);
  const std::vector<float> b = Read(*m, bias->name);
  EXPECT_GT(b[0] - b[7], 3.0 - 1.5);  // +3 on expert 0, +1.5 on expert 1, noise std 0.25
  EXPECT_GT(b[1], b[5]);
}

TEST_F(GenModelTest, RejectsBadOptions) {
  GenModelOptions o = Options(Arch::kMixtral, "bad");
  o.preset = "bench";
  Status s = GenerateModel(o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--preset"));
  o = Options(Arch::kLlama, "bad");
  o.tokenizer_dir = Dir("missing");
  EXPECT_EQ(GenerateModel(o).code(), StatusCode::kNotFound);
  o = Options(Arch::kLlama, "bad");
  o.router_skew = -1;
  EXPECT_EQ(GenerateModel(o).code(), StatusCode::kInvalidArgument);
}

TEST(GenModelPresetTest, BenchAndLayerPresetsMatchTheDesignTable) {
  auto qwen = PresetConfig(Arch::kQwen3Moe, "bench", 151669, false);
  ASSERT_TRUE(qwen.ok()) << qwen.status().ToString();
  EXPECT_EQ(qwen->hidden_size, 1024);
  EXPECT_EQ(qwen->num_hidden_layers, 12);
  EXPECT_EQ(qwen->num_attention_heads, 16);
  EXPECT_EQ(qwen->num_key_value_heads, 4);
  EXPECT_EQ(qwen->head_dim, 64);
  EXPECT_EQ(qwen->num_experts, 32);
  EXPECT_EQ(qwen->num_experts_per_tok, 4);
  EXPECT_EQ(qwen->moe_intermediate_size, 512);
  EXPECT_EQ(qwen->vocab_size, 151936);

  auto ds = PresetConfig(Arch::kDeepseekV3, "bench", 128815, true);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  EXPECT_EQ(ds->hidden_size, 1024);
  EXPECT_EQ(ds->num_hidden_layers, 12);
  EXPECT_EQ(ds->first_k_dense_replace, 1);
  EXPECT_EQ(ds->intermediate_size, 2816);
  EXPECT_EQ(ds->num_attention_heads, 16);
  EXPECT_EQ(ds->q_lora_rank, 384);
  EXPECT_EQ(ds->kv_lora_rank, 256);
  EXPECT_EQ(ds->qk_nope_head_dim, 64);
  EXPECT_EQ(ds->qk_rope_head_dim, 32);
  EXPECT_EQ(ds->v_head_dim, 64);
  EXPECT_EQ(ds->num_experts, 64);
  EXPECT_EQ(ds->num_experts_per_tok, 6);
  EXPECT_EQ(ds->n_shared_experts, 1);
  EXPECT_EQ(ds->moe_intermediate_size, 512);
  EXPECT_EQ(ds->n_group, 8);
  EXPECT_EQ(ds->topk_group, 4);
  EXPECT_EQ(ds->rope_scaling.type, RopeScalingType::kYarn);
  EXPECT_EQ(ds->rope_scaling.factor, 4.0);
  EXPECT_EQ(ds->rope_scaling.original_max_position_embeddings, 4096);
  EXPECT_EQ(ds->vocab_size, 129280);
  EXPECT_TRUE(ds->quantization.enabled);
  EXPECT_FALSE(ds->IsMoeLayer(0));
  EXPECT_TRUE(ds->IsMoeLayer(11));

  auto layer = PresetConfig(Arch::kDeepseekV3, "layer", 128815, false);
  ASSERT_TRUE(layer.ok()) << layer.status().ToString();
  EXPECT_EQ(layer->hidden_size, 7168);
  EXPECT_EQ(layer->num_attention_heads, 128);
  EXPECT_EQ(layer->num_experts, 256);
  EXPECT_EQ(layer->num_experts_per_tok, 8);
  EXPECT_EQ(layer->moe_intermediate_size, 2048);
  EXPECT_EQ(layer->q_lora_rank, 1536);
  EXPECT_EQ(layer->kv_lora_rank, 512);
  EXPECT_GE(layer->num_hidden_layers, 2);
  EXPECT_LE(layer->num_hidden_layers, 4);

  // Every preset's config.json loads back as the same config.
  for (Arch arch : kArchs) {
    for (const char* preset : {"tiny", "bench", "layer"}) {
      auto c = PresetConfig(arch, preset, 128256, false);
      if (!c.ok()) {
        EXPECT_THAT(c.status().message(), HasSubstr("--preset")) << preset;
        continue;
      }
      auto back = ParseModelConfig(ModelConfigToJson(*c));
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_EQ(*back, *c) << ModelTypeName(arch) << " " << preset;
    }
  }
  EXPECT_FALSE(PresetConfig(Arch::kLlama, "bench", 1000, false).ok());
  EXPECT_FALSE(PresetConfig(Arch::kQwen3Moe, "layer", 1000, false).ok());
  EXPECT_FALSE(PresetConfig(Arch::kQwen3, "huge", 1000, false).ok());
}

TEST(GenModelPresetTest, VocabFromRealTokenizers) {
  const char* assets = std::getenv("STRATA_TEST_ASSETS");
  const std::string dir = assets ? std::string(assets) + "/tokenizers" : "";
  if (dir.empty() || !fs::exists(dir)) {
    GTEST_SKIP() << "test assets missing (run scripts/fetch-test-assets): " << dir;
  }
  auto qwen = TokenizerVocabSize(dir + "/qwen3");
  auto deepseek = TokenizerVocabSize(dir + "/deepseek_v3");
  auto llama = TokenizerVocabSize(dir + "/llama3");
  ASSERT_TRUE(qwen.ok() && deepseek.ok() && llama.ok());
  EXPECT_EQ(*qwen, 151669);
  EXPECT_EQ(*deepseek, 128815);
  EXPECT_EQ(*llama, 128256);
  EXPECT_EQ(PresetConfig(Arch::kQwen3Moe, "bench", *qwen, false)->vocab_size, 151936);
  EXPECT_EQ(PresetConfig(Arch::kDeepseekV3, "bench", *deepseek, false)->vocab_size, 129280);
  EXPECT_EQ(PresetConfig(Arch::kQwen3, "tiny", *qwen, false)->vocab_size, 151680);
  EXPECT_EQ(PresetConfig(Arch::kLlama, "tiny", *llama, false)->vocab_size, 128256);
}

}  // namespace
}  // namespace strata::model
