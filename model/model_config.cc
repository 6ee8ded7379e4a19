#include "model/model_config.h"

#include <sys/stat.h>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace strata::model {
namespace {

using nlohmann::json;

Status FieldError(std::string_view field, std::string_view why) {
  return InvalidArgumentError("config.json: " + std::string(field) + ": " + std::string(why));
}

std::string Describe(const json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// Typed access to the fields of one JSON object; `prefix` names nested objects in errors
// ("rope_scaling.factor"). A JSON null counts as absent.
class FieldReader {
 public:
  FieldReader(const json& obj, std::string prefix) : obj_(obj), prefix_(std::move(prefix)) {}

  std::string Name(std::string_view key) const { return prefix_ + std::string(key); }
  bool Has(std::string_view key) const {
    auto it = obj_.find(key);
    return it != obj_.end() && !it->is_null();
  }
  const json* Get(std::string_view key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }

  StatusOr<int64_t> Int(std::string_view key) const {
    const json* v = Get(key);
    if (v == nullptr) return FieldError(Name(key), "missing");
    return AsInt(*v, Name(key));
  }
  StatusOr<int64_t> Int(std::string_view key, int64_t fallback) const {
    return Has(key) ? Int(key) : StatusOr<int64_t>(fallback);
  }
  StatusOr<double> Double(std::string_view key) const {
    const json* v = Get(key);
    if (v == nullptr) return FieldError(Name(key), "missing");
    if (!v->is_number()) return FieldError(Name(key), "expected a number, got " + Describe(*v));
    double d = v->get<double>();
    if (!std::isfinite(d)) return FieldError(Name(key), "not finite");
    return d;
  }
  StatusOr<double> Double(std::string_view key, double fallback) const {
    return Has(key) ? Double(key) : StatusOr<double>(fallback);
  }
  StatusOr<bool> Bool(std::string_view key, bool fallback) const {
    const json* v = Get(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean())
      return FieldError(Name(key), "expected true or false, got " + Describe(*v));
    return v->get<bool>();
  }
  StatusOr<std::string> String(std::string_view key, std::string fallback) const {
    const json* v = Get(key);
    if (v == nullptr) return fallback;
    if (!v->is_string()) return FieldError(Name(key), "expected a string, got " + Describe(*v));
    return v->get<std::string>();
  }
  // An integer or a list of integers (token ids); empty when absent.
  StatusOr<std::vector<int64_t>> IntOrList(std::string_view key) const {
    std::vector<int64_t> out;
    const json* v = Get(key);
    if (v == nullptr) return out;
    if (v->is_array()) {
      for (const auto& e : *v) {
        STRATA_ASSIGN_OR_RETURN(int64_t x, AsInt(e, Name(key)));
        out.push_back(x);
      }
      return out;
    }
    STRATA_ASSIGN_OR_RETURN(int64_t x, AsInt(*v, Name(key)));
    out.push_back(x);
    return out;
  }

  static StatusOr<int64_t> AsInt(const json& v, const std::string& name) {
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return FieldError(name, "out of range");
      return static_cast<int64_t>(u);
    }
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
        return static_cast<int64_t>(d);
      }
    }
    return FieldError(name, "expected an integer, got " + Describe(v));
  }

 private:
  const json& obj_;
  std::string prefix_;
};

struct ArchInfo {
  Arch arch;
  std::string_view architecture;
  std::string_view model_type;
};
constexpr ArchInfo kArchs[] = {
    {Arch::kDeepseekV3, "DeepseekV3ForCausalLM", "deepseek_v3"},
    {Arch::kQwen3Moe, "Qwen3MoeForCausalLM", "qwen3_moe"},
    {Arch::kMixtral, "MixtralForCausalLM", "mixtral"},
    {Arch::kLlama, "LlamaForCausalLM", "llama"},
    {Arch::kQwen3, "Qwen3ForCausalLM", "qwen3"},
};

std::string SupportedList(bool architectures) {
  std::string s;
  for (const auto& a : kArchs) {
    if (!s.empty()) s += ", ";
    s += architectures ? a.architecture : a.model_type;
  }
  return s;
}

