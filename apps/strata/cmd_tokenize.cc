// `strata tokenize`: token ids of text with a model's Hugging Face tokenizer, one JSON array per
// input on its own line, as the tokenizer's `encode` gives them (default special tokens unless
// --no-special-tokens). The model directory needs only tokenizer.json (+ tokenizer_config.json).
// Exit codes: 0 ok, 2 usage error (naming the flag), 1 failure (unreadable tokenizer or input).
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

#include "apps/strata/commands.h"
#include "common/config.h"
#include "model/tokenizer.h"

namespace strata::apps {
namespace {

struct TokenizeConfig {
  std::string model_dir;
  std::string text;
  std::string jsonl_path;
  bool no_special_tokens = false;
  bool has_text = false;
  bool has_jsonl = false;
};

bool PrintIds(const model::Tokenizer& tokenizer, const std::string& text, bool add_special,
              const std::string& where) {
  auto ids = tokenizer.Encode(text, add_special);
  if (!ids.ok()) {
    std::cerr << "strata tokenize: " << where << ": " << ids.status().message() << "\n";
    return false;
  }
  std::cout << nlohmann::json(*ids).dump() << "\n";
  return true;
}

int RunTokenize(const TokenizeConfig& cfg) {
  if (cfg.has_text == cfg.has_jsonl) {
    std::cerr << "strata tokenize: give exactly one of --text or --jsonl\n";
    return 2;
  }
  auto tokenizer = model::Tokenizer::LoadFromDir(cfg.model_dir);
  if (!tokenizer.ok()) {
    std::cerr << "strata tokenize: --model " << cfg.model_dir << ": "
              << tokenizer.status().ToString() << "\n";
    return 1;
  }
  const bool add_special = !cfg.no_special_tokens;
  if (cfg.has_text) return PrintIds(**tokenizer, cfg.text, add_special, "--text") ? 0 : 1;

  std::ifstream in(cfg.jsonl_path, std::ios::binary);
  if (!in) {
    std::cerr << "strata tokenize: --jsonl " << cfg.jsonl_path << ": cannot open\n";
    return 1;
  }
  std::string line;
  size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = "--jsonl " + cfg.jsonl_path + ":" + std::to_string(line_number);
    nlohmann::json parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.is_string()) {
      std::cerr << "strata tokenize: " << where << ": expected one JSON string per line\n";
      return 1;
    }
    if (!PrintIds(**tokenizer, parsed.get<std::string>(), add_special, where)) return 1;
  }
  if (in.bad()) {
    std::cerr << "strata tokenize: --jsonl " << cfg.jsonl_path << ": read error\n";
    return 1;
  }
  return 0;
}

}  // namespace

Command TokenizeCommand() {
  return {"tokenize", "Print the token ids of text with a model's tokenizer.json",
          [](CLI::App& app) -> std::function<int()> {
            auto cfg = std::make_shared<TokenizeConfig>();
            AddFlag(app, "model", &cfg->model_dir,
                    "Directory with tokenizer.json (and tokenizer_config.json)")
                ->required();
            auto* text = AddFlag(app, "text", &cfg->text, "Text to tokenize");
            auto* jsonl = AddFlag(app, "jsonl", &cfg->jsonl_path,
                                  "File with one JSON string per line; one id array per line");
            text->excludes(jsonl);
            AddSwitch(app, "no-special-tokens", &cfg->no_special_tokens,
                      "Do not add the tokenizer's default special tokens (e.g. BOS)");
            return [cfg, text, jsonl] {
              cfg->has_text = text->count() > 0 || !cfg->text.empty();
              cfg->has_jsonl = jsonl->count() > 0 || !cfg->jsonl_path.empty();
              return RunTokenize(*cfg);
            };
          }};
}

}  // namespace strata::apps
