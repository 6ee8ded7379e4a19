#include "bench/driver/workload.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

namespace strata::bench {
namespace {

constexpr std::string_view kShareGpt = "sharegpt:";
constexpr std::string_view kTrace = "trace:";

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Uniform integer in [len * (1 - r), len * (1 + r)], at least 1.
int SampleLength(int len, double ratio, std::mt19937_64& rng) {
  int lo = std::max(1, static_cast<int>(std::floor(len * (1.0 - ratio))));
  int hi = std::max(lo, static_cast<int>(std::ceil(len * (1.0 + ratio))));
  if (lo == hi) return lo;
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return DataLossError("cannot read '" + path + "'");
  return ss.str();
}

StatusOr<std::vector<RequestSpec>> RandomWorkload(const WorkloadOptions& o,
                                                  const TokenCodec& codec) {
  std::mt19937_64 rng(o.seed);
  PromptMaker maker(codec);
  std::vector<RequestSpec> specs;
  specs.reserve(static_cast<size_t>(o.num_requests));
  for (int i = 0; i < o.num_requests; ++i) {
    RequestSpec s;
    s.input_len = SampleLength(o.input_len, o.range_ratio, rng);
    s.output_len = SampleLength(o.output_len, o.range_ratio, rng);
    STRATA_ASSIGN_OR_RETURN(s.prompt, maker.Make("", 0, s.input_len, rng));
    specs.push_back(std::move(s));
  }
  return specs;
}

StatusOr<std::vector<RequestSpec>> PrefixWorkload(const WorkloadOptions& o,
                                                  const TokenCodec& codec) {
  std::mt19937_64 rng(o.seed);
  PromptMaker maker(codec);
  std::vector<RequestSpec> specs;
  for (int g = 0; g < o.prefix_groups; ++g) {
    STRATA_ASSIGN_OR_RETURN(std::string prefix, maker.Make("", 0, o.prefix_len, rng));
    for (int r = 0; r < o.prefix_requests; ++r) {
      RequestSpec s;
      int suffix_len = SampleLength(o.input_len, o.range_ratio, rng);
      s.input_len = o.prefix_len + suffix_len;
      s.output_len = SampleLength(o.output_len, o.range_ratio, rng);
      STRATA_ASSIGN_OR_RETURN(std::string suffix,
                              maker.Make(prefix, o.prefix_len, suffix_len, rng));
      s.prompt = prefix + suffix;
      specs.push_back(std::move(s));
    }
  }
  std::shuffle(specs.begin(), specs.end(), rng);
  return specs;
}

StatusOr<std::vector<RequestSpec>> ShareGptWorkload(const WorkloadOptions& o,
                                                    const TokenCodec& codec,
                                                    const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto data = nlohmann::json::parse(text, nullptr, false);
  if (data.is_discarded() || !data.is_array()) {
    return DataLossError("ShareGPT file '" + path + "' is not a JSON array");
  }
  text.clear();
  text.shrink_to_fit();
  // (prompt, completion) of every entry with a human turn followed by a gpt turn.
  std::vector<std::pair<const std::string*, const std::string*>> pairs;
  for (const auto& entry : data) {
    if (!entry.is_object()) continue;
    const nlohmann::json* conv = nullptr;
    for (const char* key : {"conversations", "conversation"}) {
      if (entry.contains(key) && entry[key].is_array()) conv = &entry[key];
    }
    if (conv == nullptr || conv->size() < 2) continue;
    const auto& first = (*conv)[0];
    const auto& second = (*conv)[1];
    auto turn_text = [](const nlohmann::json& turn) -> const std::string* {
      if (!turn.is_object() || !turn.contains("value") || !turn["value"].is_string()) {
        return nullptr;
      }
      return &turn["value"].get_ref<const std::string&>();
    };
    auto role = [](const nlohmann::json& turn) {
      return turn.is_object() && turn.contains("from") && turn["from"].is_string()
                 ? turn["from"].get<std::string>()
                 : std::string();
    };
    std::string r1 = role(first), r2 = role(second);
    if ((r1 != "human" && r1 != "user") || (r2 != "gpt" && r2 != "assistant" && r2 != "chatgpt")) {
      continue;
    }
    const std::string* prompt = turn_text(first);
    const std::string* completion = turn_text(second);
    if (prompt != nullptr && completion != nullptr) pairs.emplace_back(prompt, completion);
  }
  std::mt19937_64 rng(o.seed);
  std::shuffle(pairs.begin(), pairs.end(), rng);
  std::vector<RequestSpec> specs;
  for (const auto& [prompt, completion] : pairs) {
    if (static_cast<int>(specs.size()) >= o.num_requests) break;
    auto prompt_ids = codec.Encode(*prompt);
    if (!prompt_ids.ok()) continue;  // invalid UTF-8 in the data set
    int prompt_len = static_cast<int>(prompt_ids->size());
    int output_len = o.output_len;
    if (!o.output_len_fixed) {
      auto completion_ids = codec.Encode(*completion);
      if (!completion_ids.ok()) continue;
      output_len = static_cast<int>(completion_ids->size());
    }
    // vLLM's filter: too short to measure, or too long for a 2K-context model.
    if (prompt_len < 4 || (!o.output_len_fixed && output_len < 4)) continue;
    if (prompt_len > 1024 || prompt_len + output_len > 2048) continue;
    RequestSpec s;
    s.prompt = *prompt;
    s.input_len = prompt_len;
    s.output_len = output_len;
    specs.push_back(std::move(s));
  }
  if (specs.empty()) {
    return InvalidArgumentError("ShareGPT file '" + path +
                                "' has no usable conversations (human turn then gpt turn)");
  }
  return specs;
}

struct TraceLine {
  int64_t timestamp_ms = 0;
  int input_length = 0;
  int output_length = 0;
  std::vector<int64_t> hash_ids;
};

StatusOr<std::vector<TraceLine>> ReadTrace(const std::string& path, int max_lines) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open trace '" + path + "'");
  std::vector<TraceLine> lines;
  std::string line;
  int line_no = 0;
  while (static_cast<int>(lines.size()) < max_lines && std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    std::string where = "trace '" + path + "' line " + std::to_string(line_no);
    if (j.is_discarded() || !j.is_object()) return DataLossError(where + ": not a JSON object");
    TraceLine t;
    for (const char* key : {"timestamp", "input_length", "output_length"}) {
      if (!j.contains(key) || !j[key].is_number()) {
        return InvalidArgumentError(where + ": '" + key + "' must be a number");
      }
    }
    t.timestamp_ms = j["timestamp"].get<int64_t>();
    t.input_length = j["input_length"].get<int>();
    t.output_length = j["output_length"].get<int>();
    if (t.input_length < 1 || t.output_length < 1) {
      return InvalidArgumentError(where + ": input_length and output_length must be >= 1");
    }
    if (j.contains("hash_ids")) {
      if (!j["hash_ids"].is_array()) return InvalidArgumentError(where + ": 'hash_ids' not a list");
      for (const auto& h : j["hash_ids"]) {
        if (!h.is_number_integer()) {
          return InvalidArgumentError(where + ": 'hash_ids' must hold integers");
        }
        t.hash_ids.push_back(h.get<int64_t>());
      }
    }
    lines.push_back(std::move(t));
  }
  if (lines.empty()) return InvalidArgumentError("trace '" + path + "' has no requests");
  return lines;
}

StatusOr<std::vector<RequestSpec>> TraceWorkload(const WorkloadOptions& o, const TokenCodec& codec,
                                                 const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(std::vector<TraceLine> lines, ReadTrace(path, o.num_requests));
  std::stable_sort(lines.begin(), lines.end(), [](const TraceLine& a, const TraceLine& b) {
    return a.timestamp_ms < b.timestamp_ms;
  });
  const int block = o.trace_block_size;
  PromptMaker maker(codec);
  std::mt19937_64 rng(o.seed);
  // Block text by hash id: each exactly `block` tokens on its own, made once.
  std::map<int64_t, std::string> blocks;
  int64_t next_private_id = -1;  // blocks past the listed hash ids are private to the request
  std::vector<RequestSpec> specs;
  for (const TraceLine& t : lines) {
    int num_blocks = (t.input_length + block - 1) / block;
    std::vector<int64_t> ids(static_cast<size_t>(num_blocks));
    for (int b = 0; b < num_blocks; ++b) {
      ids[b] = b < static_cast<int>(t.hash_ids.size()) ? t.hash_ids[b] : next_private_id--;
    }
    // Full blocks before the last one: shared text. Then the last block, fixed up so that the
    // whole prompt has exactly input_length tokens.
    std::string prefix;
    for (int b = 0; b + 1 < num_blocks; ++b) {
      auto it = blocks.find(ids[b]);
      if (it == blocks.end()) {
        STRATA_ASSIGN_OR_RETURN(std::string text, maker.Make("", 0, block, rng));
        it = blocks.emplace(ids[b], std::move(text)).first;
      }
      prefix += it->second;
    }
    int prefix_tokens = 0;
    if (!prefix.empty()) {
      STRATA_ASSIGN_OR_RETURN(auto prefix_ids, codec.Encode(prefix));
      prefix_tokens = static_cast<int>(prefix_ids.size());
    }
    int last_tokens = t.input_length - prefix_tokens;
    std::vector<int32_t> seed_ids;
    auto last = blocks.find(ids.back());
    if (last != blocks.end()) {
      STRATA_ASSIGN_OR_RETURN(seed_ids, codec.Encode(last->second));
    }
    std::string tail;
    if (last_tokens > 0) {
      STRATA_ASSIGN_OR_RETURN(tail, maker.Make(prefix, prefix_tokens, last_tokens, rng, seed_ids));
    }
    // Later requests with this hash id (as their last block, or a full one before it) reuse it.
    if (last == blocks.end() && !tail.empty()) blocks.emplace(ids.back(), tail);
    RequestSpec s;
    s.prompt = prefix + tail;
    s.input_len = t.input_length;
    s.output_len = t.output_length;
    s.arrival_s = static_cast<double>(t.timestamp_ms - lines.front().timestamp_ms) / 1000.0;
    specs.push_back(std::move(s));
  }
  return specs;
}

}  // namespace

