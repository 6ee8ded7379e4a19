#include "bench/driver/fake_server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/clock.h"

namespace strata::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

class FakeOpenAiServer::Impl {
 public:
  explicit Impl(FakeServerOptions options) : options_(std::move(options)), acceptor_(io_) {}

  Status Listen() {
    error_code ec;
    auto address = asio::ip::make_address(options_.host, ec);
    if (ec) return InvalidArgumentError("fake server: bad host '" + options_.host + "'");
    tcp::endpoint ep(address, options_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return UnavailableError("fake server: cannot listen on " + options_.host + ":" +
                              std::to_string(options_.port) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    for (int i = 0; i < std::max(1, options_.num_threads); ++i) {
      threads_.emplace_back([this] { io_.run(); });
    }
    return OkStatus();
  }

  void Stop() {
    asio::post(io_, [this] {
      error_code ignored;
      acceptor_.close(ignored);
    });
    io_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  void Accept();

  const FakeServerOptions options_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<int64_t> num_generation_requests_{0};
  std::atomic<int64_t> num_client_disconnects_{0};
  std::atomic<int64_t> num_connections_{0};
  mutable std::mutex send_times_mu_;
  std::unordered_map<std::string, std::vector<int64_t>> send_times_;
};

namespace {

int CountWords(std::string_view s) {
  int n = 0;
  bool in_word = false;
  for (char c : s) {
    bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

void AppendChunk(std::string& out, std::string_view payload) {
  char head[24];
  int n = std::snprintf(head, sizeof(head), "%zx\r\n", payload.size());
  out.append(head, static_cast<size_t>(n));
  out.append(payload);
  out.append("\r\n");
}

void AppendEvent(std::string& out, std::string_view json) {
  std::string event;
  event.reserve(json.size() + 8);
  event.append("data: ").append(json).append("\n\n");
  AppendChunk(out, event);
}

// One keep-alive connection: read a request, answer it, read the next.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, FakeOpenAiServer::Impl* server)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), server_(server) {}

  void Read() {
    request_ = {};
    http::async_read(socket_, buffer_, request_,
                     [self = shared_from_this()](const error_code& ec, size_t) {
                       if (ec) return;  // closed or garbage: drop the connection
                       self->Handle();
                     });
  }

 private:
  void WriteAndContinue(std::string bytes) {
    out_ = std::move(bytes);
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](const error_code& ec, size_t) {
                        if (!ec) self->Read();
                      });
  }

  void Reply(int status, std::string_view content_type, const std::string& body) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Error") +
                      "\r\nContent-Type: " + std::string(content_type) +
                      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    WriteAndContinue(std::move(out));
  }

  void ReplyError(int status, const std::string& message) {
    nlohmann::json j = {
        {"error", {{"message", message}, {"type", "fake_error"}, {"code", status}}}};
    Reply(status, "application/json", j.dump());
  }

  void Handle() {
    start_ns_ = MonotonicNanos();
    std::string target(request_.target());
    if (request_.method() == http::verb::get && target == "/version") {
      Reply(200, "application/json", R"({"version":"fake-openai-server"})");
      return;
    }
    if (request_.method() == http::verb::get && target == "/v1/models") {
      Reply(200, "application/json",
            R"({"object":"list","data":[{"id":"fake","object":"model"}]})");
      return;
    }
    bool chat = target == "/v1/chat/completions";
    if (request_.method() != http::verb::post || (!chat && target != "/v1/completions")) {
      ReplyError(404, "no route " + target);
      return;
    }
    int64_t nth = ++server_->num_generation_requests_;
    const auto& opt = server_->options_;
    if (opt.fail_every > 0 && nth % opt.fail_every == 0) {
      ReplyError(500, "injected failure");
      return;
    }
    auto body = nlohmann::json::parse(request_.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      ReplyError(400, "body is not a JSON object");
      return;
    }
    chat_ = chat;
    model_ = body.value("model", std::string("fake"));
    prompt_tokens_ = 0;
    if (chat && body.contains("messages") && body["messages"].is_array()) {
      for (const auto& m : body["messages"]) {
        if (m.is_object() && m.contains("content") && m["content"].is_string()) {
          prompt_tokens_ += CountWords(m["content"].get_ref<const std::string&>());
        }
      }
    } else if (body.contains("prompt") && body["prompt"].is_string()) {
      prompt_tokens_ = CountWords(body["prompt"].get_ref<const std::string&>());
    }
    num_tokens_ = opt.tokens_per_response;
    if (num_tokens_ <= 0) {
      num_tokens_ = 16;
      for (const char* key : {"max_completion_tokens", "max_tokens"}) {
        if (body.contains(key) && body[key].is_number_integer()) num_tokens_ = body[key].get<int>();
      }
    }
    include_usage_ = body.contains("stream_options") && body["stream_options"].is_object() &&
                     body["stream_options"].value("include_usage", false);
    stream_error_ = opt.stream_error_every > 0 && nth % opt.stream_error_every == 0;
    auto id_field = request_.find("X-Request-Id");
    request_id_ = id_field == request_.end() ? "" : std::string(id_field->value());
    if (!body.value("stream", false)) {
      ReplyWhole();
      return;
    }
    std::string out =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    bool no_delays = opt.first_token_delay_us == 0;
    for (int64_t d : opt.inter_token_delays_us) no_delays = no_delays && d == 0;
    if (no_delays && !opt.record_send_times) {
      for (int i = 0; i < num_tokens_ && !(stream_error_ && i == 1); ++i) AppendTokenEvent(out, i);
      AppendTail(out);
      WriteAndContinue(std::move(out));
      return;
    }
    // Timed: headers now, then each token at its scheduled time with a blocking write (a small
    // write to a socket with room never blocks) so the recorded time is the write's.
    error_code ec;
    asio::write(socket_, asio::buffer(out), ec);
    if (ec) return;
    next_token_ = 0;
    next_due_ns_ = start_ns_ + opt.first_token_delay_us * 1000;
    ScheduleToken();
  }

  void ScheduleToken() {
    timer_.expires_at(MonoClock::time_point(std::chrono::nanoseconds(next_due_ns_)));
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->SendToken();
    });
  }