StatusOr<Arch> ParseArch(const FieldReader& r) {
  std::optional<Arch> from_arch;
  if (const json* a = r.Get("architectures")) {
    if (!a->is_array() || a->empty() || !(*a)[0].is_string()) {
      return FieldError("architectures", "expected a non-empty list of strings");
    }
    std::string name = (*a)[0].get<std::string>();
    for (const auto& info : kArchs) {
      if (info.architecture == name) from_arch = info.arch;
    }
    if (!from_arch) {
      return FieldError("architectures", "unsupported architecture '" + name +
                                             "' (supported: " + SupportedList(true) + ")");
    }
  }
  STRATA_ASSIGN_OR_RETURN(std::string model_type, r.String("model_type", ""));
  if (!model_type.empty()) {
    auto from_type = ParseModelType(model_type);
    if (!from_type.ok()) return from_type.status();
    if (from_arch && *from_arch != *from_type) {
      return FieldError("model_type", "'" + model_type + "' does not match architectures[0] '" +
                                          std::string(ArchitectureName(*from_arch)) + "'");
    }
    return *from_type;
  }
  if (!from_arch) return FieldError("architectures", "missing (and no model_type)");
  return *from_arch;
}

Status ParseRope(const FieldReader& r, ModelConfig& c, double default_theta) {
  // transformers 4.x: rope_theta + rope_scaling; 5.x: rope_parameters (may hold rope_theta).
  const char* key = r.Has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  STRATA_ASSIGN_OR_RETURN(c.rope_theta, r.Double("rope_theta", default_theta));
  STRATA_ASSIGN_OR_RETURN(double partial, r.Double("partial_rotary_factor", 1.0));
  if (partial != 1.0) return FieldError("partial_rotary_factor", "only 1.0 is supported");
  const json* rs = r.Get(key);
  if (rs == nullptr) return OkStatus();
  if (!rs->is_object()) return FieldError(key, "expected an object or null");
  FieldReader s(*rs, std::string(key) + ".");
  if (s.Has("rope_theta")) {
    STRATA_ASSIGN_OR_RETURN(c.rope_theta, s.Double("rope_theta"));
  }
  const char* type_key = s.Has("rope_type") ? "rope_type" : "type";
  STRATA_ASSIGN_OR_RETURN(std::string type, s.String(type_key, "default"));
  RopeScaling& out = c.rope_scaling;
  out = RopeScaling{};
  if (type == "default") return OkStatus();
  if (s.Has("partial_rotary_factor")) {
    STRATA_ASSIGN_OR_RETURN(double partial, s.Double("partial_rotary_factor"));
    if (partial != 1.0) return FieldError(s.Name("partial_rotary_factor"), "only 1.0 is supported");
  }
  if (type == "yarn") {
    STRATA_ASSIGN_OR_RETURN(bool truncate, s.Bool("truncate", true));
    if (!truncate) return FieldError(s.Name("truncate"), "only true is supported");
    out.type = RopeScalingType::kYarn;
    STRATA_ASSIGN_OR_RETURN(out.factor, s.Double("factor"));
    STRATA_ASSIGN_OR_RETURN(out.original_max_position_embeddings,
                            s.Int("original_max_position_embeddings", c.max_position_embeddings));
    STRATA_ASSIGN_OR_RETURN(out.beta_fast, s.Double("beta_fast", 32.0));
    STRATA_ASSIGN_OR_RETURN(out.beta_slow, s.Double("beta_slow", 1.0));
    STRATA_ASSIGN_OR_RETURN(out.mscale, s.Double("mscale", 0.0));
    STRATA_ASSIGN_OR_RETURN(out.mscale_all_dim, s.Double("mscale_all_dim", 0.0));
    STRATA_ASSIGN_OR_RETURN(out.attention_factor, s.Double("attention_factor", 0.0));
    return OkStatus();
  }
  if (type == "llama3") {
    out.type = RopeScalingType::kLlama3;
    STRATA_ASSIGN_OR_RETURN(out.factor, s.Double("factor"));
    STRATA_ASSIGN_OR_RETURN(out.original_max_position_embeddings,
                            s.Int("original_max_position_embeddings"));
    STRATA_ASSIGN_OR_RETURN(out.low_freq_factor, s.Double("low_freq_factor"));
    STRATA_ASSIGN_OR_RETURN(out.high_freq_factor, s.Double("high_freq_factor"));
    return OkStatus();
  }
  return FieldError(std::string(key) + "." + type_key,
                    "unsupported RoPE scaling '" + type + "' (supported: default, yarn, llama3)");
}

