#include "model/gen_model.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "common/thread_pool.h"
#include "model/gen_model_weights.h"
#include "model/safetensors_writer.h"

namespace strata::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Sensitive (tiny) scales. Gains are per 1/sqrt(fan_in): with RMS-normalized inputs a gain g
// gives outputs of std g, so q.k / sqrt(d) has std g^2 (4 for g = 2: sharp attention), router
// logits have std `kTinyRouterGain` and logits std `kTinyLmHeadGain`.
constexpr float kTinyEmbeddingStd = 1.0f;
constexpr float kTinyLmHeadGain = 4.0f;
constexpr float kTinyQkGain = 2.0f;
constexpr float kTinyLoraAGain = 1.0f;
constexpr float kTinyVoGain = 1.0f;
constexpr float kTinyMlpGain = 1.0f;
constexpr float kTinyRouterGain = 3.0f;
constexpr float kTinyRouterBiasStd = 0.25f;
constexpr float kTinyBiasStd = 0.1f;
constexpr float kTinyNormSpread = 0.1f;
constexpr float kTinyQkNormGain = 2.0f;  // Qwen3 q/k norms: q.k / sqrt(d) std ~ gain^2

constexpr float kRealisticStd = 0.02f;

// Tokenizer files copied into the checkpoint when present.
constexpr const char* kTokenizerFiles[] = {"tokenizer.json",
                                           "tokenizer_config.json",
                                           "special_tokens_map.json",
                                           "added_tokens.json",
                                           "vocab.json",
                                           "merges.txt",
                                           "tokenizer.model",
                                           "chat_template.jinja",
                                           "chat_template.json"};

StatusOr<json> ReadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError(path + ": not valid JSON");
  return j;
}

Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return InternalError(path + ": write failed");
  return OkStatus();
}

int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Id of special token `which` ("bos_token"/"eos_token") of tokenizer_config.json, if any.
std::vector<int64_t> SpecialTokenId(const json& tokenizer_config, const json& tokenizer,
                                    const char* which) {
  auto it = tokenizer_config.find(which);
  if (it == tokenizer_config.end()) return {};
  std::string content;
  if (it->is_string()) {
    content = it->get<std::string>();
  } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    content = (*it)["content"].get<std::string>();
  } else {
    return {};
  }
  if (auto added = tokenizer.find("added_tokens"); added != tokenizer.end() && added->is_array()) {
    for (const auto& t : *added) {
      if (t.is_object() && t.value("content", "") == content && t.contains("id") &&
          t["id"].is_number_integer()) {
        return {t["id"].get<int64_t>()};
      }
    }
  }
  if (tokenizer.contains("model") && tokenizer["model"].contains("vocab")) {
    const json& vocab = tokenizer["model"]["vocab"];
    if (vocab.is_object() && vocab.contains(content) && vocab[content].is_number_integer()) {
      return {vocab[content].get<int64_t>()};
    }
  }
  return {};
}

// max token id + 1 of a parsed tokenizer.json.
StatusOr<int64_t> VocabSizeOf(const json& j, const std::string& path) {
  int64_t max_id = -1;
  auto note = [&max_id](const json& id) {
    if (id.is_number_integer()) max_id = std::max(max_id, id.get<int64_t>());
  };
  if (j.contains("model") && j["model"].is_object() && j["model"].contains("vocab")) {
    const json& vocab = j["model"]["vocab"];
    if (vocab.is_object()) {
      for (const auto& [token, id] : vocab.items()) note(id);
    } else if (vocab.is_array()) {  // Unigram: [[piece, score], ...], ids are positions
      max_id = std::max<int64_t>(max_id, static_cast<int64_t>(vocab.size()) - 1);
    }
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& t : j["added_tokens"]) {
      if (t.is_object() && t.contains("id")) note(t["id"]);
    }
  }
  if (max_id < 0)
    return InvalidArgumentError(path + ": no token ids in model.vocab or added_tokens");
  return max_id + 1;
}

ModelConfig TinyBase(Arch arch) {
  ModelConfig c;
  c.arch = arch;
  c.hidden_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 128;
  c.max_position_embeddings = 512;
  c.rope_theta = 1e6;
  c.rms_norm_eps = 1e-6;
  return c;
}

