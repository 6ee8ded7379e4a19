// The forward on a device backend (RunnerOptions::device = "cuda[:N]"): the same steps as the
// CPU forward (model_runner.cc, forward_attention.cc, forward_mlp.cc), with every tensor in
// device memory. Weights are uploaded once at load (bf16; routers f32), the KV cache is allocated
// on the device, and per step the token ids, positions and cache offsets are staged (the CUDA
// backend reads AttentionArgs::num_keys and block tables from host memory). Host-side gathers
// of the CPU path become Embedding calls with an f32 table (row gathers), ScatterToCache (bf16
// expansion of the MLA latent) and Copy; the routed MoE runs whole on the device
// (CudaBackend::MoeForward), or, under expert parallelism, routes on the device and moves the
// tokens through the communicator in host memory (MoeDeviceEp). Logits rows are copied back;
// sampling stays on the host.
#include <algorithm>
#include <array>
#include <cstring>
#include <numeric>

#include "model/runner_impl.h"

namespace strata::model {

RunnerImpl::~RunnerImpl() {
  if (cuda_ == nullptr) return;
  for (DevBuffer* b :
       {&w_ids_,        &w_pos_,     &w_off_,   &w_h_,      &w_x_,     &w_attn_, &w_mlp_,
        &w_tmp_,        &w_q_,       &w_k_,     &w_v_,      &w_heads_, &w_qa_,   &w_kv_,
        &w_qd_,         &w_qlat_,    &w_olat_,  &w_od_,     &w_lat_,   &w_kvb_,  &w_kexp_,
        &w_vexp_,       &w_router_,  &w_rows_,  &w_logits_, &w_idx_,   &w_eoff_, &w_ep_ids_,
        &w_ep_weights_, &w_ep_rows_, &w_ep_out_}) {
    if (b->ptr != nullptr) cuda_->Free(b->ptr);
  }
  dev_experts_.clear();
  for (void* p : device_allocs_) cuda_->Free(p);
  (void)cuda_->Synchronize();
}

StatusOr<void*> RunnerImpl::DeviceCopy(const void* host, size_t bytes) {
  STRATA_ASSIGN_OR_RETURN(void* p, backend_->Allocate(bytes));
  device_allocs_.push_back(p);
  if (host != nullptr && bytes > 0) backend_->CopyToDevice(p, host, bytes);
  return p;
}

Status RunnerImpl::UploadView(ops::WeightView* w) {
  if (w->data == nullptr) return OkStatus();
  const size_t bytes =
      static_cast<size_t>((w->rows - 1) * w->stride() + w->cols) * ops::DTypeSize(w->dtype);
  STRATA_ASSIGN_OR_RETURN(void* p, DeviceCopy(w->data, bytes));
  w->data = p;
  return OkStatus();
}

Status RunnerImpl::UploadVector(const std::vector<float>& v) {
  if (v.empty() || dev_vec_.count(v.data()) != 0) return OkStatus();
  STRATA_ASSIGN_OR_RETURN(void* p, DeviceCopy(v.data(), v.size() * sizeof(float)));
  dev_vec_[v.data()] = static_cast<const float*>(p);
  return OkStatus();
}

const float* RunnerImpl::Dev(const std::vector<float>& v) const {
  if (v.empty()) return nullptr;
  return dev_vec_.at(v.data());
}

template <typename T>
StatusOr<T*> RunnerImpl::Work(DevBuffer& b, int64_t n) {
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T);
  if (bytes > b.bytes) {
    if (b.ptr != nullptr) backend_->Free(b.ptr);
    b.ptr = nullptr;
    b.bytes = 0;
    STRATA_ASSIGN_OR_RETURN(b.ptr, backend_->Allocate(bytes + bytes / 4));
    b.bytes = bytes + bytes / 4;
  }
  return static_cast<T*>(b.ptr);
}