  void SendToken() {
    const auto& opt = server_->options_;
    std::string out;
    bool last = next_token_ + 1 >= num_tokens_ || (stream_error_ && next_token_ == 1);
    if (stream_error_ && next_token_ == 1) {
      AppendTail(out);
    } else {
      AppendTokenEvent(out, next_token_);
      if (last) AppendTail(out);
    }
    // Recorded before the write: once written, the client may see the token, finish, and
    // ask for the send times before this thread runs again (on a busy machine it did).
    if (opt.record_send_times && !request_id_.empty()) {
      std::lock_guard<std::mutex> lock(server_->send_times_mu_);
      server_->send_times_[request_id_].push_back(MonotonicNanos());
    }
    error_code ec;
    asio::write(socket_, asio::buffer(out), ec);
    if (ec) {
      ++server_->num_client_disconnects_;
      return;
    }
    if (last) {
      Read();
      return;
    }
    int64_t gap_us = opt.inter_token_delays_us.empty()
                         ? 0
                         : opt.inter_token_delays_us[static_cast<size_t>(next_token_) %
                                                     opt.inter_token_delays_us.size()];
    ++next_token_;
    next_due_ns_ += gap_us * 1000;
    ScheduleToken();
  }

  void AppendTokenEvent(std::string& out, int index) {
    const auto& opt = server_->options_;
    bool last = index + 1 == num_tokens_;
    const char* finish = last ? "\"length\"" : "null";
    std::string json;
    json.reserve(256);
    if (chat_) {
      json = R"({"id":"chatcmpl-fake","object":"chat.completion.chunk","created":0,"model":")" +
             model_ + R"(","choices":[{"index":0,"delta":{)" +
             (index == 0 ? R"("role":"assistant",)" : "") + R"("content":")" + opt.token_text +
             R"("},"finish_reason":)" + finish + "}]}";
    } else {
      json = R"({"id":"cmpl-fake","object":"text_completion","created":0,"model":")" + model_ +
             R"(","choices":[{"index":0,"text":")" + opt.token_text + R"(","finish_reason":)" +
             finish + "}]}";
    }
    AppendEvent(out, json);
  }

  // Error event (when injected), usage, [DONE], end of the chunked body.
  void AppendTail(std::string& out) {
    if (stream_error_) {
      AppendEvent(out, R"({"error":{"message":"injected stream error","type":"fake_error"}})");
    } else if (include_usage_) {
      AppendEvent(out, R"({"id":"fake","choices":[],"usage":{"prompt_tokens":)" +
                           std::to_string(prompt_tokens_) + R"(,"completion_tokens":)" +
                           std::to_string(num_tokens_) + R"(,"total_tokens":)" +
                           std::to_string(prompt_tokens_ + num_tokens_) +
                           R"(,"prompt_tokens_details":{"cached_tokens":)" +
                           std::to_string(server_->options_.cached_tokens) + "}}}");
    }
    AppendEvent(out, "[DONE]");
    out.append("0\r\n\r\n");
  }

  void ReplyWhole() {
    std::string text;
    for (int i = 0; i < num_tokens_; ++i) text += server_->options_.token_text;
    nlohmann::json usage = {{"prompt_tokens", prompt_tokens_},
                            {"completion_tokens", num_tokens_},
                            {"total_tokens", prompt_tokens_ + num_tokens_}};
    nlohmann::json j;
    if (chat_) {
      j = {{"id", "chatcmpl-fake"},
           {"object", "chat.completion"},
           {"model", model_},
           {"choices",
            {{{"index", 0},
              {"message", {{"role", "assistant"}, {"content", text}}},
              {"finish_reason", "length"}}}},
           {"usage", usage}};
    } else {
      j = {{"id", "cmpl-fake"},
           {"object", "text_completion"},
           {"model", model_},
           {"choices", {{{"index", 0}, {"text", text}, {"finish_reason", "length"}}}},
           {"usage", usage}};
    }
    Reply(200, "application/json", j.dump());
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  FakeOpenAiServer::Impl* server_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  std::string out_;
  int64_t start_ns_ = 0;
  bool chat_ = false;
  bool include_usage_ = false;
  bool stream_error_ = false;
  std::string model_;
  std::string request_id_;
  int prompt_tokens_ = 0;
  int num_tokens_ = 0;
  int next_token_ = 0;
  int64_t next_due_ns_ = 0;
};

}  // namespace

