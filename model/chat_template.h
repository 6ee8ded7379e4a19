// Chat templates: renders tokenizer_config.json's Jinja `chat_template` the way transformers'
// apply_chat_template(tokenize=False) does (Jinja2 sandbox, trim_blocks, lstrip_blocks,
// raise_exception and strftime_now globals, tojson with ensure_ascii=False).
//
// Template context, as transformers builds it: messages, tools (None when absent),
// documents (None), add_generation_prompt, the special tokens the config defines (bos_token,
// eos_token, unk_token, pad_token, sep_token, cls_token, mask_token), then `extra_context`
// entries (e.g. enable_thinking), which override the others.
//
// Key order: JSON objects render in the order the JSON container iterates them. nlohmann::json
// sorts keys; to reproduce a client's key order byte for byte (e.g. `tool | tojson`), parse the
// request with nlohmann::ordered_json and use the ordered_json overload.
//
// Thread-safety: a ChatTemplate is immutable after construction; Render is const and may be
// called concurrently. Rendering is bounded (16 MiB output, recursion and work limits).
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/jinja_template.h"

namespace strata::model {

class ChatTemplate {
 public:
  // From a parsed tokenizer_config.json: `chat_template` as a string or a list of
  // {name, template} ("default", or "tool_use" when tools are given and it exists);
  // special tokens as strings or AddedToken objects ({"content": ...}).
  static StatusOr<ChatTemplate> FromTokenizerConfig(const nlohmann::json& tokenizer_config);
  // From template source; empty bos/eos tokens are left undefined in the template.
  static StatusOr<ChatTemplate> FromSource(std::string source, std::string bos_token,
                                           std::string eos_token);

  // messages: OpenAI-style array of objects ({role, content, tool_calls, ...}), passed to the
  // template as given. tools: null or an array. extra_context: an object.
  // Returns InvalidArgument for bad input, template errors and raise_exception().
  StatusOr<std::string> Render(
      const nlohmann::json& messages, bool add_generation_prompt,
      const nlohmann::json& tools = nullptr,
      const nlohmann::json& extra_context = nlohmann::json::object()) const;
  StatusOr<std::string> Render(
      const nlohmann::ordered_json& messages, bool add_generation_prompt,
      const nlohmann::ordered_json& tools = nullptr,
      const nlohmann::ordered_json& extra_context = nlohmann::ordered_json::object()) const;

  // Names of the templates this config defines ("default" for a plain string template).
  std::vector<std::string> template_names() const;

 private:
  template <typename Json>
  StatusOr<std::string> RenderImpl(const Json& messages, bool add_generation_prompt,
                                   const Json& tools, const Json& extra_context) const;

  std::map<std::string, jinja::Template> templates_;
  std::vector<std::pair<std::string, std::string>> special_tokens_;
};

}  // namespace strata::model
