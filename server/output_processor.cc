#include "server/output_processor.h"

#include <algorithm>

namespace strata::server {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when invalid.
size_t Utf8SequenceLength(const std::string& s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return 0;
  }
  return n;
}

}  // namespace

std::string TokenDisplayText(const std::string& bytes) {
  std::string out;
  static const char* kHex = "0123456789abcdef";
  for (size_t i = 0; i < bytes.size();) {
    size_t n = Utf8SequenceLength(bytes, i);
    if (n > 0) {
      out.append(bytes, i, n);
      i += n;
    } else {
      auto c = static_cast<unsigned char>(bytes[i]);
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
      ++i;
    }
  }
  return out;
}

OutputProcessor::OutputProcessor(int index, const TextCodec& codec, std::vector<std::string> stop,
                                 bool want_logprobs, int text_offset_base)
    : index_(index),
      codec_(codec),
      detok_(codec.NewDetokenizer()),
      stop_(std::move(stop)),
      want_logprobs_(want_logprobs),
      text_offset_base_(text_offset_base),
      text_len_(text_offset_base) {}

TokenLogprobText OutputProcessor::LogprobText(int32_t token_id, std::optional<float> logprob,
                                              const std::vector<decode::TokenLogprob>& top) const {
  TokenLogprobText out;
  out.bytes = codec_.TokenBytes(token_id);
  out.text = TokenDisplayText(out.bytes);
  out.logprob = logprob;
  for (const auto& alt : top) {
    std::string bytes = codec_.TokenBytes(alt.token_id);
    out.top.emplace_back(TokenDisplayText(bytes), alt.logprob);
    out.top_bytes.push_back(std::move(bytes));
  }
  return out;
}

ChoiceOutput OutputProcessor::PromptLogprobs(
    std::span<const int32_t> prompt, const std::vector<decode::GeneratedToken>& logprobs) const {
  ChoiceOutput out;
  out.index = index_;
  out.has_logprobs = true;
  auto detok = codec_.NewDetokenizer();
  int offset = 0;
  static const std::vector<decode::TokenLogprob> kNoTop;
  for (size_t i = 0; i < prompt.size(); ++i) {
    const decode::GeneratedToken* lp =
        i > 0 && i - 1 < logprobs.size() ? &logprobs[i - 1] : nullptr;
    out.logprobs.push_back(LogprobText(prompt[i],
                                       lp ? std::optional<float>(lp->logprob) : std::nullopt,
                                       lp ? lp->top_logprobs : kNoTop));
    // The echoed text may be the caller's own string, not the decoded ids: stay inside it.
    out.text_offsets.push_back(std::min(offset, text_offset_base_));
    offset += static_cast<int>(detok->Push(prompt[i]).size());
  }
  return out;
}

void OutputProcessor::Release(std::string* out, bool all) {
  size_t keep = 0;
  if (!all) {
    // The longest suffix of pending_ that is a proper prefix of some stop string.
    for (const auto& s : stop_) {
      size_t max_len = std::min(s.size() - 1, pending_.size());
      for (size_t len = max_len; len > keep; --len) {
        if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
          keep = len;
          break;
        }
      }
    }
  }
  out->append(pending_, 0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
}

ChoiceOutput OutputProcessor::Push(const std::vector<decode::GeneratedToken>& tokens,
                                   decode::FinishReason finish) {
  ChoiceOutput delta;
  delta.index = index_;
  delta.has_logprobs = want_logprobs_;
  if (finished_) return delta;
  for (const auto& t : tokens) {
    ++num_tokens_;
    std::string text = detok_->Push(t.token_id);
    if (want_logprobs_) {
      delta.logprobs.push_back(LogprobText(t.token_id, t.logprob, t.top_logprobs));
      delta.text_offsets.push_back(text_len_);
    }
    text_len_ += static_cast<int>(text.size());
    pending_ += text;
    // A stop string cannot start in text already sent (that text was held back), so searching
    // pending_ finds every occurrence.
    size_t best = std::string::npos;
    for (const auto& s : stop_) best = std::min(best, pending_.find(s));
    if (best != std::string::npos) {
      delta.text += pending_.substr(0, best);
      pending_.clear();
      finished_ = true;
      stopped_by_string_ = true;
      delta.finish = decode::FinishReason::kStop;
      return delta;
    }
  }
  if (finish != decode::FinishReason::kNone) {
    pending_ += detok_->Flush();
    size_t best = std::string::npos;
    for (const auto& s : stop_) best = std::min(best, pending_.find(s));
    if (best != std::string::npos) {
      pending_.resize(best);
      stopped_by_string_ = true;
      finish = decode::FinishReason::kStop;
    }
    Release(&delta.text, /*all=*/true);
    finished_ = true;
    delta.finish = finish;
    return delta;
  }
  Release(&delta.text, /*all=*/false);
  return delta;
}

}  // namespace strata::server
