// CudaBackend ops whose metadata starts on the host (attention block tables, expert groups)
// and the device-resident MoE pipeline.
#include <algorithm>

#include "ops/cuda/attention_plan.h"
#include "ops/cuda/cuda_backend_impl.h"

namespace strata::ops::cuda {

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

namespace {

class DeviceExpertsImpl final : public DeviceExperts {
 public:
  int num_experts() const override { return num_experts_; }
  int64_t hidden() const override { return hidden_; }
  int64_t intermediate() const override { return inter_; }

  int num_experts_ = 0;
  int64_t hidden_ = 0;
  int64_t inter_ = 0;
  void* table_ = nullptr;  // 3 pointer arrays then 3 stride arrays, num_experts each
  ExpertWeightTable view_;

  ~DeviceExpertsImpl() override {
    if (table_ != nullptr) cudaFree(table_);
  }
};

// Checks the grouped-GEMM kernels' preconditions; returns the intermediate size or -1.
int64_t GroupedKernelInter(std::span<const MlpWeights> experts, int64_t hidden) {
  if (experts.empty() || hidden % 8 != 0) return -1;
  int64_t inter = experts[0].gate.rows;
  if (inter % 8 != 0) return -1;
  for (const MlpWeights& e : experts) {
    for (const WeightView* w : {&e.gate, &e.up, &e.down}) {
      if (w->dtype != DType::kBF16 || w->stride() % 8 != 0 || !Aligned16(w->data)) return -1;
    }
    if (e.gate.rows != inter || e.up.rows != inter || e.gate.cols != hidden ||
        e.up.cols != hidden || e.down.rows != hidden || e.down.cols != inter)
      return -1;
  }
  return inter;
}

// Host image of the pointer/stride tables: [gate ptrs | up ptrs | down ptrs | strides x3].
std::vector<uint64_t> ExpertTableImage(std::span<const MlpWeights> experts) {
  size_t n = experts.size();
  std::vector<uint64_t> img(6 * n);
  for (size_t e = 0; e < n; ++e) {
    img[e] = reinterpret_cast<uint64_t>(experts[e].gate.data);
    img[n + e] = reinterpret_cast<uint64_t>(experts[e].up.data);
    img[2 * n + e] = reinterpret_cast<uint64_t>(experts[e].down.data);
    img[3 * n + e] = static_cast<uint64_t>(experts[e].gate.stride());
    img[4 * n + e] = static_cast<uint64_t>(experts[e].up.stride());
    img[5 * n + e] = static_cast<uint64_t>(experts[e].down.stride());
  }
  return img;
}

ExpertWeightTable TableView(const uint64_t* d, size_t n) {
  ExpertWeightTable t;
  t.gate = reinterpret_cast<const bf16* const*>(d);
  t.up = reinterpret_cast<const bf16* const*>(d + n);
  t.down = reinterpret_cast<const bf16* const*>(d + 2 * n);
  t.gate_stride = reinterpret_cast<const int64_t*>(d + 3 * n);
  t.up_stride = reinterpret_cast<const int64_t*>(d + 4 * n);
  t.down_stride = reinterpret_cast<const int64_t*>(d + 5 * n);
  return t;
}

}  // namespace

AttentionPlan PlanAttention(const AttentionArgs& a) {
  AttentionPlan plan;
  const int64_t n = a.num_tokens;
  const KvLayerView& kv = a.kv;
  const int group = a.num_q_heads / kv.num_kv_heads;
  // Items: runs of consecutive tokens with the same block table.
  plan.num_keys.assign(a.num_keys, a.num_keys + n);
  plan.table_offset.resize(n);
  std::vector<std::pair<int32_t, int32_t>> items;  // (token_begin, num_tokens)
  for (int64_t t = 0; t < n; ++t) {
    const std::span<const int32_t>& bt = a.block_tables[t];
    bool same = t > 0 && bt.data() == a.block_tables[t - 1].data() &&
                bt.size() == a.block_tables[t - 1].size();
    if (same) {
      plan.table_offset[t] = plan.table_offset[t - 1];
      ++items.back().second;
    } else {
      plan.table_offset[t] = static_cast<int32_t>(plan.tables.size());
      plan.tables.insert(plan.tables.end(), bt.begin(), bt.end());
      items.push_back({static_cast<int32_t>(t), 1});
    }
  }
  int max_item = 0;
  for (auto& it : items) max_item = std::max(max_item, it.second);
  bool aligned = Aligned16(kv.k) && Aligned16(kv.v) && kv.block_stride % 8 == 0 &&
                 kv.token_stride % 8 == 0 && kv.head_stride % 8 == 0;
  plan.tiling = ChooseAttentionTiling(group, kv.k_dim, kv.v_dim, aligned, max_item,
                                      kv.v == kv.k && kv.v_dim <= kv.k_dim);

  AttentionParams& p = plan.params;
  p.q = a.q;
  p.q_token_stride = a.q_token_stride;
  p.q_head_stride = a.q_head_stride;
  p.num_q_heads = a.num_q_heads;
  p.num_kv_heads = kv.num_kv_heads;
  p.k = kv.k;
  p.v = kv.v;
  p.block_stride = kv.block_stride;
  p.token_stride = kv.token_stride;
  p.head_stride = kv.head_stride;
  p.block_size = kv.block_size;
  p.k_dim = kv.k_dim;
  p.v_dim = kv.v_dim;
  p.scale = a.scale;
  p.out = a.out;
  p.out_token_stride = a.out_token_stride;
  p.out_head_stride = a.out_head_stride;
  p.num_tokens = n;
  if (plan.tiling.rows_per_block == 0) return plan;

  const int kps = plan.tiling.keys_per_split;
  p.keys_per_split = kps;
  plan.num_splits.resize(n);
  plan.split_base.resize(n);
  for (int64_t t = 0; t < n; ++t) {
    plan.num_splits[t] = (plan.num_keys[t] + kps - 1) / kps;
    plan.split_base[t] = static_cast<int32_t>(plan.total_split_rows);
    if (plan.num_splits[t] > 1) plan.total_split_rows += plan.num_splits[t];
  }
  const int rpb = plan.tiling.rows_per_block;
  for (auto [begin, count] : items) {
    int64_t rows = static_cast<int64_t>(count) * group;
    for (int64_t r0 = 0; r0 < rows; r0 += rpb) {
      int first = begin + static_cast<int>(r0 / group);
      int last = begin + static_cast<int>((std::min(rows, r0 + rpb) - 1) / group);
      int splits = 0;
      for (int t = first; t <= last; ++t) splits = std::max(splits, plan.num_splits[t]);
      for (int s = 0; s < splits; ++s)
        plan.tasks.push_back({begin, count, static_cast<int32_t>(r0), s});
    }
  }
  p.num_tasks = static_cast<int>(plan.tasks.size());
  return plan;
}

void CudaBackendImpl::Attention(const AttentionArgs& a) {
  if (a.num_tokens == 0) return;
  AttentionPlan plan = PlanAttention(a);
  AttentionParams& p = plan.params;
  Scratch scratch(this);
  p.num_keys = scratch.Upload(plan.num_keys);
  p.table_offset = scratch.Upload(plan.table_offset);
  p.block_tables = scratch.Upload(plan.tables);
  if (p.num_keys == nullptr || p.table_offset == nullptr || p.block_tables == nullptr) return;
  if (plan.tiling.rows_per_block == 0) {
    Record(LaunchAttentionPortable(p, stream_), "AttentionPortable");
    return;
  }
  p.num_splits = scratch.Upload(plan.num_splits);
  p.split_base = scratch.Upload(plan.split_base);
  p.tasks = scratch.Upload(plan.tasks);
  if (plan.total_split_rows > 0) {
    size_t rows = static_cast<size_t>(plan.total_split_rows) * a.num_q_heads;
    p.partial_o = scratch.Get<float>(rows * a.kv.v_dim);
    p.partial_ml = scratch.Get<float>(rows * 2);
    if (p.partial_o == nullptr || p.partial_ml == nullptr) return;
  }
  if (p.num_splits == nullptr || p.split_base == nullptr || p.tasks == nullptr) return;
  Record(LaunchAttention(p, plan.tiling, stream_), "Attention");
}

void CudaBackendImpl::RunGroupedMlp(const bf16* xb, int64_t hidden, int64_t inter,
                                    int64_t total_rows, const GroupedGemmGroups& groups,
                                    const ExpertWeightTable& table, int tile_rows, float* out,
                                    Scratch& scratch) {
  bf16* h = scratch.Get<bf16>(static_cast<size_t>(total_rows * inter));
  if (h == nullptr) return;
  Record(LaunchGroupedGateUp(xb, hidden, inter, groups, table, tile_rows, h, stream_),
         "GroupedGateUp");
  Record(LaunchGroupedDown(h, inter, hidden, groups, table, tile_rows, out, stream_),
         "GroupedDown");
}

void CudaBackendImpl::GroupedExpertMlpFallback(const float* x, int64_t hidden,
                                               std::span<const ExpertGroup> groups,
                                               std::span<const MlpWeights> experts, float* out) {
  Scratch scratch(this);
  for (const ExpertGroup& g : groups) {
    if (g.num_rows == 0) continue;
    const MlpWeights& w = experts[g.expert];
    int64_t inter = w.gate.rows;
    float* gate = scratch.Get<float>(static_cast<size_t>(g.num_rows * inter));
    float* up = scratch.Get<float>(static_cast<size_t>(g.num_rows * inter));
    if (gate == nullptr || up == nullptr) return;
    MatmulOutput gu[2] = {{w.gate, gate, inter}, {w.up, up, inter}};
    Matmul(x + g.row_begin * hidden, g.num_rows, hidden, gu);
    SiluMul(gate, inter, up, inter, g.num_rows, inter, gate, inter);
    MatmulOutput down{w.down, out + g.row_begin * hidden, hidden};
    Matmul(gate, g.num_rows, inter, std::span<const MatmulOutput>(&down, 1));
  }
}

void CudaBackendImpl::GroupedExpertMlp(const float* x, int64_t hidden,
                                       std::span<const ExpertGroup> groups,
                                       std::span<const MlpWeights> experts, float* out) {
  int64_t inter = GroupedKernelInter(experts, hidden);
  if (inter < 0) return GroupedExpertMlpFallback(x, hidden, groups, experts, out);
  int64_t total_rows = 0, max_rows = 0;
  for (const ExpertGroup& g : groups) {
    total_rows = std::max(total_rows, g.row_begin + g.num_rows);
    max_rows = std::max(max_rows, g.num_rows);
  }
  if (total_rows == 0) return;
  const int tile_rows = GroupedGemmTileRows(max_rows);
  std::vector<int32_t> row_begin, num_rows, expert_of_group;
  std::vector<int2> tiles;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const ExpertGroup& g = groups[gi];
    row_begin.push_back(static_cast<int32_t>(g.row_begin));
    num_rows.push_back(static_cast<int32_t>(g.num_rows));
    expert_of_group.push_back(g.expert);
    for (int64_t m = 0; m * tile_rows < g.num_rows; ++m)
      tiles.push_back(make_int2(static_cast<int>(gi), static_cast<int>(m)));
  }
  if (tiles.empty()) return;
  Scratch scratch(this);
  GroupedGemmGroups gg;
  gg.row_begin = scratch.Upload(row_begin);
  gg.num_rows = scratch.Upload(num_rows);
  gg.expert_of_group = scratch.Upload(expert_of_group);
  gg.tiles = scratch.Upload(tiles);
  gg.num_tiles = scratch.Upload(std::vector<int32_t>{static_cast<int32_t>(tiles.size())});
  gg.max_tiles = static_cast<int>(tiles.size());
  const uint64_t* table = scratch.Upload(ExpertTableImage(experts));
  bf16* xb = scratch.Get<bf16>(static_cast<size_t>(total_rows * hidden));
  if (!gg.row_begin || !gg.num_rows || !gg.expert_of_group || !gg.tiles || !gg.num_tiles ||
      !table || !xb)
    return;
  Record(LaunchConvertToBf16(x, total_rows, hidden, hidden, xb, hidden, stream_), "ConvertToBf16");
  RunGroupedMlp(xb, hidden, inter, total_rows, gg, TableView(table, experts.size()), tile_rows, out,
                scratch);
}

