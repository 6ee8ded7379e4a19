#include "model/tokenizer.h"

#include <cstdio>

#include "model/bpe.h"
#include "model/decoder.h"
#include "model/normalizer.h"
#include "model/pre_tokenizer.h"
#include "model/tokenizer_added_vocab.h"
#include "model/tokenizer_flat_map.h"
#include "model/tokenizer_json.h"
#include "model/tokenizer_post_processor.h"
#include "model/tokenizer_unicode.h"

namespace strata::model {
namespace {

// The whole file; NotFound when it cannot be opened.
StatusOr<std::string> ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return NotFoundError(path + ": cannot open (missing or unreadable)");
  std::string data;
  char buffer[1 << 16];
  size_t n;
  if (std::fseek(f, 0, SEEK_END) == 0) {
    long size = std::ftell(f);
    if (size > 0) data.reserve(static_cast<size_t>(size));
    std::rewind(f);
  }
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0) data.append(buffer, n);
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return DataLossError(path + ": read error");
  return data;
}

StatusOr<nlohmann::json> ReadJsonFile(const std::string& path, bool required) {
  auto data = ReadFile(path);
  if (!data.ok()) {
    if (required || data.status().code() != StatusCode::kNotFound) return data.status();
    return nlohmann::json::object();
  }
  nlohmann::json parsed = nlohmann::json::parse(*data, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return DataLossError(path + ": not valid JSON");
  if (!parsed.is_object()) return DataLossError(path + ": expected a JSON object at the top");
  return parsed;
}

// A tokenizer_config.json token: a string, or an AddedToken object's "content"; "" otherwise.
std::string ConfigToken(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::string();
}

const nlohmann::json& FieldOrNull(const nlohmann::json& spec, const char* key) {
  static const nlohmann::json kNull;
  auto it = spec.find(key);
  return it == spec.end() ? kNull : *it;
}

bool IsLlamaTokenizerClass(const std::string& name) {
  return name == "LlamaTokenizer" || name == "LlamaTokenizerFast" || name == "CodeLlamaTokenizer" ||
         name == "CodeLlamaTokenizerFast" || name == "GemmaTokenizer" ||
         name == "GemmaTokenizerFast";
}

// transformers' clean_up_tokenization: spaces before punctuation and English contractions.
std::string CleanUpTokenizationSpaces(std::string text) {
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    std::string out;
    size_t last = 0, pos;
    while ((pos = text.find(from, last)) != std::string::npos) {
      out.append(text, last, pos - last);
      out.append(to);
      last = pos + from.size();
    }
    if (last == 0) continue;
    out.append(text, last, std::string::npos);
    text = std::move(out);
  }
  return text;
}

bool EndsWithReplacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::LoadFromDir(const std::string& dir) {
  const std::string json_path = dir + "/tokenizer.json";
  const std::string config_path = dir + "/tokenizer_config.json";
  STRATA_ASSIGN_OR_RETURN(std::string text, ReadFile(json_path));
  auto parsed = tok::ParseTokenizerJson(text);
  if (!parsed.ok()) return parsed.status().WithContext(json_path);
  text = std::string();
  if (!parsed->spec.is_object()) return DataLossError(json_path + ": expected a JSON object");
  auto tokenizer = std::unique_ptr<Tokenizer>(new Tokenizer());
  STRATA_ASSIGN_OR_RETURN(tokenizer->config_, ReadJsonFile(config_path, false));
  Status status;
  try {
    status = tokenizer->Init(*parsed);
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong JSON type (e.g. "add_prefix_space": "yes") deep in a component.
    status = InvalidArgumentError(std::string("unexpected field type: ") + e.what());
  }
  if (!status.ok()) return status.WithContext(json_path);
  return tokenizer;
}

