// Op parity table, part 2: paged attention (decode and prefill; GQA, MHA and MLA-as-MQA; long
// contexts that split over keys; dims only the portable kernel runs) against the CPU reference,
// and batch invariance of a decode row.
#include <algorithm>
#include <numeric>

#include "gpu_test_util.h"

namespace strata::ops::testing {
namespace {

struct AttnCase {
  const char* name;
  int q_heads, kv_heads, k_dim, v_dim;
  bool mla;                     // one latent buffer: v = k, v_dim <= k_dim
  int prefill_tokens;           // 0: decode only
  std::vector<int> decode_ctx;  // context lengths of decode tokens
  int block_size;
};

class CudaAttentionTest : public GpuTest {
 protected:
  // Runs one case on both backends; returns the CUDA output (host) for further checks.
  std::vector<float> RunCase(const AttnCase& c, std::vector<int>* ctx_out = nullptr) {
    // Sequences: one prefill chunk (tokens share a table, causal) then decode tokens.
    std::vector<int> seq_len;
    if (c.prefill_tokens > 0) seq_len.push_back(c.prefill_tokens + 37);
    for (int n : c.decode_ctx) seq_len.push_back(n);
    int total_blocks = 0;
    for (int n : seq_len) total_blocks += (n + c.block_size - 1) / c.block_size;
    std::vector<int32_t> perm(total_blocks + 3);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng_);
    std::vector<std::vector<int32_t>> tables;
    int next = 0;
    for (int n : seq_len) {
      int nb = (n + c.block_size - 1) / c.block_size;
      tables.emplace_back(perm.begin() + next, perm.begin() + next + nb);
      next += nb;
    }
    KvLayerView kv;
    kv.block_size = c.block_size;
    kv.num_kv_heads = c.kv_heads;
    kv.k_dim = c.k_dim;
    kv.v_dim = c.v_dim;
    kv.head_stride = c.k_dim;
    kv.token_stride = static_cast<int64_t>(c.kv_heads) * c.k_dim;
    kv.block_stride = kv.token_stride * c.block_size;
    const int64_t cache_elems = kv.block_stride * static_cast<int64_t>(perm.size());
    std::vector<bf16> k = RandBf16(cache_elems), v = c.mla ? k : RandBf16(cache_elems);
    const bf16* dk = Upload(k);
    const bf16* dv = c.mla ? dk : Upload(v);

    std::vector<int32_t> num_keys;
    std::vector<std::span<const int32_t>> host_tables;
    if (c.prefill_tokens > 0) {
      for (int t = 0; t < c.prefill_tokens; ++t) {
        num_keys.push_back(37 + t + 1);
        host_tables.emplace_back(tables[0]);
      }
    }
    for (size_t i = 0; i < c.decode_ctx.size(); ++i) {
      num_keys.push_back(c.decode_ctx[i]);
      host_tables.emplace_back(tables[i + (c.prefill_tokens > 0 ? 1 : 0)]);
    }
    if (ctx_out) ctx_out->assign(num_keys.begin(), num_keys.end());
    const int64_t tokens = static_cast<int64_t>(num_keys.size());
    const int64_t q_ts = static_cast<int64_t>(c.q_heads) * c.k_dim + 16;
    const int64_t o_ts = static_cast<int64_t>(c.q_heads) * c.v_dim;
    std::vector<float> q = RandVec(tokens * q_ts);
    float* out = Poisoned(tokens * o_ts);

    AttentionArgs a;
    a.q_token_stride = q_ts;
    a.q_head_stride = c.k_dim;
    a.num_tokens = tokens;
    a.num_q_heads = c.q_heads;
    a.num_keys = num_keys.data();
    a.block_tables = host_tables.data();
    a.scale = 1.0f / std::sqrt(static_cast<float>(c.k_dim));
    a.out_token_stride = o_ts;
    a.out_head_stride = c.v_dim;
    AttentionArgs dev = a;
    dev.q = Upload(q);
    dev.kv = kv;
    dev.kv.k = dk;
    dev.kv.v = dv;
    dev.out = out;
    cuda_->Attention(dev);
    std::vector<float> got = Download(out, tokens * o_ts);