Status ParseQuantization(const FieldReader& r, ModelConfig& c) {
  const json* q = r.Get("quantization_config");
  if (q == nullptr) return OkStatus();
  if (!q->is_object()) return FieldError("quantization_config", "expected an object");
  FieldReader s(*q, "quantization_config.");
  STRATA_ASSIGN_OR_RETURN(std::string method, s.String("quant_method", ""));
  if (method != "fp8") {
    return FieldError("quantization_config.quant_method",
                      "unsupported '" + method + "' (supported: fp8 with block scales)");
  }
  STRATA_ASSIGN_OR_RETURN(std::string fmt, s.String("fmt", "e4m3"));
  if (fmt != "e4m3") return FieldError("quantization_config.fmt", "unsupported '" + fmt + "'");
  STRATA_ASSIGN_OR_RETURN(std::string act, s.String("activation_scheme", "dynamic"));
  if (act != "dynamic") {
    return FieldError("quantization_config.activation_scheme",
                      "unsupported '" + act + "' (supported: dynamic)");
  }
  const json* block = s.Get("weight_block_size");
  if (block == nullptr || !block->is_array() || block->size() != 2) {
    return FieldError("quantization_config.weight_block_size",
                      "expected [rows, cols] (per-tensor FP8 is not supported)");
  }
  c.quantization.enabled = true;
  STRATA_ASSIGN_OR_RETURN(c.quantization.block_rows,
                          FieldReader::AsInt((*block)[0], "quantization_config.weight_block_size"));
  STRATA_ASSIGN_OR_RETURN(c.quantization.block_cols,
                          FieldReader::AsInt((*block)[1], "quantization_config.weight_block_size"));
  return OkStatus();
}

StatusOr<TorchDtype> ParseTorchDtype(const FieldReader& r) {
  const char* key = r.Has("dtype") ? "dtype" : "torch_dtype";
  STRATA_ASSIGN_OR_RETURN(std::string s, r.String(key, "bfloat16"));
  if (s == "bfloat16") return TorchDtype::kBfloat16;
  if (s == "float16") return TorchDtype::kFloat16;
  if (s == "float32") return TorchDtype::kFloat32;
  return FieldError(key, "unsupported '" + s + "' (supported: bfloat16, float16, float32)");
}

StatusOr<TopkMethod> ParseTopkMethod(std::string_view s) {
  if (s == "greedy") return TopkMethod::kGreedy;
  if (s == "group_limited_greedy") return TopkMethod::kGroupLimitedGreedy;
  if (s == "noaux_tc") return TopkMethod::kNoauxTc;
  return FieldError("topk_method", "unsupported '" + std::string(s) +
                                       "' (supported: greedy, group_limited_greedy, noaux_tc)");
}

