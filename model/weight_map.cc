#include "model/weight_map.h"

#include <set>
#include <string>
#include <unordered_map>

namespace strata::model {
namespace {

using Shape = std::vector<int64_t>;

class Builder {
 public:
  explicit Builder(const ModelConfig& c) : c_(c) {}

  void Add(std::string name, Shape shape, TensorRole role, int64_t layer = -1,
           int64_t expert = -1) {
    ExpectedTensor t;
    t.name = std::move(name);
    t.shape = std::move(shape);
    t.role = role;
    t.layer = layer;
    t.expert = expert;
    t.fp8_quantized = c_.quantization.enabled && role == TensorRole::kLinear;
    out_.push_back(std::move(t));
  }
  // A linear layer [out, in] with an optional bias [out].
  void Linear(const std::string& prefix, int64_t out, int64_t in, int64_t layer, bool bias,
              int64_t expert = -1) {
    Add(prefix + ".weight", {out, in}, TensorRole::kLinear, layer, expert);
    if (bias) Add(prefix + ".bias", {out}, TensorRole::kBias, layer, expert);
  }
  void Norm(const std::string& name, int64_t dim, int64_t layer) {
    Add(name, {dim}, TensorRole::kNorm, layer);
  }
  // gate/up [inter, hidden], down [hidden, inter] (SwiGLU), HF Llama-style names.
  void Mlp(const std::string& prefix, int64_t inter, int64_t layer, int64_t expert = -1) {
    const int64_t h = c_.hidden_size;
    Linear(prefix + ".gate_proj", inter, h, layer, false, expert);
    Linear(prefix + ".up_proj", inter, h, layer, false, expert);
    Linear(prefix + ".down_proj", h, inter, layer, false, expert);
  }
  std::vector<ExpectedTensor> Take() { return std::move(out_); }

