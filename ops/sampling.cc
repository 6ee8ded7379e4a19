#include "ops/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <unordered_set>

namespace strata::ops {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

double SamplingUniform(uint64_t seed, uint64_t step) {
  uint64_t r = SplitMix64(SplitMix64(seed) ^ SplitMix64(step + 0x5851f42d4c957f2dull));
  return static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);
}

Status ValidateSamplingOptions(const SamplingOptions& o) {
  if (!(o.temperature >= 0.0f) || !std::isfinite(o.temperature)) {
    return InvalidArgumentError("temperature must be >= 0");
  }
  if (!(o.top_p > 0.0f && o.top_p <= 1.0f)) return InvalidArgumentError("top_p must be in (0, 1]");
  if (o.top_k < -1) return InvalidArgumentError("top_k must be -1 (off) or >= 0");
  if (!(o.min_p >= 0.0f && o.min_p <= 1.0f)) return InvalidArgumentError("min_p must be in [0, 1]");
  if (!(o.repetition_penalty > 0.0f) || !std::isfinite(o.repetition_penalty)) {
    return InvalidArgumentError("repetition_penalty must be > 0");
  }
  if (!std::isfinite(o.presence_penalty) || !std::isfinite(o.frequency_penalty)) {
    return InvalidArgumentError("presence_penalty and frequency_penalty must be finite");
  }
  if (o.num_top_logprobs < -1) return InvalidArgumentError("num_top_logprobs must be >= -1");
  return OkStatus();
}

SampledToken SampleToken(std::span<const float> logits, const SamplingOptions& o,
                         std::span<const int32_t> prompt, std::span<const int32_t> output,
                         uint64_t step) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  std::vector<float> l(logits.begin(), logits.end());
  auto valid = [&](int32_t id) { return id >= 0 && id < vocab; };
  if (o.repetition_penalty != 1.0f) {
    std::unordered_set<int32_t> seen;
    for (int32_t id : prompt) seen.insert(id);
    for (int32_t id : output) seen.insert(id);
    for (int32_t id : seen) {
      if (!valid(id)) continue;
      l[id] = l[id] > 0 ? l[id] / o.repetition_penalty : l[id] * o.repetition_penalty;
    }
  }
  if (o.presence_penalty != 0.0f || o.frequency_penalty != 0.0f) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t id : output) ++counts[id];
    for (auto [id, n] : counts) {
      if (!valid(id)) continue;
      l[id] -= o.frequency_penalty * static_cast<float>(n) + o.presence_penalty;
    }
  }

  SampledToken result;
  if (o.temperature == 0.0f || o.top_k == 1) {
    result.token_id = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
  } else {
    // Candidates, best first.
    std::vector<int32_t> ids(vocab);
    std::iota(ids.begin(), ids.end(), 0);
    auto better = [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
    int64_t keep = vocab;
    if (o.top_k > 0 && o.top_k < vocab) {
      keep = o.top_k;
      std::partial_sort(ids.begin(), ids.begin() + keep, ids.end(), better);
      ids.resize(keep);
    } else if (o.top_p < 1.0f) {
      std::sort(ids.begin(), ids.end(), better);
    }
    float mx = -std::numeric_limits<float>::infinity();
    for (int32_t id : ids) mx = std::max(mx, l[id]);
    std::vector<double> p(ids.size());
    double total = 0.0;
    for (size_t i = 0; i < ids.size(); ++i) {
      p[i] = std::exp(static_cast<double>(l[ids[i]] - mx) / o.temperature);
      total += p[i];
    }
    size_t n = ids.size();
    if (o.top_p < 1.0f) {  // ids are sorted here
      double cum = 0.0;
      size_t i = 0;
      while (i < n) {
        cum += p[i];
        ++i;
        if (cum >= o.top_p * total) break;
      }
      n = i;
    }
    if (o.min_p > 0.0f) {
      double pmax = 0.0;
      for (size_t i = 0; i < n; ++i) pmax = std::max(pmax, p[i]);
      double threshold = o.min_p * pmax;
      size_t w = 0;
      for (size_t i = 0; i < n; ++i) {
        if (p[i] >= threshold) {
          ids[w] = ids[i];
          p[w] = p[i];
          ++w;
        }
      }
      n = w;
    }
    double mass = 0.0;
    for (size_t i = 0; i < n; ++i) mass += p[i];
    double target = SamplingUniform(o.seed, step) * mass;
    size_t chosen = n - 1;
    double cum = 0.0;
    for (size_t i = 0; i < n; ++i) {
      cum += p[i];
      if (target < cum) {
        chosen = i;
        break;
      }
    }
    result.token_id = ids[chosen];
  }

  if (o.num_top_logprobs >= 0) {
    float mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0.0;
    for (float v : logits) sum += std::exp(static_cast<double>(v - mx));
    const float log_z = mx + static_cast<float>(std::log(sum));
    result.logprob = logits[result.token_id] - log_z;
    int64_t n = std::min<int64_t>(o.num_top_logprobs, vocab);
    if (n > 0) {
      std::vector<int32_t> ids(vocab);
      std::iota(ids.begin(), ids.end(), 0);
      std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
      });
      for (int64_t i = 0; i < n; ++i)
        result.top_logprobs.push_back({ids[i], logits[ids[i]] - log_z});
    }
  }
  return result;
}

}  // namespace strata::ops
