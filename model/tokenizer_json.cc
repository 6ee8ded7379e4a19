#include "model/tokenizer_json.h"

namespace strata::model::tok {
namespace {

using json = nlohmann::json;

// Adds "a b" to `merges`; InvalidArgument when there is no space.
Status AddLegacyMerge(std::string_view merge, MergeList& merges) {
  size_t space = merge.find(' ');
  if (space == std::string_view::npos) {
    return InvalidArgumentError("model BPE: merge " + std::to_string(merges.size()) + " \"" +
                                std::string(merge) + "\" is not two tokens separated by a space");
  }
  merges.Add(merge.substr(0, space), merge.substr(space + 1));
  return OkStatus();
}

// Builds the DOM like nlohmann's own SAX DOM parser, except for model.vocab / model.merges.
class Handler final : public nlohmann::json_sax<json> {
 public:
  explicit Handler(ParsedTokenizerJson& out) : out_(out) {}

  bool null() override { return Scalar(json()); }
  bool boolean(bool v) override { return Scalar(json(v)); }
  bool number_integer(number_integer_t v) override {
    if (mode_ == Mode::kVocab && nested_ == 0) return VocabEntry(v);
    return Scalar(json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == Mode::kVocab && nested_ == 0) {
      return VocabEntry(v > static_cast<uint64_t>(INT64_MAX) ? -1 : static_cast<int64_t>(v));
    }
    return Scalar(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return Scalar(json(v)); }
  bool string(string_t& v) override {
    if (mode_ == Mode::kMerges && nested_ == 0) {
      Status s = AddLegacyMerge(v, out_.tables.merges);
      if (!s.ok()) {
        Fail(std::move(s));
        out_.tables.merges.Add("", "");  // keep later merge numbers right in messages
      }
      return true;
    }
    if (mode_ == Mode::kMergePair && nested_ == 0) {
      pair_parts_.push_back(std::move(v));
      return true;
    }
    return Scalar(json(std::move(v)));
  }
  bool binary(binary_t& v) override { return Scalar(json(std::move(v))); }

  bool start_object(std::size_t) override {
    if (mode_ != Mode::kNormal) return Nested();
    if (AtModelField("vocab")) {
      Put(json());
      mode_ = Mode::kVocab;
      out_.vocab_captured = true;
      return true;
    }
    json* p = Put(json::object());
    stack_.push_back(p);
    keys_.push_back(pending_key_);
    return true;
  }
  bool key(string_t& k) override {
    if (mode_ == Mode::kVocab && nested_ == 0) {
      vocab_key_ = std::move(k);
    } else if (mode_ == Mode::kNormal) {
      pending_key_ = std::move(k);
    }
    return true;
  }
  bool end_object() override {
    if (nested_ > 0) {
      --nested_;
      return true;
    }
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kNormal;
      return true;
    }
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::kMerges && nested_ == 0) {
      mode_ = Mode::kMergePair;
      pair_parts_.clear();
      return true;
    }
    if (mode_ != Mode::kNormal) return Nested();
    if (AtModelField("merges")) {
      Put(json());
      mode_ = Mode::kMerges;
      out_.merges_captured = true;
      return true;
    }
    json* p = Put(json::array());
    stack_.push_back(p);
    keys_.push_back(pending_key_);
    return true;
  }
  bool end_array() override {
    if (nested_ > 0) {
      --nested_;
      return true;
    }
    if (mode_ == Mode::kMergePair) {
      if (pair_parts_.size() != 2) {
        Fail(InvalidArgumentError("model BPE: merge " + std::to_string(out_.tables.merges.size()) +
                                  " is not a pair of strings"));
        pair_parts_.resize(2);
      }
      out_.tables.merges.Add(pair_parts_[0], pair_parts_[1]);
      mode_ = Mode::kMerges;
      return true;
    }
    if (mode_ == Mode::kMerges) {
      mode_ = Mode::kNormal;
      return true;
    }
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    parse_error_ = ex.what();
    return false;
  }

  const std::string& parse_error_message() const { return parse_error_; }
  const Status& capture_status() const { return capture_status_; }
  json& root() { return root_; }

 private:
  enum class Mode { kNormal, kVocab, kMerges, kMergePair };

