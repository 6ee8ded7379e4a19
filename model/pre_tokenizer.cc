#include "model/pre_tokenizer.h"

#include <algorithm>
#include <functional>

#include "model/tokenizer_regex.h"
#include "model/tokenizer_unicode.h"

namespace strata::model::tok {
namespace {

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

StatusOr<Behavior> ParseBehavior(const nlohmann::json& spec) {
  auto it = spec.find("behavior");
  if (it == spec.end() || !it->is_string()) {
    return InvalidArgumentError("missing string field \"behavior\"");
  }
  const std::string name = it->get<std::string>();
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  return InvalidArgumentError("unknown behavior \"" + name + "\"");
}

struct Segment {
  size_t begin, end;
  bool is_match;
};

// Splits one piece given segments that cover it (matches and the gaps between them), exactly as
// NormalizedString::split does in Hugging Face tokenizers.
void SplitPiece(const Piece& piece, std::vector<Segment>& segments, Behavior behavior, bool invert,
                std::vector<Piece>& out) {
  if (invert) {
    for (auto& s : segments) s.is_match = !s.is_match;
  }
  struct Keep {
    size_t begin, end;
    bool remove;
  };
  std::vector<Keep> keeps;
  keeps.reserve(segments.size());
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kIsolated:
      for (const auto& s : segments) keeps.push_back({s.begin, s.end, false});
      break;
    case Behavior::kRemoved:
      for (const auto& s : segments) keeps.push_back({s.begin, s.end, s.is_match});
      break;
    case Behavior::kContiguous:
      for (const auto& s : segments) {
        if (s.is_match == previous_match && !keeps.empty()) {
          keeps.back().end = s.end;
        } else {
          keeps.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithPrevious:
      for (const auto& s : segments) {
        if (s.is_match && !previous_match && !keeps.empty()) {
          keeps.back().end = s.end;
        } else {
          keeps.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (size_t i = segments.size(); i-- > 0;) {
        const auto& s = segments[i];
        if (s.is_match && !previous_match && !keeps.empty()) {
          keeps.back().begin = s.begin;
        } else {
          keeps.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      std::reverse(keeps.begin(), keeps.end());
      break;
  }
  for (const auto& k : keeps) {
    if (k.remove || k.end <= k.begin) continue;
    out.push_back(
        {piece.text.substr(k.begin, k.end - k.begin), piece.at_input_start && k.begin == 0});
  }
}

// Segments from a predicate on characters: each matching character is its own match.
void CharSegments(std::string_view text, const std::function<bool(char32_t)>& pred,
                  std::vector<Segment>& segments) {
  segments.clear();
  size_t last = 0, pos = 0;
  while (pos < text.size()) {
    size_t start = pos;
    char32_t cp = NextCodePoint(text, pos);
    if (pred(cp)) {
      if (last < start) segments.push_back({last, start, false});
      segments.push_back({start, pos, true});
      last = pos;
    }
  }
  if (last < text.size()) segments.push_back({last, text.size(), false});
}

Status PatternSegments(const Pattern& pattern, std::string_view text,
                       std::vector<Segment>& segments) {
  segments.clear();
  size_t last = 0;
  STRATA_RETURN_IF_ERROR(pattern.FindAll(text, [&](size_t begin, size_t end) {
    if (last < begin) segments.push_back({last, begin, false});
    segments.push_back({begin, end, true});
    last = end;
  }));
  if (last < text.size()) segments.push_back({last, text.size(), false});
  return OkStatus();
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(std::shared_ptr<const Pattern> pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}

  Status PreTokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 4);
    std::vector<Segment> segments;
    for (const Piece& piece : pieces) {
      STRATA_RETURN_IF_ERROR(PatternSegments(*pattern_, piece.text, segments));
      SplitPiece(piece, segments, behavior_, invert_, out);
    }
    pieces = std::move(out);
    return OkStatus();
  }

 private:
  std::shared_ptr<const Pattern> pattern_;
  Behavior behavior_;
  bool invert_;
};

constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::shared_ptr<const Pattern> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  Status PreTokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> split;
    std::vector<Piece>* source = &pieces;
    if (add_prefix_space_) {
      for (Piece& p : pieces) {
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(p.text.begin(), ' ');
      }
    }
    if (regex_) {
      std::vector<Segment> segments;
      for (const Piece& piece : pieces) {
        STRATA_RETURN_IF_ERROR(PatternSegments(*regex_, piece.text, segments));
        SplitPiece(piece, segments, Behavior::kIsolated, false, split);
      }
      source = &split;
    }
    std::vector<Piece> out;
    out.reserve(source->size());
    for (const Piece& piece : *source) {
      Piece mapped{std::string(), piece.at_input_start};
      mapped.text.reserve(piece.text.size() * 2);
      for (char c : piece.text) mapped.text.append(ByteToUtf8(static_cast<uint8_t>(c)));
      out.push_back(std::move(mapped));
    }
    pieces = std::move(out);
    return OkStatus();
  }

 private:
  bool add_prefix_space_;
  std::shared_ptr<const Pattern> regex_;  // null when use_regex is false
};

class DigitsPreTokenizer final : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  Status PreTokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    std::vector<Segment> segments;
    for (const Piece& piece : pieces) {
      CharSegments(piece.text, IsNumeric, segments);
      SplitPiece(piece, segments, individual_ ? Behavior::kIsolated : Behavior::kContiguous, false,
                 out);
    }
    pieces = std::move(out);
    return OkStatus();
  }

