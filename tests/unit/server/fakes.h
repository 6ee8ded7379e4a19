// Test doubles for the server's two seams:
//  - ByteCodec: a TextCodec whose tokens are single bytes (ids 0..255) plus an EOS token (256)
//    and a chat "template" that writes "role: content\n" lines.
//  - ScriptedService: a GenerationService on its own thread that answers every request with a
//    scripted reply (one byte token per step), honouring max_tokens, EOS/stop_token_ids, abort,
//    deadlines, logprobs and a bounded queue. It records what it was asked.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "decode/generation.h"
#include "server/text_codec.h"

namespace strata::server::testing {

constexpr int32_t kEosId = 256;

class ByteDetokenizer : public Detokenizer {
 public:
  std::string Push(int32_t id) override {
    if (id < 0 || id > 255) return "";
    held_ += static_cast<char>(id);
    // Release every complete UTF-8 character.
    std::string out;
    size_t i = 0;
    while (i < held_.size()) {
      auto c = static_cast<unsigned char>(held_[i]);
      size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
      if (i + n > held_.size()) break;
      out.append(held_, i, n);
      i += n;
    }
    held_.erase(0, i);
    return out;
  }
  std::string Flush() override {
    std::string out = held_.empty() ? "" : "\xEF\xBF\xBD";
    held_.clear();
    return out;
  }

 private:
  std::string held_;
};

class ByteCodec : public TextCodec {
 public:
  StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool) const override {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  StatusOr<std::string> RenderChat(const nlohmann::json& messages, const nlohmann::json&,
                                   bool add_generation_prompt,
                                   const nlohmann::json&) const override {
    std::string out;
    for (const auto& m : messages) {
      out += m["role"].get<std::string>() + ": " + m["content"].get<std::string>() + "\n";
    }
    if (add_generation_prompt) out += "assistant:";
    return out;
  }
  bool chat_adds_special_tokens() const override { return false; }
  std::unique_ptr<Detokenizer> NewDetokenizer() const override {
    return std::make_unique<ByteDetokenizer>();
  }
  std::string TokenBytes(int32_t id) const override {
    if (id == kEosId) return "<eos>";
    return std::string(1, static_cast<char>(id));
  }
  std::string Decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id >= 0 && id < 256) out += static_cast<char>(id);
    }
    return out;
  }
  int vocab_size() const override { return 257; }
};

class ScriptedService : public decode::GenerationService {
 public:
  // reply(request) -> the bytes to generate; EOS follows them unless ignore_eos.
  using ReplyFn = std::function<std::string(const decode::GenerateRequest&)>;

  explicit ScriptedService(ReplyFn reply, int max_queue = 1000, int step_us = 200)
      : reply_(std::move(reply)), max_queue_(max_queue), step_us_(step_us) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~ScriptedService() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  Status Submit(decode::GenerateRequest request, EventCallback on_event) override {
    std::lock_guard lock(mu_);
    if (!ready_) return UnavailableError("not ready");
    if (static_cast<int>(active_.size()) >= max_queue_) {
      return ResourceExhaustedError("the queue is full");
    }
    submitted_.push_back(request);
    Seq s;
    s.request = request;
    s.reply = reply_(request);
    s.on_event = std::move(on_event);
    active_[request.request_id] = std::move(s);
    order_.push_back(request.request_id);
    cv_.notify_all();
    return OkStatus();
  }
  void Abort(const std::string& request_id) override {
    std::lock_guard lock(mu_);
    auto it = active_.find(request_id);
    if (it != active_.end()) it->second.aborted = true;
    aborted_ids_.push_back(request_id);
  }
  decode::GenerationStats Stats() const override {
    std::lock_guard lock(mu_);
    decode::GenerationStats s;
    s.num_running = static_cast<int>(active_.size());
    s.kv_blocks_total = 100;
    s.kv_blocks_used = static_cast<int64_t>(active_.size());
    decode::ExpertParallelStats ep;  // as a cluster's EP instance reports it
    ep.instance_id = "decode-0";
    ep.ranks = 2;
    ep.layers = 2;
    ep.tokens_received = {0, 0, 5, 7};
    ep.requests_per_rank = {3, 4};
    ep.max_mean_load_ratio = 1.25;
    ep.moe_rounds = 9;
    s.expert_parallel.push_back(ep);
    return s;
  }
  bool Ready() const override {
    std::lock_guard lock(mu_);
    return ready_;
  }

