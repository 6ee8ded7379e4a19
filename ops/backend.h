// ops::Backend: the op set every model forward is built from (DESIGN.md §4, §6).
//
// Conventions shared by every op:
// - Activations are f32, row-major, with explicit row strides in elements (ld*). Weights are
//   in the Hugging Face layout [out_features, in_features] (WeightView), bf16 or f32.
// - Pointers are backend memory (host memory for the CPU backend). The backend never takes
//   ownership of what it is given; outputs must not alias inputs unless an op says so.
// - Determinism and batch invariance: every output element is produced by exactly one work item
//   that reduces in a fixed order, so a row's result is bit-identical whatever the number of
//   rows beside it and whatever the thread count.
// - Inputs are validated by the caller (the model forward): ops assume ids < rows, shapes agree.
//   Passing bad shapes is a programmer error, never reachable from a request.
// Thread-safety: one backend instance runs one op at a time (calls are made by one thread).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "common/half.h"
#include "common/status.h"
#include "ops/dtype.h"

namespace strata::ops {

enum class Op {
  kEmbedding,
  kMatmul,
  kRmsNorm,
  kRope,
  kSiluMul,
  kAdd,
  kScatterToCache,
  kAttention,  // paged, GQA/MQA; prefill (causal) and decode are the same op, see AttentionArgs
  kMoeRoute,
  kGroupedExpertMlp,
  kWeightedCombine,
  kSampling,
};

// How a WeightView's elements are laid out in memory.
enum class WeightLayout : uint8_t {
  // The Hugging Face layout: row r starts at element r * stride().
  kRowMajor,
  // bf16 only, made by Backend::PackWeight for the CPU GEMM: rows in panels of kPanelRows;
  // inside a panel, pairs of columns (2i, 2i+1) of its 64 rows in turn, so a panel is one linear
  // stream of ceil(cols / 2) blocks of 64 x 2 elements. Element (r, c) is at
  //   ((r / 64) * ceil(cols / 2) + c / 2) * 128 + (r % 64) * 2 + c % 2.
  // Rows past `rows` in the last panel and the odd column past `cols` are zero.
  kPanels64,
};
constexpr int64_t kPanelRows = 64;

// A weight matrix: `rows` output features of `cols` input features each.
struct WeightView {
  DType dtype = DType::kBF16;
  const void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;  // elements, kRowMajor only; 0 means cols
  WeightLayout layout = WeightLayout::kRowMajor;