 private:
  bool individual_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {
    AppendUtf8(replacement, replacement_utf8_);
  }

  Status PreTokenize(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    std::vector<Segment> segments;
    for (const Piece& piece : pieces) {
      Piece replaced{std::string(), piece.at_input_start};
      for (char c : piece.text) {
        if (c == ' ') {
          replaced.text.append(replacement_utf8_);
        } else {
          replaced.text.push_back(c);
        }
      }
      bool starts = replaced.text.compare(0, replacement_utf8_.size(), replacement_utf8_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways ||
                      (scheme_ == PrependScheme::kFirst && piece.at_input_start))) {
        replaced.text.insert(0, replacement_utf8_);
      }
      if (!split_) {
        if (!replaced.text.empty()) out.push_back(std::move(replaced));
        continue;
      }
      char32_t r = replacement_;
      CharSegments(
          replaced.text, [r](char32_t cp) { return cp == r; }, segments);
      SplitPiece(replaced, segments, Behavior::kMergedWithNext, false, out);
    }
    pieces = std::move(out);
    return OkStatus();
  }

 private:
  char32_t replacement_;
  std::string replacement_utf8_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  Status PreTokenize(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) STRATA_RETURN_IF_ERROR(step->PreTokenize(pieces));
    return OkStatus();
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

StatusOr<std::unique_ptr<PreTokenizer>> MakeMetaspace(const nlohmann::json& spec) {
  std::string replacement = spec.value("replacement", std::string("\xE2\x96\x81"));
  if (replacement.empty() || FindInvalidUtf8(replacement) != std::string_view::npos) {
    return InvalidArgumentError("\"replacement\" must be one character");
  }
  size_t pos = 0;
  char32_t cp = NextCodePoint(replacement, pos);
  if (pos != replacement.size())
    return InvalidArgumentError("\"replacement\" must be one character");
  PrependScheme scheme =
      spec.value("add_prefix_space", true) ? PrependScheme::kAlways : PrependScheme::kNever;
  if (auto it = spec.find("prepend_scheme"); it != spec.end() && it->is_string()) {
    std::string s = it->get<std::string>();
    if (s == "always") {
      scheme = PrependScheme::kAlways;
    } else if (s == "first") {
      scheme = PrependScheme::kFirst;
    } else if (s == "never") {
      scheme = PrependScheme::kNever;
    } else {
      return InvalidArgumentError("unknown prepend_scheme \"" + s + "\"");
    }
  }
  return std::unique_ptr<PreTokenizer>(
      std::make_unique<MetaspacePreTokenizer>(cp, scheme, spec.value("split", true)));
}

}  // namespace

StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const nlohmann::json& spec) {
  if (spec.is_null()) return std::unique_ptr<PreTokenizer>();
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return InvalidArgumentError("pre_tokenizer: expected an object with a \"type\"");
  }
  const std::string type = spec["type"].get<std::string>();
  auto fail = [&](const Status& s) { return s.WithContext("pre_tokenizer " + type); };
  if (type == "Split") {
    if (!spec.contains("pattern")) return fail(InvalidArgumentError("missing \"pattern\""));
    auto pattern = MakePattern(spec["pattern"]);
    if (!pattern.ok()) return fail(pattern.status());
    auto behavior = ParseBehavior(spec);
    if (!behavior.ok()) return fail(behavior.status());
    return std::unique_ptr<PreTokenizer>(std::make_unique<SplitPreTokenizer>(
        std::move(*pattern), *behavior, spec.value("invert", false)));
  }
  if (type == "ByteLevel") {
    std::shared_ptr<const Pattern> regex;
    if (spec.value("use_regex", true)) {
      auto compiled = CompileRegex(kGpt2Regex);
      if (!compiled.ok()) return fail(compiled.status());
      regex = std::move(*compiled);
    }
    return std::unique_ptr<PreTokenizer>(std::make_unique<ByteLevelPreTokenizer>(
        spec.value("add_prefix_space", true), std::move(regex)));
  }
  if (type == "Digits") {
    return std::unique_ptr<PreTokenizer>(
        std::make_unique<DigitsPreTokenizer>(spec.value("individual_digits", false)));
  }
  if (type == "Metaspace") {
    auto made = MakeMetaspace(spec);
    if (!made.ok()) return fail(made.status());
    return made;
  }
  if (type == "Sequence") {
    auto it = spec.find("pretokenizers");
    if (it == spec.end() || !it->is_array()) {
      return fail(InvalidArgumentError("missing array \"pretokenizers\""));
    }
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < it->size(); ++i) {
      auto step = MakePreTokenizer((*it)[i]);
      if (!step.ok()) return fail(step.status().WithContext("[" + std::to_string(i) + "]"));
      if (*step) steps.push_back(std::move(*step));
    }
    return std::unique_ptr<PreTokenizer>(std::make_unique<SequencePreTokenizer>(std::move(steps)));
  }
  return UnimplementedError("unsupported pre_tokenizer type \"" + type + "\"");
}

}  // namespace strata::model::tok
