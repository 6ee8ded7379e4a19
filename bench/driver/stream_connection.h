// One HTTP/1.1 keep-alive connection that sends streaming OpenAI requests, one at a time, and
// turns the SSE response into a RequestRecord as the bytes arrive.
//
// Timestamps are taken once per socket read, before any parsing, so all events that arrived in
// one read share one time. With kernel timestamps (the default) that time is the kernel's
// software receive timestamp of the last TCP segment the read returned (SO_TIMESTAMPING), so a
// driver thread that was busy or not scheduled does not make tokens look late; without, it is
// the time the read returned. The body
// is parsed in place from the read buffer (Beast's basic_parser over our own buffer, then
// SseParser and ScanStreamChunk): no allocation per event.
//
// Threading: a connection lives on one io_context and every method must be called on that
// context's thread. The observer is called on that thread too, exactly once per Start(), and
// may call Start() again on the same connection from inside the callback when reusable().
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/driver/request.h"
#include "bench/driver/sse_parser.h"

namespace strata::bench {

class StreamConnection;

class StreamObserver {
 public:
  virtual ~StreamObserver() = default;
  // The request that `conn` was running has ended; its record is complete.
  virtual void OnRequestDone(StreamConnection* conn, RequestRecord* record) = 0;
};

struct StreamRequest {
  std::string http_bytes;           // full request: headers and body
  RequestRecord* record = nullptr;  // filled in; must outlive the request
  int abort_after_tokens = 0;       // > 0: disconnect after that many token chunks
  int64_t timeout_ns = 0;           // whole-request deadline from send; 0 = none
};

class StreamConnection : public std::enable_shared_from_this<StreamConnection> {
 public:
  StreamConnection(boost::asio::io_context& io, boost::asio::ip::tcp::endpoint server,
                   StreamObserver* observer, bool kernel_timestamps = true);
  ~StreamConnection();
  StreamConnection(const StreamConnection&) = delete;
  StreamConnection& operator=(const StreamConnection&) = delete;

  // Sends the request (connecting first if needed). Must not be called while one is running.
  void Start(StreamRequest request);

  // True after a request that ended with a complete response on a keep-alive connection.
  bool reusable() const { return reusable_; }

  // Closes the socket; a running request ends with `why` as its error.
  void Close(const std::string& why);

 private:
  class Parser;
  friend class Parser;

  void Connect();
  void Write();
  void EnableKernelTimestamps();
  // Reads what is there, then waits for more.
  void ReadSome();
  // Handles one read's outcome (bytes at buf_[wr_...], or an error); false once the request
  // ended (or a retry started), true to keep reading.
  bool OnRead(const boost::system::error_code& ec, size_t n, uint64_t generation);
  // Parser callbacks.
  void OnStatus(int code) { record_->http_status = code; }
  bool OnBody(std::string_view body);
  bool OnEvent(std::string_view data);
  // Ends the running request. `error` empty = success.
  void Finish(std::string error, bool keep_connection);
  void Abort();
  bool MaybeRetry();

  boost::asio::ip::tcp::socket socket_;
  boost::asio::ip::tcp::endpoint server_;
  boost::asio::steady_timer timer_;
  StreamObserver* observer_;
  bool kernel_timestamps_;
  std::unique_ptr<Parser> parser_;

  StreamRequest request_;
  RequestRecord* record_ = nullptr;
  uint64_t generation_ = 0;  // bumps per request; stale handlers compare and return
  bool running_ = false;
  bool connected_ = false;
  bool reused_ = false;  // this request runs on a connection that served one before
  bool retried_ = false;
  bool reusable_ = false;
  bool saw_done_ = false;     // "data: [DONE]"
  std::string stream_error_;  // an error event inside the stream
  std::string error_body_;    // body of a non-200 response (capped)
  int64_t bytes_received_ = 0;
  int64_t now_ns_ = 0;  // when the bytes being parsed were read
  int64_t last_token_ns_ = 0;
  int64_t usage_completion_tokens_ = -1;

  std::vector<char> buf_;
  size_t rd_ = 0;  // parsed up to here
  size_t wr_ = 0;  // read up to here
  SseParser sse_;
};

}  // namespace strata::bench
