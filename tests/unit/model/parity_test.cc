// Parity with Hugging Face transformers (issue 8). The fixtures under tests/fixtures/parity/ were
// made by tests/fixtures/make_parity_fixtures.py with transformers' own model classes on the
// tiny checkpoints that `strata gen-model --preset tiny --seed 0` writes. This test regenerates
// each checkpoint, proves it is byte-identical to the one transformers read (sha256), runs
// Strata's CPU forward on the same prompt ids and compares:
//   - top-1 agreement at every prompt position (transformers float32),
//   - the last position's logits (top 32 and 64 fixed ids) by max error relative to the largest
//     logit, against float32 and bfloat16,
//   - the 16-token greedy continuation of float32, teacher-forced through Strata's decode path:
//     every step picks the same token, or sits at a near tie in Strata's own logits.
// Exact agreement is printed ("[parity]" lines). What separates Strata from transformers'
// float32 is precision, not math: Strata stores the KV cache in bf16 and its optimized matmul
// rounds activations to bf16; with the reference kernels (PARITY_KERNELS_REF=1) the tiny
// presets, whose logits are deliberately sharp, agree exactly except at a few near ties.
// and renders every chat-template case as transformers' apply_chat_template did, ids included.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "kvcache/block_pool.h"
#include "model/chat_template.h"
#include "model/gen_model.h"
#include "model/model_runner.h"
#include "model/tokenizer.h"