ops::KvLayerView RunnerImpl::DeviceLayerView(int layer) const {
  ops::KvLayerView view;
  const kvcache::KvCacheSpec& spec = kv_spec_;
  const int64_t token = spec.TokenElements();
  view.block_stride = token * spec.block_size;
  view.token_stride = token;
  view.block_size = spec.block_size;
  view.k = dev_k_[layer];
  if (spec.layout == kvcache::KvLayout::kGqa) {
    view.v = dev_v_[layer];
    view.head_stride = spec.head_dim;
    view.num_kv_heads = spec.num_kv_heads;
    view.k_dim = spec.head_dim;
    view.v_dim = spec.head_dim;
  } else {
    view.v = dev_k_[layer];
    view.num_kv_heads = 1;
    view.k_dim = spec.kv_lora_rank + spec.rope_dim;
    view.v_dim = spec.kv_lora_rank;
  }
  return view;
}

namespace {

// The per-layer f32 vectors the device forward reads (their device copies are in dev_vec_).
std::array<const std::vector<float>*, 11> LayerVectors(const LayerWeights& L) {
  return {&L.input_norm,   &L.post_norm,     &L.gqa.q_bias,         &L.gqa.k_bias,
          &L.gqa.v_bias,   &L.gqa.o_bias,    &L.gqa.q_norm,         &L.gqa.k_norm,
          &L.mla.q_a_norm, &L.mla.kv_a_norm, &L.moe.correction_bias};
}

}  // namespace

Status RunnerImpl::ShareDevice(const RunnerImpl& parent) {
  ops::CudaBackendOptions co;
  STRATA_ASSIGN_OR_RETURN(co.device, ParseCudaDevice(parent.options_.device));
  co.deterministic = parent.cuda_->deterministic();
  STRATA_ASSIGN_OR_RETURN(auto cuda, ops::CreateCudaBackend(co));
  cuda_ = cuda.get();
  backend_ = std::move(cuda);
  // Weights, KV cache and expert tables stay the parent's (uploaded and synchronized at load);
  // the layers here are copies, so their vectors map to the parent's device copies.
  dev_k_ = parent.dev_k_;
  dev_v_ = parent.dev_v_;
  dev_experts_ = parent.dev_experts_;
  if (!final_norm_.empty()) dev_vec_[final_norm_.data()] = parent.Dev(parent.final_norm_);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const auto mine = LayerVectors(layers_[l]), theirs = LayerVectors(parent.layers_[l]);
    for (size_t i = 0; i < mine.size(); ++i) {
      if (!mine[i]->empty()) dev_vec_[mine[i]->data()] = parent.Dev(*theirs[i]);
    }
  }
  return OkStatus();
}