  int64_t stride() const { return row_stride == 0 ? cols : row_stride; }
  // Flat element index of (row, col) in `data`.
  int64_t Index(int64_t row, int64_t col) const {
    if (layout == WeightLayout::kRowMajor) return row * stride() + col;
    return ((row / kPanelRows) * ((cols + 1) / 2) + col / 2) * (2 * kPanelRows) +
           (row % kPanelRows) * 2 + col % 2;
  }
};

// One product y[m, w.rows] = x[m, w.cols] * w^T of a Matmul call (several share one x).
struct MatmulOutput {
  WeightView w;
  float* y = nullptr;
  int64_t ldy = 0;
};

// One independent product y[m, w.rows] = x[m, w.cols] * w^T of a BatchedMatmul call.
struct MatmulProblem {
  const float* x = nullptr;
  int64_t m = 0;
  int64_t ldx = 0;
  WeightView w;
  float* y = nullptr;
  int64_t ldy = 0;
};

// Rotary embedding of the first `rotary_dim` elements of each head.
//   interleaved = false: pairs (i, i + rotary_dim/2) (Llama/NeoX "rotate_half").
//   interleaved = true: pairs (2i, 2i+1) (DeepSeek-V3 with rope_interleave, GPT-J). transformers
//     de-interleaves q and k before rotate_half; because q and k get the same permutation, the
//     attention scores are identical, and we keep the natural order in place.
// Pair i turns by angle position * inv_freq[i]; cos and sin are multiplied by attention_factor
// (YaRN), as transformers does.
struct RopeTable {
  int rotary_dim = 0;
  bool interleaved = false;
  std::vector<float> inv_freq;  // rotary_dim / 2 entries
  float attention_factor = 1.0f;
};

// One layer of a paged KV cache (bf16). Key j of a sequence lives in block
// block_table[j / block_size], slot j % block_size; its head h starts at
//   k + block * block_stride + slot * token_stride + h * head_stride   (same offsets for v).
// MLA's absorbed form is MQA over the latent: num_kv_heads = 1, k = [latent | k_pe],
// k_dim = kv_lora_rank + rope_dim, v = the same memory with v_dim = kv_lora_rank.
struct KvLayerView {
  const bf16* k = nullptr;
  const bf16* v = nullptr;
  int64_t block_stride = 0;
  int64_t token_stride = 0;
  int64_t head_stride = 0;
  int block_size = 0;
  int num_kv_heads = 0;
  int k_dim = 0;
  int v_dim = 0;
};

// Attention of num_tokens queries. Query t sees keys [0, num_keys[t]) of the sequence whose
// blocks are block_tables[t] (causal prefill: num_keys = position + 1; decode the same).
// Query head h reads kv head h / (num_q_heads / num_kv_heads). Softmax is exact (two passes)
// and each (token, head) output is reduced over keys in increasing order.
struct AttentionArgs {
  const float* q = nullptr;  // q[t * q_token_stride + h * q_head_stride + d], d < k_dim
  int64_t q_token_stride = 0;
  int64_t q_head_stride = 0;
  int64_t num_tokens = 0;
  int num_q_heads = 0;
  const int32_t* num_keys = nullptr;                       // [num_tokens], >= 1
  const std::span<const int32_t>* block_tables = nullptr;  // [num_tokens]
  KvLayerView kv;
  float scale = 1.0f;
  float* out = nullptr;  // out[t * out_token_stride + h * out_head_stride + d], d < v_dim
  int64_t out_token_stride = 0;
  int64_t out_head_stride = 0;
};

enum class RouterScoring { kSoftmax, kSigmoid };

// MoE routing of router logits [num_tokens, num_experts] (f32) to top_k experts per token,
// written best first (ties: lower expert id first).
//   kSoftmax (Qwen3-MoE, Mixtral): p = softmax(logits); top_k of p; if norm_topk_prob the
//     weights are divided by their sum.
//   kSigmoid (DeepSeek-V3 noaux_tc): s = sigmoid(logits); c = s + correction_bias; each of
//     num_groups groups scores the sum of its two best c; the best topk_groups groups stay and
//     the other experts' c become 0; top_k of c pick the experts, whose weights are s (without
//     the bias), divided by (sum + 1e-20) if norm_topk_prob, then times routed_scaling_factor.
struct RouterSpec {
  RouterScoring scoring = RouterScoring::kSoftmax;
  int num_experts = 0;
  int top_k = 0;
  bool norm_topk_prob = false;
  int num_groups = 1;
  int topk_groups = 1;
  float routed_scaling_factor = 1.0f;
  const float* correction_bias = nullptr;  // [num_experts] for kSigmoid, or null
};

// A SwiGLU MLP: down(silu(gate x) * up x). gate/up are [inter, hidden], down [hidden, inter].
struct MlpWeights {
  WeightView gate;
  WeightView up;
  WeightView down;
};

// Rows [row_begin, row_begin + num_rows) of the grouped input all go to `expert`.
struct ExpertGroup {
  int32_t expert = 0;
  int64_t row_begin = 0;
  int64_t num_rows = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;
  // Whether `op` runs here with these activation and weight dtypes.
  virtual bool Supports(Op op, DType activation, DType weight) const = 0;

