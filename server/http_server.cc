#include "server/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "common/log.h"

namespace strata::server {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

}  // namespace

namespace http_internal {
class Connection;
class ExchangeImpl;
}  // namespace http_internal
using http_internal::Connection;
using http_internal::ExchangeImpl;

struct HttpServer::Impl {
  HttpServerOptions options;
  HttpHandler handler;
  net::io_context ioc;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;
  std::atomic<int> num_active_exchanges{0};
  std::atomic<bool> accepting{false};
  int bound_port = 0;
  bool started = false;
  bool stopped = false;

  void Accept();
};

namespace {

std::string ReasonLine(int status) {
  return std::string(http::obsolete_reason(static_cast<http::status>(status)));
}

std::string SimpleErrorResponse(int status, const std::string& message) {
  std::string body = R"({"error":{"message":")" + message +
                     R"(","type":"invalid_request_error","param":null,"code":null}})";
  std::ostringstream out;
  out << "HTTP/1.1 " << status << " " << ReasonLine(status) << "\r\n"
      << "Server: strata\r\nContent-Type: application/json\r\nConnection: close\r\n"
      << "Content-Length: " << body.size() << "\r\n\r\n"
      << body;
  return out.str();
}

}  // namespace

namespace http_internal {

// One TCP connection. Every member is used on the connection's strand only (the socket's
// executor), except through ExchangeImpl which posts onto it.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(HttpServer::Impl* server, tcp::socket socket)
      : server_(server), socket_(std::move(socket)), timer_(socket_.get_executor()) {}

  void Start() { WaitForRequest(); }

  template <typename F>
  void Post(F&& f) {
    net::post(socket_.get_executor(), std::forward<F>(f));
  }

  void Close();
  void DoRespond(ExchangeImpl* ex, HttpResponse response);
  void DoStartStream(ExchangeImpl* ex, int status, const std::string& content_type,
                     const std::vector<std::pair<std::string, std::string>>& headers);
  void DoWrite(ExchangeImpl* ex, std::string data);
  void DoEnd(ExchangeImpl* ex);

 private:
  void ArmTimer(int ms) {
    uint64_t gen = ++timer_gen_;
    timer_.expires_after(std::chrono::milliseconds(ms));
    timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
      if (!ec && gen == self->timer_gen_) self->Close();
    });
  }
  void DisarmTimer() {
    ++timer_gen_;
    timer_.cancel();
  }

  void WaitForRequest();
  void ReadSome();
  void OnRead(beast::error_code ec, size_t n);
  void ReadHeader();
  void OnHeader(beast::error_code ec);
  void OnBody(beast::error_code ec);
  void Dispatch();
  void FailRequest(int status, const std::string& message);
  // Queues bytes to write; `start`: begin writing now if no write is in flight (false when more
  // pieces of the same message follow at once).
  void Enqueue(std::string data, bool start = true);
  void WriteNext();
  void EndExchange();
  void PeerGone();

  HttpServer::Impl* server_;
  tcp::socket socket_;
  net::steady_timer timer_;
  uint64_t timer_gen_ = 0;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool reading_ = false;
  bool in_flight_ = false;
  bool keep_alive_ = true;
  bool closed_ = false;
  bool close_after_write_ = false;
  std::shared_ptr<ExchangeImpl> exchange_;
  std::deque<std::string> write_queue_;
  std::vector<net::const_buffer> write_buffers_;  // the write in flight: the queue's first ones
  bool writing_ = false;
  int64_t queued_bytes_ = 0;
};

class ExchangeImpl : public Exchange, public std::enable_shared_from_this<ExchangeImpl> {
 public:
  explicit ExchangeImpl(std::shared_ptr<Connection> conn) : conn_(std::move(conn)) {}