StatusOr<std::unique_ptr<DeviceExperts>> CudaBackendImpl::UploadExperts(
    std::span<const MlpWeights> experts) {
  if (experts.empty()) return InvalidArgumentError("UploadExperts: no experts");
  int64_t hidden = experts[0].gate.cols;
  int64_t inter = GroupedKernelInter(experts, hidden);
  if (inter < 0) {
    return InvalidArgumentError(
        "UploadExperts: experts must be bf16 with equal shapes, dims and strides multiples of 8, "
        "16-byte aligned");
  }
  auto d = std::make_unique<DeviceExpertsImpl>();
  d->num_experts_ = static_cast<int>(experts.size());
  d->hidden_ = hidden;
  d->inter_ = inter;
  std::vector<uint64_t> img = ExpertTableImage(experts);
  STRATA_CUDA_RETURN_IF_ERROR(cudaMalloc(&d->table_, img.size() * sizeof(uint64_t)));
  STRATA_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(d->table_, img.data(), img.size() * sizeof(uint64_t),
                                              cudaMemcpyHostToDevice, stream_));
  STRATA_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  d->view_ = TableView(static_cast<const uint64_t*>(d->table_), experts.size());
  return std::unique_ptr<DeviceExperts>(std::move(d));
}

void CudaBackendImpl::MoeForward(const float* x, int64_t num_tokens, const float* router_logits,
                                 const RouterSpec& spec, const DeviceExperts& experts, float* out,
                                 int32_t* expert_ids, float* weights) {
  if (num_tokens == 0) return;
  const auto& ex = static_cast<const DeviceExpertsImpl&>(experts);
  const int num_experts = ex.num_experts_;
  const int top_k = spec.top_k;
  const int64_t hidden = ex.hidden_;
  const int64_t assignments = num_tokens * top_k;
  Scratch scratch(this);
  if (expert_ids == nullptr) expert_ids = scratch.Get<int32_t>(assignments);
  if (weights == nullptr) weights = scratch.Get<float>(assignments);
  int32_t* offsets = scratch.Get<int32_t>(num_experts + 1);
  int32_t* row_of = scratch.Get<int32_t>(assignments);
  int32_t* token_of = scratch.Get<int32_t>(assignments);
  bf16* xp = scratch.Get<bf16>(static_cast<size_t>(assignments * hidden));
  float* rows = scratch.Get<float>(static_cast<size_t>(assignments * hidden));
  const int tile_rows = GroupedGemmTileRows((assignments + num_experts - 1) / num_experts);
  GroupedGemmGroups gg;
  gg.max_tiles = static_cast<int>((assignments + tile_rows - 1) / tile_rows + num_experts);
  int32_t* row_begin = scratch.Get<int32_t>(num_experts);
  int32_t* num_rows = scratch.Get<int32_t>(num_experts);
  int32_t* expert_of = scratch.Get<int32_t>(num_experts);
  int2* tiles = scratch.Get<int2>(gg.max_tiles);
  int32_t* num_tiles = scratch.Get<int32_t>(1);
  if (!expert_ids || !weights || !offsets || !row_of || !token_of || !xp || !rows || !row_begin ||
      !num_rows || !expert_of || !tiles || !num_tiles)
    return;
  gg.row_begin = row_begin;
  gg.num_rows = num_rows;
  gg.expert_of_group = expert_of;
  gg.tiles = tiles;
  gg.num_tiles = num_tiles;
  MoeRoute(router_logits, num_tokens, spec, expert_ids, weights);
  Record(LaunchMoePermute(expert_ids, num_tokens, top_k, num_experts, offsets, row_of, token_of,
                          stream_),
         "MoePermute");
  Record(LaunchGatherRowsBf16(x, hidden, token_of, assignments, xp, stream_), "GatherRows");
  Record(LaunchBuildExpertTiles(offsets, num_experts, tile_rows, row_begin, num_rows, expert_of,
                                tiles, num_tiles, stream_),
         "BuildExpertTiles");
  RunGroupedMlp(xp, hidden, ex.inter_, assignments, gg, ex.view_, tile_rows, rows, scratch);
  WeightedCombine(rows, hidden, num_tokens, top_k, row_of, weights, out);
}

}  // namespace strata::ops::cuda