StatusOr<ModelConfig> Preset(Arch arch, std::string_view preset) {
  if (preset == "tiny") {
    ModelConfig c = TinyBase(arch);
    switch (arch) {
      case Arch::kDeepseekV3:
        c.num_hidden_layers = 3;
        c.num_key_value_heads = 4;
        c.q_lora_rank = 32;
        c.kv_lora_rank = 32;
        c.qk_nope_head_dim = 16;
        c.qk_rope_head_dim = 8;
        c.v_head_dim = 16;
        c.head_dim = 24;
        c.rope_interleave = true;
        c.rope_theta = 10000;
        c.rope_scaling = {RopeScalingType::kYarn, 4.0, 128, 32.0, 1.0, 1.0, 1.0};
        c.num_experts = 8;
        c.num_experts_per_tok = 2;
        c.moe_intermediate_size = 32;
        c.n_shared_experts = 1;
        c.shared_expert_intermediate_size = 32;
        c.norm_topk_prob = true;
        c.scoring_func = ScoringFunc::kSigmoid;
        c.topk_method = TopkMethod::kNoauxTc;
        c.n_group = 2;
        c.topk_group = 1;
        c.routed_scaling_factor = 2.5;
        c.first_k_dense_replace = 1;
        break;
      case Arch::kQwen3Moe:
        c.num_experts = 8;
        c.num_experts_per_tok = 2;
        c.moe_intermediate_size = 32;
        c.norm_topk_prob = true;
        break;
      case Arch::kMixtral:
        c.intermediate_size = 64;
        c.num_experts = 8;
        c.num_experts_per_tok = 2;
        c.moe_intermediate_size = 64;
        c.norm_topk_prob = true;
        c.rms_norm_eps = 1e-5;
        break;
      case Arch::kLlama:
        c.rope_theta = 500000;
        c.rope_scaling.type = RopeScalingType::kLlama3;
        c.rope_scaling.factor = 8.0;
        c.rope_scaling.original_max_position_embeddings = 64;
        c.rope_scaling.low_freq_factor = 1.0;
        c.rope_scaling.high_freq_factor = 4.0;
        break;
      case Arch::kQwen3:
        c.tie_word_embeddings = true;
        break;
    }
    return c;
  }
  if (preset == "bench" && arch == Arch::kQwen3Moe) {
    ModelConfig c;
    c.arch = arch;
    c.vocab_size = 151936;
    c.hidden_size = 1024;
    c.num_hidden_layers = 12;
    c.num_attention_heads = 16;
    c.num_key_value_heads = 4;
    c.head_dim = 64;
    c.intermediate_size = 3072;
    c.max_position_embeddings = 40960;
    c.rope_theta = 1e6;
    c.num_experts = 32;
    c.num_experts_per_tok = 4;
    c.moe_intermediate_size = 512;
    c.norm_topk_prob = true;
    return c;
  }
  const bool bench = preset == "bench", layer = preset == "layer";
  if ((bench || layer) && arch == Arch::kDeepseekV3) {
    ModelConfig c;
    c.arch = arch;
    c.vocab_size = 129280;
    c.hidden_size = bench ? 1024 : 7168;
    c.num_hidden_layers = bench ? 12 : 2;
    c.intermediate_size = bench ? 2816 : 18432;
    c.num_attention_heads = c.num_key_value_heads = bench ? 16 : 128;
    c.q_lora_rank = bench ? 384 : 1536;
    c.kv_lora_rank = bench ? 256 : 512;
    c.qk_nope_head_dim = bench ? 64 : 128;
    c.qk_rope_head_dim = bench ? 32 : 64;
    c.v_head_dim = bench ? 64 : 128;
    c.head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
    c.rope_interleave = true;
    c.rope_theta = 10000;
    const double factor = bench ? 4.0 : 40.0;
    c.rope_scaling = {RopeScalingType::kYarn, factor, 4096, 32.0, 1.0, 1.0, 1.0};
    c.max_position_embeddings = static_cast<int64_t>(4096 * factor);
    c.num_experts = bench ? 64 : 256;
    c.num_experts_per_tok = bench ? 6 : 8;
    c.moe_intermediate_size = bench ? 512 : 2048;
    c.n_shared_experts = 1;
    c.shared_expert_intermediate_size = c.moe_intermediate_size;
    c.norm_topk_prob = true;
    c.scoring_func = ScoringFunc::kSigmoid;
    c.topk_method = TopkMethod::kNoauxTc;
    c.n_group = 8;
    c.topk_group = 4;
    c.routed_scaling_factor = 2.5;
    c.first_k_dense_replace = 1;
    return c;
  }
  return InvalidArgumentError(
      "--preset: no preset '" + std::string(preset) + "' for --arch " +
      std::string(ModelTypeName(arch)) +
      " (presets: tiny for every arch; bench for qwen3_moe and deepseek_v3; layer for "
      "deepseek_v3)");
}

}  // namespace

InitScales RealisticInitScales() {
  InitScales s;
  s.relative_to_fan_in = false;
  s.embedding = s.lm_head = s.attn_qk = s.attn_lora_a = s.attn_v_o = s.mlp = s.router =
      kRealisticStd;
  s.bias = kRealisticStd;
  s.router_bias = 0.0f;
  s.norm_spread = 0.0f;
  s.qk_norm_gain = 1.0f;
  return s;
}

InitScales SensitiveInitScales() {
  InitScales s;
  s.relative_to_fan_in = true;
  s.embedding = kTinyEmbeddingStd;
  s.lm_head = kTinyLmHeadGain;
  s.attn_qk = kTinyQkGain;
  s.attn_lora_a = kTinyLoraAGain;
  s.attn_v_o = kTinyVoGain;
  s.mlp = kTinyMlpGain;
  s.router = kTinyRouterGain;
  s.router_bias = kTinyRouterBiasStd;
  s.bias = kTinyBiasStd;
  s.norm_spread = kTinyNormSpread;
  s.qk_norm_gain = kTinyQkNormGain;
  return s;
}