Status Tokenizer::Init(tok::ParsedTokenizerJson& parsed) {
  const nlohmann::json& spec = parsed.spec;
  STRATA_ASSIGN_OR_RETURN(normalizer_, tok::MakeNormalizer(FieldOrNull(spec, "normalizer")));
  STRATA_ASSIGN_OR_RETURN(pre_tokenizer_,
                          tok::MakePreTokenizer(FieldOrNull(spec, "pre_tokenizer")));
  STRATA_ASSIGN_OR_RETURN(post_processor_,
                          tok::MakePostProcessor(FieldOrNull(spec, "post_processor")));
  STRATA_ASSIGN_OR_RETURN(decoder_, tok::MakeDecoder(FieldOrNull(spec, "decoder")));

  auto model_it = spec.find("model");
  if (model_it == spec.end() || !model_it->is_object()) {
    return InvalidArgumentError("missing object \"model\"");
  }
  std::string model_type = model_it->value("type", std::string("BPE"));
  if (model_type != "BPE") {
    return UnimplementedError("unsupported model type \"" + model_type + "\" (only BPE)");
  }
  if (!parsed.vocab_captured || !parsed.merges_captured) {
    STRATA_RETURN_IF_ERROR(tok::BpeTablesFromJson(*model_it, !parsed.vocab_captured,
                                                  !parsed.merges_captured, parsed.tables));
  }
  STRATA_ASSIGN_OR_RETURN(model_, tok::BpeModel::Create(*model_it, std::move(parsed.tables)));
  int32_t max_id = model_->max_id();

  if (auto it = spec.find("added_tokens"); it != spec.end() && !it->is_null()) {
    if (!it->is_array()) return InvalidArgumentError("\"added_tokens\" must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& t = (*it)[i];
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
          t["id"].get<int64_t>() < 0 || t["id"].get<int64_t>() >= INT32_MAX ||
          !t.contains("content") || !t["content"].is_string()) {
        return InvalidArgumentError("added_tokens[" + std::to_string(i) +
                                    "] needs an integer \"id\" and a string \"content\"");
      }
      tok::AddedToken added;
      added.id = t["id"].get<int32_t>();
      added.content = t["content"].get<std::string>();
      if (tok::FindInvalidUtf8(added.content) != std::string_view::npos) {
        return InvalidArgumentError("added_tokens[" + std::to_string(i) + "] is not UTF-8");
      }
      added.special = t.value("special", false);
      added.single_word = t.value("single_word", false);
      added.lstrip = t.value("lstrip", false);
      added.rstrip = t.value("rstrip", false);
      added.normalized = t.value("normalized", !added.special);
      max_id = std::max(max_id, added.id);
      added_tokens_.push_back(std::move(added));
    }
  }
  vocab_size_ = max_id + 1;
  if (static_cast<size_t>(vocab_size_) > 8 * (added_tokens_.size() + 1) + 4 * 1024 * 1024) {
    return InvalidArgumentError("added token ids are implausibly large (max " +
                                std::to_string(max_id) + ")");
  }
  added_index_by_id_.assign(static_cast<size_t>(vocab_size_), -1);
  added_by_content_ = std::make_unique<tok::FlatStringIndex>();
  for (size_t i = 0; i < added_tokens_.size(); ++i) {
    added_index_by_id_[added_tokens_[i].id] = static_cast<int32_t>(i);
    // Later duplicates win, as in a map keyed by content.
    added_by_content_->Set(added_tokens_[i].content, added_tokens_[i].id);
  }
  raw_matcher_ = std::make_unique<tok::AddedTokenMatcher>(added_tokens_, false);
  normalized_matcher_ = std::make_unique<tok::AddedTokenMatcher>(added_tokens_, true);

  // tokenizer_config.json: special token names, Llama-style BOS/EOS template, clean-up.
  bos_token_ = ConfigToken(config_, "bos_token");
  eos_token_ = ConfigToken(config_, "eos_token");
  if (!bos_token_.empty()) bos_token_id_ = TokenToId(bos_token_);
  if (!eos_token_.empty()) eos_token_id_ = TokenToId(eos_token_);
  if (auto it = config_.find("clean_up_tokenization_spaces");
      it != config_.end() && it->is_boolean()) {
    clean_up_spaces_ = it->get<bool>();
  }
  std::string tokenizer_class = config_.value("tokenizer_class", std::string());
  if (IsLlamaTokenizerClass(tokenizer_class)) {
    bool add_bos = config_.value("add_bos_token", true);
    bool add_eos = config_.value("add_eos_token", false);
    std::vector<int32_t> prefix, suffix;
    if (add_bos) {
      if (!bos_token_id_) {
        return FailedPreconditionError(
            "tokenizer_config.json: add_bos_token is set but bos_token \"" + bos_token_ +
            "\" is not a token");
      }
      prefix.push_back(*bos_token_id_);
    }
    if (add_eos) {
      if (!eos_token_id_) {
        return FailedPreconditionError(
            "tokenizer_config.json: add_eos_token is set but eos_token \"" + eos_token_ +
            "\" is not a token");
      }
      suffix.push_back(*eos_token_id_);
    }
    post_processor_ = tok::MakeAffixPostProcessor(std::move(prefix), std::move(suffix));
  }
  return OkStatus();
}

const tok::AddedToken* Tokenizer::FindAdded(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return nullptr;
  int32_t index = added_index_by_id_[id];
  return index < 0 ? nullptr : &added_tokens_[index];
}

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  if (auto id = added_by_content_->Find(token)) return id;
  return model_->TokenToId(token);
}

