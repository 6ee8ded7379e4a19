// Test helper: tiny random checkpoints made by the gen-model library into a temp dir, once per
// test process and architecture.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "model/gen_model.h"
#include "model/model_config.h"

namespace strata::model::testing {

inline std::string AssetsDir() {
  const char* env = std::getenv("STRATA_TEST_ASSETS");
  return env ? env : "";
}

inline std::string TokenizerFor(Arch arch) {
  std::string base = AssetsDir() + "/tokenizers/";
  switch (arch) {
    case Arch::kDeepseekV3:
      return base + "deepseek_v3";
    case Arch::kQwen3:
    case Arch::kQwen3Moe:
      return base + "qwen3";
    default:
      return base + "llama3";
  }
}

inline bool HaveAssets() {
  return !AssetsDir().empty() && std::filesystem::exists(TokenizerFor(Arch::kQwen3));
}

// Generates (once) the tiny preset of `arch` and returns its directory, or "" on failure
// (with `error` set).
inline std::string TinyModelDir(Arch arch, std::string* error, uint64_t seed = 1) {
  static std::map<std::pair<int, uint64_t>, std::string> dirs;
  auto key = std::make_pair(static_cast<int>(arch), seed);
  auto it = dirs.find(key);
  if (it != dirs.end()) return it->second;
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("strata_tiny_" + std::string(ModelTypeName(arch)) + "_" +
                      std::to_string(seed) + "_" + std::to_string(::getpid())))
                        .string();
  GenModelOptions o;
  o.arch = arch;
  o.preset = "tiny";
  o.tokenizer_dir = TokenizerFor(arch);
  o.out_dir = dir;
  o.seed = seed;
  o.num_threads = 1;
  Status s = GenerateModel(o);
  if (!s.ok()) {
    *error = s.ToString();
    return "";
  }
  dirs[key] = dir;
  return dir;
}

}  // namespace strata::model::testing
