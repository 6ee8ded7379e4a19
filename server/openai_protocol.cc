#include "server/openai_protocol.h"

#include <cmath>
#include <limits>

namespace strata::server {
namespace {

using nlohmann::json;

constexpr int kMaxN = 128;
constexpr int kMaxTopLogprobs = 20;
constexpr int kMaxStopStrings = 16;

Status ParamError(std::string_view param, std::string_view why) {
  return InvalidArgumentError("'" + std::string(param) + "': " + std::string(why));
}

// Present and not null.
const json* Field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

StatusOr<bool> GetBool(const json& obj, const char* name, bool fallback) {
  const json* v = Field(obj, name);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return ParamError(name, "must be a boolean");
  return v->get<bool>();
}

StatusOr<std::optional<int64_t>> GetInt(const json& obj, const char* name, int64_t lo, int64_t hi) {
  const json* v = Field(obj, name);
  if (v == nullptr) return std::optional<int64_t>();
  int64_t x = 0;
  if (v->is_number_integer()) {
    x = v->is_number_unsigned() &&
                v->get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()}
            ? std::numeric_limits<int64_t>::max()
            : v->get<int64_t>();
  } else if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() &&
             std::abs(v->get<double>()) < 9e18) {
    x = static_cast<int64_t>(v->get<double>());
  } else {
    return ParamError(name, "must be an integer");
  }
  if (x < lo || x > hi) {
    return ParamError(name, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                                ", got " + std::to_string(x));
  }
  return std::optional<int64_t>(x);
}

StatusOr<std::optional<double>> GetNumber(const json& obj, const char* name, double lo, double hi) {
  const json* v = Field(obj, name);
  if (v == nullptr) return std::optional<double>();
  if (!v->is_number()) return ParamError(name, "must be a number");
  double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) {
    return ParamError(name, "must be between " + json(lo).dump() + " and " + json(hi).dump() +
                                ", got " + v->dump());
  }
  return std::optional<double>(x);
}

StatusOr<std::string> GetString(const json& obj, const char* name) {
  const json* v = Field(obj, name);
  if (v == nullptr) return std::string();
  if (!v->is_string()) return ParamError(name, "must be a string");
  return v->get<std::string>();
}

StatusOr<json> ParseObject(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError("the request body is not valid JSON");
  if (!j.is_object()) return InvalidArgumentError("the request body must be a JSON object");
  return j;
}