  // True when the container about to open is root.model.<field>.
  bool AtModelField(const char* field) const {
    return stack_.size() == 2 && keys_[1] == "model" && stack_[1]->is_object() &&
           pending_key_ == field;
  }
  bool Nested() {
    if (++nested_ > 1) return true;
    if (mode_ == Mode::kVocab) {
      Fail(InvalidArgumentError("model BPE: vocab entry \"" + vocab_key_ + "\" has no valid id"));
    } else {
      Fail(InvalidArgumentError("model BPE: merge " + std::to_string(out_.tables.merges.size()) +
                                " is neither \"a b\" nor [\"a\", \"b\"]"));
    }
    return true;
  }
  bool VocabEntry(int64_t id) {
    if (id < 0 || id >= INT32_MAX) {
      Fail(InvalidArgumentError("model BPE: vocab entry \"" + vocab_key_ + "\" has no valid id"));
    }
    out_.tables.vocab.emplace_back(std::move(vocab_key_), id);
    return true;
  }
  bool Scalar(json&& v) {
    if (nested_ > 0) return true;
    if (mode_ == Mode::kVocab) {
      Fail(InvalidArgumentError("model BPE: vocab entry \"" + vocab_key_ + "\" has no valid id"));
      return true;
    }
    if (mode_ == Mode::kMerges || mode_ == Mode::kMergePair) {
      Fail(InvalidArgumentError("model BPE: merge " + std::to_string(out_.tables.merges.size()) +
                                " is neither \"a b\" nor [\"a\", \"b\"]"));
      return true;
    }
    Put(std::move(v));
    return true;
  }
  json* Put(json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& top = *stack_.back();
    if (top.is_object()) {
      json& slot = top[pending_key_];
      slot = std::move(v);
      return &slot;
    }
    top.push_back(std::move(v));
    return &top.back();
  }
  void Fail(Status s) {
    if (capture_status_.ok() && !s.ok()) capture_status_ = std::move(s);
  }

  ParsedTokenizerJson& out_;
  json root_;
  std::vector<json*> stack_;
  std::vector<std::string> keys_;  // the key each open container sits under ("" in arrays)
  std::string pending_key_;
  Mode mode_ = Mode::kNormal;
  int nested_ = 0;  // containers opened inside a capture (malformed input), skipped
  std::string vocab_key_;
  std::vector<std::string> pair_parts_;
  std::string parse_error_;
  Status capture_status_;
};

}  // namespace

StatusOr<ParsedTokenizerJson> ParseTokenizerJson(std::string_view text) {
  ParsedTokenizerJson out;
  Handler handler(out);
  bool ok = json::sax_parse(text.begin(), text.end(), &handler);
  if (!ok) return DataLossError("not valid JSON: " + handler.parse_error_message());
  if (!handler.capture_status().ok()) return handler.capture_status();
  out.spec = std::move(handler.root());
  return out;
}

Status BpeTablesFromJson(const json& model, bool need_vocab, bool need_merges, BpeTables& tables) {
  if (need_vocab) {
    auto it = model.find("vocab");
    if (it == model.end() || !it->is_object()) {
      return InvalidArgumentError("model BPE: missing object \"vocab\"");
    }
    tables.vocab.reserve(it->size());
    for (auto entry = it->begin(); entry != it->end(); ++entry) {
      if (!entry.value().is_number_integer() || entry.value().get<int64_t>() < 0 ||
          entry.value().get<int64_t>() >= INT32_MAX) {
        return InvalidArgumentError("model BPE: vocab entry \"" + entry.key() +
                                    "\" has no valid id");
      }
      tables.vocab.emplace_back(entry.key(), entry.value().get<int64_t>());
    }
  }
  if (need_merges) {
    auto it = model.find("merges");
    if (it == model.end() || !it->is_array()) {
      return InvalidArgumentError("model BPE: missing array \"merges\"");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const json& m = (*it)[i];
      if (m.is_string()) {
        STRATA_RETURN_IF_ERROR(AddLegacyMerge(m.get_ref<const std::string&>(), tables.merges));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        tables.merges.Add(m[0].get_ref<const std::string&>(), m[1].get_ref<const std::string&>());
      } else {
        return InvalidArgumentError("model BPE: merge " + std::to_string(i) +
                                    " is neither \"a b\" nor [\"a\", \"b\"]");
      }
    }
  }
  return OkStatus();
}

}  // namespace strata::model::tok
