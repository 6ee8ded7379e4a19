#include "model/gen_model_weights.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "common/half.h"
#include "model/fp8.h"
#include "model/weight_map.h"

namespace strata::model::gen {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ull;
constexpr int64_t kChunkElements = int64_t{1} << 16;

uint64_t Mix64(uint64_t z) {  // splitmix64 finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Acklam's rational approximation of the inverse standard normal CDF (relative error < 1.2e-9).
double InverseNormalCdf(double p) {
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                 -2.759285104469687e+02, 1.383577518672690e+02,
                                 -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                 -1.556989798598866e+02, 6.680131188771972e+01,
                                 -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                 -2.400758277161838e+00, -2.549732539343734e+00,
                                 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                                 2.445134137142996e+00, 3.754408661907416e+00};
  constexpr double kLow = 0.02425;
  auto tail = [&](double q) {
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  };
  if (p < kLow) return tail(std::sqrt(-2 * std::log(p)));
  if (p > 1 - kLow) return -tail(std::sqrt(-2 * std::log(1 - p)));
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

const std::array<float, 65536>& NormalTable() {
  static const auto* table = [] {
    auto* t = new std::array<float, 65536>();
    for (int i = 0; i < 65536; ++i)
      (*t)[i] = static_cast<float>(InverseNormalCdf((i + 0.5) / 65536));
    return t;
  }();
  return *table;
}

// out[k] = value of element start + k, for k in [0, count).
void Generate(const TensorInit& init, int64_t start, int64_t count, float* out) {
  const auto& table = NormalTable();
  int64_t i = start;
  const int64_t end = start + count;
  while (i < end) {
    const uint64_t group = static_cast<uint64_t>(i) >> 2;
    const uint64_t r = Mix64(init.key + (group + 1) * kGolden);
    for (int lane = static_cast<int>(i & 3); lane < 4 && i < end; ++lane, ++i) {
      out[i - start] = init.mean + init.std * table[(r >> (16 * lane)) & 0xffff];
    }
  }
  if (!init.row_add.empty() && init.cols > 0) {
    for (int64_t row = (start + init.cols - 1) / init.cols; row * init.cols < end; ++row) {
      out[row * init.cols - start] += init.row_add[row];
    }
  }
}

void StoreAs(TensorDtype dtype, const float* in, int64_t count, uint8_t* out) {
  if (dtype == TensorDtype::kF32) {
    std::memcpy(out, in, count * sizeof(float));
    return;
  }
  for (int64_t k = 0; k < count; ++k) {
    const uint16_t bits = FloatToBf16(in[k]).bits;
    std::memcpy(out + 2 * k, &bits, 2);
  }
}

// FP8: one block row (block_rows rows of the weight): its floats, then per column block the
// scale (amax / 448, 1 for an all-zero block).
void Fp8BlockRow(const TensorInit& init, int64_t block_row, std::vector<float>& values,
                 std::vector<float>& scales, int64_t* num_rows) {
  constexpr int64_t kBlock = 128;
  const int64_t r0 = block_row * kBlock;
  *num_rows = std::min(kBlock, init.rows - r0);
  values.resize(static_cast<size_t>(*num_rows * init.cols));
  Generate(init, r0 * init.cols, *num_rows * init.cols, values.data());
  const int64_t num_col_blocks = (init.cols + kBlock - 1) / kBlock;
  scales.assign(static_cast<size_t>(num_col_blocks), 0.0f);
  for (int64_t r = 0; r < *num_rows; ++r) {
    for (int64_t c = 0; c < init.cols; ++c) {
      float& s = scales[c / kBlock];
      s = std::max(s, std::fabs(values[r * init.cols + c]));
    }
  }
  for (float& s : scales) s = s > 0 ? s / kFp8E4M3Max : 1.0f;
}

float Std(const InitScales& s, float gain, int64_t fan_in) {
  return s.relative_to_fan_in ? gain / std::sqrt(static_cast<float>(fan_in)) : gain;
}

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

float LinearGain(const InitScales& s, const std::string& name) {
  for (std::string_view qk : {"q_proj.weight", "k_proj.weight", "q_b_proj.weight",
                              "kv_b_proj.weight", "kv_a_proj_with_mqa.weight"}) {
    if (EndsWith(name, qk)) return s.attn_qk;
  }
  if (EndsWith(name, "q_a_proj.weight")) return s.attn_lora_a;
  if (EndsWith(name, "v_proj.weight") || EndsWith(name, "o_proj.weight")) return s.attn_v_o;
  return s.mlp;
}

}  // namespace

float NormalAt(uint64_t key, uint64_t index) {
  const uint64_t r = Mix64(key + ((index >> 2) + 1) * kGolden);
  return NormalTable()[(r >> (16 * (index & 3))) & 0xffff];
}

uint64_t TensorKey(uint64_t seed, std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (char ch : name) h = (h ^ static_cast<uint8_t>(ch)) * 0x100000001b3ull;
  return Mix64(Mix64(seed * kGolden) ^ h);
}

float ExpertHotness(int64_t expert, int64_t num_experts) {
  const double quarter = std::max<int64_t>(1, num_experts / 4);
  return static_cast<float>(std::max(0.0, 1.0 - static_cast<double>(expert) / quarter));
}

uint64_t WeightPlan::TotalBytes() const {
  uint64_t total = 0;
  for (const auto& s : specs) total += s.Bytes();
  return total;
}

WeightPlan PlanWeights(const ModelConfig& c, const InitScales& s, uint64_t seed, double router_skew,
                       TensorDtype output_dtype) {
  WeightPlan plan;
  const bool channel_skew = router_skew > 0 && c.IsMoe() && c.arch != Arch::kDeepseekV3;
  for (const ExpectedTensor& t : ExpectedTensors(c)) {
    TensorInit init;
    init.key = TensorKey(seed, t.name);
    init.rows = t.shape[0];
    init.cols = t.shape.size() == 2 ? t.shape[1] : 1;
    TensorDtype dtype = output_dtype;
    switch (t.role) {
      case TensorRole::kEmbedding:
        init.std = s.embedding;
        if (channel_skew) init.row_add.assign(init.rows, kSkewChannelSigmas * s.embedding);
        break;
      case TensorRole::kLmHead:
        init.std = Std(s, s.lm_head, c.hidden_size);
        break;
      case TensorRole::kNorm:
        init.std = s.norm_spread;
        init.mean = EndsWith(t.name, "q_norm.weight") || EndsWith(t.name, "k_norm.weight")
                        ? s.qk_norm_gain
                        : 1.0f;
        break;
      case TensorRole::kLinear:
        init.std = Std(s, LinearGain(s, t.name), init.cols);
        break;
      case TensorRole::kBias:
        init.std = s.bias;
        break;
      case TensorRole::kRouter:
        init.std = Std(s, s.router, c.hidden_size);
        if (channel_skew) {
          init.row_add.resize(init.rows);
          for (int64_t e = 0; e < init.rows; ++e) {
            init.row_add[e] =
                static_cast<float>(router_skew) * ExpertHotness(e, init.rows) / kSkewChannelSigmas;
          }
        }
        break;
      case TensorRole::kRouterBias:
        dtype = TensorDtype::kF32;
        init.std = s.router_bias;
        if (router_skew > 0) {
          init.row_add.resize(init.rows);
          for (int64_t e = 0; e < init.rows; ++e) {
            init.row_add[e] = static_cast<float>(router_skew) * ExpertHotness(e, init.rows);
          }
        }
        break;
    }
    if (t.fp8_quantized) {
      init.fp8 = true;
      plan.specs.push_back({t.name, TensorDtype::kF8E4M3, t.shape});
      plan.inits.push_back(init);
      TensorInit scale = init;
      scale.scale_of = static_cast<int64_t>(plan.specs.size()) - 1;
      plan.specs.push_back({ScaleInvName(t.name), TensorDtype::kF32,
                            ExpectedScaleInvShape(t.shape, c.quantization)});
      plan.inits.push_back(std::move(scale));
      continue;
    }
    plan.specs.push_back({t.name, dtype, t.shape});
    plan.inits.push_back(std::move(init));
  }
  return plan;
}

Status FillTensor(const WeightPlan& plan, size_t index, std::span<uint8_t> out, ThreadPool& pool) {
  if (index >= plan.specs.size()) return InvalidArgumentError("FillTensor: index out of range");
  const TensorSpec& spec = plan.specs[index];
  const TensorInit& init = plan.inits[index];
  if (out.size() != spec.Bytes()) {
    return InvalidArgumentError("FillTensor: '" + spec.name + "' needs " +
                                std::to_string(spec.Bytes()) + " bytes");
  }
  if (!init.fp8) {
    const int64_t n = static_cast<int64_t>(spec.Bytes() / TensorDtypeSize(spec.dtype));
    const int64_t num_chunks = (n + kChunkElements - 1) / kChunkElements;
    const size_t elem = TensorDtypeSize(spec.dtype);
    pool.ParallelFor(num_chunks, [&](int64_t chunk) {
      const int64_t start = chunk * kChunkElements;
      const int64_t count = std::min(kChunkElements, n - start);
      std::vector<float> values(static_cast<size_t>(count));
      Generate(init, start, count, values.data());
      StoreAs(spec.dtype, values.data(), count, out.data() + start * elem);
    });
    return OkStatus();
  }
  const int64_t num_block_rows = (init.rows + 127) / 128;
  const bool is_scale = init.scale_of >= 0;
  const int64_t num_col_blocks = (init.cols + 127) / 128;
  pool.ParallelFor(num_block_rows, [&](int64_t br) {
    std::vector<float> values, scales;
    int64_t num_rows = 0;
    Fp8BlockRow(init, br, values, scales, &num_rows);
    if (is_scale) {
      std::memcpy(out.data() + br * num_col_blocks * sizeof(float), scales.data(),
                  scales.size() * sizeof(float));
      return;
    }
    uint8_t* dst = out.data() + br * 128 * init.cols;
    for (int64_t r = 0; r < num_rows; ++r) {
      for (int64_t col = 0; col < init.cols; ++col) {
        const int64_t k = r * init.cols + col;
        dst[k] = FloatToFp8E4M3(values[k] / scales[col / 128]);
      }
    }
  });
  return OkStatus();
}

}  // namespace strata::model::gen