Status ParseCommon(const json& j, CommonParams* p) {
  STRATA_ASSIGN_OR_RETURN(p->model, GetString(j, "model"));
  if (p->model.empty()) return ParamError("model", "is required");
  STRATA_ASSIGN_OR_RETURN(auto n, GetInt(j, "n", 1, kMaxN));
  p->n = static_cast<int>(n.value_or(1));
  STRATA_ASSIGN_OR_RETURN(p->stream, GetBool(j, "stream", false));
  if (const json* so = Field(j, "stream_options")) {
    if (!so->is_object()) return ParamError("stream_options", "must be an object");
    STRATA_ASSIGN_OR_RETURN(p->include_usage, GetBool(*so, "include_usage", false));
  }
  STRATA_ASSIGN_OR_RETURN(auto max_tokens, GetInt(j, "max_tokens", 1, 1 << 30));
  STRATA_ASSIGN_OR_RETURN(auto max_completion, GetInt(j, "max_completion_tokens", 1, 1 << 30));
  if (max_completion) {
    p->max_tokens = static_cast<int>(*max_completion);
  } else if (max_tokens) {
    p->max_tokens = static_cast<int>(*max_tokens);
  }
  auto& s = p->sampling;
  STRATA_ASSIGN_OR_RETURN(auto temperature, GetNumber(j, "temperature", 0.0, 2.0));
  s.temperature = static_cast<float>(temperature.value_or(1.0));
  STRATA_ASSIGN_OR_RETURN(auto top_p, GetNumber(j, "top_p", 0.0, 1.0));
  if (top_p && *top_p <= 0.0) return ParamError("top_p", "must be in (0, 1]");
  s.top_p = static_cast<float>(top_p.value_or(1.0));
  STRATA_ASSIGN_OR_RETURN(auto top_k, GetInt(j, "top_k", -1, 1 << 20));
  s.top_k = static_cast<int>(top_k.value_or(-1));
  if (s.top_k == 0) s.top_k = -1;  // vLLM treats 0 as off too
  STRATA_ASSIGN_OR_RETURN(auto min_p, GetNumber(j, "min_p", 0.0, 1.0));
  s.min_p = static_cast<float>(min_p.value_or(0.0));
  STRATA_ASSIGN_OR_RETURN(auto presence, GetNumber(j, "presence_penalty", -2.0, 2.0));
  s.presence_penalty = static_cast<float>(presence.value_or(0.0));
  STRATA_ASSIGN_OR_RETURN(auto frequency, GetNumber(j, "frequency_penalty", -2.0, 2.0));
  s.frequency_penalty = static_cast<float>(frequency.value_or(0.0));
  STRATA_ASSIGN_OR_RETURN(auto repetition, GetNumber(j, "repetition_penalty", 0.0, 100.0));
  if (repetition && *repetition <= 0.0) return ParamError("repetition_penalty", "must be > 0");
  s.repetition_penalty = static_cast<float>(repetition.value_or(1.0));
  if (const json* seed = Field(j, "seed")) {
    if (!seed->is_number_integer()) return ParamError("seed", "must be an integer");
    s.seed = seed->is_number_unsigned() ? seed->get<uint64_t>()
                                        : static_cast<uint64_t>(seed->get<int64_t>());
  }
  STRATA_ASSIGN_OR_RETURN(s.ignore_eos, GetBool(j, "ignore_eos", false));
  if (const json* stop = Field(j, "stop")) {
    if (stop->is_string()) {
      p->stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (stop->size() > kMaxStopStrings) {
        return ParamError("stop", "at most " + std::to_string(kMaxStopStrings) + " strings");
      }
      for (const auto& e : *stop) {
        if (!e.is_string()) return ParamError("stop", "must be a string or a list of strings");
        p->stop.push_back(e.get<std::string>());
      }
    } else {
      return ParamError("stop", "must be a string or a list of strings");
    }
    for (const auto& st : p->stop) {
      if (st.empty()) return ParamError("stop", "must not contain an empty string");
    }
  }
  if (const json* ids = Field(j, "stop_token_ids")) {
    if (!ids->is_array()) return ParamError("stop_token_ids", "must be a list of integers");
    for (const auto& e : *ids) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > INT32_MAX) {
        return ParamError("stop_token_ids", "must be a list of non-negative integers");
      }
      s.stop_token_ids.push_back(static_cast<int32_t>(e.get<int64_t>()));
    }
  }
  return OkStatus();
}

// Content: a string, or an array of parts {type: "text", text}. Other part types are refused:
// this server serves text models.
StatusOr<std::string> MessageContent(const json& content, size_t index) {
  std::string param = "messages[" + std::to_string(index) + "].content";
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return ParamError(param, "must be a string or an array of parts");
  std::string out;
  for (const auto& part : content) {
    if (!part.is_object()) return ParamError(param, "each part must be an object");
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) return ParamError(param, "part without a type");
    if (*type != "text") {
      return ParamError(
          param, "part type '" + type->get<std::string>() + "' is not supported (text only)");
    }
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) {
      return ParamError(param, "a text part needs a string 'text'");
    }
    out += text->get<std::string>();
  }
  return out;
}

StatusOr<std::vector<int32_t>> TokenList(const json& arr, const std::string& param) {
  std::vector<int32_t> ids;
  ids.reserve(arr.size());
  for (const auto& e : arr) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > INT32_MAX) {
      return ParamError(param, "token ids must be non-negative integers");
    }
    ids.push_back(static_cast<int32_t>(e.get<int64_t>()));
  }
  if (ids.empty()) return ParamError(param, "must not be empty");
  return ids;
}

std::string TokenDisplay(const TokenLogprobText& t) { return t.text; }

json BytesJson(const std::string& bytes) {
  json arr = json::array();
  for (unsigned char c : bytes) arr.push_back(static_cast<int>(c));
  return arr;
}

