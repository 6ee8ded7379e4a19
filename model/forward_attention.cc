// Attention layers: GQA (Llama, Qwen3, Mixtral, Qwen3-MoE) and DeepSeek-V3 MLA.
#include <algorithm>
#include <cstring>

#include "model/runner_impl.h"

namespace strata::model {
namespace {

std::string AttnPrefix(int layer) {
  return "model.layers." + std::to_string(layer) + ".self_attn.";
}

void AddBias(float* y, int64_t m, int64_t n, const std::vector<float>& bias) {
  if (bias.empty()) return;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) y[i * n + j] += bias[j];
  }
}

}  // namespace

Status RunnerImpl::LoadGqa(int layer, GqaWeights* w) {
  const ModelConfig& c = config_;
  const std::string p = AttnPrefix(layer);
  const int64_t hidden = c.hidden_size, d = c.head_dim;
  const int64_t hq = c.num_attention_heads, hkv = c.num_key_value_heads;
  STRATA_ASSIGN_OR_RETURN(w->q, weights_->Linear(p + "q_proj.weight", hq * d, hidden));
  STRATA_ASSIGN_OR_RETURN(w->k, weights_->Linear(p + "k_proj.weight", hkv * d, hidden));
  STRATA_ASSIGN_OR_RETURN(w->v, weights_->Linear(p + "v_proj.weight", hkv * d, hidden));
  STRATA_ASSIGN_OR_RETURN(w->o, weights_->Linear(p + "o_proj.weight", hidden, hq * d));
  if (c.attention_bias) {
    STRATA_ASSIGN_OR_RETURN(w->q_bias, weights_->Vector(p + "q_proj.bias", hq * d));
    STRATA_ASSIGN_OR_RETURN(w->k_bias, weights_->Vector(p + "k_proj.bias", hkv * d));
    STRATA_ASSIGN_OR_RETURN(w->v_bias, weights_->Vector(p + "v_proj.bias", hkv * d));
    STRATA_ASSIGN_OR_RETURN(w->o_bias, weights_->Vector(p + "o_proj.bias", hidden));
  }
  if (c.arch == Arch::kQwen3 || c.arch == Arch::kQwen3Moe) {
    STRATA_ASSIGN_OR_RETURN(w->q_norm, weights_->Vector(p + "q_norm.weight", d));
    STRATA_ASSIGN_OR_RETURN(w->k_norm, weights_->Vector(p + "k_norm.weight", d));
  }
  return OkStatus();
}

void RunnerImpl::GqaForward(int layer, const BatchTokens& bt, float* out) {
  const ModelConfig& c = config_;
  const GqaWeights& w = layers_[layer].gqa;
  ops::Backend& be = *backend_;
  const int64_t T = bt.num_tokens(), hidden = c.hidden_size, d = c.head_dim;
  const int hq = static_cast<int>(c.num_attention_heads);
  const int hkv = static_cast<int>(c.num_key_value_heads);
  const float eps = static_cast<float>(c.rms_norm_eps);
  q_.resize(T * hq * d);
  k_.resize(T * hkv * d);
  v_.resize(T * hkv * d);
  heads_.resize(T * hq * d);
  ops::MatmulOutput qkv[3] = {
      {w.q, q_.data(), hq * d}, {w.k, k_.data(), hkv * d}, {w.v, v_.data(), hkv * d}};
  be.Matmul(x_.data(), T, hidden, qkv);
  AddBias(q_.data(), T, hq * d, w.q_bias);
  AddBias(k_.data(), T, hkv * d, w.k_bias);
  AddBias(v_.data(), T, hkv * d, w.v_bias);
  if (!w.q_norm.empty()) {
    be.RmsNorm(q_.data(), T * hq, d, d, w.q_norm.data(), eps, q_.data(), d);
    be.RmsNorm(k_.data(), T * hkv, d, d, w.k_norm.data(), eps, k_.data(), d);
  }
  be.Rope(q_.data(), T, hq * d, hq, d, bt.positions.data(), rope_);
  be.Rope(k_.data(), T, hkv * d, hkv, d, bt.positions.data(), rope_);
  be.ScatterToCache(k_.data(), T, hkv * d, hkv * d, cache_->k(layer), bt.cache_offsets.data());
  be.ScatterToCache(v_.data(), T, hkv * d, hkv * d, cache_->v(layer), bt.cache_offsets.data());
  ops::AttentionArgs a;
  a.q = q_.data();
  a.q_token_stride = hq * d;
  a.q_head_stride = d;
  a.num_tokens = T;
  a.num_q_heads = hq;
  a.num_keys = bt.num_keys.data();
  a.block_tables = bt.tables.data();
  a.kv = cache_->LayerView(layer);
  a.scale = attention_scale_;
  a.out = heads_.data();
  a.out_token_stride = hq * d;
  a.out_head_stride = d;
  be.Attention(a);
  ops::MatmulOutput o{w.o, out, hidden};
  be.Matmul(heads_.data(), T, hq * d, std::span<const ops::MatmulOutput>(&o, 1));
  AddBias(out, T, hidden, w.o_bias);
}

