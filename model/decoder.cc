#include "model/decoder.h"

#include "model/tokenizer_regex.h"
#include "model/tokenizer_unicode.h"

namespace strata::model::tok {
namespace {

class ByteLevelDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      size_t mark = bytes.size();
      size_t pos = 0;
      bool mapped = true;
      while (pos < token.size()) {
        int b = CharToByte(NextCodePoint(token, pos));
        if (b < 0) {
          mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!mapped) {  // not byte-level text: its own UTF-8, as HF does
        bytes.resize(mark);
        bytes.append(token);
      }
    }
    tokens.assign(1, Utf8Lossy(bytes));
  }
  bool byte_level() const override { return true; }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool strip_first)
      : replacement_(replacement), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& token = tokens[i];
      size_t pos = 0;
      while (pos < token.size()) {
        char32_t cp = NextCodePoint(token, pos);
        if (cp == replacement_) {
          if (!(i == 0 && strip_first_)) out.push_back(' ');
        } else {
          AppendUtf8(cp, out);
        }
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  bool strip_first_;
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    auto flush = [&] {
      if (bytes.empty()) return;
      if (FindInvalidUtf8(bytes) == std::string_view::npos) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < bytes.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      bytes.clear();
    };
    for (std::string& token : tokens) {
      int value = -1;
      if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') {
        value = HexByte(token[3], token[4]);
      }
      if (value >= 0) {
        bytes.push_back(static_cast<char>(value));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static int HexByte(char hi, char lo) {
    int h = HexDigit(hi), l = HexDigit(lo);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all.append(t);
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::vector<size_t> offsets;  // byte offset of each character, plus the end
      std::vector<char32_t> chars;
      size_t pos = 0;
      while (pos < token.size()) {
        offsets.push_back(pos);
        chars.push_back(NextCodePoint(token, pos));
      }
      offsets.push_back(token.size());
      size_t start_cut = 0;
      for (size_t i = 0; i < chars.size() && i < start_ && chars[i] == content_; ++i) {
        start_cut = i + 1;
      }
      size_t stop_cut = chars.size();
      for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
        size_t index = chars.size() - i - 1;
        if (chars[index] != content_) break;
        stop_cut = index;
      }
      if (stop_cut < start_cut) stop_cut = start_cut;
      token = token.substr(offsets[start_cut], offsets[stop_cut] - offsets[start_cut]);
    }
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::shared_ptr<const Pattern> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::string out;
      size_t last = 0;
      Status s = pattern_->FindAll(token, [&](size_t begin, size_t end) {
        out.append(token, last, begin - last);
        out.append(content_);
        last = end;
      });
      if (!s.ok()) continue;
      out.append(token, last, std::string::npos);
      token = std::move(out);
    }
  }

 private:
  std::shared_ptr<const Pattern> pattern_;
  std::string content_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
      : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens);
  }
  bool byte_level() const override {
    for (const auto& step : steps_) {
      if (step->byte_level()) return true;
    }
    return false;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

StatusOr<char32_t> SingleChar(const nlohmann::json& spec, const char* name,
                              std::string_view fallback) {
  std::string s(fallback);
  if (auto it = spec.find(name); it != spec.end()) {
    if (!it->is_string())
      return InvalidArgumentError(std::string("\"") + name + "\" must be a string");
    s = it->get<std::string>();
  }
  if (s.empty() || FindInvalidUtf8(s) != std::string_view::npos) {
    return InvalidArgumentError(std::string("\"") + name + "\" must be one character");
  }
  size_t pos = 0;
  char32_t cp = NextCodePoint(s, pos);
  if (pos != s.size())
    return InvalidArgumentError(std::string("\"") + name + "\" must be one character");
  return cp;
}

}  // namespace

StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const nlohmann::json& spec) {
  if (spec.is_null()) return std::unique_ptr<Decoder>();
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return InvalidArgumentError("decoder: expected an object with a \"type\"");
  }
  const std::string type = spec["type"].get<std::string>();
  auto fail = [&](const Status& s) { return s.WithContext("decoder " + type); };
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(std::make_unique<ByteLevelDecoder>());
  if (type == "Metaspace") {
    auto replacement = SingleChar(spec, "replacement", "\xE2\x96\x81");
    if (!replacement.ok()) return fail(replacement.status());
    bool strip_first = spec.value("add_prefix_space", true);
    if (auto it = spec.find("prepend_scheme"); it != spec.end() && it->is_string()) {
      strip_first = it->get<std::string>() != "never";
    }
    return std::unique_ptr<Decoder>(std::make_unique<MetaspaceDecoder>(*replacement, strip_first));
  }
  if (type == "ByteFallback")
    return std::unique_ptr<Decoder>(std::make_unique<ByteFallbackDecoder>());
  if (type == "Fuse") return std::unique_ptr<Decoder>(std::make_unique<FuseDecoder>());
  if (type == "Strip") {
    auto content = SingleChar(spec, "content", " ");
    if (!content.ok()) return fail(content.status());
    auto count = [&](const char* name) -> StatusOr<size_t> {
      auto it = spec.find(name);
      if (it == spec.end()) return size_t{0};
      if (!it->is_number_integer() || it->get<int64_t>() < 0) {
        return InvalidArgumentError(std::string("\"") + name + "\" must be a count");
      }
      return it->get<size_t>();
    };
    auto start = count("start");
    if (!start.ok()) return fail(start.status());
    auto stop = count("stop");
    if (!stop.ok()) return fail(stop.status());
    return std::unique_ptr<Decoder>(std::make_unique<StripDecoder>(*content, *start, *stop));
  }
  if (type == "Replace") {
    auto it = spec.find("content");
    if (it == spec.end() || !it->is_string()) {
      return fail(InvalidArgumentError("missing string field \"content\""));
    }
    if (!spec.contains("pattern")) return fail(InvalidArgumentError("missing \"pattern\""));
    auto pattern = MakePattern(spec["pattern"]);
    if (!pattern.ok()) return fail(pattern.status());
    return std::unique_ptr<Decoder>(
        std::make_unique<ReplaceDecoder>(std::move(*pattern), it->get<std::string>()));
  }
  if (type == "Sequence") {
    auto it = spec.find("decoders");
    if (it == spec.end() || !it->is_array()) {
      return fail(InvalidArgumentError("missing array \"decoders\""));
    }
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < it->size(); ++i) {
      auto step = MakeDecoder((*it)[i]);
      if (!step.ok()) return fail(step.status().WithContext("[" + std::to_string(i) + "]"));
      if (*step) steps.push_back(std::move(*step));
    }
    return std::unique_ptr<Decoder>(std::make_unique<SequenceDecoder>(std::move(steps)));
  }
  return UnimplementedError("unsupported decoder type \"" + type + "\"");
}

}  // namespace strata::model::tok
