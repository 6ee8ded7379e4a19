// `strata generate`: one prompt through the engine on this machine (no server): tokenize (or
// render a chat), prefill, decode, print the text (or one JSON object with timings).
#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>

#include "apps/strata/commands.h"
#include "common/config.h"
#include "common/thread_pool.h"
#include "expert_parallel/group/ep_generate.h"
#include "model/chat_template.h"
#include "model/generate_loop.h"
#include "model/model_runner.h"
#include "model/tokenizer.h"

namespace strata::apps {
namespace {

struct GenerateFlags {
  std::string model;
  std::string prompt;
  std::string chat;
  int max_tokens = 16;
  bool ignore_eos = false;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int top_k = -1;
  float min_p = 0.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  int logprobs = -1;
  int threads = 0;
  std::string device = "cpu";
  int kv_block_size = 16;
  bool json = false;
  expert_parallel::EpFlags ep;  // --ep N and friends (expert parallelism inside this instance)
};

int Fail(const Status& s) {
  std::cerr << "strata generate: " << s.message() << "\n";
  return s.code() == StatusCode::kInvalidArgument ? 2 : 1;
}

int RunGenerate(const GenerateFlags& f) {
  if (f.prompt.empty() == f.chat.empty()) {
    return Fail(FlagError("prompt", "give exactly one of --prompt and --chat"));
  }
  if (f.max_tokens < 1) return Fail(FlagError("max-tokens", "must be >= 1"));
  if (f.threads < 0) return Fail(FlagError("threads", "must be >= 0 (0: all cores)"));
  if (f.logprobs < -1 || f.logprobs > 20) return Fail(FlagError("logprobs", "must be in [0, 20]"));
  if (f.ep.ep > 0) {  // the EP flags are checked before anything loads
    if (Status st = expert_parallel::ToGroupOptions(f.ep).status(); !st.ok()) return Fail(st);
  }
  auto tokenizer = model::Tokenizer::LoadFromDir(f.model);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  std::vector<int32_t> prompt;
  if (!f.chat.empty()) {
    nlohmann::json messages = nlohmann::json::parse(f.chat, nullptr, false);
    if (messages.is_discarded() || !messages.is_array()) {
      return Fail(FlagError("chat", "must be a JSON array of {role, content} messages"));
    }
    auto tmpl = model::ChatTemplate::FromTokenizerConfig((*tokenizer)->tokenizer_config());
    if (!tmpl.ok()) return Fail(tmpl.status());
    auto text = tmpl->Render(messages, /*add_generation_prompt=*/true);
    if (!text.ok()) return Fail(text.status());
    auto ids = (*tokenizer)->Encode(*text, /*add_special_tokens=*/false);
    if (!ids.ok()) return Fail(ids.status());
    prompt = std::move(*ids);
  } else {
    auto ids = (*tokenizer)->Encode(f.prompt, /*add_special_tokens=*/true);
    if (!ids.ok()) return Fail(ids.status());
    prompt = std::move(*ids);
  }
  if (prompt.empty()) return Fail(InvalidArgumentError("the prompt encodes to no tokens"));

  model::RunnerOptions ro;
  ro.num_threads = f.threads == 0 ? DefaultThreadCount() : f.threads;
  ro.kv_block_size = f.kv_block_size;
  ro.device = f.device;
  ro.num_kv_blocks =
      model::BlocksForTokens(static_cast<int64_t>(prompt.size()) + f.max_tokens, f.kv_block_size);
  model::GenerateOptions go;
  go.max_tokens = f.max_tokens;
  go.ignore_eos = f.ignore_eos;
  auto config = model::LoadModelConfig(f.model);
  if (!config.ok()) return Fail(config.status());
  for (int64_t id : config->eos_token_ids) go.eos_token_ids.push_back(static_cast<int32_t>(id));
  if (auto eos = (*tokenizer)->eos_token_id()) go.eos_token_ids.push_back(*eos);
  ops::SamplingOptions& s = go.sampling;
  s.temperature = f.temperature;
  s.top_p = f.top_p;
  s.top_k = f.top_k;
  s.min_p = f.min_p;
  s.presence_penalty = f.presence_penalty;
  s.frequency_penalty = f.frequency_penalty;
  s.repetition_penalty = f.repetition_penalty;
  s.seed = f.seed;
  s.num_top_logprobs = f.logprobs;
  StatusOr<model::GenerateOutput> out = InternalError("not run");
  double load_ms = 0;
  nlohmann::json ep_stats;
  if (f.ep.ep > 0) {  // an EP group inside this instance (expert_parallel/group)
    auto r = expert_parallel::GenerateWithEp(f.model, prompt, ro, go, f.ep, "/proc/self/exe");
    if (!r.ok()) return Fail(r.status());
    out = std::move(r->output);
    load_ms = r->load_ms;
    ep_stats = std::move(r->stats);
  } else {
    auto runner = model::ModelRunner::Load(f.model, ro);
    if (!runner.ok()) return Fail(runner.status());
    load_ms = (*runner)->load_stats().load_ms;
    out = model::GenerateOne(**runner, prompt, go);
  }
  if (!out.ok()) return Fail(out.status());

  const std::string text = (*tokenizer)->Decode(out->token_ids, /*skip_special_tokens=*/true);
  if (!f.json) {
    std::cout << text << "\n";
    return 0;
  }
  const int n = static_cast<int>(out->token_ids.size());
  nlohmann::json j;
  j["text"] = text;
  j["token_ids"] = out->token_ids;
  j["prompt_tokens"] = prompt.size();
  j["completion_tokens"] = n;
  j["finish_reason"] = out->stopped_on_eos ? "stop" : "length";
  j["prefill_ms"] = out->prefill_ms;
  j["decode_ms"] = out->decode_ms;
  j["decode_tokens_per_s"] = n > 1 && out->decode_ms > 0 ? (n - 1) * 1000.0 / out->decode_ms : 0.0;
  j["load_ms"] = load_ms;
  if (!ep_stats.is_null()) j["ep"] = ep_stats;
  j["threads"] = ro.num_threads;
  j["device"] = ro.device;
  if (f.logprobs >= 0) {
    nlohmann::json lp = nlohmann::json::array();
    for (const auto& t : out->sampled) {
      nlohmann::json top = nlohmann::json::array();
      for (const auto& e : t.top_logprobs)
        top.push_back({{"token_id", e.token_id}, {"logprob", e.logprob}});
      lp.push_back({{"token_id", t.token_id}, {"logprob", t.logprob}, {"top_logprobs", top}});
    }
    j["logprobs"] = lp;
  }
  std::cout << j.dump() << "\n";
  return 0;
}

}  // namespace

Command GenerateCommand() {
  return {
      "generate", "Generate text for one prompt with the engine on this machine",
      [](CLI::App& app) -> std::function<int()> {
        auto f = std::make_shared<GenerateFlags>();
        AddFlag(app, "model", &f->model,
                "Checkpoint directory (config.json, safetensors, tokenizer)")
            ->required();
        AddFlag(app, "prompt", &f->prompt, "Prompt text (tokenized with special tokens)");
        AddFlag(app, "chat", &f->chat, "JSON array of messages, rendered with the chat template");
        AddFlag(app, "max-tokens", &f->max_tokens, "Tokens to generate");
        AddSwitch(app, "ignore-eos", &f->ignore_eos, "Do not stop at EOS");
        AddFlag(app, "temperature", &f->temperature, "0 = greedy");
        AddFlag(app, "top-p", &f->top_p, "Nucleus sampling mass, (0, 1]");
        AddFlag(app, "top-k", &f->top_k, "Keep the k best tokens (-1: off)");
        AddFlag(app, "min-p", &f->min_p, "Drop tokens below min_p * p_max");
        AddFlag(app, "presence-penalty", &f->presence_penalty, "Subtracted once per seen token");
        AddFlag(app, "frequency-penalty", &f->frequency_penalty, "Subtracted per occurrence");
        AddFlag(app, "repetition-penalty", &f->repetition_penalty, "1 = off");
        AddFlag(app, "seed", &f->seed, "Sampling seed (same seed, same output)");
        AddFlag(app, "logprobs", &f->logprobs, "Top-N logprobs per token (-1: none)");
        AddFlag(app, "threads", &f->threads, "Compute threads (0: all cores)");
        AddFlag(app, "device", &f->device, "Where the forward runs: cpu, cuda or cuda:N");
        AddFlag(app, "kv-block-size", &f->kv_block_size, "Tokens per KV block");
        AddSwitch(app, "json", &f->json, "Print one JSON object with ids and timings");
        expert_parallel::AddEpFlags(app, &f->ep);
        return [f] { return RunGenerate(*f); };
      }};
}

}  // namespace strata::apps
