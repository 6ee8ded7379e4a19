// ModelRunner: loading (weights bound to the Hugging Face names) and the batch-level forward.
#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/log.h"
#include "model/runner_impl.h"

namespace strata::model {
namespace {

std::string LayerPrefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

int64_t Bytes(const ops::WeightView& w) {
  return w.rows * w.cols * static_cast<int64_t>(ops::DTypeSize(w.dtype));
}
int64_t Elements(const ops::WeightView& w) { return w.rows * w.cols; }
int64_t MlpBytes(const ops::MlpWeights& m) { return Bytes(m.gate) + Bytes(m.up) + Bytes(m.down); }
int64_t MlpElements(const ops::MlpWeights& m) {
  return Elements(m.gate) + Elements(m.up) + Elements(m.down);
}

}  // namespace

StatusOr<int> ParseCudaDevice(const std::string& device) {
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) == 0 && device.size() > 5 && device.size() < 9 &&
      device.find_first_not_of("0123456789", 5) == std::string::npos) {
    return std::stoi(device.substr(5));
  }
  return InvalidArgumentError("device '" + device + "': expected cpu, cuda or cuda:N");
}

StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Load(const std::string& dir,
                                                         const RunnerOptions& options) {
  return RunnerImpl::Create(dir, options);
}

StatusOr<std::unique_ptr<ModelRunner>> RunnerImpl::Create(const std::string& dir,
                                                          const RunnerOptions& options) {
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<RunnerImpl> r(new RunnerImpl());
  r->options_ = options;
  STRATA_ASSIGN_OR_RETURN(r->config_, LoadModelConfig(dir));
  const ModelConfig& c = r->config_;
  if (c.IsMoe() && c.topk_method == TopkMethod::kGroupLimitedGreedy) {
    return InvalidArgumentError("config.json: topk_method: group_limited_greedy is not supported");
  }
  if (c.IsMla() && c.attention_bias) {
    return InvalidArgumentError("config.json: attention_bias: not supported for DeepSeek-V3");
  }
  if (options.kv_block_size < 1) return InvalidArgumentError("kv_block_size must be >= 1");
  if (options.device == "cpu") {
    ops::CpuBackendOptions bo;
    bo.num_threads = options.num_threads;
    bo.kernels = options.kernels;
    STRATA_ASSIGN_OR_RETURN(r->backend_, ops::CreateCpuBackend(bo));
  } else {
    STRATA_ASSIGN_OR_RETURN(int device, ParseCudaDevice(options.device));
    ops::CudaBackendOptions co;
    co.device = device;
    co.deterministic = true;  // rows bit-identical whatever the batch (DESIGN.md §6)
    auto cuda = ops::CreateCudaBackend(co);
    if (!cuda.ok()) {
      return UnavailableError("device " + options.device +
                              " is not available: " + cuda.status().message());
    }
    r->cuda_ = cuda->get();
    r->backend_ = std::move(*cuda);
  }
  STRATA_ASSIGN_OR_RETURN(SafetensorsModel st, SafetensorsModel::Open(dir));
  r->weights_ = std::make_unique<WeightLoader>(std::move(st), c.quantization.block_rows,
                                               c.quantization.block_cols);
  STRATA_RETURN_IF_ERROR(r->LoadWeights(options));

  kvcache::KvCacheSpec spec;
  spec.num_layers = static_cast<int>(c.NumLayers());
  spec.block_size = options.kv_block_size;
  if (c.IsMla()) {
    spec.layout = kvcache::KvLayout::kMla;
    spec.kv_lora_rank = static_cast<int>(c.kv_lora_rank);
    spec.rope_dim = static_cast<int>(c.qk_rope_head_dim);
  } else {
    spec.layout = kvcache::KvLayout::kGqa;
    spec.num_kv_heads = static_cast<int>(c.num_key_value_heads);
    spec.head_dim = static_cast<int>(c.head_dim);
  }
  STRATA_RETURN_IF_ERROR(spec.Validate());
  int64_t blocks = options.num_kv_blocks;
  if (blocks <= 0) blocks = std::max<int64_t>(1, options.kv_cache_bytes / spec.BytesPerBlock());
  blocks = std::min<int64_t>(blocks, int64_t{1} << 30);
  r->kv_spec_ = spec;
  r->num_kv_blocks_ = static_cast<int32_t>(blocks);
  if (r->cuda_ == nullptr) {
    STRATA_ASSIGN_OR_RETURN(r->cache_,
                            kvcache::PagedKvCache::Create(spec, static_cast<int32_t>(blocks)));
    r->comm_ = options.communicator;
    if (!r->comm_) {
      r->owned_comm_ = expert_parallel::CreateLocalCommunicator(r->backend_.get(),
                                                                static_cast<int>(c.num_experts));
      r->comm_ = r->owned_comm_.get();
    }
  } else {
    r->comm_ = options.communicator;  // null: the routed experts run whole on the device
    STRATA_RETURN_IF_ERROR(r->InitDevice());
  }
  r->rope_ = MakeRopeTable(c);
  if (options.mistake == ForwardMistake::kRopeLayout) r->rope_.interleaved = !r->rope_.interleaved;
  r->attention_scale_ = static_cast<float>(c.AttentionSoftmaxScale());
  if (options.prefault_weights && r->cuda_ == nullptr) r->weights_->Prefault();
  r->stats_.load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return std::unique_ptr<ModelRunner>(std::move(r));
}

