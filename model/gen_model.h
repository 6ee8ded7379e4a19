// Deterministic random checkpoints in the exact Hugging Face layout (`strata gen-model`,
// DESIGN.md §5): config.json, generation_config.json, model.safetensors (sharded with an index
// past max_shard_bytes) and the tokenizer files copied from a tokenizer directory.
//
// Same options -> same bytes: every element is a pure function of (seed, tensor name, element
// index) drawn from a counter-based generator, so the thread count and sharding do not change
// the values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "model/model_config.h"

namespace strata::model {

// How weights are drawn. With relative_to_fan_in, a linear weight's std is gain / sqrt(in
// features); otherwise each gain is an absolute std. Embedding std is always absolute.
struct InitScales {
  bool relative_to_fan_in = false;
  float embedding = 0.02f;    // model.embed_tokens
  float lm_head = 0.02f;      // lm_head
  float attn_qk = 0.02f;      // q_proj, k_proj, q_b_proj, kv_b_proj, kv_a_proj_with_mqa
  float attn_lora_a = 0.02f;  // q_a_proj
  float attn_v_o = 0.02f;     // v_proj, o_proj
  float mlp = 0.02f;          // gate/up/down projections of dense MLPs and experts
  float router = 0.02f;       // mlp.gate / block_sparse_moe.gate
  float router_bias = 0.0f;   // std of DeepSeek e_score_correction_bias
  float bias = 0.0f;          // std of attention biases
  float norm_spread = 0.0f;   // RMSNorm weights: 1 + norm_spread * N(0, 1)
  float qk_norm_gain = 1.0f;  // Qwen3 q_norm/k_norm weights: gain + norm_spread * N(0, 1)
};

// Realistic scales (bench and layer presets): N(0, 0.02) everywhere, norms 1.
InitScales RealisticInitScales();
// Sensitive scales (tiny presets): attention, routing and logits are sharp, so a layout mistake
// (rotate-half order, gate/up swap, a transposed expert) changes greedy outputs.
InitScales SensitiveInitScales();

struct GenModelOptions {
  Arch arch = Arch::kLlama;
  std::string preset = "tiny";  // tiny | bench | layer
  std::string tokenizer_dir;    // holds tokenizer.json (+ tokenizer_config.json, ...)
  std::string out_dir;          // created if missing
  uint64_t seed = 0;
  bool fp8 = false;  // F8_E4M3 linear weights with 128x128 weight_scale_inv
  // > 0: skew routing towards the low-numbered experts (the first quarter, linearly decreasing)
  // by about this many logits: DeepSeek adds it to e_score_correction_bias; the softmax
  // routers get it through embedding channel 0 (offset by kSkewChannelSigmas embedding stds)
  // and router column 0.
  double router_skew = 0.0;
  int num_threads = 0;                    // 0: DefaultThreadCount()
  uint64_t max_shard_bytes = 1ull << 30;  // shard checkpoints larger than this
  bool show_progress = false;             // a progress line on stderr
  std::optional<InitScales> scales;       // default: by preset (tiny: sensitive)
};

inline constexpr float kSkewChannelSigmas = 4.0f;

// The vocabulary a tokenizer directory needs: max token id (tokenizer.json model vocab and
// added_tokens) + 1.
StatusOr<int64_t> TokenizerVocabSize(const std::string& tokenizer_dir);

// The config of a preset (DESIGN.md §5) for a tokenizer of `tokenizer_vocab` ids: the vocab is
// that rounded up to a multiple of 128, or the real model's vocab (bench/layer) when larger.
// bos/eos are left empty (GenerateModel fills them from the tokenizer). An unknown
// (arch, preset) pair is InvalidArgument naming the presets that exist.
StatusOr<ModelConfig> PresetConfig(Arch arch, std::string_view preset, int64_t tokenizer_vocab,
                                   bool fp8);

// Writes the checkpoint described above into options.out_dir.
Status GenerateModel(const GenModelOptions& options);

}  // namespace strata::model