  void Respond(HttpResponse response) override {
    if (ended_.exchange(true)) return;
    conn_->Post([conn = conn_, self = Self(), r = std::move(response)]() mutable {
      conn->DoRespond(self.get(), std::move(r));
    });
  }
  void StartStream(int status, std::string content_type,
                   std::vector<std::pair<std::string, std::string>> headers) override {
    if (ended_.load()) return;
    conn_->Post([conn = conn_, self = Self(), status, ct = std::move(content_type),
                 h = std::move(headers)] { conn->DoStartStream(self.get(), status, ct, h); });
  }
  bool Write(std::string data) override {
    if (gone_.load() || ended_.load()) return false;
    conn_->Post([conn = conn_, self = Self(), d = std::move(data)]() mutable {
      conn->DoWrite(self.get(), std::move(d));
    });
    return true;
  }
  void End() override {
    if (ended_.exchange(true)) return;
    conn_->Post([conn = conn_, self = Self()] { conn->DoEnd(self.get()); });
  }
  void OnClose(std::function<void()> on_close) override {
    conn_->Post([self = Self(), cb = std::move(on_close)]() mutable {
      if (self->gone_.load()) {
        cb();
      } else {
        self->on_close_ = std::move(cb);
      }
    });
  }
  bool client_gone() const override { return gone_.load(); }

  // On the strand: the client went away before the exchange ended.
  void MarkGone() {
    if (gone_.exchange(true)) return;
    if (on_close_) {
      auto cb = std::move(on_close_);
      on_close_ = nullptr;
      cb();
    }
  }
  // On the strand: the connection is done with this exchange (breaks the reference cycle).
  void Detach() { on_close_ = nullptr; }

  std::shared_ptr<ExchangeImpl> Self() { return shared_from_this(); }

 private:
  std::shared_ptr<Connection> conn_;
  std::atomic<bool> ended_{false};
  std::atomic<bool> gone_{false};
  std::function<void()> on_close_;
};

void Connection::WaitForRequest() {
  if (closed_) return;
  if (buffer_.size() > 0) {
    ReadHeader();
    return;
  }
  ArmTimer(server_->options.idle_timeout_ms);
  ReadSome();
}

void Connection::ReadSome() {
  if (reading_ || closed_) return;
  reading_ = true;
  socket_.async_read_some(
      buffer_.prepare(16 << 10),
      [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnRead(ec, n); });
}

void Connection::OnRead(beast::error_code ec, size_t n) {
  reading_ = false;
  if (ec) {
    PeerGone();
    return;
  }
  buffer_.commit(n);
  if (in_flight_) return;  // pipelined bytes: parsed once the current exchange ends
  ReadHeader();
}

void Connection::ReadHeader() {
  if (closed_) return;
  ArmTimer(server_->options.header_timeout_ms);
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(server_->options.max_header_bytes));
  parser_->body_limit(static_cast<uint64_t>(server_->options.max_body_bytes));
  reading_ = true;
  http::async_read_header(socket_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            self->reading_ = false;
                            self->OnHeader(ec);
                          });
}

void Connection::OnHeader(beast::error_code ec) {
  if (ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::operation_aborted || closed_) {
    Close();
    return;
  }
  if (ec == http::error::body_limit) {  // Content-Length over the limit, seen with the header
    FailRequest(413, "the request body is over the " +
                         std::to_string(server_->options.max_body_bytes) + "-byte limit");
    return;
  }
  if (ec == http::error::header_limit) {
    FailRequest(431, "request headers are too large");
    return;
  }
  if (ec) {
    FailRequest(400, "malformed HTTP request");
    return;
  }
  auto length = parser_->content_length();
  if (length && *length > static_cast<uint64_t>(server_->options.max_body_bytes)) {
    FailRequest(413, "the request body is " + std::to_string(*length) + " bytes, over the " +
                         std::to_string(server_->options.max_body_bytes) + "-byte limit");
    return;
  }
  const auto& header = parser_->get();
  auto expect = header[http::field::expect];
  if (beast::iequals(expect, "100-continue")) Enqueue("HTTP/1.1 100 Continue\r\n\r\n");
  reading_ = true;
  http::async_read(socket_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) {
                     self->reading_ = false;
                     self->OnBody(ec);
                   });
}

void Connection::OnBody(beast::error_code ec) {
  if (closed_) return;
  if (ec == http::error::body_limit) {
    FailRequest(413, "the request body is over the " +
                         std::to_string(server_->options.max_body_bytes) + "-byte limit");
    return;
  }
  if (ec == http::error::end_of_stream || ec == net::error::eof ||
      ec == net::error::operation_aborted) {
    Close();
    return;
  }
  if (ec) {
    FailRequest(400, "malformed HTTP request");
    return;
  }
  DisarmTimer();
  Dispatch();
}