    std::vector<float> ref(tokens * o_ts);
    a.q = q.data();
    a.kv = kv;
    a.kv.k = k.data();
    a.kv.v = c.mla ? k.data() : v.data();
    a.out = ref.data();
    reference::Attention(a);
    EXPECT_LT(RelError(got, ref), kBf16TwoRoundings);
    return got;
  }
};

TEST_F(CudaAttentionTest, ParityTable) {
  SCOPED_TRACE(seed_);
  const std::vector<AttnCase> cases = {
      {"gqa8-d128-decode", 32, 4, 128, 128, false, 0, {1, 17, 300, 1000}, 16},
      {"gqa-d64-prefill+decode", 16, 4, 64, 64, false, 70, {5, 257}, 16},
      {"mha-d128-prefill", 8, 8, 128, 128, false, 40, {}, 32},
      {"qwen3-d128-long-split", 16, 2, 128, 128, false, 0, {4097, 2000}, 16},
      {"deepseek-naive-mla-prefill-192/128", 16, 16, 192, 128, false, 20, {3}, 16},
      {"mla-absorbed-decode", 128, 1, 576, 512, true, 0, {1, 100, 1500, 2500}, 64},
      {"mla-absorbed-prefill", 16, 1, 576, 512, true, 12, {2049}, 64},
      {"mla-tiny-40/32", 4, 1, 40, 32, true, 9, {3, 20}, 16},
      {"portable-odd-dims", 6, 2, 20, 12, false, 5, {33}, 8},
  };
  for (const AttnCase& c : cases) {
    SCOPED_TRACE(c.name);
    RunCase(c);
  }
}

// A decode row is bit-identical alone and inside a larger batch of other sequences.
TEST_F(CudaAttentionTest, DecodeRowIsBatchInvariant) {
  SCOPED_TRACE(seed_);
  for (bool mla : {false, true}) {
    SCOPED_TRACE(mla);
    const int q_heads = mla ? 128 : 32, kv_heads = mla ? 1 : 8, kd = mla ? 576 : 128,
              vd = mla ? 512 : 128;
    const int64_t ctx = 3000;
    // One KV cache and one query token, evaluated with 1 and with 9 tokens around it.
    const int block = 64;
    const int nb = static_cast<int>((ctx + block - 1) / block);
    KvLayerView kv;
    kv.block_size = block;
    kv.num_kv_heads = kv_heads;
    kv.k_dim = kd;
    kv.v_dim = vd;
    kv.head_stride = kd;
    kv.token_stride = static_cast<int64_t>(kv_heads) * kd;
    kv.block_stride = kv.token_stride * block;
    std::vector<bf16> k = RandBf16(kv.block_stride * nb);
    kv.k = Upload(k);
    kv.v = mla ? kv.k : Upload(RandBf16(kv.block_stride * nb));
    std::vector<int32_t> table(nb);
    std::iota(table.begin(), table.end(), 0);
    const int64_t q_ts = static_cast<int64_t>(q_heads) * kd,
                  o_ts = static_cast<int64_t>(q_heads) * vd;
    const float* q = Upload(RandVec(10 * q_ts));
    std::vector<float> alone;
    for (int tokens : {1, 10}) {
      std::vector<int32_t> num_keys(tokens);
      for (int t = 0; t < tokens; ++t) num_keys[t] = t == 0 ? ctx : 1 + (t * 977) % ctx;
      std::vector<std::span<const int32_t>> tables(tokens, std::span<const int32_t>(table));
      // Different table objects per token: each token is its own decode item.
      std::vector<std::vector<int32_t>> copies(tokens, table);
      for (int t = 0; t < tokens; ++t) tables[t] = copies[t];
      float* out = Poisoned(tokens * o_ts);
      AttentionArgs a;
      a.q = q;
      a.q_token_stride = q_ts;
      a.q_head_stride = kd;
      a.num_tokens = tokens;
      a.num_q_heads = q_heads;
      a.num_keys = num_keys.data();
      a.block_tables = tables.data();
      a.kv = kv;
      a.scale = 0.07f;
      a.out = out;
      a.out_token_stride = o_ts;
      a.out_head_stride = vd;
      cuda_->Attention(a);
      std::vector<float> row0 = Download(out, o_ts);
      if (alone.empty()) alone = row0;
      EXPECT_EQ(row0, alone) << tokens;
    }
  }
}

}  // namespace
}  // namespace strata::ops::testing