Status ParseDeepseekFields(const FieldReader& r, ModelConfig& c) {
  if (r.Has("q_lora_rank")) {
    STRATA_ASSIGN_OR_RETURN(int64_t q, r.Int("q_lora_rank"));
    c.q_lora_rank = q;
  }
  STRATA_ASSIGN_OR_RETURN(c.kv_lora_rank, r.Int("kv_lora_rank"));
  STRATA_ASSIGN_OR_RETURN(c.qk_nope_head_dim, r.Int("qk_nope_head_dim"));
  STRATA_ASSIGN_OR_RETURN(c.qk_rope_head_dim, r.Int("qk_rope_head_dim"));
  STRATA_ASSIGN_OR_RETURN(c.v_head_dim, r.Int("v_head_dim"));
  c.head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
  STRATA_ASSIGN_OR_RETURN(c.rope_interleave, r.Bool("rope_interleave", true));
  STRATA_ASSIGN_OR_RETURN(c.num_nextn_predict_layers, r.Int("num_nextn_predict_layers", 0));
  if (!r.Has("n_routed_experts")) return FieldError("n_routed_experts", "missing");
  STRATA_ASSIGN_OR_RETURN(c.num_experts, r.Int("n_routed_experts"));
  STRATA_ASSIGN_OR_RETURN(c.num_experts_per_tok, r.Int("num_experts_per_tok"));
  STRATA_ASSIGN_OR_RETURN(c.moe_intermediate_size, r.Int("moe_intermediate_size"));
  STRATA_ASSIGN_OR_RETURN(c.n_shared_experts, r.Int("n_shared_experts", 1));
  c.shared_expert_intermediate_size = c.n_shared_experts * c.moe_intermediate_size;
  STRATA_ASSIGN_OR_RETURN(c.norm_topk_prob, r.Bool("norm_topk_prob", true));
  STRATA_ASSIGN_OR_RETURN(std::string scoring, r.String("scoring_func", "sigmoid"));
  if (scoring == "sigmoid") {
    c.scoring_func = ScoringFunc::kSigmoid;
  } else if (scoring == "softmax") {
    c.scoring_func = ScoringFunc::kSoftmax;
  } else {
    return FieldError("scoring_func",
                      "unsupported '" + scoring + "' (supported: softmax, sigmoid)");
  }
  STRATA_ASSIGN_OR_RETURN(std::string topk, r.String("topk_method", "noaux_tc"));
  STRATA_ASSIGN_OR_RETURN(c.topk_method, ParseTopkMethod(topk));
  STRATA_ASSIGN_OR_RETURN(c.n_group, r.Int("n_group", 8));
  STRATA_ASSIGN_OR_RETURN(c.topk_group, r.Int("topk_group", 4));
  STRATA_ASSIGN_OR_RETURN(c.routed_scaling_factor, r.Double("routed_scaling_factor", 2.5));
  STRATA_ASSIGN_OR_RETURN(c.first_k_dense_replace, r.Int("first_k_dense_replace", 3));
  STRATA_ASSIGN_OR_RETURN(c.moe_layer_freq, r.Int("moe_layer_freq", 1));
  return OkStatus();
}

Status ParseQwen3MoeFields(const FieldReader& r, ModelConfig& c) {
  STRATA_ASSIGN_OR_RETURN(c.num_experts, r.Int("num_experts"));
  STRATA_ASSIGN_OR_RETURN(c.num_experts_per_tok, r.Int("num_experts_per_tok"));
  STRATA_ASSIGN_OR_RETURN(c.moe_intermediate_size, r.Int("moe_intermediate_size"));
  STRATA_ASSIGN_OR_RETURN(c.norm_topk_prob, r.Bool("norm_topk_prob", false));
  STRATA_ASSIGN_OR_RETURN(c.decoder_sparse_step, r.Int("decoder_sparse_step", 1));
  STRATA_ASSIGN_OR_RETURN(int64_t shared, r.Int("shared_expert_intermediate_size", 0));
  if (shared != 0) {
    return FieldError("shared_expert_intermediate_size",
                      "Qwen3-MoE has no shared expert; expected 0, got " + std::to_string(shared));
  }
  if (const json* m = r.Get("mlp_only_layers")) {
    if (!m->is_array()) return FieldError("mlp_only_layers", "expected a list of layer indices");
    for (const auto& e : *m) {
      STRATA_ASSIGN_OR_RETURN(int64_t layer, FieldReader::AsInt(e, "mlp_only_layers"));
      c.mlp_only_layers.push_back(layer);
    }
    std::sort(c.mlp_only_layers.begin(), c.mlp_only_layers.end());
    c.mlp_only_layers.erase(std::unique(c.mlp_only_layers.begin(), c.mlp_only_layers.end()),
                            c.mlp_only_layers.end());
  }
  return OkStatus();
}