Status RunnerImpl::LoadMlp(const std::string& prefix, int64_t inter, bool mixtral_names,
                           bool transposed, ops::MlpWeights* w) {
  const int64_t hidden = config_.hidden_size;
  std::string gate = prefix + (mixtral_names ? "w1.weight" : "gate_proj.weight");
  std::string up = prefix + (mixtral_names ? "w3.weight" : "up_proj.weight");
  std::string down = prefix + (mixtral_names ? "w2.weight" : "down_proj.weight");
  if (options_.mistake == ForwardMistake::kSwapGateUp) std::swap(gate, up);
  STRATA_ASSIGN_OR_RETURN(w->gate, weights_->Linear(gate, inter, hidden));
  STRATA_ASSIGN_OR_RETURN(w->up, weights_->Linear(up, inter, hidden));
  if (transposed) {
    STRATA_ASSIGN_OR_RETURN(w->down, weights_->LinearTransposedMistake(down, hidden, inter));
  } else {
    STRATA_ASSIGN_OR_RETURN(w->down, weights_->Linear(down, hidden, inter));
  }
  return OkStatus();
}

Status RunnerImpl::LoadMoe(int layer, MoeWeights* w) {
  const ModelConfig& c = config_;
  const bool mixtral = c.arch == Arch::kMixtral;
  const std::string p = LayerPrefix(layer) + (mixtral ? "block_sparse_moe." : "mlp.");
  const int64_t e = c.num_experts;
  STRATA_ASSIGN_OR_RETURN(w->router, weights_->LinearF32(p + "gate.weight", e, c.hidden_size));
  ops::RouterSpec& s = w->spec;
  s.num_experts = static_cast<int>(e);
  s.top_k = static_cast<int>(c.num_experts_per_tok);
  s.norm_topk_prob = c.norm_topk_prob;
  s.routed_scaling_factor = static_cast<float>(c.routed_scaling_factor);
  s.scoring = c.scoring_func == ScoringFunc::kSigmoid ? ops::RouterScoring::kSigmoid
                                                      : ops::RouterScoring::kSoftmax;
  if (c.topk_method == TopkMethod::kNoauxTc) {
    s.num_groups = static_cast<int>(c.n_group);
    s.topk_groups = static_cast<int>(c.topk_group);
    STRATA_ASSIGN_OR_RETURN(w->correction_bias,
                            weights_->Vector(p + "gate.e_score_correction_bias", e));
    s.correction_bias = w->correction_bias.data();
  }
  const bool transposed = options_.mistake == ForwardMistake::kTransposeExpert;
  w->experts.resize(e);
  for (int64_t i = 0; i < e; ++i) {
    STRATA_RETURN_IF_ERROR(LoadMlp(p + "experts." + std::to_string(i) + ".",
                                   c.moe_intermediate_size, mixtral, transposed, &w->experts[i]));
  }
  if (c.shared_expert_intermediate_size > 0) {
    w->has_shared = true;
    STRATA_RETURN_IF_ERROR(LoadMlp(p + "shared_experts.", c.shared_expert_intermediate_size, false,
                                   false, &w->shared));
  }
  return OkStatus();
}