Status RunnerImpl::InitDevice() {
  // Weights: every view and vector the forward reads, uploaded once.
  STRATA_RETURN_IF_ERROR(UploadView(&embed_));
  if (config_.tie_word_embeddings) {
    lm_head_ = embed_;
  } else {
    STRATA_RETURN_IF_ERROR(UploadView(&lm_head_));
  }
  STRATA_RETURN_IF_ERROR(UploadVector(final_norm_));
  dev_experts_.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    LayerWeights& L = layers_[l];
    for (const std::vector<float>* v : LayerVectors(L)) STRATA_RETURN_IF_ERROR(UploadVector(*v));
    for (ops::WeightView* w : {&L.gqa.q, &L.gqa.k, &L.gqa.v, &L.gqa.o, &L.mla.q_a, &L.mla.q_b,
                               &L.mla.q, &L.mla.kv_a, &L.mla.kv_b, &L.mla.o}) {
      STRATA_RETURN_IF_ERROR(UploadView(w));
    }
    for (auto& w : L.mla.uk_t) STRATA_RETURN_IF_ERROR(UploadView(&w));
    for (auto& w : L.mla.uv) STRATA_RETURN_IF_ERROR(UploadView(&w));
    auto upload_mlp = [&](ops::MlpWeights* m) -> Status {
      STRATA_RETURN_IF_ERROR(UploadView(&m->gate));
      STRATA_RETURN_IF_ERROR(UploadView(&m->up));
      return UploadView(&m->down);
    };
    if (L.is_moe) {
      STRATA_RETURN_IF_ERROR(UploadView(&L.moe.router));
      L.moe.spec.correction_bias = Dev(L.moe.correction_bias);
      for (auto& e : L.moe.experts) STRATA_RETURN_IF_ERROR(upload_mlp(&e));
      if (L.moe.has_shared) STRATA_RETURN_IF_ERROR(upload_mlp(&L.moe.shared));
      STRATA_ASSIGN_OR_RETURN(dev_experts_[l], cuda_->UploadExperts(L.moe.experts));
    } else {
      STRATA_RETURN_IF_ERROR(upload_mlp(&L.mlp));
    }
  }
  // KV cache, zeroed so that unwritten slots hold finite values.
  const size_t bytes = static_cast<size_t>(num_kv_blocks_) * kv_spec_.block_size *
                       kv_spec_.TokenElements() * sizeof(bf16);
  const std::vector<bf16> zeros(std::min<size_t>(bytes / sizeof(bf16), size_t{1} << 24));
  auto alloc_kv = [&](std::vector<bf16*>* out) -> Status {
    for (int l = 0; l < kv_spec_.num_layers; ++l) {
      STRATA_ASSIGN_OR_RETURN(void* p, DeviceCopy(nullptr, bytes));
      for (size_t done = 0; done < bytes; done += zeros.size() * sizeof(bf16)) {
        backend_->CopyToDevice(static_cast<char*>(p) + done, zeros.data(),
                               std::min(bytes - done, zeros.size() * sizeof(bf16)));
      }
      out->push_back(static_cast<bf16*>(p));
    }
    return OkStatus();
  };
  STRATA_RETURN_IF_ERROR(alloc_kv(&dev_k_));
  if (kv_spec_.layout == kvcache::KvLayout::kGqa) STRATA_RETURN_IF_ERROR(alloc_kv(&dev_v_));
  return cuda_->Synchronize();
}