json ChatLogprobsJson(const ChoiceOutput& c) {
  if (!c.has_logprobs) return nullptr;
  json content = json::array();
  for (const auto& t : c.logprobs) {
    json top = json::array();
    for (size_t i = 0; i < t.top.size(); ++i) {
      top.push_back({{"token", t.top[i].first},
                     {"logprob", t.top[i].second},
                     {"bytes", BytesJson(i < t.top_bytes.size() ? t.top_bytes[i] : "")}});
    }
    content.push_back({{"token", TokenDisplay(t)},
                       {"logprob", t.logprob.value_or(0.0f)},
                       {"bytes", BytesJson(t.bytes)},
                       {"top_logprobs", std::move(top)}});
  }
  return {{"content", std::move(content)}, {"refusal", nullptr}};
}

json CompletionLogprobsJson(const ChoiceOutput& c) {
  if (!c.has_logprobs) return nullptr;
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
       offsets = json::array();
  for (size_t i = 0; i < c.logprobs.size(); ++i) {
    const auto& t = c.logprobs[i];
    tokens.push_back(TokenDisplay(t));
    if (!t.logprob) {  // the first prompt token of an echo
      token_logprobs.push_back(nullptr);
      top.push_back(nullptr);
    } else {
      token_logprobs.push_back(*t.logprob);
      json alts = json::object();
      for (const auto& [text, lp] : t.top) {
        if (!alts.contains(text)) alts[text] = lp;
      }
      top.push_back(std::move(alts));
    }
    offsets.push_back(i < c.text_offsets.size() ? c.text_offsets[i] : 0);
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(token_logprobs)},
          {"top_logprobs", std::move(top)},
          {"text_offset", std::move(offsets)}};
}

json UsageJson(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

json EnvelopeJson(const Envelope& env, const char* object) {
  return {{"id", env.id},
          {"object", object},
          {"created", env.created},
          {"model", env.model},
          {"system_fingerprint", env.system_fingerprint}};
}

}  // namespace

StatusOr<ChatRequest> ParseChatRequest(std::string_view body) {
  STRATA_ASSIGN_OR_RETURN(json j, ParseObject(body));
  ChatRequest req;
  STRATA_RETURN_IF_ERROR(ParseCommon(j, &req.params));
  const json* messages = Field(j, "messages");
  if (messages == nullptr) return ParamError("messages", "is required");
  if (!messages->is_array()) return ParamError("messages", "must be an array");
  if (messages->empty()) return ParamError("messages", "must not be empty");
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return ParamError(param, "must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return ParamError(param + ".role", "is required");
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool") {
      return ParamError(param + ".role",
                        "must be system, developer, user, assistant or tool, got '" + r + "'");
    }
    json out = {{"role", r == "developer" ? "system" : r}};
    auto content = m.find("content");
    if (content == m.end()) {
      if (r != "assistant") return ParamError(param + ".content", "is required");
      out["content"] = "";
    } else {
      STRATA_ASSIGN_OR_RETURN(std::string text, MessageContent(*content, i));
      out["content"] = std::move(text);
    }
    for (const char* key : {"name", "tool_call_id"}) {
      if (const json* v = Field(m, key)) {
        if (!v->is_string()) return ParamError(param + "." + key, "must be a string");
        out[key] = *v;
      }
    }
    if (const json* calls = Field(m, "tool_calls")) {
      if (!calls->is_array()) return ParamError(param + ".tool_calls", "must be an array");
      out["tool_calls"] = *calls;
    }
    req.messages.push_back(std::move(out));
  }
  if (const json* tools = Field(j, "tools")) {
    if (!tools->is_array()) return ParamError("tools", "must be an array");
    req.tools = *tools;
  }
  STRATA_ASSIGN_OR_RETURN(req.add_generation_prompt, GetBool(j, "add_generation_prompt", true));
  if (const json* kw = Field(j, "chat_template_kwargs")) {
    if (!kw->is_object()) return ParamError("chat_template_kwargs", "must be an object");
    req.chat_template_kwargs = *kw;
  }
  STRATA_ASSIGN_OR_RETURN(req.logprobs, GetBool(j, "logprobs", false));
  STRATA_ASSIGN_OR_RETURN(auto top, GetInt(j, "top_logprobs", 0, kMaxTopLogprobs));
  if (top && !req.logprobs) return ParamError("top_logprobs", "requires logprobs: true");
  req.top_logprobs = static_cast<int>(top.value_or(0));
  req.params.sampling.num_top_logprobs = req.logprobs ? req.top_logprobs : -1;
  return req;
}

