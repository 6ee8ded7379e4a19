#include "model/chat_template.h"

#include <ctime>

#include "model/jinja_methods.h"

namespace strata::model {
namespace {

using jinja::CallArgs;
using jinja::Interpreter;
using jinja::Value;

constexpr const char* kSpecialTokenNames[] = {"bos_token", "eos_token", "unk_token", "pad_token",
                                              "sep_token", "cls_token", "mask_token"};

// A special token entry: a string, an AddedToken object ({"content": ...}) or null/absent.
StatusOr<std::string> TokenContent(const nlohmann::json& config, const char* name) {
  auto it = config.find(name);
  if (it == config.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) return content->get<std::string>();
  }
  return InvalidArgumentError(std::string("tokenizer_config ") + name +
                              " must be a string or an object with a string \"content\"");
}

// transformers' raise_exception(message): aborts rendering with the template's message.
Value RaiseException(Interpreter&, CallArgs args) {
  std::string message = args.positional.empty() ? "" : jinja::ToStr(args.positional[0]);
  throw jinja::Error(message);
}

// transformers' strftime_now(format): datetime.now().strftime(format), local time.
Value StrftimeNow(Interpreter&, CallArgs args) {
  if (args.positional.size() != 1 || !args.positional[0].is_string()) {
    throw jinja::Error("strftime_now() takes one string argument");
  }
  const std::string& format = args.positional[0].as_string();
  if (format.size() > 1024) throw jinja::Error("strftime_now() format is too long");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  if (format.empty()) return Value::String("");
  std::string out(4096, '\0');
  const size_t n = std::strftime(out.data(), out.size(), format.c_str(), &local);
  if (n == 0) throw jinja::Error("strftime_now() result is empty or too long");
  out.resize(n);
  return Value::String(std::move(out));
}

}  // namespace

StatusOr<ChatTemplate> ChatTemplate::FromTokenizerConfig(const nlohmann::json& config) {
  if (!config.is_object()) return InvalidArgumentError("tokenizer_config must be a JSON object");
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) {
    return InvalidArgumentError("tokenizer_config has no chat_template");
  }
  ChatTemplate result;
  auto add = [&](const std::string& name, const std::string& source) -> Status {
    auto parsed = jinja::Template::Parse(source);
    if (!parsed.ok()) return parsed.status().WithContext("chat template '" + name + "'");
    result.templates_.insert_or_assign(name, std::move(parsed).value());
    return OkStatus();
  };
  if (it->is_string()) {
    STRATA_RETURN_IF_ERROR(add("default", it->get<std::string>()));
  } else if (it->is_array()) {
    for (const auto& entry : *it) {
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
          !entry["name"].is_string() || !entry["template"].is_string()) {
        return InvalidArgumentError(
            "chat_template must be a list of objects with \"name\" and \"template\" strings");
      }
      STRATA_RETURN_IF_ERROR(
          add(entry["name"].get<std::string>(), entry["template"].get<std::string>()));
    }
    if (result.templates_.empty()) return InvalidArgumentError("chat_template list is empty");
  } else {
    return InvalidArgumentError("chat_template must be a string or a list of named templates");
  }
  for (const char* name : kSpecialTokenNames) {
    STRATA_ASSIGN_OR_RETURN(std::string content, TokenContent(config, name));
    if (!content.empty()) result.special_tokens_.emplace_back(name, std::move(content));
  }
  return result;
}

StatusOr<ChatTemplate> ChatTemplate::FromSource(std::string source, std::string bos_token,
                                                std::string eos_token) {
  ChatTemplate result;
  STRATA_ASSIGN_OR_RETURN(jinja::Template parsed, jinja::Template::Parse(source));
  result.templates_.emplace("default", std::move(parsed));
  if (!bos_token.empty()) result.special_tokens_.emplace_back("bos_token", std::move(bos_token));
  if (!eos_token.empty()) result.special_tokens_.emplace_back("eos_token", std::move(eos_token));
  return result;
}

std::vector<std::string> ChatTemplate::template_names() const {
  std::vector<std::string> names;
  for (const auto& [name, t] : templates_) names.push_back(name);
  return names;
}

StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& messages,
                                           bool add_generation_prompt, const nlohmann::json& tools,
                                           const nlohmann::json& extra_context) const {
  return RenderImpl(messages, add_generation_prompt, tools, extra_context);
}

StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages,
                                           bool add_generation_prompt,
                                           const nlohmann::ordered_json& tools,
                                           const nlohmann::ordered_json& extra_context) const {
  return RenderImpl(messages, add_generation_prompt, tools, extra_context);
}

template <typename Json>
StatusOr<std::string> ChatTemplate::RenderImpl(const Json& messages, bool add_generation_prompt,
                                               const Json& tools, const Json& extra_context) const {
  if (!messages.is_array()) return InvalidArgumentError("messages must be an array");
  for (const auto& m : messages) {
    if (!m.is_object()) return InvalidArgumentError("each message must be an object");
  }
  if (!tools.is_null() && !tools.is_array()) {
    return InvalidArgumentError("tools must be null or an array");
  }
  if (!extra_context.is_null() && !extra_context.is_object()) {
    return InvalidArgumentError("extra template context must be an object");
  }
  const bool has_tools = !tools.is_null();
  const jinja::Template* tmpl = nullptr;
  if (auto it = templates_.find("tool_use"); has_tools && it != templates_.end()) {
    tmpl = &it->second;
  } else if (auto def = templates_.find("default"); def != templates_.end()) {
    tmpl = &def->second;
  }
  if (tmpl == nullptr) {
    return InvalidArgumentError(
        "this model has several chat templates and none is named "
        "\"default\"");
  }
  std::vector<std::pair<std::string, Value>> globals;
  try {
    globals.emplace_back("raise_exception", Value::Function(std::make_shared<jinja::NativeFunction>(
                                                "raise_exception", RaiseException)));
    globals.emplace_back("strftime_now", Value::Function(std::make_shared<jinja::NativeFunction>(
                                             "strftime_now", StrftimeNow)));
    globals.emplace_back("messages", jinja::FromJson(messages));
    globals.emplace_back("tools", has_tools ? jinja::FromJson(tools) : Value::None());
    globals.emplace_back("documents", Value::None());
    globals.emplace_back("add_generation_prompt", Value::Bool(add_generation_prompt));
    for (const auto& [name, content] : special_tokens_) {
      globals.emplace_back(name, Value::String(content));
    }
    if (extra_context.is_object()) {
      for (auto it = extra_context.begin(); it != extra_context.end(); ++it) {
        globals.emplace_back(it.key(), jinja::FromJson(it.value()));
      }
    }
  } catch (const jinja::Error& e) {
    return InvalidArgumentError(std::string("chat template input: ") + e.what());
  }
  return tmpl->Render(globals);
}

}  // namespace strata::model
