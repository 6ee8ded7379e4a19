// Tokenizer benchmark: LoadFromDir time and single-thread Encode / Decode throughput for the real
// DeepSeek-V3, Qwen3 and Llama 3 tokenizer files, written as JSON with the git SHA and CPU model.
//
// Usage: tokenizer_bench [--tokenizers DIR] [--out FILE] [--reps N]
//   DIR defaults to .cache/test-assets/tokenizers (scripts/fetch-test-assets), FILE to
//   bench/results/tokenizer.json.
//
// Encode runs per document (~4 KiB prompts) on two inputs: "mixed" (prose in several languages,
// code, JSON, emoji, numbers; words recur as in real text, so the BPE word cache hits) and
// "unique_words" (random pseudo-words that almost never repeat: BPE merges on every word).
#include <nlohmann/json.hpp>

#include <time.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "common/version.h"
#include "model/tokenizer.h"
#include "ops/cpu/cpu_features.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// CPU time of this thread: on a shared machine wall time includes waiting for a core.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

const char* const kParagraphs[] = {
    "The quick brown fox jumps over the lazy dog. In 2024, researchers released 3 new models "
    "with 671B parameters; they're trained on 14.8T tokens and it's said they'll scale further. ",
    "大规模混合专家模型在推理时只激活一部分参数，因此吞吐量更高。我们在两台服务器上测试了解码速度，"
    "结果显示每秒可以生成一千九百多个词元。",
    "東京の天気は晴れです。明日は雨が降るかもしれません。カタカナとひらがなを混ぜて書きます。",
    "Привет, мир! Это пример текста на русском языке с числами 12345 и знаками препинания.",
    "مرحبا بالعالم، هذا نص تجريبي باللغة العربية يحتوي على أرقام ١٢٣ وعلامات ترقيم.",
    "def attention(q, k, v, mask=None):\n    scores = q @ k.transpose(-2, -1) / "
    "math.sqrt(q.size(-1))"
    "\n    if mask is not None:\n        scores = scores.masked_fill(mask == 0, -1e9)\n"
    "    return torch.softmax(scores, dim=-1) @ v\n\n",
    "{\"model\": \"deepseek-v3\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}], "
    "\"temperature\": 0.7, \"max_tokens\": 256, \"stream\": true}\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\t// dot product\n}\n",
    "Great job 👍🏽 — see you at 10:30 🙂 #launch 🚀🚀 (50% faster!!!) "
    "👨‍👩‍👧‍👦\n\n",
};