Status RunnerImpl::LoadMla(int layer, MlaWeights* w) {
  const ModelConfig& c = config_;
  const std::string p = AttnPrefix(layer);
  const int64_t hidden = c.hidden_size, h = c.num_attention_heads;
  const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, vd = c.v_head_dim;
  const int64_t lora = c.kv_lora_rank, qk = nope + rope;
  if (c.q_lora_rank.has_value()) {
    const int64_t ql = *c.q_lora_rank;
    w->has_q_lora = true;
    STRATA_ASSIGN_OR_RETURN(w->q_a, weights_->Linear(p + "q_a_proj.weight", ql, hidden));
    STRATA_ASSIGN_OR_RETURN(w->q_a_norm, weights_->Vector(p + "q_a_layernorm.weight", ql));
    STRATA_ASSIGN_OR_RETURN(w->q_b, weights_->Linear(p + "q_b_proj.weight", h * qk, ql));
  } else {
    STRATA_ASSIGN_OR_RETURN(w->q, weights_->Linear(p + "q_proj.weight", h * qk, hidden));
  }
  STRATA_ASSIGN_OR_RETURN(w->kv_a,
                          weights_->Linear(p + "kv_a_proj_with_mqa.weight", lora + rope, hidden));
  STRATA_ASSIGN_OR_RETURN(w->kv_a_norm, weights_->Vector(p + "kv_a_layernorm.weight", lora));
  STRATA_ASSIGN_OR_RETURN(w->kv_b, weights_->Linear(p + "kv_b_proj.weight", h * (nope + vd), lora));
  STRATA_ASSIGN_OR_RETURN(w->o, weights_->Linear(p + "o_proj.weight", hidden, h * vd));
  // Absorption: per head, W_UK^T [lora, nope] (so q_nope -> latent is an [out, in] matmul) and
  // W_UV [vd, lora] (rows of kv_b as they are).
  const bf16* kvb = static_cast<const bf16*>(w->kv_b.data);
  std::vector<bf16> uk_t(h * lora * nope);
  for (int64_t hh = 0; hh < h; ++hh) {
    for (int64_t i = 0; i < nope; ++i) {
      const bf16* row = kvb + (hh * (nope + vd) + i) * lora;
      for (int64_t j = 0; j < lora; ++j) uk_t[(hh * lora + j) * nope + i] = row[j];
    }
  }
  const bf16* uk = weights_->OwnBf16(std::move(uk_t)).data();
  for (int64_t hh = 0; hh < h; ++hh) {
    w->uk_t.push_back({ops::DType::kBF16, uk + hh * lora * nope, lora, nope, 0});
    w->uv.push_back({ops::DType::kBF16, kvb + (hh * (nope + vd) + nope) * lora, vd, lora, 0});
  }
  return OkStatus();
}

