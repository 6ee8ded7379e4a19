// `strata gen-model`: writes a deterministic random checkpoint in the Hugging Face layout
// (model/gen_model.h).
#include <iostream>
#include <memory>

#include "apps/strata/commands.h"
#include "common/config.h"
#include "model/gen_model.h"

namespace strata::apps {
namespace {

struct GenModelFlags {
  std::string arch;
  std::string preset = "tiny";
  std::string tokenizer;
  std::string out;
  uint64_t seed = 0;
  std::string dtype = "bf16";
  double router_skew = 0.0;
  int threads = 0;
  bool quiet = false;
};

int RunGenModel(const GenModelFlags& f) {
  auto arch = model::ParseModelType(f.arch);
  if (!arch.ok()) {
    std::cerr << "strata gen-model: --arch: unsupported '" << f.arch
              << "' (deepseek_v3, qwen3_moe, mixtral, llama, qwen3)\n";
    return 2;
  }
  if (f.dtype != "bf16" && f.dtype != "fp8") {
    std::cerr << "strata gen-model: --dtype: must be bf16 or fp8, got '" << f.dtype << "'\n";
    return 2;
  }
  model::GenModelOptions o;
  o.arch = *arch;
  o.preset = f.preset;
  o.tokenizer_dir = f.tokenizer;
  o.out_dir = f.out;
  o.seed = f.seed;
  o.fp8 = f.dtype == "fp8";
  o.router_skew = f.router_skew;
  o.num_threads = f.threads;
  o.show_progress = !f.quiet;
  Status status = model::GenerateModel(o);
  if (!status.ok()) {
    std::cerr << "strata gen-model: " << status.message() << "\n";
    return status.code() == StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

}  // namespace

Command GenModelCommand() {
  return {"gen-model",
          "Write a deterministic random checkpoint (config.json, safetensors, tokenizer)",
          [](CLI::App& app) -> std::function<int()> {
            auto f = std::make_shared<GenModelFlags>();
            AddFlag(app, "arch", &f->arch, "deepseek_v3, qwen3_moe, mixtral, llama or qwen3")
                ->required();
            AddFlag(app, "preset", &f->preset,
                    "tiny (every arch), bench (qwen3_moe, deepseek_v3), layer (deepseek_v3)");
            AddFlag(app, "tokenizer", &f->tokenizer, "Directory with tokenizer.json")->required();
            AddFlag(app, "out", &f->out, "Output directory")->required();
            AddFlag(app, "seed", &f->seed, "Random seed (same seed, same bytes)");
            AddFlag(app, "dtype", &f->dtype, "bf16, or fp8 (E4M3 with 128x128 block scales)");
            AddFlag(app, "router-skew", &f->router_skew,
                    "Make the first quarter of the experts hot by about this many logits");
            AddFlag(app, "threads", &f->threads, "Generator threads (0: all cores)");
            AddSwitch(app, "quiet", &f->quiet, "No progress line");
            return [f] { return RunGenModel(*f); };
          }};
}

}  // namespace strata::apps