std::vector<std::string> MixedDocuments(size_t total_bytes) {
  std::vector<std::string> docs;
  std::mt19937 rng(7);
  size_t bytes = 0;
  const size_t n = sizeof(kParagraphs) / sizeof(kParagraphs[0]);
  while (bytes < total_bytes) {
    std::string doc;
    while (doc.size() < 4096) doc += kParagraphs[rng() % n];
    bytes += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

std::vector<std::string> UniqueWordDocuments(size_t total_bytes) {
  std::vector<std::string> docs;
  std::mt19937 rng(11);
  const char* const syllables[] = {"ka",  "lo",  "mi", "stra", "ne", "qu",  "ox", "ir", "te", "vu",
                                   "bri", "zel", "ph", "an",   "ue", "dro", "gy", "ck", "ss", "wo"};
  size_t bytes = 0;
  while (bytes < total_bytes) {
    std::string doc;
    while (doc.size() < 4096) {
      int len = 2 + static_cast<int>(rng() % 5);
      doc += ' ';
      for (int i = 0; i < len; ++i) doc += syllables[rng() % 20];
      if (rng() % 9 == 0) doc += std::to_string(rng() % 100000);
      if (rng() % 11 == 0) doc += ". ";
    }
    bytes += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

struct EncodeResult {
  double mb_per_s = 0;      // wall
  double cpu_mb_per_s = 0;  // per second of this thread's CPU time
  double tokens_per_s = 0;
  double decode_mb_per_s = 0;
};

EncodeResult MeasureEncode(const strata::model::Tokenizer& tok,
                           const std::vector<std::string>& docs, int reps) {
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  EncodeResult best;
  std::vector<std::vector<int32_t>> all_ids(docs.size());
  for (int r = 0; r < reps; ++r) {
    size_t tokens = 0;
    double c0 = ThreadCpuSeconds();
    auto t0 = Clock::now();
    for (size_t i = 0; i < docs.size(); ++i) {
      auto ids = tok.Encode(docs[i]);
      if (!ids.ok()) {
        std::cerr << "encode failed: " << ids.status().ToString() << "\n";
        std::exit(1);
      }
      tokens += ids->size();
      all_ids[i] = std::move(*ids);
    }
    double s = Seconds(t0, Clock::now());
    double cpu_s = ThreadCpuSeconds() - c0;
    best.mb_per_s = std::max(best.mb_per_s, bytes / s / 1e6);
    best.cpu_mb_per_s = std::max(best.cpu_mb_per_s, bytes / cpu_s / 1e6);
    best.tokens_per_s = std::max(best.tokens_per_s, tokens / s);
    t0 = Clock::now();
    size_t decoded = 0;
    for (const auto& ids : all_ids) decoded += tok.Decode(ids).size();
    s = Seconds(t0, Clock::now());
    best.decode_mb_per_s = std::max(best.decode_mb_per_s, decoded / s / 1e6);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = ".cache/test-assets/tokenizers";
  std::string out_path = "bench/results/tokenizer.json";
  int reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--tokenizers")) {
      dir = argv[i + 1];
    } else if (!std::strcmp(argv[i], "--out")) {
      out_path = argv[i + 1];
    } else if (!std::strcmp(argv[i], "--reps")) {
      reps = std::max(1, std::atoi(argv[i + 1]));
    } else {
      std::cerr << "tokenizer_bench: unknown flag " << argv[i] << "\n";
      return 2;
    }
  }
  const auto mixed = MixedDocuments(4 << 20);
  const auto unique_words = UniqueWordDocuments(2 << 20);
  const auto& cpu = strata::ops::GetCpuFeatures();
  nlohmann::json report;
  report["benchmark"] = "tokenizer";
  report["git_sha"] = strata::kGitSha;
  report["cpu"] = {{"model", cpu.model_name}, {"cores", cpu.num_cores}};
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  report["date"] = date;
  report["settings"] = {{"reps", reps},
                        {"threads", 1},
                        {"document_bytes", 4096},
                        {"mixed_bytes", 4 << 20},
                        {"unique_words_bytes", 2 << 20},
                        {"figure", "best of reps; load is the median"},
                        {"note",
                         "wall figures include waiting for a core on a shared machine; "
                         "*_cpu_* figures count this thread's CPU time only"}};
  for (const char* name : {"deepseek_v3", "qwen3", "llama3"}) {
    std::vector<double> load_s, load_cpu_s;
    std::unique_ptr<strata::model::Tokenizer> tok;
    for (int r = 0; r < reps; ++r) {
      tok.reset();
      double c0 = ThreadCpuSeconds();
      auto t0 = Clock::now();
      auto loaded = strata::model::Tokenizer::LoadFromDir(dir + "/" + name);
      load_s.push_back(Seconds(t0, Clock::now()));
      load_cpu_s.push_back(ThreadCpuSeconds() - c0);
      if (!loaded.ok()) {
        std::cerr << "load failed: " << loaded.status().ToString() << "\n";
        return 1;
      }
      tok = std::move(*loaded);
    }
    std::sort(load_s.begin(), load_s.end());
    std::sort(load_cpu_s.begin(), load_cpu_s.end());
    // A fresh tokenizer per input, so the word cache starts cold for each.
    EncodeResult m = MeasureEncode(*tok, mixed, reps);
    tok = std::move(*strata::model::Tokenizer::LoadFromDir(dir + "/" + name));
    EncodeResult u = MeasureEncode(*tok, unique_words, 1);
    report["results"][name] = {
        {"load_ms_min", load_s.front() * 1e3},
        {"load_ms_median", load_s[load_s.size() / 2] * 1e3},
        {"load_cpu_ms_min", load_cpu_s.front() * 1e3},
        {"load_cpu_ms_median", load_cpu_s[load_cpu_s.size() / 2] * 1e3},
        {"encode_mixed_mb_per_s", m.mb_per_s},
        {"encode_mixed_mb_per_cpu_s", m.cpu_mb_per_s},
        {"encode_mixed_tokens_per_s", m.tokens_per_s},
        {"decode_mixed_mb_per_s", m.decode_mb_per_s},
        {"encode_unique_words_mb_per_s", u.mb_per_s},
        {"encode_unique_words_mb_per_cpu_s", u.cpu_mb_per_s},
    };
    std::printf(
        "%-12s load %.0f ms wall / %.0f ms cpu (median); encode mixed %.2f MB/s wall, %.2f MB/s "
        "per cpu-s (%.0f tok/s); unique words %.2f / %.2f MB/s; decode %.1f MB/s\n",
        name, load_s[load_s.size() / 2] * 1e3, load_cpu_s[load_cpu_s.size() / 2] * 1e3, m.mb_per_s,
        m.cpu_mb_per_s, m.tokens_per_s, u.mb_per_s, u.cpu_mb_per_s, m.decode_mb_per_s);
  }
  std::ofstream out(out_path);
  if (!out) {
    std::cerr << "tokenizer_bench: cannot write " << out_path << "\n";
    return 1;
  }
  out << report.dump(2) << "\n";
  return 0;
}