void Connection::FailRequest(int status, const std::string& message) {
  DisarmTimer();
  close_after_write_ = true;
  Enqueue(SimpleErrorResponse(status, message));
}

void Connection::Dispatch() {
  auto msg = parser_->release();
  parser_.reset();
  HttpRequest req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  req.path = req.target.substr(0, req.target.find('?'));
  for (const auto& field : msg) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers[name] = std::string(field.value());
  }
  req.body = std::move(msg.body());
  keep_alive_ = msg.keep_alive();
  in_flight_ = true;
  exchange_ = std::make_shared<ExchangeImpl>(shared_from_this());
  server_->num_active_exchanges.fetch_add(1);
  // Watch for EOF while the request is in flight. With pipelined bytes already buffered the
  // client is evidently still there, and those bytes must be parsed next.
  if (buffer_.size() == 0) ReadSome();
  // An exception must not escape into the io_context (it would end the process): answer 500.
  try {
    server_->handler(std::move(req), exchange_);
  } catch (const std::exception& e) {
    log::Error("request handler failed: {}", e.what());
    exchange_->Respond({500,
                        "application/json",
                        R"({"error":{"message":"internal error","type":"server_error",)"
                        R"("param":null,"code":null}})",
                        {}});
  }
}

void Connection::DoRespond(ExchangeImpl* ex, HttpResponse response) {
  if (ex != exchange_.get() || closed_) return;
  http::response<http::string_body> res{static_cast<http::status>(response.status), 11};
  res.set(http::field::server, "strata");
  res.set(http::field::content_type, response.content_type);
  for (const auto& [k, v] : response.headers) res.set(k, v);
  res.keep_alive(keep_alive_);
  res.body() = std::move(response.body);
  res.prepare_payload();
  std::ostringstream out;
  out << res;
  Enqueue(out.str());
  EndExchange();
}

void Connection::DoStartStream(ExchangeImpl* ex, int status, const std::string& content_type,
                               const std::vector<std::pair<std::string, std::string>>& headers) {
  if (ex != exchange_.get() || closed_) return;
  http::response<http::empty_body> res{static_cast<http::status>(status), 11};
  res.set(http::field::server, "strata");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-cache");
  for (const auto& [k, v] : headers) res.set(k, v);
  res.keep_alive(keep_alive_);
  res.chunked(true);
  std::ostringstream out;
  out << res.base();
  Enqueue(out.str());
}

void Connection::DoWrite(ExchangeImpl* ex, std::string data) {
  if (ex != exchange_.get() || closed_ || data.empty()) return;
  // HTTP/1.1 chunk framing around the data, which is queued as is (no copy); the three pieces
  // go out in one gathered write.
  static const char* kHex = "0123456789abcdef";
  char size[24];
  int pos = sizeof(size);
  size[--pos] = '\n';
  size[--pos] = '\r';
  for (size_t n = data.size(); n > 0; n >>= 4) size[--pos] = kHex[n & 0xF];
  Enqueue(std::string(size + pos, sizeof(size) - static_cast<size_t>(pos)), /*start=*/false);
  Enqueue(std::move(data), /*start=*/false);
  Enqueue("\r\n");
}

void Connection::DoEnd(ExchangeImpl* ex) {
  if (ex != exchange_.get() || closed_) return;
  Enqueue("0\r\n\r\n");
  EndExchange();
}

void Connection::EndExchange() {
  if (!in_flight_) return;
  in_flight_ = false;
  exchange_->Detach();
  exchange_.reset();
  server_->num_active_exchanges.fetch_sub(1);
  if (!keep_alive_) {
    close_after_write_ = true;
    if (!writing_) Close();
    return;
  }
  if (reading_) {
    ArmTimer(server_->options.idle_timeout_ms);
  } else {
    WaitForRequest();
  }
}

void Connection::Enqueue(std::string data, bool start) {
  if (closed_) return;
  queued_bytes_ += static_cast<int64_t>(data.size());
  write_queue_.push_back(std::move(data));
  if (queued_bytes_ > server_->options.max_queued_write_bytes) {
    log::Warn("closing a connection whose client stopped reading ({} bytes queued)", queued_bytes_);
    PeerGone();
    return;
  }
  if (start && !writing_) WriteNext();
}