StatusOr<CompletionRequest> ParseCompletionRequest(std::string_view body) {
  STRATA_ASSIGN_OR_RETURN(json j, ParseObject(body));
  CompletionRequest req;
  STRATA_RETURN_IF_ERROR(ParseCommon(j, &req.params));
  const json* prompt = Field(j, "prompt");
  if (prompt == nullptr) return ParamError("prompt", "is required");
  if (prompt->is_string()) {
    req.prompts.emplace_back(prompt->get<std::string>());
  } else if (prompt->is_array()) {
    if (prompt->empty()) return ParamError("prompt", "must not be empty");
    const json& first = prompt->front();
    if (first.is_number()) {
      STRATA_ASSIGN_OR_RETURN(auto ids, TokenList(*prompt, "prompt"));
      req.prompts.emplace_back(std::move(ids));
    } else {
      for (const auto& e : *prompt) {
        if (e.is_string()) {
          req.prompts.emplace_back(e.get<std::string>());
        } else if (e.is_array()) {
          STRATA_ASSIGN_OR_RETURN(auto ids, TokenList(e, "prompt"));
          req.prompts.emplace_back(std::move(ids));
        } else {
          return ParamError("prompt",
                            "must be a string, a list of strings, a list of token ids or a list "
                            "of token-id lists");
        }
      }
    }
  } else {
    return ParamError("prompt", "must be a string, a list of strings or token ids");
  }
  for (const auto& p : req.prompts) {
    if (const auto* s = std::get_if<std::string>(&p); s != nullptr && s->empty()) {
      return ParamError("prompt", "must not be empty");
    }
  }
  STRATA_ASSIGN_OR_RETURN(auto logprobs, GetInt(j, "logprobs", 0, kMaxTopLogprobs));
  if (logprobs) req.logprobs = static_cast<int>(*logprobs);
  STRATA_ASSIGN_OR_RETURN(req.echo, GetBool(j, "echo", false));
  req.params.sampling.num_top_logprobs = req.logprobs ? *req.logprobs : -1;
  // The echoed prompt's tokens carry logprobs too.
  req.params.sampling.num_prompt_logprobs = req.echo && req.logprobs ? *req.logprobs : -1;
  if (const json* best_of = Field(j, "best_of")) {
    if (!best_of->is_number_integer() || best_of->get<int64_t>() != req.params.n) {
      return ParamError("best_of", "only best_of == n is supported");
    }
  }
  return req;
}

json FinishReasonJson(std::optional<decode::FinishReason> finish) {
  if (!finish) return nullptr;
  switch (*finish) {
    case decode::FinishReason::kNone:
      return nullptr;
    case decode::FinishReason::kStop:
      return "stop";
    case decode::FinishReason::kLength:
      return "length";
    case decode::FinishReason::kAbort:
      return "abort";
    case decode::FinishReason::kError:
      return "error";
  }
  return nullptr;
}

json ChatCompletionJson(const Envelope& env, const std::vector<ChoiceOutput>& choices,
                        const Usage& usage) {
  json j = EnvelopeJson(env, "chat.completion");
  json arr = json::array();
  for (const auto& c : choices) {
    arr.push_back({{"index", c.index},
                   {"message", {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}}},
                   {"logprobs", ChatLogprobsJson(c)},
                   {"finish_reason", FinishReasonJson(c.finish)}});
  }
  j["choices"] = std::move(arr);
  j["usage"] = UsageJson(usage);
  j["service_tier"] = "default";
  return j;
}