 private:
  const ModelConfig& c_;
  std::vector<ExpectedTensor> out_;
};

void GqaAttention(const ModelConfig& c, const std::string& p, int64_t layer, Builder& b) {
  const int64_t h = c.hidden_size, hd = c.head_dim;
  const bool bias = c.attention_bias;
  b.Linear(p + "self_attn.q_proj", c.num_attention_heads * hd, h, layer, bias);
  b.Linear(p + "self_attn.k_proj", c.num_key_value_heads * hd, h, layer, bias);
  b.Linear(p + "self_attn.v_proj", c.num_key_value_heads * hd, h, layer, bias);
  b.Linear(p + "self_attn.o_proj", h, c.num_attention_heads * hd, layer, bias);
  if (c.arch == Arch::kQwen3 || c.arch == Arch::kQwen3Moe) {
    b.Norm(p + "self_attn.q_norm.weight", hd, layer);
    b.Norm(p + "self_attn.k_norm.weight", hd, layer);
  }
}

// DeepSeek MLA (transformers DeepseekV3Attention): q_a/kv_a/o carry attention_bias.
void MlaAttention(const ModelConfig& c, const std::string& p, int64_t layer, Builder& b) {
  const int64_t h = c.hidden_size, heads = c.num_attention_heads;
  const int64_t qk = c.QkHeadDim();
  const bool bias = c.attention_bias;
  if (c.q_lora_rank) {
    b.Linear(p + "self_attn.q_a_proj", *c.q_lora_rank, h, layer, bias);
    b.Norm(p + "self_attn.q_a_layernorm.weight", *c.q_lora_rank, layer);
    b.Linear(p + "self_attn.q_b_proj", heads * qk, *c.q_lora_rank, layer, false);
  } else {
    b.Linear(p + "self_attn.q_proj", heads * qk, h, layer, false);
  }
  b.Linear(p + "self_attn.kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim, h, layer, bias);
  b.Norm(p + "self_attn.kv_a_layernorm.weight", c.kv_lora_rank, layer);
  b.Linear(p + "self_attn.kv_b_proj", heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank,
           layer, false);
  b.Linear(p + "self_attn.o_proj", h, heads * c.v_head_dim, layer, bias);
}

void MoeMlp(const ModelConfig& c, const std::string& p, int64_t layer, Builder& b) {
  const int64_t h = c.hidden_size, e_count = c.num_experts, inter = c.moe_intermediate_size;
  if (c.arch == Arch::kMixtral) {
    const std::string m = p + "block_sparse_moe.";
    b.Add(m + "gate.weight", {e_count, h}, TensorRole::kRouter, layer);
    for (int64_t e = 0; e < e_count; ++e) {
      const std::string ep = m + "experts." + std::to_string(e) + ".";
      b.Linear(ep + "w1", inter, h, layer, false, e);
      b.Linear(ep + "w2", h, inter, layer, false, e);
      b.Linear(ep + "w3", inter, h, layer, false, e);
    }
    return;
  }
  b.Add(p + "mlp.gate.weight", {e_count, h}, TensorRole::kRouter, layer);
  if (c.arch == Arch::kDeepseekV3 && c.topk_method == TopkMethod::kNoauxTc) {
    b.Add(p + "mlp.gate.e_score_correction_bias", {e_count}, TensorRole::kRouterBias, layer);
  }
  for (int64_t e = 0; e < e_count; ++e) {
    b.Mlp(p + "mlp.experts." + std::to_string(e), inter, layer, e);
  }
  if (c.shared_expert_intermediate_size > 0) {
    b.Mlp(p + "mlp.shared_experts", c.shared_expert_intermediate_size, layer);
  }
}

std::string ShapeText(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

bool IsFloatDtype(TensorDtype d) {
  return d == TensorDtype::kF32 || d == TensorDtype::kF16 || d == TensorDtype::kBF16;
}

// Layer index of "model.layers.<i>.<...>", or -1.
int64_t LayerOf(const std::string& name) {
  static const std::string kPrefix = "model.layers.";
  if (name.rfind(kPrefix, 0) != 0) return -1;
  int64_t layer = 0;
  size_t i = kPrefix.size();
  if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && layer < (1 << 20); ++i) {
    layer = layer * 10 + (name[i] - '0');
  }
  return layer;
}

bool IsIgnored(const ModelConfig& c, const std::string& name) {
  static const std::string kInvFreq = "rotary_emb.inv_freq";
  if (name.size() >= kInvFreq.size() &&
      name.compare(name.size() - kInvFreq.size(), kInvFreq.size(), kInvFreq) == 0) {
    return true;
  }
  const int64_t layer = LayerOf(name);
  return layer >= c.num_hidden_layers && layer < c.num_hidden_layers + c.num_nextn_predict_layers;
}

}  // namespace

std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& c) {
  Builder b(c);
  b.Add("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, TensorRole::kEmbedding);
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    b.Norm(p + "input_layernorm.weight", c.hidden_size, layer);
    if (c.IsMla()) {
      MlaAttention(c, p, layer, b);
    } else {
      GqaAttention(c, p, layer, b);
    }
    b.Norm(p + "post_attention_layernorm.weight", c.hidden_size, layer);
    if (c.IsMoeLayer(layer)) {
      MoeMlp(c, p, layer, b);
    } else {
      b.Mlp(p + "mlp", c.intermediate_size, layer);
    }
  }
  b.Norm("model.norm.weight", c.hidden_size, -1);
  if (!c.tie_word_embeddings) {
    b.Add("lm_head.weight", {c.vocab_size, c.hidden_size}, TensorRole::kLmHead);
  }
  return b.Take();
}

std::vector<int64_t> ExpectedScaleInvShape(const std::vector<int64_t>& weight_shape,
                                           const Fp8Quantization& q) {
  if (weight_shape.size() != 2) return {};
  return {(weight_shape[0] + q.block_rows - 1) / q.block_rows,
          (weight_shape[1] + q.block_cols - 1) / q.block_cols};
}

Status VerifyCheckpoint(const ModelConfig& c, const SafetensorsModel& model) {
  std::vector<std::string> missing, wrong, extra;
  std::set<std::string> expected_names;
  for (const auto& t : ExpectedTensors(c)) {
    expected_names.insert(t.name);
    const TensorView* view = model.Find(t.name);
    if (view == nullptr) {
      missing.push_back(t.name);
      continue;
    }
    if (view->shape != t.shape) {
      wrong.push_back(t.name + " has shape " + ShapeText(view->shape) + ", expected " +
                      ShapeText(t.shape));
      continue;
    }
    if (!t.fp8_quantized) {
      if (!IsFloatDtype(view->dtype)) {
        wrong.push_back(t.name + " has dtype " + std::string(TensorDtypeName(view->dtype)) +
                        ", expected F32, F16 or BF16");
      }
      continue;
    }
    if (view->dtype != TensorDtype::kF8E4M3) {
      wrong.push_back(t.name + " has dtype " + std::string(TensorDtypeName(view->dtype)) +
                      ", expected F8_E4M3 (quantization_config is fp8)");
    }
    const std::string scale_name = ScaleInvName(t.name);
    expected_names.insert(scale_name);
    const TensorView* scale = model.Find(scale_name);
    const Shape scale_shape = ExpectedScaleInvShape(t.shape, c.quantization);
    if (scale == nullptr) {
      missing.push_back(scale_name);
    } else if (scale->shape != scale_shape) {
      wrong.push_back(scale_name + " has shape " + ShapeText(scale->shape) + ", expected " +
                      ShapeText(scale_shape));
    } else if (scale->dtype != TensorDtype::kF32 && scale->dtype != TensorDtype::kBF16) {
      wrong.push_back(scale_name + " has dtype " + std::string(TensorDtypeName(scale->dtype)) +
                      ", expected F32 or BF16");
    }
  }
  for (const auto& name : model.names()) {
    if (!expected_names.count(name) && !IsIgnored(c, name)) extra.push_back(name);
  }
  if (missing.empty() && wrong.empty() && extra.empty()) return OkStatus();

  // One message listing everything (the first 20 of each kind).
  std::string msg =
      "checkpoint does not match config.json (" + std::string(ArchitectureName(c.arch)) + "):";
  auto list = [&msg](const char* what, const std::vector<std::string>& items) {
    if (items.empty()) return;
    msg.append(" ").append(std::to_string(items.size())).append(" ").append(what).append(":");
    for (size_t i = 0; i < items.size() && i < 20; ++i) msg.append(i ? ", " : " ").append(items[i]);
    if (items.size() > 20) msg += ", ...";
    msg += ";";
  };
  list("missing", missing);
  list("wrong", wrong);
  list("unexpected", extra);
  msg.pop_back();
  return InvalidArgumentError(msg);
}

}  // namespace strata::model