namespace strata::model {
namespace {

using Json = nlohmann::ordered_json;
namespace fs = std::filesystem;

// Strata keeps weights in bf16 (as the checkpoint stores them) and activations in f32, and its
// optimized matmul may round activations to bf16 (exact products, f32 sums). transformers'
// float32 run upcasts the same bf16 weights. The logits therefore agree to a few parts in a
// thousand of the largest logit; bf16 (which rounds every activation) is looser.
constexpr double kMaxRelErrVsFloat32 = 2e-2;
constexpr double kMaxRelErrVsBfloat16 = 6e-2;
// Two logits closer than this (relative to the largest logit) are a tie at this precision.
constexpr double kNearTie = 2e-2;

std::string SourceDir() {
  const char* s = std::getenv("STRATA_SOURCE_DIR");
  return s ? s : ".";
}
std::string AssetsDir() {
  const char* s = std::getenv("STRATA_TEST_ASSETS");
  return s ? s : "";
}

Json ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Json();
  return Json::parse(in, nullptr, /*allow_exceptions=*/false);
}

std::string Sha256(const std::string& path) {
  std::string cmd = "sha256sum '" + path + "'";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  char buf[128] = {};
  size_t n = fread(buf, 1, 64, p);
  pclose(p);
  return std::string(buf, n);
}

struct ArchCase {
  const char* name;  // fixture file and gen-model --arch
  Arch arch;
  const char* tokenizer;
};

const ArchCase kArchs[] = {
    {"deepseek_v3", Arch::kDeepseekV3, "deepseek_v3"},
    {"qwen3_moe", Arch::kQwen3Moe, "qwen3"},
    {"mixtral", Arch::kMixtral, "llama3"},
    {"llama", Arch::kLlama, "llama3"},
    {"qwen3", Arch::kQwen3, "qwen3"},
};

class ParityTest : public ::testing::TestWithParam<ArchCase> {};

int Argmax(std::span<const float> v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Max |strata - reference| over the recorded ids, relative to the reference's largest logit.
double RelErr(std::span<const float> logits, const Json& ids, const Json& values, double max_abs) {
  double err = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    err = std::max(err, std::fabs(logits[ids[i].get<int>()] - values[i].get<double>()));
  }
  return err / std::max(max_abs, 1e-6);
}

TEST_P(ParityTest, LogitsAndGreedyMatchTransformers) {
  const ArchCase& c = GetParam();
  Json fx = ReadJson(SourceDir() + "/tests/fixtures/parity/" + c.name + ".json");
  ASSERT_TRUE(fx.is_object() && fx.contains("prompts")) << "fixture missing for " << c.name;
  if (AssetsDir().empty() || !fs::exists(AssetsDir() + "/tokenizers/" + c.tokenizer)) {
    GTEST_SKIP() << "test assets missing (run scripts/fetch-test-assets)";
  }
  std::string dir = (fs::temp_directory_path() /
                     ("strata_parity_" + std::string(c.name) + "_" + std::to_string(getpid())))
                        .string();
  GenModelOptions o;
  o.arch = c.arch;
  o.preset = "tiny";
  o.tokenizer_dir = AssetsDir() + "/tokenizers/" + c.tokenizer;
  o.out_dir = dir;
  o.seed = 0;
  ASSERT_TRUE(GenerateModel(o).ok());
  for (const auto& [file, digest] : fx["checkpoint_sha256"].items()) {
    EXPECT_EQ(Sha256(dir + "/" + file), digest.get<std::string>())
        << file << ": gen-model no longer writes the checkpoint the fixtures were made from; "
        << "regenerate them (tests/fixtures/bundle_for_device.sh)";
  }

  RunnerOptions ro;
  ro.num_threads = 2;
  if (std::getenv("PARITY_KERNELS_REF")) ro.kernels = ops::CpuKernels::kReference;
  ro.num_kv_blocks = 64;
  auto runner_or = ModelRunner::Load(dir, ro);
  ASSERT_TRUE(runner_or.ok()) << runner_or.status().ToString();
  ModelRunner& r = **runner_or;

  for (const Json& p : fx["prompts"]) {
    std::vector<int32_t> ids = p["token_ids"].get<std::vector<int32_t>>();
    const Json& f32 = p["float32"];
    const Json& b16 = p["bfloat16"];
    SCOPED_TRACE(p["text"].get<std::string>());

    kvcache::BlockPool pool(r.num_kv_blocks());
    const int n_greedy = static_cast<int>(f32["greedy"].size());
    auto blocks_or = pool.AllocateMany(BlocksForTokens(ids.size() + n_greedy, r.block_size()));
    ASSERT_TRUE(blocks_or.ok());
    std::vector<int32_t> blocks = *blocks_or;

    ForwardBatch b;
    b.sequences.push_back({ids, 0, blocks, LogitsMode::kAll});
    ForwardResult res;
    ASSERT_TRUE(r.Forward(b, &res).ok());

    const double max_abs = f32["last_max_abs"].get<double>();
    // A position agrees when Strata's argmax is the reference's, or when the two are a near tie
    // in Strata's own logits (the reference token within the logit tolerance of the top): bf16
    // KV and activation rounding may flip a tie, a layout or math error flips clear winners.
    auto agrees = [&](std::span<const float> row, int ref_token) {
      int top = Argmax(row);
      return top == ref_token || (row[top] - row[ref_token]) <= kNearTie * max_abs;
    };

    // Top-1 at every position.
    std::vector<int> argmax = f32["argmax_per_position"].get<std::vector<int>>();
    ASSERT_EQ(argmax.size(), ids.size());
    int agree = 0, exact = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      agree += agrees(res.Row(0, i), argmax[i]);
      exact += Argmax(res.Row(0, i)) == argmax[i];
    }
    EXPECT_EQ(agree, static_cast<int>(ids.size())) << "top-1 agreement per position";

    // Last position's logits.
    std::span<const float> last = res.Row(0, ids.size() - 1);
    double err32 = std::max(RelErr(last, f32["last_top_ids"], f32["last_top_values"], max_abs),
                            RelErr(last, fx["fixed_ids"], f32["last_fixed_values"], max_abs));
    double err16 = std::max(RelErr(last, b16["last_top_ids"], b16["last_top_values"], max_abs),
                            RelErr(last, fx["fixed_ids"], b16["last_fixed_values"], max_abs));
    EXPECT_LE(err32, kMaxRelErrVsFloat32) << "vs transformers float32";
    EXPECT_LE(err16, kMaxRelErrVsBfloat16) << "vs transformers bfloat16";

    // The greedy continuation, teacher-forced through Strata's decode path (KV cache, one token
    // per step): at every step Strata picks the reference's token, or sits at a near tie.
    std::vector<int32_t> ref_greedy = f32["greedy"].get<std::vector<int32_t>>();
    std::vector<int32_t> seq = ids;
    int greedy_agree = 0, greedy_exact = 0;
    std::vector<float> step_logits(last.begin(), last.end());
    for (int i = 0; i < n_greedy; ++i) {
      greedy_agree += agrees(step_logits, ref_greedy[i]);
      greedy_exact += Argmax(step_logits) == ref_greedy[i];
      seq.push_back(ref_greedy[i]);
      if (i + 1 == n_greedy) break;
      ForwardBatch d;
      d.sequences.push_back({std::span<const int32_t>(&seq.back(), 1),
                             static_cast<int32_t>(seq.size() - 1), blocks, LogitsMode::kLast});
      ASSERT_TRUE(r.Forward(d, &res).ok());
      step_logits.assign(res.Row(0).begin(), res.Row(0).end());
    }
    EXPECT_EQ(greedy_agree, n_greedy) << "greedy continuation";
    std::printf(
        "[parity] %-11s max rel err vs float32 %.1e, vs bfloat16 %.1e; top-1 exact %d/%zu; "
        "greedy exact %d/%d\n",
        c.name, err32, err16, exact, ids.size(), greedy_exact, n_greedy);
    pool.ReleaseAll(blocks);
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, ParityTest, ::testing::ValuesIn(kArchs),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ParityFixtures, Fp8CheckpointNotLoadableByTransformersHere) {
  // transformers 5.17's fine-grained FP8 path needs the `kernels` package, which the GPU
  // machine does not have and cannot fetch; the fixture records the error as evidence. Strata's
  // FP8 path is checked against its own bf16 dequantization in gen_model_test / forward tests.
  Json fx = ReadJson(SourceDir() + "/tests/fixtures/parity/deepseek_v3_fp8.json");
  ASSERT_TRUE(fx.is_object());
  if (fx.contains("prompts")) GTEST_SKIP() << "FP8 fixture present: covered when added";
  EXPECT_NE(fx["error"].get<std::string>().find("kernels"), std::string::npos);
}

struct TemplateCase {
  const char* fixture_key;
  const char* tokenizer;
};

TEST(ChatTemplateParity, RendersAndTokenizesAsTransformers) {
  Json fx = ReadJson(SourceDir() + "/tests/fixtures/parity/chat_templates.json");
  ASSERT_TRUE(fx.is_object());
  if (AssetsDir().empty()) GTEST_SKIP() << "test assets missing";
  const TemplateCase cases[] = {
      {"deepseek_v3", "deepseek_v3"}, {"qwen3_moe", "qwen3"}, {"mixtral", "llama3"}};
  int checked = 0;
  for (const auto& tc : cases) {
    ASSERT_TRUE(fx["templates"].contains(tc.fixture_key)) << tc.fixture_key;
    std::string tok_dir = AssetsDir() + "/tokenizers/" + tc.tokenizer;
    auto tok = Tokenizer::LoadFromDir(tok_dir);
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    auto tmpl = ChatTemplate::FromTokenizerConfig((*tok)->tokenizer_config());
    ASSERT_TRUE(tmpl.ok()) << tmpl.status().ToString();
    for (const Json& k : fx["templates"][tc.fixture_key]["cases"]) {
      SCOPED_TRACE(std::string(tc.tokenizer) + "/" + k["name"].get<std::string>() +
                   (k["add_generation_prompt"].get<bool>() ? "+gen" : ""));
      Json tools = k.contains("tools") ? k["tools"] : Json();
      auto text = tmpl->Render(k["messages"], k["add_generation_prompt"].get<bool>(), tools);
      if (k.contains("error")) {
        EXPECT_FALSE(text.ok()) << "transformers failed: " << k["error"];
        continue;
      }
      ASSERT_TRUE(text.ok()) << text.status().ToString();
      EXPECT_EQ(*text, k["text"].get<std::string>());
      auto ids = (*tok)->Encode(*text, /*add_special_tokens=*/false);
      ASSERT_TRUE(ids.ok());
      EXPECT_EQ(*ids, k["token_ids"].get<std::vector<int32_t>>());
      ++checked;
    }
  }
  EXPECT_GE(checked, 20);
}

}  // namespace
}  // namespace strata::model