Status RunnerImpl::ForwardDevice(const ForwardBatch& batch, const BatchTokens& bt,
                                 ForwardResult* result) {
  const ModelConfig& c = config_;
  const int64_t hidden = c.hidden_size;
  const int64_t T = bt.num_tokens();
  ops::Backend& be = *backend_;
  STRATA_ASSIGN_OR_RETURN(int32_t * ids, Work<int32_t>(w_ids_, T));
  STRATA_ASSIGN_OR_RETURN(int32_t * pos, Work<int32_t>(w_pos_, T));
  STRATA_ASSIGN_OR_RETURN(int64_t * off, Work<int64_t>(w_off_, T));
  be.CopyToDevice(ids, bt.ids.data(), T * sizeof(int32_t));
  be.CopyToDevice(pos, bt.positions.data(), T * sizeof(int32_t));
  be.CopyToDevice(off, bt.cache_offsets.data(), T * sizeof(int64_t));
  STRATA_ASSIGN_OR_RETURN(float* h, Work<float>(w_h_, T * hidden));
  STRATA_ASSIGN_OR_RETURN(float* x, Work<float>(w_x_, T * hidden));
  STRATA_ASSIGN_OR_RETURN(float* attn, Work<float>(w_attn_, T * hidden));
  STRATA_ASSIGN_OR_RETURN(float* mlp, Work<float>(w_mlp_, T * hidden));
  d_x_ = x;
  d_pos_ = pos;
  d_off_ = off;
  be.Embedding(embed_, ids, T, h, hidden);
  const float eps = static_cast<float>(c.rms_norm_eps);
  for (int l = 0; l < static_cast<int>(layers_.size()); ++l) {
    const LayerWeights& L = layers_[l];
    be.RmsNorm(h, T, hidden, hidden, Dev(L.input_norm), eps, x, hidden);
    if (c.IsMla()) {
      STRATA_RETURN_IF_ERROR(MlaDevice(l, batch, bt, attn));
    } else {
      STRATA_RETURN_IF_ERROR(GqaDevice(l, bt, attn));
    }
    be.Add(h, hidden, attn, hidden, T, hidden);
    be.RmsNorm(h, T, hidden, hidden, Dev(L.post_norm), eps, x, hidden);
    STRATA_RETURN_IF_ERROR(MlpDevice(l, T, mlp));
    be.Add(h, hidden, mlp, hidden, T, hidden);
  }

  std::vector<int32_t> rows;
  result->first_row.assign(batch.sequences.size(), -1);
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const SequenceChunk& ch = batch.sequences[s];
    const int64_t n = static_cast<int64_t>(ch.token_ids.size());
    if (ch.logits == LogitsMode::kNone) continue;
    result->first_row[s] = static_cast<int64_t>(rows.size());
    if (ch.logits == LogitsMode::kLast) {
      rows.push_back(static_cast<int32_t>(bt.chunk_begin[s] + n - 1));
    } else {
      for (int64_t i = 0; i < n; ++i) rows.push_back(static_cast<int32_t>(bt.chunk_begin[s] + i));
    }
  }
  const int64_t R = static_cast<int64_t>(rows.size());
  result->vocab_size = c.vocab_size;
  result->logits.resize(R * c.vocab_size);
  if (R > 0) {
    STRATA_ASSIGN_OR_RETURN(int32_t * d_rows, Work<int32_t>(w_rows_, R));
    STRATA_ASSIGN_OR_RETURN(float* logits, Work<float>(w_logits_, R * c.vocab_size));
    be.CopyToDevice(d_rows, rows.data(), R * sizeof(int32_t));
    const ops::WeightView hv{ops::DType::kF32, h, T, hidden, 0};
    be.Embedding(hv, d_rows, R, x, hidden);  // row gather
    be.RmsNorm(x, R, hidden, hidden, Dev(final_norm_), eps, x, hidden);
    ops::MatmulOutput out{lm_head_, logits, c.vocab_size};
    be.Matmul(x, R, hidden, std::span<const ops::MatmulOutput>(&out, 1));
    be.CopyToHost(result->logits.data(), logits, R * c.vocab_size * sizeof(float));
  }
  return cuda_->Synchronize();
}