// Sliding-window attention changes the math and is not implemented.
Status RejectSlidingWindow(const FieldReader& r, Arch arch) {
  if (arch == Arch::kQwen3 || arch == Arch::kQwen3Moe) {
    STRATA_ASSIGN_OR_RETURN(bool use, r.Bool("use_sliding_window", false));
    if (use) return FieldError("use_sliding_window", "sliding-window attention is not supported");
  }
  if (arch == Arch::kMixtral && r.Has("sliding_window")) {
    return FieldError("sliding_window", "sliding-window attention is not supported (use null)");
  }
  if (const json* types = r.Get("layer_types")) {
    if (!types->is_array()) return FieldError("layer_types", "expected a list");
    for (const auto& t : *types) {
      if (!t.is_string() || t.get<std::string>() != "full_attention") {
        return FieldError("layer_types",
                          "only full_attention layers are supported, got " + Describe(t));
      }
    }
  }
  return OkStatus();
}

}  // namespace

std::string_view ArchitectureName(Arch arch) {
  for (const auto& a : kArchs) {
    if (a.arch == arch) return a.architecture;
  }
  return "";
}

std::string_view ModelTypeName(Arch arch) {
  for (const auto& a : kArchs) {
    if (a.arch == arch) return a.model_type;
  }
  return "";
}

StatusOr<Arch> ParseModelType(std::string_view model_type) {
  for (const auto& a : kArchs) {
    if (a.model_type == model_type) return a.arch;
  }
  return FieldError("model_type", "unsupported '" + std::string(model_type) +
                                      "' (supported: " + SupportedList(false) + ")");
}

std::string_view TorchDtypeName(TorchDtype dtype) {
  switch (dtype) {
    case TorchDtype::kBfloat16:
      return "bfloat16";
    case TorchDtype::kFloat16:
      return "float16";
    case TorchDtype::kFloat32:
      return "float32";
  }
  return "bfloat16";
}

