// A small blocking HTTP/1.1 client over POSIX sockets for server tests: it sends exactly the
// bytes a test wants (keep-alive, pipelining, half requests) and parses responses, de-chunking
// chunked bodies.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <string>

namespace strata::server::testing {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;                            // de-chunked
  bool ok = false;                             // parsed completely
};

class TestConnection {
 public:
  explicit TestConnection(int port, int timeout_ms = 10000) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~TestConnection() { Close(); }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  bool connected() const { return connected_; }

  bool Send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads one response (Content-Length, chunked, or until EOF).
  RawResponse ReadResponse() {
    RawResponse r;
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return r;
    }
    std::string head = buf_.substr(0, header_end);
    buf_.erase(0, header_end + 4);
    if (head.size() < 12) return r;
    r.status = std::stoi(head.substr(9, 3));
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value[0] == ' ') value.erase(0, 1);
        r.headers[name] = value;
      }
      pos = next;
    }
    if (r.status == 100) return ReadResponse();
    if (r.headers.count("content-length")) {
      size_t len = std::stoul(r.headers["content-length"]);
      while (buf_.size() < len) {
        if (!Fill()) return r;
      }
      r.body = buf_.substr(0, len);
      buf_.erase(0, len);
      r.ok = true;
    } else if (r.headers["transfer-encoding"] == "chunked") {
      while (true) {
        size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          if (!Fill()) return r;
        }
        size_t len = std::stoul(buf_.substr(0, eol), nullptr, 16);
        while (buf_.size() < eol + 2 + len + 2) {
          if (!Fill()) return r;
        }
        r.body += buf_.substr(eol + 2, len);
        buf_.erase(0, eol + 2 + len + 2);
        if (len == 0) break;
      }
      r.ok = true;
    } else {
      while (Fill()) {
      }
      r.body = buf_;
      buf_.clear();
      r.ok = true;
    }
    return r;
  }

  // Reads until at least `n` body bytes of a chunked stream arrived (raw, with chunk framing).
  bool ReadAtLeast(size_t n) {
    while (buf_.size() < n) {
      if (!Fill()) return false;
    }
    return true;
  }
  // True when the server closed the connection (EOF) within the receive timeout.
  bool WaitForEof() {
    while (Fill()) {
    }
    return eof_;
  }

 private:
  bool Fill() {
    char tmp[16384];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n == 0) eof_ = true;
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buf_;
};

inline std::string MakeRequest(const std::string& method, const std::string& path,
                               const std::string& body, const std::string& extra_headers = "",
                               bool keep_alive = true) {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n";
  if (!keep_alive) r += "Connection: close\r\n";
  if (!body.empty() || method == "POST") {
    r +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  r += extra_headers;
  r += "\r\n";
  r += body;
  return r;
}

inline RawResponse Call(int port, const std::string& method, const std::string& path,
                        const std::string& body = "", const std::string& extra_headers = "") {
  TestConnection conn(port);
  conn.Send(MakeRequest(method, path, body, extra_headers, /*keep_alive=*/false));
  return conn.ReadResponse();
}

}  // namespace strata::server::testing