Status RunnerImpl::GqaDevice(int layer, const BatchTokens& bt, float* out) {
  const ModelConfig& c = config_;
  const GqaWeights& w = layers_[layer].gqa;
  ops::Backend& be = *backend_;
  const int64_t T = bt.num_tokens(), hidden = c.hidden_size, d = c.head_dim;
  const int hq = static_cast<int>(c.num_attention_heads);
  const int hkv = static_cast<int>(c.num_key_value_heads);
  const float eps = static_cast<float>(c.rms_norm_eps);
  STRATA_ASSIGN_OR_RETURN(float* q, Work<float>(w_q_, T * hq * d));
  STRATA_ASSIGN_OR_RETURN(float* k, Work<float>(w_k_, T * hkv * d));
  STRATA_ASSIGN_OR_RETURN(float* v, Work<float>(w_v_, T * hkv * d));
  STRATA_ASSIGN_OR_RETURN(float* heads, Work<float>(w_heads_, T * hq * d));
  ops::MatmulOutput qkv[3] = {{w.q, q, hq * d}, {w.k, k, hkv * d}, {w.v, v, hkv * d}};
  be.Matmul(d_x_, T, hidden, qkv);
  // Biases: y[i, :] += bias (a row stride of 0 repeats the bias row).
  if (!w.q_bias.empty()) be.Add(q, hq * d, Dev(w.q_bias), 0, T, hq * d);
  if (!w.k_bias.empty()) be.Add(k, hkv * d, Dev(w.k_bias), 0, T, hkv * d);
  if (!w.v_bias.empty()) be.Add(v, hkv * d, Dev(w.v_bias), 0, T, hkv * d);
  if (!w.q_norm.empty()) {
    be.RmsNorm(q, T * hq, d, d, Dev(w.q_norm), eps, q, d);
    be.RmsNorm(k, T * hkv, d, d, Dev(w.k_norm), eps, k, d);
  }
  be.Rope(q, T, hq * d, hq, d, d_pos_, rope_);
  be.Rope(k, T, hkv * d, hkv, d, d_pos_, rope_);
  be.ScatterToCache(k, T, hkv * d, hkv * d, dev_k_[layer], d_off_);
  be.ScatterToCache(v, T, hkv * d, hkv * d, dev_v_[layer], d_off_);
  ops::AttentionArgs a;
  a.q = q;
  a.q_token_stride = hq * d;
  a.q_head_stride = d;
  a.num_tokens = T;
  a.num_q_heads = hq;
  a.num_keys = bt.num_keys.data();  // host memory (CudaBackend contract)
  a.block_tables = bt.tables.data();
  a.kv = DeviceLayerView(layer);
  a.scale = attention_scale_;
  a.out = heads;
  a.out_token_stride = hq * d;
  a.out_head_stride = d;
  be.Attention(a);
  ops::MatmulOutput o{w.o, out, hidden};
  be.Matmul(heads, T, hq * d, std::span<const ops::MatmulOutput>(&o, 1));
  if (!w.o_bias.empty()) be.Add(out, hidden, Dev(w.o_bias), 0, T, hidden);
  return OkStatus();
}