Status RunnerImpl::LoadWeights(const RunnerOptions& options) {
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size;
  STRATA_ASSIGN_OR_RETURN(embed_,
                          weights_->Linear("model.embed_tokens.weight", c.vocab_size, hidden));
  if (c.tie_word_embeddings) {
    lm_head_ = embed_;
  } else {
    STRATA_ASSIGN_OR_RETURN(lm_head_, weights_->Linear("lm_head.weight", c.vocab_size, hidden));
  }
  STRATA_ASSIGN_OR_RETURN(final_norm_, weights_->Vector("model.norm.weight", hidden));
  layers_.resize(c.NumLayers());
  int64_t bytes = 0, macs = 0;
  for (int i = 0; i < static_cast<int>(c.NumLayers()); ++i) {
    LayerWeights& L = layers_[i];
    const std::string p = LayerPrefix(i);
    STRATA_ASSIGN_OR_RETURN(L.input_norm, weights_->Vector(p + "input_layernorm.weight", hidden));
    STRATA_ASSIGN_OR_RETURN(L.post_norm,
                            weights_->Vector(p + "post_attention_layernorm.weight", hidden));
    if (c.IsMla()) {
      STRATA_RETURN_IF_ERROR(LoadMla(i, &L.mla));
      const MlaWeights& m = L.mla;
      for (const auto* w : {&m.q_a, &m.q_b, &m.q, &m.kv_a, &m.kv_b, &m.o}) {
        bytes += Bytes(*w);
        macs += Elements(*w);
      }
    } else {
      STRATA_RETURN_IF_ERROR(LoadGqa(i, &L.gqa));
      for (const auto* w : {&L.gqa.q, &L.gqa.k, &L.gqa.v, &L.gqa.o}) {
        bytes += Bytes(*w);
        macs += Elements(*w);
      }
    }
    L.is_moe = c.IsMoeLayer(i);
    if (L.is_moe) {
      STRATA_RETURN_IF_ERROR(LoadMoe(i, &L.moe));
      const int64_t k = c.num_experts_per_tok;
      bytes += Bytes(L.moe.router) + k * MlpBytes(L.moe.experts[0]);
      macs += Elements(L.moe.router) + k * MlpElements(L.moe.experts[0]);
      if (L.moe.has_shared) {
        bytes += MlpBytes(L.moe.shared);
        macs += MlpElements(L.moe.shared);
      }
    } else {
      bool transposed = options.mistake == ForwardMistake::kTransposeExpert && !c.IsMoe();
      STRATA_RETURN_IF_ERROR(LoadMlp(p + "mlp.", c.intermediate_size, false, transposed, &L.mlp));
      bytes += MlpBytes(L.mlp);
      macs += MlpElements(L.mlp);
    }
  }
  stats_.decode_bytes_per_token = bytes + Bytes(lm_head_) + hidden * 2;
  stats_.macs_per_token = macs + Elements(lm_head_);
  stats_.weight_bytes = weights_->mapped_bytes_used();
  PackWeights();
  return OkStatus();
}

void RunnerImpl::PackWeights() {
  if (backend_->PackedWeightBytes(lm_head_) == 0) return;  // this backend reads weights as they are
  weights_->Prefault();  // one populate call per tensor instead of a fault per page
  // Two passes over the same weights: the first sizes one arena for every packed copy (one
  // huge-page region populated in one call; a buffer per expert would fault page by page), the
  // second packs into it.
  constexpr size_t kAlign = 64;
  size_t total = 0;
  uint8_t* arena = nullptr;
  auto pack = [&](ops::WeightView& w) {
    const size_t bytes = (backend_->PackedWeightBytes(w) + kAlign - 1) / kAlign * kAlign;
    if (bytes == 0) return;
    if (arena == nullptr) {
      total += bytes;
      return;
    }
    weights_->Repacked(w);
    w = backend_->PackWeight(w, arena);
    arena += bytes;
  };
  auto each_weight = [&] {
    for (LayerWeights& L : layers_) {
      for (ops::WeightView* w : {&L.gqa.q, &L.gqa.k, &L.gqa.v, &L.gqa.o, &L.mla.q_a, &L.mla.q_b,
                                 &L.mla.q, &L.mla.kv_a, &L.mla.kv_b, &L.mla.o}) {
        pack(*w);
      }
      for (ops::WeightView& w : L.mla.uk_t) pack(w);
      for (ops::WeightView& w : L.mla.uv) pack(w);
      for (ops::MlpWeights* m : {&L.mlp, &L.moe.shared}) {
        for (ops::WeightView* w : {&m->gate, &m->up, &m->down}) pack(*w);
      }
      for (ops::MlpWeights& m : L.moe.experts) {
        for (ops::WeightView* w : {&m.gate, &m.up, &m.down}) pack(*w);
      }
    }
    pack(lm_head_);  // a copy when tied: the embedding table stays row-major for lookups
  };
  each_weight();
  if (total == 0) return;
  arena = static_cast<uint8_t*>(weights_->OwnBytes(total));
  each_weight();
}

