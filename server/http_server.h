// HTTP/1.1 server on Boost.Beast: keep-alive, many concurrent connections served by an asio
// io_context on a few threads, a request-body limit (413), an idle timeout (no byte of a new
// request) and a header timeout (first byte to end of body), `Expect: 100-continue`, full and
// chunked (SSE) responses, and detection of a client that goes away while its request is in
// flight (EOF on the socket, or a failed write), reported through Exchange::OnClose.
//
// Beast and Asio stay inside http_server.cc; this header is plain C++.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace strata::server {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // path and query, e.g. "/v1/models?x=1"
  std::string path;                            // target without the query
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// One request/response exchange on a connection. Thread-safe: any thread may call it, calls are
// serialized on the connection. Exactly one of Respond() or StartStream()...End() ends it.
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual void Respond(HttpResponse response) = 0;
  // Starts a chunked response (for SSE: content type "text/event-stream").
  virtual void StartStream(int status, std::string content_type,
                           std::vector<std::pair<std::string, std::string>> headers) = 0;
  // Queues one chunk. Returns false once the client is gone (the data is dropped).
  virtual bool Write(std::string data) = 0;
  virtual void End() = 0;
  // `on_close` runs once, on an I/O thread, if the client disconnects before the exchange ended
  // (immediately if that already happened). It must be quick and must not block.
  virtual void OnClose(std::function<void()> on_close) = 0;
  virtual bool client_gone() const = 0;
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0 = any free port (see HttpServer::port())
  int num_threads = 2;
  int64_t max_body_bytes = 32 << 20;
  int64_t max_header_bytes = 64 << 10;
  int idle_timeout_ms = 60'000;
  int header_timeout_ms = 30'000;
  // Bytes a slow reader may have queued before the connection is treated as gone.
  int64_t max_queued_write_bytes = 64 << 20;
};

// Handles one request; runs on an I/O thread, so it must not block for long: hand the work to
// a queue and answer through the Exchange later.
using HttpHandler = std::function<void(HttpRequest request, std::shared_ptr<Exchange> exchange)>;

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the I/O threads. Errors: kUnavailable when the address cannot be
  // bound (in use, bad host).
  Status Start();
  // The bound port (useful with port 0). Valid after Start().
  int port() const;
  // Stops accepting new connections; open ones continue.
  void StopAccepting();
  // Closes every connection and joins the I/O threads. Idempotent. Exchanges handed out must
  // be released before the server is destroyed (their sockets belong to its io_context).
  void Stop();
  // Exchanges started and not yet ended.
  int num_active_exchanges() const;
  int num_connections() const;

  struct Impl;  // public only so that http_server.cc's connection class can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::server