Status RunnerImpl::MlaDevice(int layer, const ForwardBatch& batch, const BatchTokens& bt,
                             float* out) {
  const ModelConfig& c = config_;
  const MlaWeights& w = layers_[layer].mla;
  ops::Backend& be = *backend_;
  const int64_t T = bt.num_tokens(), hidden = c.hidden_size;
  const int h = static_cast<int>(c.num_attention_heads);
  const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, vd = c.v_head_dim;
  const int64_t lora = c.kv_lora_rank, qk = nope + rope, kvw = lora + rope;
  const float eps = static_cast<float>(c.rms_norm_eps);
  STRATA_ASSIGN_OR_RETURN(float* q, Work<float>(w_q_, T * h * qk));
  STRATA_ASSIGN_OR_RETURN(float* kv, Work<float>(w_kv_, T * kvw));
  if (w.has_q_lora) {
    const int64_t ql = w.q_a.rows;
    STRATA_ASSIGN_OR_RETURN(float* qa, Work<float>(w_qa_, T * ql));
    ops::MatmulOutput first[2] = {{w.q_a, qa, ql}, {w.kv_a, kv, kvw}};
    be.Matmul(d_x_, T, hidden, first);
    be.RmsNorm(qa, T, ql, ql, Dev(w.q_a_norm), eps, qa, ql);
    ops::MatmulOutput qb{w.q_b, q, h * qk};
    be.Matmul(qa, T, ql, std::span<const ops::MatmulOutput>(&qb, 1));
  } else {
    ops::MatmulOutput first[2] = {{w.q, q, h * qk}, {w.kv_a, kv, kvw}};
    be.Matmul(d_x_, T, hidden, first);
  }
  be.RmsNorm(kv, T, lora, kvw, Dev(w.kv_a_norm), eps, kv, kvw);
  be.Rope(q + nope, T, h * qk, h, qk, d_pos_, rope_);
  be.Rope(kv + lora, T, kvw, 1, 0, d_pos_, rope_);
  be.ScatterToCache(kv, T, kvw, kvw, dev_k_[layer], d_off_);
  STRATA_ASSIGN_OR_RETURN(float* heads, Work<float>(w_heads_, T * h * vd));

  // Decode tokens: absorbed MLA over the cached latent.
  std::vector<int32_t> decode;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    if (batch.sequences[s].token_ids.size() == 1) {
      decode.push_back(static_cast<int32_t>(bt.chunk_begin[s]));
    }
  }
  const int64_t D = static_cast<int64_t>(decode.size());
  if (D > 0) {
    STRATA_ASSIGN_OR_RETURN(float* qd, Work<float>(w_qd_, D * h * qk));
    STRATA_ASSIGN_OR_RETURN(float* qlat, Work<float>(w_qlat_, D * h * kvw));
    STRATA_ASSIGN_OR_RETURN(float* olat, Work<float>(w_olat_, D * h * lora));
    STRATA_ASSIGN_OR_RETURN(float* od, Work<float>(w_od_, D * h * vd));
    // Index rows: the decode tokens, then 0 .. D*h-1.
    std::vector<int32_t> idx(decode);
    idx.resize(D + D * h);
    std::iota(idx.begin() + D, idx.end(), 0);
    STRATA_ASSIGN_OR_RETURN(int32_t * d_idx, Work<int32_t>(w_idx_, D + D * h));
    be.CopyToDevice(d_idx, idx.data(), idx.size() * sizeof(int32_t));
    be.Embedding({ops::DType::kF32, q, T, h * qk, 0}, d_idx, D, qd, h * qk);
    std::vector<int32_t> num_keys(D);
    std::vector<std::span<const int32_t>> tables(D);
    for (int64_t i = 0; i < D; ++i) {
      num_keys[i] = bt.num_keys[decode[i]];
      tables[i] = bt.tables[decode[i]];
    }
    std::vector<ops::MatmulProblem> problems(h);
    for (int hh = 0; hh < h; ++hh) {
      problems[hh] = {qd + hh * qk, D, h * qk, w.uk_t[hh], qlat + hh * kvw, h * kvw};
    }
    be.BatchedMatmul(problems);
    // q_pe of every (token, head) after its latent query.
    be.Embedding({ops::DType::kF32, qd + nope, D * h, rope, qk}, d_idx + D, D * h, qlat + lora,
                 kvw);
    ops::AttentionArgs a;
    a.q = qlat;
    a.q_token_stride = h * kvw;
    a.q_head_stride = kvw;
    a.num_tokens = D;
    a.num_q_heads = h;
    a.num_keys = num_keys.data();
    a.block_tables = tables.data();
    a.kv = DeviceLayerView(layer);
    a.scale = attention_scale_;
    a.out = olat;
    a.out_token_stride = h * lora;
    a.out_head_stride = lora;
    be.Attention(a);
    for (int hh = 0; hh < h; ++hh) {
      problems[hh] = {olat + hh * lora, D, h * lora, w.uv[hh], od + hh * vd, h * vd};
    }
    be.BatchedMatmul(problems);
    for (int64_t i = 0; i < D; ++i) {
      be.Copy(heads + decode[i] * h * vd, od + i * h * vd, h * vd * sizeof(float));
    }
  }

  // Prefill chunks: naive MLA, keys and values expanded from the cached latent.
  const int bs = kv_spec_.block_size;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const SequenceChunk& ch = batch.sequences[s];
    const int64_t n = static_cast<int64_t>(ch.token_ids.size());
    if (n == 1) continue;
    const int64_t ctx = ch.start_position + n;
    const int64_t t0 = bt.chunk_begin[s];
    // Host index arrays: cache slot of each key, then the expanded rows' offsets.
    std::vector<int32_t> slots(ctx);
    std::vector<int64_t> eoff(ctx * h + ctx);
    for (int64_t j = 0; j < ctx; ++j) {
      slots[j] = ch.block_table[j / bs] * bs + static_cast<int32_t>(j % bs);
      eoff[ctx * h + j] = j * h * qk;
    }
    for (int64_t r = 0; r < ctx * h; ++r) eoff[r] = r * qk;
    STRATA_ASSIGN_OR_RETURN(int32_t * d_slots, Work<int32_t>(w_idx_, ctx));
    STRATA_ASSIGN_OR_RETURN(int64_t * d_eoff, Work<int64_t>(w_eoff_, eoff.size()));
    be.CopyToDevice(d_slots, slots.data(), ctx * sizeof(int32_t));
    be.CopyToDevice(d_eoff, eoff.data(), eoff.size() * sizeof(int64_t));
    STRATA_ASSIGN_OR_RETURN(float* lat, Work<float>(w_lat_, ctx * kvw));
    STRATA_ASSIGN_OR_RETURN(float* kvb, Work<float>(w_kvb_, ctx * h * (nope + vd)));
    STRATA_ASSIGN_OR_RETURN(bf16 * kexp, Work<bf16>(w_kexp_, ctx * h * qk));
    STRATA_ASSIGN_OR_RETURN(bf16 * vexp, Work<bf16>(w_vexp_, ctx * h * qk));
    const ops::WeightView cache{ops::DType::kBF16, dev_k_[layer], int64_t{num_kv_blocks_} * bs, kvw,
                                0};
    be.Embedding(cache, d_slots, ctx, lat, kvw);  // [c_kv | k_pe] of every key, as f32
    ops::MatmulOutput eo{w.kv_b, kvb, h * (nope + vd)};
    be.Matmul(lat, ctx, kvw, std::span<const ops::MatmulOutput>(&eo, 1));
    // Rows (key, head) of kvb: k_nope and v into their heads' slots.
    be.ScatterToCache(kvb, ctx * h, nope + vd, nope, kexp, d_eoff);
    be.ScatterToCache(kvb + nope, ctx * h, nope + vd, vd, vexp, d_eoff);
    for (int hh = 0; hh < h; ++hh) {
      be.ScatterToCache(lat + lora, ctx, kvw, rope, kexp + hh * qk + nope, d_eoff + ctx * h);
    }
    static const int32_t kOneBlock[1] = {0};
    std::vector<std::span<const int32_t>> tables(n, std::span<const int32_t>(kOneBlock, 1));
    ops::AttentionArgs a;
    a.q = q + t0 * h * qk;
    a.q_token_stride = h * qk;
    a.q_head_stride = qk;
    a.num_tokens = n;
    a.num_q_heads = h;
    a.num_keys = bt.num_keys.data() + t0;
    a.block_tables = tables.data();
    a.kv.k = kexp;
    a.kv.v = vexp;
    a.kv.block_size = static_cast<int>(ctx);
    a.kv.block_stride = ctx * h * qk;
    a.kv.token_stride = h * qk;
    a.kv.head_stride = qk;
    a.kv.num_kv_heads = h;
    a.kv.k_dim = static_cast<int>(qk);
    a.kv.v_dim = static_cast<int>(vd);
    a.scale = attention_scale_;
    a.out = heads + t0 * h * vd;
    a.out_token_stride = h * vd;
    a.out_head_stride = vd;
    be.Attention(a);
  }
  ops::MatmulOutput o{w.o, out, hidden};
  be.Matmul(heads, T, h * vd, std::span<const ops::MatmulOutput>(&o, 1));
  return OkStatus();
}

