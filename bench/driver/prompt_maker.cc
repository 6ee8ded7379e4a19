#include "bench/driver/prompt_maker.h"

#include "model/tokenizer.h"

namespace strata::bench {
namespace {

class ModelTokenCodec : public TokenCodec {
 public:
  ModelTokenCodec(std::unique_ptr<model::Tokenizer> tokenizer, std::string dir)
      : tokenizer_(std::move(tokenizer)), dir_(std::move(dir)) {}

  StatusOr<std::vector<int32_t>> Encode(std::string_view text) const override {
    return tokenizer_->Encode(text, /*add_special_tokens=*/false);
  }
  std::string Decode(std::span<const int32_t> ids) const override {
    return tokenizer_->Decode(ids, /*skip_special_tokens=*/false);
  }
  int32_t vocab_size() const override { return tokenizer_->vocab_size(); }
  bool IsSpecial(int32_t id) const override { return tokenizer_->IsSpecial(id); }
  std::string name() const override { return dir_; }

 private:
  std::unique_ptr<model::Tokenizer> tokenizer_;
  std::string dir_;
};

constexpr int kMaxFixups = 16;
constexpr int kMaxRestarts = 20;

}  // namespace

StatusOr<std::unique_ptr<TokenCodec>> LoadTokenCodec(const std::string& dir) {
  auto tokenizer = model::Tokenizer::LoadFromDir(dir);
  if (!tokenizer.ok()) return tokenizer.status();
  return std::unique_ptr<TokenCodec>(new ModelTokenCodec(std::move(*tokenizer), dir));
}

bool PromptMaker::Usable(int32_t id) {
  if (usable_.empty()) usable_.assign(static_cast<size_t>(codec_.vocab_size()), 0);
  int8_t& state = usable_[static_cast<size_t>(id)];
  if (state == 0) {
    bool ok = !codec_.IsSpecial(id);
    if (ok) {
      int32_t one[1] = {id};
      std::string text = codec_.Decode(one);
      // Empty text, or a lone byte of a multi-byte character (decoded as U+FFFD), cannot stand
      // on its own.
      ok = !text.empty() && text.find("\xEF\xBF\xBD") == std::string::npos;
    }
    state = ok ? 1 : -1;
  }
  return state > 0;
}

std::vector<int32_t> PromptMaker::RandomIds(int count, std::mt19937_64& rng) {
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(std::max(0, count)));
  std::uniform_int_distribution<int32_t> pick(0, codec_.vocab_size() - 1);
  int misses = 0;
  while (static_cast<int>(ids.size()) < count) {
    int32_t id = pick(rng);
    if (Usable(id)) {
      ids.push_back(id);
    } else if (++misses > 1000 * (count + 1)) {
      break;  // a vocabulary of almost nothing but special tokens; Make() reports it
    }
  }
  return ids;
}

StatusOr<std::string> PromptMaker::Make(std::string_view prefix, int prefix_tokens, int num_tokens,
                                        std::mt19937_64& rng, std::span<const int32_t> seed_ids) {
  if (num_tokens < 0) return InvalidArgumentError("negative token count");
  if (num_tokens == 0) return std::string();
  if (codec_.vocab_size() <= 0) return FailedPreconditionError("the tokenizer has no vocabulary");
  const int target = prefix_tokens + num_tokens;
  std::string full(prefix);
  for (int restart = 0; restart < kMaxRestarts; ++restart) {
    std::vector<int32_t> ids;
    if (restart == 0 && !seed_ids.empty()) {
      ids.assign(seed_ids.begin(),
                 seed_ids.begin() + std::min<size_t>(seed_ids.size(), num_tokens));
    }
    if (static_cast<int>(ids.size()) < num_tokens) {
      auto more = RandomIds(num_tokens - static_cast<int>(ids.size()), rng);
      ids.insert(ids.end(), more.begin(), more.end());
    }
    for (int fix = 0; fix < kMaxFixups; ++fix) {
      std::string text = codec_.Decode(ids);
      full.resize(prefix.size());
      full += text;
      auto encoded = codec_.Encode(full);
      if (!encoded.ok()) break;  // invalid UTF-8 cannot come out of Decode; restart anyway
      int have = static_cast<int>(encoded->size());
      if (have == target) return text;
      // Continue from the re-encoded suffix so the next decode is stable, then fix the count.
      auto suffix_ids = codec_.Encode(text);
      if (!suffix_ids.ok()) break;
      ids = std::move(*suffix_ids);
      int want = static_cast<int>(ids.size()) + (target - have);
      if (want <= 0) break;
      if (want < static_cast<int>(ids.size())) {
        ids.resize(static_cast<size_t>(want));
      } else {
        auto more = RandomIds(want - static_cast<int>(ids.size()), rng);
        ids.insert(ids.end(), more.begin(), more.end());
      }
    }
  }
  return FailedPreconditionError("could not make a prompt of exactly " +
                                 std::to_string(num_tokens) + " tokens with tokenizer " +
                                 codec_.name());
}

}  // namespace strata::bench