Status RunnerImpl::Validate(const ForwardBatch& batch) const {
  if (batch.sequences.empty()) return InvalidArgumentError("forward batch has no sequence");
  const int bs = kv_spec_.block_size;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const SequenceChunk& ch = batch.sequences[s];
    const std::string where = "sequence " + std::to_string(s) + ": ";
    if (ch.token_ids.empty()) return InvalidArgumentError(where + "no tokens");
    if (ch.start_position < 0) return InvalidArgumentError(where + "negative start_position");
    int64_t end = int64_t{ch.start_position} + static_cast<int64_t>(ch.token_ids.size());
    if (end > config_.max_position_embeddings) {
      return InvalidArgumentError(where + "position " + std::to_string(end - 1) +
                                  " beyond max_position_embeddings " +
                                  std::to_string(config_.max_position_embeddings));
    }
    if (static_cast<int64_t>(ch.block_table.size()) < BlocksForTokens(end, bs)) {
      return InvalidArgumentError(where + "block table has " +
                                  std::to_string(ch.block_table.size()) + " blocks, " +
                                  std::to_string(BlocksForTokens(end, bs)) + " needed for " +
                                  std::to_string(end) + " tokens");
    }
    for (int32_t b : ch.block_table) {
      if (b < 0 || b >= num_kv_blocks_) {
        return InvalidArgumentError(where + "block id " + std::to_string(b) + " outside [0, " +
                                    std::to_string(num_kv_blocks_) + ")");
      }
    }
    for (int32_t t : ch.token_ids) {
      if (t < 0 || t >= config_.vocab_size) {
        return InvalidArgumentError(where + "token id " + std::to_string(t) +
                                    " outside the vocabulary [0, " +
                                    std::to_string(config_.vocab_size) + ")");
      }
    }
  }
  return OkStatus();
}

Status RunnerImpl::Forward(const ForwardBatch& batch, ForwardResult* result) {
  if (batch.sequences.empty() && options_.communicator) return JoinMoeLayers(result);
  STRATA_RETURN_IF_ERROR(Validate(batch));
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size;
  const int bs = kv_spec_.block_size;
  BatchTokens bt;
  for (const SequenceChunk& ch : batch.sequences) {
    bt.chunk_begin.push_back(bt.num_tokens());
    for (size_t i = 0; i < ch.token_ids.size(); ++i) {
      int32_t pos = ch.start_position + static_cast<int32_t>(i);
      bt.ids.push_back(ch.token_ids[i]);
      bt.positions.push_back(pos);
      bt.num_keys.push_back(pos + 1);
      bt.tables.push_back(ch.block_table);
      bt.cache_offsets.push_back(KvOffset(ch.block_table[pos / bs], pos % bs));
    }
  }
  if (cuda_ != nullptr) return ForwardDevice(batch, bt, result);
  const int64_t T = bt.num_tokens();
  h_.resize(T * hidden);
  x_.resize(T * hidden);
  attn_.resize(T * hidden);
  mlp_.resize(T * hidden);
  ops::Backend& be = *backend_;
  be.Embedding(embed_, bt.ids.data(), T, h_.data(), hidden);
  const float eps = static_cast<float>(c.rms_norm_eps);
  for (int l = 0; l < static_cast<int>(layers_.size()); ++l) {
    const LayerWeights& L = layers_[l];
    be.RmsNorm(h_.data(), T, hidden, hidden, L.input_norm.data(), eps, x_.data(), hidden);
    if (c.IsMla()) {
      MlaForward(l, batch, bt, attn_.data());
    } else {
      GqaForward(l, bt, attn_.data());
    }
    if (batch.on_layer_kv_written) batch.on_layer_kv_written(l);
    be.Add(h_.data(), hidden, attn_.data(), hidden, T, hidden);
    be.RmsNorm(h_.data(), T, hidden, hidden, L.post_norm.data(), eps, x_.data(), hidden);
    STRATA_RETURN_IF_ERROR(MlpForward(l, T, mlp_.data()));
    be.Add(h_.data(), hidden, mlp_.data(), hidden, T, hidden);
  }

  // Logits for the rows asked for.
  std::vector<int64_t> rows;
  result->first_row.assign(batch.sequences.size(), -1);
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const SequenceChunk& ch = batch.sequences[s];
    const int64_t n = static_cast<int64_t>(ch.token_ids.size());
    if (ch.logits == LogitsMode::kNone) continue;
    result->first_row[s] = static_cast<int64_t>(rows.size());
    if (ch.logits == LogitsMode::kLast) {
      rows.push_back(bt.chunk_begin[s] + n - 1);
    } else {
      for (int64_t i = 0; i < n; ++i) rows.push_back(bt.chunk_begin[s] + i);
    }
  }
  const int64_t R = static_cast<int64_t>(rows.size());
  result->vocab_size = c.vocab_size;
  result->logits.resize(R * c.vocab_size);
  if (R > 0) {
    for (int64_t i = 0; i < R; ++i) {
      std::memcpy(x_.data() + i * hidden, h_.data() + rows[i] * hidden, hidden * sizeof(float));
    }
    be.RmsNorm(x_.data(), R, hidden, hidden, final_norm_.data(), eps, x_.data(), hidden);
    ops::MatmulOutput out{lm_head_, result->logits.data(), c.vocab_size};
    be.Matmul(x_.data(), R, hidden, std::span<const ops::MatmulOutput>(&out, 1));
  }
  return OkStatus();
}

}  // namespace strata::model
