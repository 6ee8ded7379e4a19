#include "bench/driver/stream_connection.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bench/driver/chunk_scan.h"
#include "bench/driver/rx_timestamp.h"
#include "common/clock.h"

namespace strata::bench {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

namespace {
constexpr size_t kReadChunkBytes = 64 << 10;
constexpr size_t kMaxErrorBodyBytes = 4096;
}  // namespace

// Feeds response pieces straight from our read buffer to the connection (no body copy).
class StreamConnection::Parser : public http::basic_parser<false> {
 public:
  explicit Parser(StreamConnection* owner) : owner_(owner) {
    eager(true);
    body_limit(boost::none);
  }

 private:
  void on_request_impl(http::verb, boost::beast::string_view, boost::beast::string_view, int,
                       error_code&) override {}
  void on_response_impl(int code, boost::beast::string_view, int, error_code&) override {
    owner_->OnStatus(code);
  }
  void on_field_impl(http::field, boost::beast::string_view, boost::beast::string_view,
                     error_code&) override {}
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  size_t on_body_impl(boost::beast::string_view body, error_code& ec) override {
    if (!owner_->OnBody({body.data(), body.size()})) ec = http::error::bad_chunk;
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view, error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                            error_code& ec) override {
    if (!owner_->OnBody({body.data(), body.size()})) ec = http::error::bad_chunk;
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  StreamConnection* owner_;
};

StreamConnection::StreamConnection(asio::io_context& io, asio::ip::tcp::endpoint server,
                                   StreamObserver* observer, bool kernel_timestamps)
    : socket_(io),
      server_(server),
      timer_(io),
      observer_(observer),
      kernel_timestamps_(kernel_timestamps) {
  buf_.resize(2 * kReadChunkBytes);
}

StreamConnection::~StreamConnection() = default;

void StreamConnection::Start(StreamRequest request) {
  request_ = std::move(request);
  record_ = request_.record;
  ++generation_;
  running_ = true;
  reusable_ = false;
  reused_ = connected_;
  retried_ = false;
  saw_done_ = false;
  stream_error_.clear();
  error_body_.clear();
  bytes_received_ = 0;
  last_token_ns_ = 0;
  usage_completion_tokens_ = -1;
  rd_ = wr_ = 0;
  sse_.Reset();
  parser_ = std::make_unique<Parser>(this);
  record_->send_ns = MonotonicNanos();
  if (request_.timeout_ns > 0) {
    timer_.expires_after(std::chrono::nanoseconds(request_.timeout_ns));
    timer_.async_wait([self = shared_from_this(), gen = generation_](const error_code& ec) {
      if (ec || gen != self->generation_ || !self->running_) return;
      self->Finish("timeout after " + std::to_string(self->request_.timeout_ns / 1000000) + " ms",
                   false);
    });
  }
  if (connected_) {
    Write();
  } else {
    Connect();
  }
}

void StreamConnection::Connect() {
  error_code ignored;
  socket_.close(ignored);
  socket_.async_connect(server_,
                        [self = shared_from_this(), gen = generation_](const error_code& ec) {
                          if (gen != self->generation_ || !self->running_) return;
                          if (ec) {
                            self->Finish("connect: " + ec.message(), false);
                            return;
                          }
                          self->connected_ = true;
                          error_code ignored;
                          self->socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
                          self->Write();
                        });
}

void StreamConnection::Write() {
  asio::async_write(socket_, asio::buffer(request_.http_bytes),
                    [self = shared_from_this(), gen = generation_](const error_code& ec, size_t) {
                      if (gen != self->generation_ || !self->running_) return;
                      if (ec) {
                        if (!self->MaybeRetry()) self->Finish("write: " + ec.message(), false);
                        return;
                      }
                    });
  // Reading starts at once: a server may answer (e.g. 413) before it has read the whole body.
  ReadSome();
}

void StreamConnection::EnableKernelTimestamps() {
  if (!kernel_timestamps_) return;
  // Without them the time the read returned is used.
  kernel_timestamps_ = EnableRxTimestamps(socket_.native_handle());
}

void StreamConnection::ReadSome() {
  auto self = shared_from_this();  // Finish() may hand the last reference away
  uint64_t generation = generation_;
  // Read while data is there (a few times, to stay fair to this thread's other connections),
  // then wait for more.
  for (int i = 0; i < 8; ++i) {
    if (rd_ == wr_) {
      rd_ = wr_ = 0;
    } else if (buf_.size() - wr_ < kReadChunkBytes) {
      // Keep the unparsed tail (an incomplete header or chunk size line) at the front.
      std::memmove(buf_.data(), buf_.data() + rd_, wr_ - rd_);
      wr_ -= rd_;
      rd_ = 0;
      if (buf_.size() - wr_ < kReadChunkBytes) buf_.resize(wr_ + 2 * kReadChunkBytes);
    }
    int64_t now = MonotonicNanos();
    int64_t rx = now;
    ssize_t n = kernel_timestamps_ ? RecvTimestamped(socket_.native_handle(), buf_.data() + wr_,
                                                     buf_.size() - wr_, now, &rx)
                                   : ::recv(socket_.native_handle(), buf_.data() + wr_,
                                            buf_.size() - wr_, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    error_code ec;
    if (n < 0) {
      ec = error_code(errno, boost::system::system_category());
    } else if (n == 0) {
      ec = asio::error::eof;
    }
    now_ns_ = std::min(rx, now);
    if (!OnRead(ec, n > 0 ? static_cast<size_t>(n) : 0, generation)) return;
  }
  socket_.async_wait(asio::ip::tcp::socket::wait_read, [self, generation](const error_code& ec) {
    if (generation != self->generation_ || !self->running_) return;
    if (ec) {
      self->now_ns_ = MonotonicNanos();
      self->OnRead(ec, 0, generation);
      return;
    }
    self->ReadSome();
  });
}

bool StreamConnection::OnRead(const error_code& ec, size_t n, uint64_t generation) {
  if (generation != generation_ || !running_) return false;
  if (ec) {
    if (MaybeRetry()) return false;
    if (ec == asio::error::eof) {
      error_code put_ec;
      parser_->put_eof(put_ec);
      if (!put_ec && parser_->is_done()) {
        Finish(stream_error_, false);
        return false;
      }
      Finish(bytes_received_ == 0 ? "connection closed before a response"
                                  : "connection closed mid-response",
             false);
      return false;
    }
    Finish("read: " + ec.message(), false);
    return false;
  }
  bytes_received_ += static_cast<int64_t>(n);
  wr_ += n;
  while (rd_ < wr_ && !parser_->is_done()) {
    error_code put_ec;
    size_t used = parser_->put(asio::buffer(buf_.data() + rd_, wr_ - rd_), put_ec);
    if (!running_ || generation != generation_) return false;  // aborted/failed in a callback
    rd_ += used;
    if (put_ec == http::error::need_more) break;
    if (put_ec) {
      Finish(stream_error_.empty() ? "bad response: " + put_ec.message() : stream_error_, false);
      return false;
    }
    if (used == 0) break;
  }
  if (parser_->is_done()) {
    Finish(stream_error_, parser_->keep_alive());
    return false;
  }
  return true;
}

bool StreamConnection::OnBody(std::string_view body) {
  if (record_->http_status != 200) {
    size_t room = kMaxErrorBodyBytes - std::min(kMaxErrorBodyBytes, error_body_.size());
    error_body_.append(body.substr(0, room));
    return true;
  }
  return sse_.Feed(body, [this](std::string_view data) { return OnEvent(data); });
}

bool StreamConnection::OnEvent(std::string_view data) {
  if (data == "[DONE]") {
    saw_done_ = true;
    return true;
  }
  StreamChunk chunk;
  if (!ScanStreamChunk(data, &chunk)) {
    stream_error_ = "malformed stream chunk: " + std::string(data.substr(0, 200));
    return false;
  }
  if (chunk.is_error) {
    stream_error_ = "error event: " + std::string(chunk.error_message.substr(0, 500));
    return true;
  }
  if (chunk.has_content) {
    if (record_->first_token_ns == 0) {
      record_->first_token_ns = now_ns_;
    } else {
      record_->itl_ns.push_back(now_ns_ - last_token_ns_);
    }
    last_token_ns_ = now_ns_;
    ++record_->num_chunks;
  }
  if (!chunk.finish_reason.empty()) record_->finish_reason.assign(chunk.finish_reason);
  if (chunk.has_usage) {
    if (chunk.prompt_tokens >= 0)
      record_->usage_prompt_tokens = static_cast<int>(chunk.prompt_tokens);
    if (chunk.completion_tokens >= 0) usage_completion_tokens_ = chunk.completion_tokens;
    if (chunk.cached_tokens >= 0) record_->cached_tokens = static_cast<int>(chunk.cached_tokens);
  }
  if (request_.abort_after_tokens > 0 && record_->num_chunks >= request_.abort_after_tokens) {
    Abort();
    return false;
  }
  return true;
}

bool StreamConnection::MaybeRetry() {
  // A keep-alive connection the server closed while idle fails before any response byte:
  // that is not the request's fault. Retry once on a fresh connection.
  if (!reused_ || retried_ || bytes_received_ != 0) return false;
  retried_ = true;
  reused_ = false;
  connected_ = false;
  ++generation_;  // the old connection's handlers are stale now
  parser_ = std::make_unique<Parser>(this);
  rd_ = wr_ = 0;
  record_->send_ns = MonotonicNanos();
  record_->http_status = 0;
  if (request_.timeout_ns > 0) {
    timer_.expires_after(std::chrono::nanoseconds(request_.timeout_ns));
    timer_.async_wait([self = shared_from_this(), gen = generation_](const error_code& ec) {
      if (ec || gen != self->generation_ || !self->running_) return;
      self->Finish("timeout after " + std::to_string(self->request_.timeout_ns / 1000000) + " ms",
                   false);
    });
  }
  Connect();
  return true;
}

void StreamConnection::Abort() {
  record_->aborted = true;
  Finish("", false);
}

void StreamConnection::Close(const std::string& why) {
  if (running_) {
    Finish(why, false);
  } else {
    error_code ignored;
    socket_.close(ignored);
    connected_ = false;
  }
}

void StreamConnection::Finish(std::string error, bool keep_connection) {
  if (!running_) return;
  running_ = false;
  ++generation_;
  timer_.cancel();
  // A stream that ended normally (or that we cut) ends at the read that carried its last bytes.
  bool at_read = error.empty() && now_ns_ >= record_->send_ns;
  record_->end_ns = at_read ? now_ns_ : MonotonicNanos();
  record_->output_tokens = usage_completion_tokens_ >= 0 && !record_->aborted
                               ? static_cast<int>(usage_completion_tokens_)
                               : record_->num_chunks;
  if (record_->aborted) {
    record_->success = false;
    record_->error.clear();
  } else if (!error.empty()) {
    record_->error = std::move(error);
  } else if (record_->http_status != 200) {
    record_->error = "HTTP " + std::to_string(record_->http_status) +
                     (error_body_.empty() ? "" : ": " + error_body_);
  } else {
    record_->success = true;
  }
  reusable_ = keep_connection && record_->success;
  if (!reusable_) {
    error_code ignored;
    socket_.close(ignored);
    connected_ = false;
  }
  // parser_ stays: Finish may run inside one of its callbacks. Start() replaces it.
  observer_->OnRequestDone(this, record_);
}

}  // namespace strata::bench
