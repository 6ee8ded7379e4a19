#include "bench/driver/server_probe.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <chrono>

namespace strata::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;

StatusOr<nlohmann::json> GetJson(const ApiTarget& target, const std::string& path) {
  std::string what = "GET http://" + target.HostHeader() + path;
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(3));
    auto endpoints = resolver.resolve(target.host, std::to_string(target.port));
    stream.connect(endpoints);
    http::request<http::empty_body> req(http::verb::get, path, 11);
    req.set(http::field::host, target.HostHeader());
    req.set(http::field::accept, "application/json");
    if (!target.api_key.empty()) req.set(http::field::authorization, "Bearer " + target.api_key);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    http::read(stream, buffer, parser);
    auto& res = parser.get();
    if (res.result_int() != 200) {
      return UnavailableError(what + ": HTTP " + std::to_string(res.result_int()));
    }
    auto j = nlohmann::json::parse(res.body(), nullptr, false);
    if (j.is_discarded()) return DataLossError(what + ": the body is not JSON");
    beast::error_code ignored;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    return j;
  } catch (const std::exception& e) {  // Beast/Asio report I/O errors by exception here
    return UnavailableError(what + ": " + e.what());
  }
}

nlohmann::json ProbeServerVersion(const ApiTarget& target) {
  auto j = GetJson(target, target.VersionPath());
  return j.ok() ? *j : nlohmann::json();
}

StatusOr<std::string> FirstServedModel(const ApiTarget& target) {
  STRATA_ASSIGN_OR_RETURN(nlohmann::json j, GetJson(target, target.root_path + "/v1/models"));
  if (j.is_object() && j.contains("data") && j["data"].is_array() && !j["data"].empty() &&
      j["data"][0].is_object() && j["data"][0].contains("id") && j["data"][0]["id"].is_string()) {
    return j["data"][0]["id"].get<std::string>();
  }
  return NotFoundError("the server's /v1/models lists no model");
}

}  // namespace strata::bench