  // Memory. Allocate returns 64-byte aligned memory, or kResourceExhausted.
  virtual StatusOr<void*> Allocate(size_t bytes) = 0;
  virtual void Free(void* ptr) = 0;
  virtual void CopyToDevice(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void CopyToHost(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void Copy(void* dst, const void* src, size_t bytes) = 0;
  // dst row i = src row src_rows[i] (width floats; src rows lds apart), i < n.
  virtual void GatherRows(const float* src, int64_t lds, const int32_t* src_rows, int64_t n,
                          int64_t width, float* dst) {
    for (int64_t i = 0; i < n; ++i) {
      Copy(dst + i * width, src + src_rows[i] * lds, width * sizeof(float));
    }
  }

  // Weight layout. A backend whose matmul streams weights faster in its own tile layout says how
  // many bytes a copy of `w` takes in it (0: it reads `w` as it is, keep the original), and
  // PackWeight writes that copy to `dst` (64-byte aligned) and returns its view. The model does
  // this once at load for every matmul weight (never for embedding tables); every op accepts
  // either layout. Default: no packing.
  virtual size_t PackedWeightBytes(const WeightView& w) const {
    (void)w;
    return 0;
  }
  virtual WeightView PackWeight(const WeightView& w, void* dst) {
    (void)dst;
    return w;
  }

  // out[i, :] = table[ids[i], :] as f32 (table bf16 or f32).
  virtual void Embedding(const WeightView& table, const int32_t* ids, int64_t n, float* out,
                         int64_t ldo) = 0;
  // For each output o: o.y[i, j] = sum_k x[i, k] * o.w[j, k]. All outputs share x (and its
  // cols). With bf16 weights an optimized backend may round x to bf16 (products are exact,
  // accumulation is f32); f32 weights keep x exact (router logits).
  virtual void Matmul(const float* x, int64_t m, int64_t ldx,
                      std::span<const MatmulOutput> outputs) = 0;
  // Independent products run as one parallel step (per-head MLA projections, ...). Same
  // numerics as Matmul.
  virtual void BatchedMatmul(std::span<const MatmulProblem> problems) = 0;
  // out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * weight. out may equal x.
  virtual void RmsNorm(const float* x, int64_t m, int64_t n, int64_t ldx, const float* weight,
                       float eps, float* out, int64_t ldo) = 0;
  // In place on x[t * token_stride + h * head_stride + d], d < table.rotary_dim.
  virtual void Rope(float* x, int64_t num_tokens, int64_t token_stride, int num_heads,
                    int64_t head_stride, const int32_t* positions, const RopeTable& table) = 0;
  // out[i, j] = silu(gate[i, j]) * up[i, j], j < n. out may equal gate.
  virtual void SiluMul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t m,
                       int64_t n, float* out, int64_t ldo) = 0;
  // y[i, :] += x[i, :].
  virtual void Add(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n) = 0;
  // dst[dst_offsets[t] + j] = bf16(src[t * lds + j]), j < width.
  virtual void ScatterToCache(const float* src, int64_t num_tokens, int64_t lds, int64_t width,
                              bf16* dst, const int64_t* dst_offsets) = 0;
  virtual void Attention(const AttentionArgs& args) = 0;
  virtual void MoeRoute(const float* logits, int64_t num_tokens, const RouterSpec& spec,
                        int32_t* expert_ids, float* weights) = 0;
  // out[r, :] = MLP of experts[group.expert] applied to x[r, :] for every row of every group.
  // experts is indexed by expert id.
  virtual void GroupedExpertMlp(const float* x, int64_t hidden, std::span<const ExpertGroup> groups,
                                std::span<const MlpWeights> experts, float* out) = 0;
  // out[t, :] = sum over j < top_k, in order, of weights[t*top_k+j] * rows[row_index[t*top_k+j],
  // :].
  virtual void WeightedCombine(const float* rows, int64_t hidden, int64_t num_tokens, int top_k,
                               const int32_t* row_index, const float* weights, float* out) = 0;
};

// Which CPU kernels a CPU backend runs.
enum class CpuKernels {
  kAuto,       // the best the CPU supports
  kReference,  // plain single-threaded C++ (the ground truth of the parity tests)
  kAvx2,       // AVX2 + FMA
  kAvx512,     // AVX-512 (F, BW, VL) with BF16 dot products (vdpbf16ps)
};
std::string_view CpuKernelsName(CpuKernels k);

struct CpuBackendOptions {
  int num_threads = 1;
  CpuKernels kernels = CpuKernels::kAuto;
};

// Fails with kFailedPrecondition when the CPU lacks the requested kernels' instructions, and
// kInvalidArgument for num_threads < 1.
StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(const CpuBackendOptions& options);

// The optimized kernel sets this CPU can run (kAvx2, kAvx512), best last.
std::vector<CpuKernels> SupportedCpuKernels();

}  // namespace strata::ops