void RunnerImpl::MlaForward(int layer, const ForwardBatch& batch, const BatchTokens& bt,
                            float* out) {
  const ModelConfig& c = config_;
  const MlaWeights& w = layers_[layer].mla;
  ops::Backend& be = *backend_;
  const int64_t T = bt.num_tokens(), hidden = c.hidden_size;
  const int h = static_cast<int>(c.num_attention_heads);
  const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, vd = c.v_head_dim;
  const int64_t lora = c.kv_lora_rank, qk = nope + rope, kvw = lora + rope;
  const float eps = static_cast<float>(c.rms_norm_eps);

  q_.resize(T * h * qk);
  kv_.resize(T * kvw);
  if (w.has_q_lora) {
    const int64_t ql = w.q_a.rows;
    qa_.resize(T * ql);
    ops::MatmulOutput first[2] = {{w.q_a, qa_.data(), ql}, {w.kv_a, kv_.data(), kvw}};
    be.Matmul(x_.data(), T, hidden, first);
    be.RmsNorm(qa_.data(), T, ql, ql, w.q_a_norm.data(), eps, qa_.data(), ql);
    ops::MatmulOutput qb{w.q_b, q_.data(), h * qk};
    be.Matmul(qa_.data(), T, ql, std::span<const ops::MatmulOutput>(&qb, 1));
  } else {
    ops::MatmulOutput first[2] = {{w.q, q_.data(), h * qk}, {w.kv_a, kv_.data(), kvw}};
    be.Matmul(x_.data(), T, hidden, first);
  }
  be.RmsNorm(kv_.data(), T, lora, kvw, w.kv_a_norm.data(), eps, kv_.data(), kvw);
  be.Rope(q_.data() + nope, T, h * qk, h, qk, bt.positions.data(), rope_);
  be.Rope(kv_.data() + lora, T, kvw, 1, 0, bt.positions.data(), rope_);
  be.ScatterToCache(kv_.data(), T, kvw, kvw, cache_->k(layer), bt.cache_offsets.data());

  heads_.resize(T * h * vd);
  // Decode tokens (chunks of one token): absorbed MLA, MQA over the cached latent.
  std::vector<int64_t> decode;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    if (batch.sequences[s].token_ids.size() == 1) decode.push_back(bt.chunk_begin[s]);
  }
  const int64_t D = static_cast<int64_t>(decode.size());
  if (D > 0) {
    qd_.resize(D * h * qk);
    qlat_.resize(D * h * kvw);
    olat_.resize(D * h * lora);
    od_.resize(D * h * vd);
    std::vector<int32_t> num_keys(D);
    std::vector<std::span<const int32_t>> tables(D);
    for (int64_t i = 0; i < D; ++i) {
      std::memcpy(qd_.data() + i * h * qk, q_.data() + decode[i] * h * qk, h * qk * sizeof(float));
      num_keys[i] = bt.num_keys[decode[i]];
      tables[i] = bt.tables[decode[i]];
    }
    std::vector<ops::MatmulProblem> problems(h);
    for (int hh = 0; hh < h; ++hh) {
      problems[hh] = {qd_.data() + hh * qk,    D,      h * qk, w.uk_t[hh],
                      qlat_.data() + hh * kvw, h * kvw};
    }
    be.BatchedMatmul(problems);
    for (int64_t i = 0; i < D; ++i) {
      for (int hh = 0; hh < h; ++hh) {
        std::memcpy(qlat_.data() + (i * h + hh) * kvw + lora, qd_.data() + (i * h + hh) * qk + nope,
                    rope * sizeof(float));
      }
    }
    ops::AttentionArgs a;
    a.q = qlat_.data();
    a.q_token_stride = h * kvw;
    a.q_head_stride = kvw;
    a.num_tokens = D;
    a.num_q_heads = h;
    a.num_keys = num_keys.data();
    a.block_tables = tables.data();
    a.kv = cache_->LayerView(layer);
    a.scale = attention_scale_;
    a.out = olat_.data();
    a.out_token_stride = h * lora;
    a.out_head_stride = lora;
    be.Attention(a);
    for (int hh = 0; hh < h; ++hh) {
      problems[hh] = {olat_.data() + hh * lora, D,     h * lora, w.uv[hh],
                      od_.data() + hh * vd,     h * vd};
    }
    be.BatchedMatmul(problems);
    for (int64_t i = 0; i < D; ++i) {
      std::memcpy(heads_.data() + decode[i] * h * vd, od_.data() + i * h * vd,
                  h * vd * sizeof(float));
    }
  }

  // Prefill chunks: naive MLA, keys and values expanded from the cached latent.
  const int bs = cache_->spec().block_size;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const SequenceChunk& ch = batch.sequences[s];
    const int64_t n = static_cast<int64_t>(ch.token_ids.size());
    if (n == 1) continue;
    const int64_t ctx = ch.start_position + n;
    const int64_t t0 = bt.chunk_begin[s];
    // Keys and values per head ([head][token][qk], values in the first vd of each row), so
    // attention over one head streams contiguous rows.
    lat_.resize(ctx * lora);
    kexp_.resize(h * ctx * qk);
    vexp_.resize(h * ctx * qk);
    const bf16* cache = cache_->k(layer);
    for (int64_t j = 0; j < ctx; ++j) {
      const bf16* src = cache + cache_->Offset(ch.block_table[j / bs], static_cast<int>(j % bs));
      for (int64_t i = 0; i < lora; ++i) lat_[j * lora + i] = Bf16ToFloat(src[i]);
      for (int hh = 0; hh < h; ++hh) {
        std::memcpy(kexp_.data() + (hh * ctx + j) * qk + nope, src + lora, rope * sizeof(bf16));
      }
    }
    kvb_.resize(ctx * h * (nope + vd));
    ops::MatmulOutput eo{w.kv_b, kvb_.data(), h * (nope + vd)};
    be.Matmul(lat_.data(), ctx, lora, std::span<const ops::MatmulOutput>(&eo, 1));
    // kvb_ row (token j, head hh) -> row (hh, j) of kexp_ (its first nope) and vexp_.
    row_offsets_.resize(ctx * h);
    for (int64_t j = 0; j < ctx; ++j) {
      for (int hh = 0; hh < h; ++hh) row_offsets_[j * h + hh] = (hh * ctx + j) * qk;
    }
    be.ScatterToCache(kvb_.data(), ctx * h, nope + vd, nope, kexp_.data(), row_offsets_.data());
    be.ScatterToCache(kvb_.data() + nope, ctx * h, nope + vd, vd, vexp_.data(),
                      row_offsets_.data());
    static const int32_t kOneBlock[1] = {0};
    std::vector<std::span<const int32_t>> tables(n, std::span<const int32_t>(kOneBlock, 1));
    ops::AttentionArgs a;
    a.q = q_.data() + t0 * h * qk;
    a.q_token_stride = h * qk;
    a.q_head_stride = qk;
    a.num_tokens = n;
    a.num_q_heads = h;
    a.num_keys = bt.num_keys.data() + t0;
    a.block_tables = tables.data();
    a.kv.k = kexp_.data();
    a.kv.v = vexp_.data();
    a.kv.block_size = static_cast<int>(ctx);
    a.kv.block_stride = h * ctx * qk;
    a.kv.token_stride = qk;
    a.kv.head_stride = ctx * qk;
    a.kv.num_kv_heads = h;
    a.kv.k_dim = static_cast<int>(qk);
    a.kv.v_dim = static_cast<int>(vd);
    a.scale = attention_scale_;
    a.out = heads_.data() + t0 * h * vd;
    a.out_token_stride = h * vd;
    a.out_head_stride = vd;
    be.Attention(a);
  }
  ops::MatmulOutput o{w.o, out, hidden};
  be.Matmul(heads_.data(), T, h * vd, std::span<const ops::MatmulOutput>(&o, 1));
}

}  // namespace strata::model