json ChatChunkJson(const Envelope& env, const ChoiceOutput& delta, bool first,
                   bool with_usage_null) {
  json j = EnvelopeJson(env, "chat.completion.chunk");
  json d = json::object();
  if (first) {
    d["role"] = "assistant";
    d["content"] = delta.text;
  } else if (!delta.text.empty() || !delta.finish) {
    d["content"] = delta.text;
  }
  j["choices"] = json::array({{{"index", delta.index},
                               {"delta", std::move(d)},
                               {"logprobs", ChatLogprobsJson(delta)},
                               {"finish_reason", FinishReasonJson(delta.finish)}}});
  if (with_usage_null) j["usage"] = nullptr;
  return j;
}

json ChatUsageChunkJson(const Envelope& env, const Usage& usage) {
  json j = EnvelopeJson(env, "chat.completion.chunk");
  j["choices"] = json::array();
  j["usage"] = UsageJson(usage);
  return j;
}

json CompletionJson(const Envelope& env, const std::vector<ChoiceOutput>& choices,
                    const Usage& usage) {
  json j = EnvelopeJson(env, "text_completion");
  json arr = json::array();
  for (const auto& c : choices) {
    arr.push_back({{"text", c.text},
                   {"index", c.index},
                   {"logprobs", CompletionLogprobsJson(c)},
                   {"finish_reason", FinishReasonJson(c.finish)}});
  }
  j["choices"] = std::move(arr);
  j["usage"] = UsageJson(usage);
  return j;
}

json CompletionChunkJson(const Envelope& env, const ChoiceOutput& delta, bool with_usage_null) {
  json j = EnvelopeJson(env, "text_completion");
  j["choices"] = json::array({{{"text", delta.text},
                               {"index", delta.index},
                               {"logprobs", CompletionLogprobsJson(delta)},
                               {"finish_reason", FinishReasonJson(delta.finish)}}});
  if (with_usage_null) j["usage"] = nullptr;
  return j;
}

json CompletionUsageChunkJson(const Envelope& env, const Usage& usage) {
  json j = EnvelopeJson(env, "text_completion");
  j["choices"] = json::array();
  j["usage"] = UsageJson(usage);
  return j;
}

namespace {

// Length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF) that starts at text[i], or 0.
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char c = byte(0);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > text.size() || byte(1) < lo || byte(1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((byte(k) >> 6) != 0x2) return 0;
  }
  return n;
}

}  // namespace

void AppendJsonString(std::string_view text, std::string* out) {
  static const char* kHex = "0123456789abcdef";
  out->push_back('"');
  size_t start = out->size();
  for (size_t i = 0; i < text.size();) {
    // A run of printable ASCII other than '"' and '\\' is copied as is, in one go.
    size_t run = i;
    while (run < text.size()) {
      auto r = static_cast<unsigned char>(text[run]);
      if (r < 0x20 || r >= 0x80 || r == '"' || r == '\\') break;
      ++run;
    }
    if (run > i) {
      out->append(text.data() + i, run - i);
      i = run;
      continue;
    }
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      size_t n = Utf8SequenceLength(text, i);
      if (n == 0) {  // rare: let the JSON library apply its replacement rules to the whole text
        out->resize(start - 1);
        out->append(json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace));
        return;
      }
      out->append(text.data() + i, n);
      i += n;
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out->push_back('"');
}

StreamChunkWriter::StreamChunkWriter(const Envelope& env, bool chat, bool with_usage_null)
    : env_(env), chat_(chat), with_usage_null_(with_usage_null) {
  // Keys after "choices", in nlohmann's (sorted) order.
  suffix_ = "}],\"created\":" + std::to_string(env.created) + ",\"id\":";
  AppendJsonString(env.id, &suffix_);
  suffix_ += ",\"model\":";
  AppendJsonString(env.model, &suffix_);
  suffix_ += chat ? ",\"object\":\"chat.completion.chunk\"" : ",\"object\":\"text_completion\"";
  suffix_ += ",\"system_fingerprint\":";
  AppendJsonString(env.system_fingerprint, &suffix_);
  if (with_usage_null) suffix_ += ",\"usage\":null";
  suffix_ += "}";
}