double YarnGetMscale(double factor, double mscale) {
  if (factor <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(factor) + 1.0;
}

bool ModelConfig::IsMoeLayer(int64_t layer) const {
  if (num_experts <= 0 || layer < 0 || layer >= num_hidden_layers) return false;
  switch (arch) {
    case Arch::kDeepseekV3:
      return layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
    case Arch::kQwen3Moe:
      if (std::binary_search(mlp_only_layers.begin(), mlp_only_layers.end(), layer)) return false;
      return (layer + 1) % decoder_sparse_step == 0;
    case Arch::kMixtral:
      return true;
    case Arch::kLlama:
    case Arch::kQwen3:
      return false;
  }
  return false;
}

int64_t ModelConfig::QkHeadDim() const {
  return IsMla() ? qk_nope_head_dim + qk_rope_head_dim : head_dim;
}
int64_t ModelConfig::RopeDim() const { return IsMla() ? qk_rope_head_dim : head_dim; }
int64_t ModelConfig::VHeadDim() const { return IsMla() ? v_head_dim : head_dim; }

double ModelConfig::AttentionSoftmaxScale() const {
  double scale = 1.0 / std::sqrt(static_cast<double>(QkHeadDim()));
  if (IsMla() && rope_scaling.type == RopeScalingType::kYarn && rope_scaling.mscale_all_dim != 0) {
    double m = YarnGetMscale(rope_scaling.factor, rope_scaling.mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

double ModelConfig::RopeAttentionFactor() const {
  if (rope_scaling.type != RopeScalingType::kYarn) return 1.0;
  if (rope_scaling.attention_factor != 0) return rope_scaling.attention_factor;
  if (rope_scaling.mscale != 0 && rope_scaling.mscale_all_dim != 0) {
    return YarnGetMscale(rope_scaling.factor, rope_scaling.mscale) /
           YarnGetMscale(rope_scaling.factor, rope_scaling.mscale_all_dim);
  }
  return YarnGetMscale(rope_scaling.factor, 1.0);
}

StatusOr<ModelConfig> ParseModelConfig(const json& j) {
  if (!j.is_object()) return InvalidArgumentError("config.json: expected a JSON object");
  FieldReader r(j, "");
  ModelConfig c;
  STRATA_ASSIGN_OR_RETURN(c.arch, ParseArch(r));
  STRATA_ASSIGN_OR_RETURN(c.vocab_size, r.Int("vocab_size"));
  STRATA_ASSIGN_OR_RETURN(c.hidden_size, r.Int("hidden_size"));
  STRATA_ASSIGN_OR_RETURN(c.num_hidden_layers, r.Int("num_hidden_layers"));
  STRATA_ASSIGN_OR_RETURN(c.num_attention_heads, r.Int("num_attention_heads"));
  STRATA_ASSIGN_OR_RETURN(c.num_key_value_heads,
                          r.Int("num_key_value_heads", c.num_attention_heads));
  STRATA_ASSIGN_OR_RETURN(c.max_position_embeddings, r.Int("max_position_embeddings"));
  STRATA_ASSIGN_OR_RETURN(c.intermediate_size, r.Int("intermediate_size", 0));
  if (c.arch != Arch::kDeepseekV3) {
    if (r.Has("head_dim")) {
      STRATA_ASSIGN_OR_RETURN(c.head_dim, r.Int("head_dim"));
    } else if (c.num_attention_heads > 0) {
      if (c.hidden_size % c.num_attention_heads != 0) {
        return FieldError("head_dim", "absent and hidden_size " + std::to_string(c.hidden_size) +
                                          " is not divisible by num_attention_heads " +
                                          std::to_string(c.num_attention_heads));
      }
      c.head_dim = c.hidden_size / c.num_attention_heads;
    }
  }
  const double default_theta = c.arch == Arch::kMixtral ? 1e6 : 10000.0;
  STRATA_RETURN_IF_ERROR(ParseRope(r, c, default_theta));
  STRATA_ASSIGN_OR_RETURN(c.rms_norm_eps,
                          r.Double("rms_norm_eps", c.arch == Arch::kMixtral ? 1e-5 : 1e-6));
  STRATA_ASSIGN_OR_RETURN(c.tie_word_embeddings, r.Bool("tie_word_embeddings", false));
  if (c.arch != Arch::kMixtral) {
    STRATA_ASSIGN_OR_RETURN(c.attention_bias, r.Bool("attention_bias", false));
  }
  STRATA_ASSIGN_OR_RETURN(std::string act, r.String("hidden_act", "silu"));
  if (act != "silu") return FieldError("hidden_act", "unsupported '" + act + "' (supported: silu)");
  if (c.arch == Arch::kLlama) {
    STRATA_ASSIGN_OR_RETURN(bool mlp_bias, r.Bool("mlp_bias", false));
    if (mlp_bias) return FieldError("mlp_bias", "MLP biases are not supported");
  }
  STRATA_ASSIGN_OR_RETURN(c.bos_token_ids, r.IntOrList("bos_token_id"));
  STRATA_ASSIGN_OR_RETURN(c.eos_token_ids, r.IntOrList("eos_token_id"));
  STRATA_ASSIGN_OR_RETURN(c.torch_dtype, ParseTorchDtype(r));
  STRATA_RETURN_IF_ERROR(RejectSlidingWindow(r, c.arch));

  switch (c.arch) {
    case Arch::kDeepseekV3:
      if (!j.contains("q_lora_rank")) {
        return FieldError("q_lora_rank", "missing (write null for no query LoRA)");
      }
      STRATA_RETURN_IF_ERROR(ParseDeepseekFields(r, c));
      break;
    case Arch::kQwen3Moe:
      STRATA_RETURN_IF_ERROR(ParseQwen3MoeFields(r, c));
      break;
    case Arch::kMixtral: {
      STRATA_ASSIGN_OR_RETURN(c.num_experts, r.Int("num_local_experts"));
      STRATA_ASSIGN_OR_RETURN(c.num_experts_per_tok, r.Int("num_experts_per_tok"));
      c.moe_intermediate_size = c.intermediate_size;
      c.norm_topk_prob = true;
      break;
    }
    case Arch::kLlama:
    case Arch::kQwen3:
      break;
  }
  STRATA_RETURN_IF_ERROR(ParseQuantization(r, c));
  STRATA_RETURN_IF_ERROR(ValidateModelConfig(c));
  return c;
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  std::string file = path;
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file = path + "/config.json";
  std::ifstream in(file, std::ios::binary);
  if (!in) return NotFoundError(file + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError(file + ": not valid JSON");
  return ParseModelConfig(j);
}

}  // namespace strata::model