Status RunnerImpl::MlpDevice(int layer, int64_t T, float* out) {
  const ModelConfig& c = config_;
  const LayerWeights& L = layers_[layer];
  ops::Backend& be = *backend_;
  const int64_t hidden = c.hidden_size;
  const ops::ExpertGroup all{0, 0, T};
  if (!L.is_moe) {
    be.GroupedExpertMlp(d_x_, hidden, std::span<const ops::ExpertGroup>(&all, 1),
                        std::span<const ops::MlpWeights>(&L.mlp, 1), out);
    return OkStatus();
  }
  const MoeWeights& m = L.moe;
  if (comm_ != nullptr) {
    STRATA_RETURN_IF_ERROR(MoeDeviceEp(layer, T, out));
  } else {
    const int e = m.spec.num_experts;
    STRATA_ASSIGN_OR_RETURN(float* logits, Work<float>(w_router_, T * e));
    ops::MatmulOutput ro{m.router, logits, e};
    be.Matmul(d_x_, T, hidden, std::span<const ops::MatmulOutput>(&ro, 1));
    cuda_->MoeForward(d_x_, T, logits, m.spec, *dev_experts_[layer], out);
  }
  if (m.has_shared && T > 0) {
    STRATA_ASSIGN_OR_RETURN(float* tmp, Work<float>(w_tmp_, T * hidden));
    be.GroupedExpertMlp(d_x_, hidden, std::span<const ops::ExpertGroup>(&all, 1),
                        std::span<const ops::MlpWeights>(&m.shared, 1), tmp);
    be.Add(out, hidden, tmp, hidden, T, hidden);
  }
  return OkStatus();
}