void FakeOpenAiServer::Impl::Accept() {
  acceptor_.async_accept([this](const error_code& ec, tcp::socket socket) {
    if (ec) return;  // closed
    ++num_connections_;
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::make_shared<Session>(std::move(socket), this)->Read();
    Accept();
  });
}

StatusOr<std::unique_ptr<FakeOpenAiServer>> FakeOpenAiServer::Start(FakeServerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  STRATA_RETURN_IF_ERROR(impl->Listen());
  return std::unique_ptr<FakeOpenAiServer>(new FakeOpenAiServer(std::move(impl)));
}

FakeOpenAiServer::FakeOpenAiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FakeOpenAiServer::~FakeOpenAiServer() { Stop(); }

uint16_t FakeOpenAiServer::port() const { return impl_->port_; }
std::string FakeOpenAiServer::base_url() const {
  return "http://" + impl_->options_.host + ":" + std::to_string(impl_->port_);
}
void FakeOpenAiServer::Stop() {
  if (!impl_->threads_.empty()) impl_->Stop();
}
int64_t FakeOpenAiServer::num_generation_requests() const {
  return impl_->num_generation_requests_.load();
}
int64_t FakeOpenAiServer::num_client_disconnects() const {
  return impl_->num_client_disconnects_.load();
}
int64_t FakeOpenAiServer::num_connections() const { return impl_->num_connections_.load(); }
std::vector<int64_t> FakeOpenAiServer::SendTimes(const std::string& request_id) const {
  std::lock_guard<std::mutex> lock(impl_->send_times_mu_);
  auto it = impl_->send_times_.find(request_id);
  return it == impl_->send_times_.end() ? std::vector<int64_t>{} : it->second;
}

}  // namespace strata::bench