std::string Tokenizer::IdToToken(int32_t id) const {
  if (const tok::AddedToken* added = FindAdded(id)) return added->content;
  const std::string* token = model_->IdToToken(id);
  return token ? *token : std::string();
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const tok::AddedToken* added = FindAdded(id);
  return added != nullptr && added->special;
}

Status Tokenizer::EncodePlain(std::string_view text, bool at_input_start,
                              std::vector<int32_t>& ids) const {
  std::string normalized = normalizer_ ? normalizer_->Normalize(text) : std::string(text);
  std::vector<tok::TextSpan> spans;
  if (normalized_matcher_->empty()) {
    spans.push_back({0, normalized.size(), -1});
  } else {
    normalized_matcher_->Split(normalized, spans);
  }
  std::vector<tok::Piece> pieces;
  for (const tok::TextSpan& span : spans) {
    if (span.id >= 0) {
      ids.push_back(span.id);
      continue;
    }
    if (span.end <= span.begin) continue;
    pieces.clear();
    pieces.push_back(
        {normalized.substr(span.begin, span.end - span.begin), at_input_start && span.begin == 0});
    if (pre_tokenizer_) STRATA_RETURN_IF_ERROR(pre_tokenizer_->PreTokenize(pieces));
    for (const tok::Piece& piece : pieces) model_->Encode(piece.text, ids);
  }
  return OkStatus();
}

StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                 bool add_special_tokens) const {
  if (size_t bad = tok::FindInvalidUtf8(text); bad != std::string_view::npos) {
    return InvalidArgumentError("text is not valid UTF-8 (byte offset " + std::to_string(bad) +
                                ")");
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<tok::TextSpan> spans;
  raw_matcher_->Split(text, spans);
  for (const tok::TextSpan& span : spans) {
    if (span.id >= 0) {
      ids.push_back(span.id);
    } else if (span.end > span.begin) {
      STRATA_RETURN_IF_ERROR(
          EncodePlain(text.substr(span.begin, span.end - span.begin), span.begin == 0, ids));
    }
  }
  if (post_processor_) post_processor_->Process(ids, add_special_tokens);
  return ids;
}

std::string Tokenizer::DecodeRaw(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string text;
  std::vector<std::string> chain;
  const bool byte_level = decoder_ && decoder_->byte_level();
  auto flush = [&] {
    if (chain.empty()) return;
    if (decoder_) {
      decoder_->DecodeChain(chain);
      for (const auto& piece : chain) text.append(piece);
    } else {
      for (size_t i = 0; i < chain.size(); ++i) {
        if (!text.empty() || i > 0) text.push_back(' ');
        text.append(chain[i]);
      }
    }
    chain.clear();
  };
  for (int32_t id : ids) {
    if (const tok::AddedToken* added = FindAdded(id)) {
      if (skip_special_tokens && added->special) continue;
      if (byte_level) {
        flush();
        text.append(added->content);
      } else {
        chain.push_back(added->content);
      }
    } else if (const std::string* token = model_->IdToToken(id)) {
      chain.push_back(*token);
    }
  }
  flush();
  return text;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string text = DecodeRaw(ids, skip_special_tokens);
  if (clean_up_spaces_) text = CleanUpTokenizationSpaces(std::move(text));
  return text;
}

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string IncrementalDetokenizer::Push(int32_t id) {
  ids_.push_back(id);
  std::string text = tokenizer_.DecodeRaw(ids_, skip_special_tokens_);
  if (text.size() <= prefix_.size() || EndsWithReplacement(text)) return std::string();
  size_t common = 0;
  while (common < prefix_.size() && text[common] == prefix_[common]) ++common;
  // The window's text always extends its prefix; should a decoder ever rewrite earlier text,
  // emit only what follows the shared part (emitted text cannot be taken back).
  std::string out = text.substr(common);
  size_t new_prefix_index = ids_.size() - prefix_index_;
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
  prefix_ = tokenizer_.DecodeRaw(ids_, skip_special_tokens_);
  prefix_index_ = new_prefix_index;
  return out;
}

std::string IncrementalDetokenizer::Flush() {
  std::string text = tokenizer_.DecodeRaw(ids_, skip_special_tokens_);
  std::string out;
  if (text.size() > prefix_.size()) {
    size_t common = 0;
    while (common < prefix_.size() && text[common] == prefix_[common]) ++common;
    out = text.substr(common);
  }
  ids_.clear();
  prefix_.clear();
  prefix_index_ = 0;
  return out;
}

}  // namespace strata::model
