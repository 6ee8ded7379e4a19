#include "model/tokenizer_post_processor.h"

#include <string>

namespace strata::model::tok {
namespace {

// Every single-sequence template reduces to special ids before and after the sequence; a template
// that mentions $A more than once repeats it, so keep the general form: a list of items.
class TemplatePostProcessor final : public PostProcessor {
 public:
  struct Item {
    bool is_sequence;
    std::vector<int32_t> ids;  // the special token's ids when !is_sequence
  };
  explicit TemplatePostProcessor(std::vector<Item> items) : items_(std::move(items)) {}

  void Process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 8);
    for (const Item& item : items_) {
      if (item.is_sequence) {
        out.insert(out.end(), ids.begin(), ids.end());
      } else if (add_special_tokens) {
        out.insert(out.end(), item.ids.begin(), item.ids.end());
      }
    }
    ids = std::move(out);
  }

 private:
  std::vector<Item> items_;
};

class IdentityPostProcessor final : public PostProcessor {
 public:
  void Process(std::vector<int32_t>&, bool) const override {}
};

class SequencePostProcessor final : public PostProcessor {
 public:
  explicit SequencePostProcessor(std::vector<std::unique_ptr<PostProcessor>> steps)
      : steps_(std::move(steps)) {}
  void Process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    for (const auto& step : steps_) step->Process(ids, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

StatusOr<std::unique_ptr<PostProcessor>> MakeTemplate(const nlohmann::json& spec) {
  auto single = spec.find("single");
  if (single == spec.end() || !single->is_array()) {
    return InvalidArgumentError("missing array \"single\"");
  }
  const nlohmann::json* special = nullptr;
  if (auto it = spec.find("special_tokens"); it != spec.end() && it->is_object()) special = &*it;
  std::vector<TemplatePostProcessor::Item> items;
  for (const auto& piece : *single) {
    if (piece.contains("Sequence")) {
      const auto& seq = piece["Sequence"];
      if (!seq.is_object() || seq.value("id", std::string()) != "A") {
        return InvalidArgumentError("single template sequence must be $A, got " + piece.dump());
      }
      items.push_back({true, {}});
    } else if (piece.contains("SpecialToken")) {
      const auto& tok = piece["SpecialToken"];
      if (!tok.is_object() || !tok.contains("id") || !tok["id"].is_string()) {
        return InvalidArgumentError("bad SpecialToken " + piece.dump());
      }
      std::string name = tok["id"].get<std::string>();
      if (special == nullptr || !special->contains(name) || !(*special)[name].contains("ids") ||
          !(*special)[name]["ids"].is_array()) {
        return InvalidArgumentError("special token \"" + name +
                                    "\" has no entry with ids in \"special_tokens\"");
      }
      std::vector<int32_t> ids;
      for (const auto& id : (*special)[name]["ids"]) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
          return InvalidArgumentError("special token \"" + name + "\" has a bad id");
        }
        ids.push_back(id.get<int32_t>());
      }
      items.push_back({false, std::move(ids)});
    } else {
      return InvalidArgumentError("unknown template piece " + piece.dump());
    }
  }
  return std::unique_ptr<PostProcessor>(std::make_unique<TemplatePostProcessor>(std::move(items)));
}

// BertProcessing / RobertaProcessing: "cls": [token, id], "sep": [token, id].
StatusOr<std::unique_ptr<PostProcessor>> MakeClsSep(const nlohmann::json& spec) {
  auto id_of = [&](const char* name) -> StatusOr<int32_t> {
    auto it = spec.find(name);
    if (it == spec.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer()) {
      return InvalidArgumentError(std::string("\"") + name + "\" must be [token, id]");
    }
    return (*it)[1].get<int32_t>();
  };
  auto cls = id_of("cls");
  if (!cls.ok()) return cls.status();
  auto sep = id_of("sep");
  if (!sep.ok()) return sep.status();
  return MakeAffixPostProcessor({*cls}, {*sep});
}

}  // namespace

std::unique_ptr<PostProcessor> MakeAffixPostProcessor(std::vector<int32_t> prefix,
                                                      std::vector<int32_t> suffix) {
  std::vector<TemplatePostProcessor::Item> items;
  if (!prefix.empty()) items.push_back({false, std::move(prefix)});
  items.push_back({true, {}});
  if (!suffix.empty()) items.push_back({false, std::move(suffix)});
  return std::make_unique<TemplatePostProcessor>(std::move(items));
}

StatusOr<std::unique_ptr<PostProcessor>> MakePostProcessor(const nlohmann::json& spec) {
  if (spec.is_null()) return std::unique_ptr<PostProcessor>();
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return InvalidArgumentError("post_processor: expected an object with a \"type\"");
  }
  const std::string type = spec["type"].get<std::string>();
  auto fail = [&](const Status& s) { return s.WithContext("post_processor " + type); };
  StatusOr<std::unique_ptr<PostProcessor>> made =
      UnimplementedError("unsupported post_processor type \"" + type + "\"");
  if (type == "TemplateProcessing") {
    made = MakeTemplate(spec);
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    made = MakeClsSep(spec);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets in HF; ids are unchanged.
    made = std::unique_ptr<PostProcessor>(std::make_unique<IdentityPostProcessor>());
  } else if (type == "Sequence") {
    auto it = spec.find("processors");
    if (it == spec.end() || !it->is_array()) {
      return fail(InvalidArgumentError("missing array \"processors\""));
    }
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < it->size(); ++i) {
      auto step = MakePostProcessor((*it)[i]);
      if (!step.ok()) return fail(step.status().WithContext("[" + std::to_string(i) + "]"));
      if (*step) steps.push_back(std::move(*step));
    }
    made =
        std::unique_ptr<PostProcessor>(std::make_unique<SequencePostProcessor>(std::move(steps)));
  } else {
    return made;
  }
  if (!made.ok()) return fail(made.status());
  return made;
}

}  // namespace strata::model::tok
