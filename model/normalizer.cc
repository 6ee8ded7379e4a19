#include "model/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "model/tokenizer_regex.h"
#include "model/tokenizer_unicode.h"

namespace strata::model::tok {
namespace {

bool IsAscii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

class UnicodeNormalizer final : public Normalizer {
 public:
  UnicodeNormalizer(int options, bool ascii_identity)
      : options_(options), ascii_identity_(ascii_identity) {}

  std::string Normalize(std::string_view text) const override {
    // ASCII is invariant under NFC/NFD/NFKC/NFKD.
    if (ascii_identity_ && IsAscii(text)) return std::string(text);
    utf8proc_uint8_t* out = nullptr;
    utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                      static_cast<utf8proc_ssize_t>(text.size()), &out,
                                      static_cast<utf8proc_option_t>(options_));
    if (n < 0) {
      // Only reachable on allocation failure, since the input is valid UTF-8: keep the text.
      return std::string(text);
    }
    std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);
    return result;
  }

 private:
  int options_;
  bool ascii_identity_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  std::string Normalize(std::string_view text) const override {
    std::string out;
    out.reserve(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
      char32_t cp = NextCodePoint(text, pos);
      AppendUtf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))), out);
    }
    return out;
  }
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string Normalize(std::string_view text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t next = begin;
        if (!IsWhitespace(NextCodePoint(text, next))) break;
        begin = next;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
        size_t next = start;
        if (!IsWhitespace(NextCodePoint(text, next))) break;
        end = start;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_, right_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string Normalize(std::string_view text) const override {
    if (text.empty()) return std::string();
    return prefix_ + std::string(text);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::shared_ptr<const Pattern> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string Normalize(std::string_view text) const override {
    std::string out;
    size_t last = 0;
    Status s = pattern_->FindAll(text, [&](size_t begin, size_t end) {
      out.append(text.substr(last, begin - last));
      out.append(content_);
      last = end;
    });
    if (!s.ok()) return std::string(text);
    out.append(text.substr(last));
    return out;
  }

 private:
  std::shared_ptr<const Pattern> pattern_;
  std::string content_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  std::string Normalize(std::string_view text) const override {
    std::string current(text);
    for (const auto& step : steps_) current = step->Normalize(current);
    return current;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

StatusOr<std::string> StringField(const nlohmann::json& spec, const char* name) {
  auto it = spec.find(name);
  if (it == spec.end() || !it->is_string()) {
    return InvalidArgumentError(std::string("missing string field \"") + name + "\"");
  }
  return it->get<std::string>();
}

}  // namespace

StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const nlohmann::json& spec) {
  if (spec.is_null()) return std::unique_ptr<Normalizer>();
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return InvalidArgumentError("normalizer: expected an object with a \"type\"");
  }
  const std::string type = spec["type"].get<std::string>();
  auto fail = [&](const Status& s) { return s.WithContext("normalizer " + type); };
  if (type == "NFC") {
    return std::unique_ptr<Normalizer>(
        std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_COMPOSE, true));
  }
  if (type == "NFD") {
    return std::unique_ptr<Normalizer>(
        std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, true));
  }
  if (type == "NFKC") {
    return std::unique_ptr<Normalizer>(std::make_unique<UnicodeNormalizer>(
        UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, true));
  }
  if (type == "NFKD") {
    return std::unique_ptr<Normalizer>(std::make_unique<UnicodeNormalizer>(
        UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, true));
  }
  if (type == "Lowercase")
    return std::unique_ptr<Normalizer>(std::make_unique<LowercaseNormalizer>());
  if (type == "Strip") {
    bool left = spec.value("strip_left", true), right = spec.value("strip_right", true);
    return std::unique_ptr<Normalizer>(std::make_unique<StripNormalizer>(left, right));
  }
  if (type == "Prepend") {
    auto prefix = StringField(spec, "prepend");
    if (!prefix.ok()) return fail(prefix.status());
    return std::unique_ptr<Normalizer>(std::make_unique<PrependNormalizer>(*prefix));
  }
  if (type == "Replace") {
    auto content = StringField(spec, "content");
    if (!content.ok()) return fail(content.status());
    if (!spec.contains("pattern")) return fail(InvalidArgumentError("missing \"pattern\""));
    auto pattern = MakePattern(spec["pattern"]);
    if (!pattern.ok()) return fail(pattern.status());
    return std::unique_ptr<Normalizer>(
        std::make_unique<ReplaceNormalizer>(std::move(*pattern), std::move(*content)));
  }
  if (type == "Sequence") {
    auto it = spec.find("normalizers");
    if (it == spec.end() || !it->is_array()) {
      return fail(InvalidArgumentError("missing array \"normalizers\""));
    }
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < it->size(); ++i) {
      auto step = MakeNormalizer((*it)[i]);
      if (!step.ok()) return fail(step.status().WithContext("[" + std::to_string(i) + "]"));
      if (*step) steps.push_back(std::move(*step));
    }
    return std::unique_ptr<Normalizer>(std::make_unique<SequenceNormalizer>(std::move(steps)));
  }
  return UnimplementedError("unsupported normalizer type \"" + type + "\"");
}

}  // namespace strata::model::tok