void Connection::WriteNext() {
  // Everything queued goes out in one gathered write: under load, the tokens of several steps
  // that piled up behind a slow write cost one system call.
  writing_ = true;
  constexpr size_t kMaxBuffers = 64;
  size_t count = std::min(write_queue_.size(), kMaxBuffers);
  write_buffers_.clear();
  for (size_t i = 0; i < count; ++i) write_buffers_.push_back(net::buffer(write_queue_[i]));
  net::async_write(
      socket_, write_buffers_, [self = shared_from_this(), count](beast::error_code ec, size_t) {
        self->writing_ = false;
        if (self->closed_) return;
        for (size_t i = 0; i < count; ++i) {
          self->queued_bytes_ -= static_cast<int64_t>(self->write_queue_.front().size());
          self->write_queue_.pop_front();
        }
        if (ec) {
          self->PeerGone();
          return;
        }
        if (!self->write_queue_.empty()) {
          self->WriteNext();
        } else if (self->close_after_write_) {
          beast::error_code ignored;
          self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
          self->Close();
        }
      });
}

void Connection::PeerGone() {
  if (exchange_) exchange_->MarkGone();
  Close();
}

void Connection::Close() {
  if (closed_) return;
  closed_ = true;
  DisarmTimer();
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  if (exchange_) {
    exchange_->MarkGone();
    exchange_->Detach();
    exchange_.reset();
    server_->num_active_exchanges.fetch_sub(1);
    in_flight_ = false;
  }
  write_queue_.clear();
  std::lock_guard lock(server_->mu);
  server_->connections.erase(this);
}

}  // namespace http_internal

void HttpServer::Impl::Accept() {
  acceptor->async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (!accepting.load()) return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      auto conn = std::make_shared<Connection>(this, std::move(socket));
      {
        std::lock_guard lock(mu);
        connections[conn.get()] = conn;
      }
      conn->Post([conn] { conn->Start(); });
    } else if (ec == net::error::operation_aborted) {
      return;
    }
    Accept();
  });
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  Impl& s = *impl_;
  if (s.started) return FailedPreconditionError("the HTTP server was already started");
  beast::error_code ec;
  auto address = net::ip::make_address(s.options.host, ec);
  if (ec) return UnavailableError("--host: '" + s.options.host + "' is not an IP address");
  tcp::endpoint endpoint(address, static_cast<uint16_t>(s.options.port));
  s.acceptor.emplace(s.ioc);
  s.acceptor->open(endpoint.protocol(), ec);
  if (!ec) s.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(endpoint, ec);
  if (!ec) s.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return UnavailableError("cannot listen on " + s.options.host + ":" +
                            std::to_string(s.options.port) + ": " + ec.message());
  }
  s.bound_port = s.acceptor->local_endpoint().port();
  s.started = true;
  s.accepting = true;
  s.work.emplace(s.ioc.get_executor());
  s.Accept();
  int threads = std::max(1, s.options.num_threads);
  for (int i = 0; i < threads; ++i) s.threads.emplace_back([&s] { s.ioc.run(); });
  log::Info("listening on http://{}:{}", s.options.host, s.bound_port);
  return OkStatus();
}

int HttpServer::port() const { return impl_->bound_port; }

void HttpServer::StopAccepting() {
  Impl& s = *impl_;
  if (!s.started || !s.accepting.exchange(false)) return;
  net::post(s.ioc, [&s] {
    beast::error_code ignored;
    if (s.acceptor) s.acceptor->close(ignored);
  });
}

void HttpServer::Stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  StopAccepting();
  std::vector<std::shared_ptr<Connection>> conns;
  {
    std::lock_guard lock(s.mu);
    for (auto& [ptr, weak] : s.connections) {
      if (auto c = weak.lock()) conns.push_back(std::move(c));
    }
  }
  for (auto& c : conns) c->Post([c] { c->Close(); });
  conns.clear();
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
}

int HttpServer::num_active_exchanges() const { return impl_->num_active_exchanges.load(); }

int HttpServer::num_connections() const {
  std::lock_guard lock(impl_->mu);
  return static_cast<int>(impl_->connections.size());
}

}  // namespace strata::server