bool DatasetHasArrivals(const std::string& dataset) { return StartsWith(dataset, kTrace); }

Status ValidateWorkloadOptions(const WorkloadOptions& o) {
  const std::string& d = o.dataset;
  bool known = d == "random" || d == "prefix" ||
               (StartsWith(d, kShareGpt) && d.size() > kShareGpt.size()) ||
               (StartsWith(d, kTrace) && d.size() > kTrace.size());
  if (!known) {
    return InvalidArgumentError(
        "dataset must be random, prefix, sharegpt:FILE or trace:FILE, not '" + d + "'");
  }
  if (o.num_requests < 1) return InvalidArgumentError("the number of prompts must be >= 1");
  if (o.input_len < 1) return InvalidArgumentError("input length must be >= 1");
  if (o.output_len < 1) return InvalidArgumentError("output length must be >= 1");
  if (!(o.range_ratio >= 0 && o.range_ratio < 1)) {
    return InvalidArgumentError("range ratio must be in [0, 1)");
  }
  if (d == "prefix") {
    if (o.prefix_groups < 1 || o.prefix_requests < 1) {
      return InvalidArgumentError("prefix groups and prefix requests must be >= 1");
    }
    if (o.prefix_len < 1) return InvalidArgumentError("prefix length must be >= 1");
  }
  if (o.trace_block_size < 1) return InvalidArgumentError("trace block size must be >= 1");
  return OkStatus();
}

StatusOr<std::vector<RequestSpec>> BuildWorkload(const WorkloadOptions& o,
                                                 const TokenCodec& codec) {
  STRATA_RETURN_IF_ERROR(ValidateWorkloadOptions(o));
  if (o.dataset == "random") return RandomWorkload(o, codec);
  if (o.dataset == "prefix") return PrefixWorkload(o, codec);
  if (StartsWith(o.dataset, kShareGpt)) {
    return ShareGptWorkload(o, codec, o.dataset.substr(kShareGpt.size()));
  }
  return TraceWorkload(o, codec, o.dataset.substr(kTrace.size()));
}

}  // namespace strata::bench