StatusOr<int64_t> TokenizerVocabSize(const std::string& tokenizer_dir) {
  const std::string path = tokenizer_dir + "/tokenizer.json";
  STRATA_ASSIGN_OR_RETURN(json j, ReadJson(path));
  return VocabSizeOf(j, path);
}

StatusOr<ModelConfig> PresetConfig(Arch arch, std::string_view preset, int64_t tokenizer_vocab,
                                   bool fp8) {
  STRATA_ASSIGN_OR_RETURN(ModelConfig c, Preset(arch, preset));
  c.vocab_size = std::max(c.vocab_size, RoundUp(tokenizer_vocab, 128));
  if (fp8) c.quantization = {true, 128, 128};
  STRATA_RETURN_IF_ERROR(ValidateModelConfig(c));
  return c;
}

Status GenerateModel(const GenModelOptions& o) {
  if (o.out_dir.empty()) return InvalidArgumentError("--out: required");
  if (o.router_skew < 0) return InvalidArgumentError("--router-skew: must be >= 0");
  const std::string tokenizer_path = o.tokenizer_dir + "/tokenizer.json";
  STRATA_ASSIGN_OR_RETURN(json tokenizer, ReadJson(tokenizer_path));
  STRATA_ASSIGN_OR_RETURN(int64_t tokenizer_vocab, VocabSizeOf(tokenizer, tokenizer_path));
  STRATA_ASSIGN_OR_RETURN(ModelConfig config,
                          PresetConfig(o.arch, o.preset, tokenizer_vocab, o.fp8));
  json tokenizer_config = json::object();
  if (fs::exists(o.tokenizer_dir + "/tokenizer_config.json")) {
    STRATA_ASSIGN_OR_RETURN(tokenizer_config, ReadJson(o.tokenizer_dir + "/tokenizer_config.json"));
  }
  config.bos_token_ids = SpecialTokenId(tokenizer_config, tokenizer, "bos_token");
  config.eos_token_ids = SpecialTokenId(tokenizer_config, tokenizer, "eos_token");

  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return InternalError(o.out_dir + ": cannot create: " + ec.message());
  for (const auto& entry : fs::directory_iterator(o.out_dir, ec)) {  // stale shards
    const std::string name = entry.path().filename();
    if (name.rfind("model", 0) == 0 && name.find(".safetensors") != std::string::npos) {
      fs::remove(entry.path(), ec);
    }
  }
  for (const char* name : kTokenizerFiles) {
    const fs::path from = fs::path(o.tokenizer_dir) / name;
    if (!fs::exists(from)) continue;
    fs::copy_file(from, fs::path(o.out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return InternalError(from.string() + ": copy failed: " + ec.message());
  }
  STRATA_RETURN_IF_ERROR(
      WriteText(o.out_dir + "/config.json", ModelConfigToJson(config).dump(2) + "\n"));

  const json model_json = ModelConfigToJson(config);
  json generation = {{"bos_token_id", model_json["bos_token_id"]},
                     {"eos_token_id", model_json["eos_token_id"]}};
  STRATA_RETURN_IF_ERROR(
      WriteText(o.out_dir + "/generation_config.json", generation.dump(2) + "\n"));

  const InitScales scales =
      o.scales ? *o.scales : (o.preset == "tiny" ? SensitiveInitScales() : RealisticInitScales());
  const gen::WeightPlan plan = gen::PlanWeights(config, scales, o.seed, o.router_skew);
  ThreadPool pool(o.num_threads > 0 ? o.num_threads : DefaultThreadCount());
  SafetensorsWriteOptions write;
  write.max_shard_bytes = o.max_shard_bytes;
  const auto start = std::chrono::steady_clock::now();
  const uint64_t total = plan.TotalBytes();
  if (o.show_progress && total >= (256ull << 20)) {
    const bool tty = isatty(fileno(stderr));
    write.on_progress = [start, tty, last = -1](uint64_t done, uint64_t all) mutable {
      const int percent = static_cast<int>(100 * done / std::max<uint64_t>(all, 1));
      const int step = tty ? 1 : 10;  // a log file gets a line per 10%
      if (percent / step == last / step && done != all) return;
      last = percent;
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "%sgen-model: %.2f / %.2f GB (%d%%), %.1f s%s", tty ? "\r" : "",
                   done / 1e9, all / 1e9, percent, s, !tty || done == all ? "\n" : "");
    };
  }
  auto fill = [&](size_t index, std::span<uint8_t> out) {
    return gen::FillTensor(plan, index, out, pool);
  };
  STRATA_ASSIGN_OR_RETURN(auto files, WriteSafetensors(o.out_dir, plan.specs, fill, write));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log::Info("gen-model: wrote {} ({} {}, {} tensors, {:.2f} GB in {} file(s)) in {:.1f} s",
            o.out_dir, ModelTypeName(o.arch), o.preset, plan.specs.size(), total / 1e9,
            files.size(), seconds);
  return OkStatus();
}

}  // namespace strata::model