Status RunnerImpl::MoeDeviceEp(int layer, int64_t T, float* out) {
  const MoeWeights& m = layers_[layer].moe;
  ops::Backend& be = *backend_;
  const int64_t hidden = config_.hidden_size;
  const int e = m.spec.num_experts, k = m.spec.top_k;
  x_.resize(T * hidden);
  route_ids_.resize(T * k);
  route_weights_.resize(T * k);
  if (T > 0) {  // T == 0: a rank with no tokens joining the layer's dispatch/combine
    STRATA_ASSIGN_OR_RETURN(float* logits, Work<float>(w_router_, T * e));
    STRATA_ASSIGN_OR_RETURN(int32_t * ids, Work<int32_t>(w_ep_ids_, T * k));
    STRATA_ASSIGN_OR_RETURN(float* weights, Work<float>(w_ep_weights_, T * k));
    ops::MatmulOutput ro{m.router, logits, e};
    be.Matmul(d_x_, T, hidden, std::span<const ops::MatmulOutput>(&ro, 1));
    be.MoeRoute(logits, T, m.spec, ids, weights);
    be.CopyToHost(x_.data(), d_x_, T * hidden * sizeof(float));
    be.CopyToHost(route_ids_.data(), ids, T * k * sizeof(int32_t));
    be.CopyToHost(route_weights_.data(), weights, T * k * sizeof(float));
    STRATA_RETURN_IF_ERROR(cuda_->Synchronize());  // surfaces any error before the peers see it
  }
  const expert_parallel::DispatchInput in = RoutedTokens(layer, T, k);
  STRATA_RETURN_IF_ERROR(comm_->Dispatch(in, &dispatched_));
  const int64_t rows = dispatched_.num_rows();
  expert_out_.resize(rows * hidden);
  if (rows > 0) {
    STRATA_ASSIGN_OR_RETURN(float* d_rows, Work<float>(w_ep_rows_, rows * hidden));
    STRATA_ASSIGN_OR_RETURN(float* d_out, Work<float>(w_ep_out_, rows * hidden));
    be.CopyToDevice(d_rows, dispatched_.rows.data(), rows * hidden * sizeof(float));
    be.GroupedExpertMlp(d_rows, hidden, dispatched_.groups, m.experts, d_out);
    be.CopyToHost(expert_out_.data(), d_out, rows * hidden * sizeof(float));
    STRATA_RETURN_IF_ERROR(cuda_->Synchronize());
  }
  tmp_.resize(T * hidden);
  STRATA_RETURN_IF_ERROR(comm_->Combine(in, dispatched_, expert_out_.data(), tmp_.data()));
  if (T > 0) be.CopyToDevice(out, tmp_.data(), T * hidden * sizeof(float));
  return OkStatus();
}

}  // namespace strata::model