void StreamChunkWriter::AppendEvent(const ChoiceOutput& delta, bool first, std::string* out) const {
  out->reserve(out->size() + suffix_.size() + delta.text.size() + 128);
  out->append("data: ");
  if (delta.has_logprobs) {
    json j = chat_ ? ChatChunkJson(env_, delta, first, with_usage_null_)
                   : CompletionChunkJson(env_, delta, with_usage_null_);
    out->append(j.dump(-1, ' ', false, json::error_handler_t::replace));
    out->append("\n\n");
    return;
  }
  const char* finish = "null";
  if (delta.finish) {
    switch (*delta.finish) {
      case decode::FinishReason::kNone:
        break;
      case decode::FinishReason::kStop:
        finish = "\"stop\"";
        break;
      case decode::FinishReason::kLength:
        finish = "\"length\"";
        break;
      case decode::FinishReason::kAbort:
        finish = "\"abort\"";
        break;
      case decode::FinishReason::kError:
        finish = "\"error\"";
        break;
    }
  }
  out->append("{\"choices\":[{");
  if (chat_) {
    out->append("\"delta\":{");
    if (first) {
      out->append("\"content\":");
      AppendJsonString(delta.text, out);
      out->append(",\"role\":\"assistant\"");
    } else if (!delta.text.empty() || !delta.finish) {
      out->append("\"content\":");
      AppendJsonString(delta.text, out);
    }
    out->append("},\"finish_reason\":");
    out->append(finish);
    out->append(",\"index\":");
    out->append(std::to_string(delta.index));
    out->append(",\"logprobs\":null");
  } else {
    out->append("\"finish_reason\":");
    out->append(finish);
    out->append(",\"index\":");
    out->append(std::to_string(delta.index));
    out->append(",\"logprobs\":null,\"text\":");
    AppendJsonString(delta.text, out);
  }
  out->append(suffix_);
  out->append("\n\n");
}

json ModelJson(const std::string& id, int64_t created, int max_model_len) {
  return {{"id", id},
          {"object", "model"},
          {"created", created},
          {"owned_by", "strata"},
          {"max_model_len", max_model_len}};
}

json ModelListJson(const std::string& id, int64_t created, int max_model_len) {
  return {{"object", "list"}, {"data", json::array({ModelJson(id, created, max_model_len)})}};
}

std::string ErrorType(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kNotFound:
    case StatusCode::kPayloadTooLarge:
      return "invalid_request_error";
    case StatusCode::kUnauthenticated:
      return "authentication_error";
    case StatusCode::kPermissionDenied:
      return "permission_error";
    case StatusCode::kResourceExhausted:
      return "rate_limit_error";
    case StatusCode::kUnavailable:
      return "service_unavailable_error";
    case StatusCode::kDeadlineExceeded:
      return "timeout_error";
    default:
      return "server_error";
  }
}

std::string ParamFromMessage(const std::string& message) {
  if (message.size() < 2 || message[0] != '\'') return "";
  size_t end = message.find("':");
  if (end == std::string::npos) return "";
  return message.substr(1, end - 1);
}

json ErrorJson(const Status& status, const std::string& param) {
  std::string p = param.empty() ? ParamFromMessage(status.message()) : param;
  json code;
  switch (status.code()) {
    case StatusCode::kNotFound:
      if (status.message().find("model") != std::string::npos) code = "model_not_found";
      break;
    case StatusCode::kUnauthenticated:
      code = "invalid_api_key";
      break;
    case StatusCode::kResourceExhausted:
      code = "rate_limit_exceeded";
      break;
    case StatusCode::kPayloadTooLarge:
      code = "request_too_large";
      break;
    case StatusCode::kDeadlineExceeded:
      code = "timeout";
      break;
    default:
      code = nullptr;
  }
  if (status.code() == StatusCode::kInvalidArgument &&
      status.message().find("context length") != std::string::npos) {
    code = "context_length_exceeded";
  }
  return {{"error",
           {{"message", status.message()},
            {"type", ErrorType(status.code())},
            {"param", p.empty() ? json(nullptr) : json(p)},
            {"code", code}}}};
}

}  // namespace strata::server