  void set_ready(bool ready) {
    std::lock_guard lock(mu_);
    ready_ = ready;
  }
  std::vector<decode::GenerateRequest> submitted() const {
    std::lock_guard lock(mu_);
    return submitted_;
  }
  std::vector<std::string> aborted_ids() const {
    std::lock_guard lock(mu_);
    return aborted_ids_;
  }
  int num_active() const {
    std::lock_guard lock(mu_);
    return static_cast<int>(active_.size());
  }

 private:
  struct Seq {
    decode::GenerateRequest request;
    std::string reply;
    EventCallback on_event;
    size_t pos = 0;
    bool aborted = false;
    bool sent_first = false;
  };

  void Loop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (active_.empty()) {
        cv_.wait(lock);
        continue;
      }
      // One step: one token for every active sequence; callbacks run without the lock.
      std::vector<std::pair<EventCallback, decode::TokenEvent>> out;
      std::vector<std::string> done;
      for (const auto& id : order_) {
        auto it = active_.find(id);
        if (it == active_.end()) continue;
        Seq& s = it->second;
        decode::TokenEvent ev;
        if (!s.sent_first) {
          ev.prompt_tokens = static_cast<int>(s.request.prompt_token_ids.size());
          s.sent_first = true;
        }
        const auto& sp = s.request.sampling;
        if (s.aborted) {
          ev.finish = decode::FinishReason::kAbort;
        } else if (s.request.deadline_ns > 0 && MonotonicNanos() > s.request.deadline_ns) {
          ev.finish = decode::FinishReason::kError;
          ev.error = DeadlineExceededError("the request ran past its deadline");
        } else {
          int32_t tok = s.pos < s.reply.size()
                            ? static_cast<unsigned char>(s.reply[s.pos])
                            : (sp.ignore_eos ? static_cast<int32_t>('.') : kEosId);
          ++s.pos;
          decode::GeneratedToken g;
          g.token_id = tok;
          g.logprob = -0.5f;
          for (int k = 0; k < sp.num_top_logprobs; ++k) {
            g.top_logprobs.push_back({k == 0 ? tok : 'a' + k, -0.5f - static_cast<float>(k)});
          }
          ev.tokens.push_back(g);
          bool stop_id = tok == kEosId;
          for (int32_t x : sp.stop_token_ids) stop_id = stop_id || x == tok;
          if (stop_id) {
            ev.finish = decode::FinishReason::kStop;
          } else if (static_cast<int>(s.pos) >= sp.max_tokens) {
            ev.finish = decode::FinishReason::kLength;
          }
        }
        if (ev.finish != decode::FinishReason::kNone) done.push_back(id);
        out.emplace_back(s.on_event, std::move(ev));
      }
      for (const auto& id : done) {
        active_.erase(id);
        std::erase(order_, id);
      }
      lock.unlock();
      for (auto& [cb, ev] : out) cb(std::move(ev));
      out.clear();
      std::this_thread::sleep_for(std::chrono::microseconds(step_us_));
      lock.lock();
    }
  }

  ReplyFn reply_;
  int max_queue_;
  int step_us_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool ready_ = true;
  std::map<std::string, Seq> active_;
  std::vector<std::string> order_;
  std::vector<decode::GenerateRequest> submitted_;
  std::vector<std::string> aborted_ids_;
  std::thread thread_;
};

}  // namespace strata::server::testing
