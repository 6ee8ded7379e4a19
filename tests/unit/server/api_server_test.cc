// The OpenAI API over real HTTP against the scripted GenerationService and byte codec.
#include "server/api_server.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "tests/unit/server/fakes.h"
#include "tests/unit/server/http_test_client.h"

namespace strata::server {
namespace {

using nlohmann::json;
using testing::Call;
using testing::MakeRequest;
using testing::TestConnection;

// Replies with "Hello, world!" unless the last prompt byte is '#', then "a<STOP>b".
std::string Reply(const decode::GenerateRequest& r) {
  if (!r.prompt_token_ids.empty() && r.prompt_token_ids.back() == '#') return "a<STOP>b";
  return "Hello, world!";
}

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }
  void TearDown() override { StopServer(); }

  void StartServer(ApiServerOptions api, HttpServerOptions http = {}, int max_queue = 1000) {
    service_ = std::make_unique<testing::ScriptedService>(Reply, max_queue);
    api.served_model_name = "test-model";
    if (api.max_model_len == 4096) api.max_model_len = 256;
    api_ = std::make_unique<ApiServer>(api, &registry_);
    api_->SetBackend(service_.get(), &codec_);
    http.port = 0;
    http.num_threads = 2;
    http_ = std::make_unique<HttpServer>(http, [this](HttpRequest r, std::shared_ptr<Exchange> e) {
      api_->Handle(std::move(r), e);
    });
    ASSERT_TRUE(http_->Start().ok());
    port_ = http_->port();
  }
  // The service goes first: its callbacks own the jobs, which hold exchanges whose sockets
  // belong to the HTTP server's io_context.
  void StopServer() {
    if (http_) http_->StopAccepting();
    service_.reset();
    http_.reset();
    api_.reset();
  }

  testing::RawResponse Post(const std::string& path, const json& body,
                            const std::string& headers = "") {
    return Call(port_, "POST", path, body.dump(), headers);
  }

  // Parses an SSE body into its data payloads.
  static std::vector<std::string> SseData(const std::string& body) {
    std::vector<std::string> out;
    size_t pos = 0;
    while ((pos = body.find("data: ", pos)) != std::string::npos) {
      size_t end = body.find("\n\n", pos);
      out.push_back(body.substr(pos + 6, end - pos - 6));
      pos = end;
    }
    return out;
  }

  MetricsRegistry registry_;
  testing::ByteCodec codec_;
  std::unique_ptr<testing::ScriptedService> service_;
  std::unique_ptr<ApiServer> api_;
  std::unique_ptr<HttpServer> http_;
  int port_ = 0;
};

json ChatBody(json extra = json::object()) {
  json b = {{"model", "test-model"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  b.update(extra);
  return b;
}

TEST_F(ApiServerTest, ChatCompletion) {
  auto r = Post("/v1/chat/completions", ChatBody());
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["model"], "test-model");
  EXPECT_TRUE(j["system_fingerprint"].is_string());
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello, world!");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  // "user: hi\nassistant:" is 19 bytes; 13 reply tokens + EOS.
  EXPECT_EQ(j["usage"]["prompt_tokens"], 19);
  EXPECT_EQ(j["usage"]["completion_tokens"], 14);
  EXPECT_EQ(j["usage"]["total_tokens"], 33);
  auto sub = service_->submitted();
  ASSERT_EQ(sub.size(), 1u);
  EXPECT_EQ(sub[0].sampling.max_tokens, 256 - 19);  // room left in the context
}

TEST_F(ApiServerTest, ChatStreamingWithUsage) {
  auto r = Post("/v1/chat/completions",
                ChatBody({{"stream", true}, {"stream_options", {{"include_usage", true}}}}));
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/event-stream");
  auto data = SseData(r.body);
  ASSERT_GE(data.size(), 4u);
  EXPECT_EQ(data.back(), "[DONE]");
  std::string text;
  json first = json::parse(data[0]);
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string finish;
  for (size_t i = 0; i + 2 < data.size(); ++i) {
    json c = json::parse(data[i]);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_TRUE(c.contains("usage") && c["usage"].is_null());
    EXPECT_EQ(c["id"], first["id"]);
    text += c["choices"][0]["delta"].value("content", "");
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, "Hello, world!");
  EXPECT_EQ(finish, "stop");
  json usage = json::parse(data[data.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 14);
}

TEST_F(ApiServerTest, StopStringAbortsGenerationAndIsNotSent) {
  json body = {{"model", "test-model"},
               {"prompt", "x#"},
               {"stop", "<STOP>"},
               {"stream", true},
               {"max_tokens", 50}};
  auto r = Post("/v1/completions", body);
  ASSERT_EQ(r.status, 200);
  std::string text, finish;
  for (const auto& d : SseData(r.body)) {
    if (d == "[DONE]") break;
    json c = json::parse(d);
    EXPECT_EQ(c["object"], "text_completion");
    text += c["choices"][0]["text"].get<std::string>();
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, "a");
  EXPECT_EQ(finish, "stop");
  auto aborted = service_->aborted_ids();
  EXPECT_EQ(aborted.size(), 1u);  // the engine is told to stop at once
}

TEST_F(ApiServerTest, CompletionsWithSeveralPromptsAndN) {
  json body = {
      {"model", "test-model"}, {"prompt", {"ab", "cd"}}, {"n", 2}, {"max_tokens", 5}, {"seed", 7},
      {"echo", true}};
  auto r = Post("/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  ASSERT_EQ(j["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(j["choices"][i]["index"], i);
    EXPECT_EQ(j["choices"][i]["finish_reason"], "length");
  }
  EXPECT_EQ(j["choices"][0]["text"], "abHello");
  EXPECT_EQ(j["choices"][2]["text"], "cdHello");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4);  // each prompt counts once
  EXPECT_EQ(j["usage"]["completion_tokens"], 20);
  auto sub = service_->submitted();
  ASSERT_EQ(sub.size(), 4u);
  std::set<uint64_t> seeds;
  for (const auto& s : sub) seeds.insert(*s.sampling.seed);
  EXPECT_EQ(seeds, (std::set<uint64_t>{7, 8}));
}

TEST_F(ApiServerTest, TokenPromptsAndLogprobs) {
  json body = {{"model", "test-model"}, {"prompt", {72, 105}}, {"max_tokens", 3}, {"logprobs", 2}};
  auto r = Post("/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  const json& lp = j["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json::array({"H", "e", "l"}));
  EXPECT_EQ(lp["text_offset"], json::array({0, 1, 2}));
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  EXPECT_EQ(service_->submitted()[0].prompt_token_ids, (std::vector<int32_t>{72, 105}));

  json chat = ChatBody({{"logprobs", true}, {"top_logprobs", 3}, {"max_tokens", 2}});
  auto rc = Post("/v1/chat/completions", chat);
  ASSERT_EQ(rc.status, 200);
  json jc = json::parse(rc.body);
  const json& content = jc["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0]["token"], "H");
  EXPECT_EQ(content[0]["bytes"], json::array({72}));
  EXPECT_EQ(content[0]["top_logprobs"].size(), 3u);
}

TEST_F(ApiServerTest, Errors) {
  auto bad_json = Call(port_, "POST", "/v1/chat/completions", "{not json");
  EXPECT_EQ(bad_json.status, 400);
  json e = json::parse(bad_json.body);
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(e["error"].contains("param"));
  EXPECT_TRUE(e["error"].contains("code"));

  auto wrong_type = Post("/v1/chat/completions", ChatBody({{"max_tokens", "ten"}}));
  EXPECT_EQ(wrong_type.status, 400);
  EXPECT_EQ(json::parse(wrong_type.body)["error"]["param"], "max_tokens");

  auto range = Post("/v1/chat/completions", ChatBody({{"temperature", 9}}));
  EXPECT_EQ(range.status, 400);

  auto model = Post("/v1/chat/completions", ChatBody({{"model", "nope"}}));
  EXPECT_EQ(model.status, 404);
  EXPECT_EQ(json::parse(model.body)["error"]["code"], "model_not_found");

  auto too_long = Post("/v1/chat/completions", ChatBody({{"max_tokens", 250}}));
  EXPECT_EQ(too_long.status, 400);
  EXPECT_EQ(json::parse(too_long.body)["error"]["code"], "context_length_exceeded");

  auto vocab = Post("/v1/completions", {{"model", "test-model"}, {"prompt", {999}}});
  EXPECT_EQ(vocab.status, 400);

  auto route = Call(port_, "GET", "/nowhere");
  EXPECT_EQ(route.status, 404);
  auto method = Call(port_, "GET", "/v1/completions");
  EXPECT_EQ(method.status, 400);
  EXPECT_EQ(service_->submitted().size(), 0u);
}

TEST_F(ApiServerTest, ModelsHealthVersionMetrics) {
  auto models = Call(port_, "GET", "/v1/models");
  ASSERT_EQ(models.status, 200);
  json m = json::parse(models.body);
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0]["id"], "test-model");
  EXPECT_EQ(m["data"][0]["object"], "model");
  EXPECT_EQ(Call(port_, "GET", "/v1/models/test-model").status, 200);
  EXPECT_EQ(Call(port_, "GET", "/v1/models/other").status, 404);
  EXPECT_EQ(Call(port_, "GET", "/health").status, 200);
  auto version = Call(port_, "GET", "/version");
  EXPECT_EQ(version.status, 200);
  EXPECT_TRUE(json::parse(version.body).contains("version"));

  ASSERT_EQ(Post("/v1/chat/completions", ChatBody()).status, 200);
  auto metrics = Call(port_, "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  for (const char* name :
       {"strata_time_to_first_token_seconds_bucket", "strata_time_per_output_token_seconds",
        "strata_e2e_request_latency_seconds", "strata_prompt_tokens_total",
        "strata_generation_tokens_total", "strata_num_requests_running",
        "strata_num_requests_waiting", "strata_kv_cache_usage_ratio",
        "strata_prefix_cache_hit_tokens_total", "strata_http_requests_total"}) {
    EXPECT_NE(metrics.body.find(name), std::string::npos) << name;
  }
  EXPECT_NE(metrics.body.find("status=\"200\""), std::string::npos);
  // An EP instance's figures, per instance and rank / layer.
  for (const char* line :
       {"strata_ep_tokens_received{instance=\"decode-0\",layer=\"1\",rank=\"1\"} 7",
        "strata_ep_requests{instance=\"decode-0\",rank=\"0\"} 3",
        "strata_ep_max_mean_load_ratio{instance=\"decode-0\"} 1.25",
        "strata_ep_moe_rounds{instance=\"decode-0\"} 9"}) {
    EXPECT_NE(metrics.body.find(line), std::string::npos) << line << "\n" << metrics.body;
  }
}

TEST_F(ApiServerTest, NotReadyIs503) {
  service_->set_ready(false);
  auto health = Call(port_, "GET", "/health");
  EXPECT_EQ(health.status, 503);
  auto r = Post("/v1/chat/completions", ChatBody());
  EXPECT_EQ(r.status, 503);
  EXPECT_FALSE(r.headers["retry-after"].empty());
  api_->StartDraining();
  service_->set_ready(true);
  EXPECT_EQ(Call(port_, "GET", "/health").status, 503);
}

TEST_F(ApiServerTest, ApiKey) {
  StopServer();
  ApiServerOptions opt;
  opt.api_key = "sekret";
  StartServer(opt);
  EXPECT_EQ(Post("/v1/chat/completions", ChatBody()).status, 401);
  auto wrong = Post("/v1/chat/completions", ChatBody(), "Authorization: Bearer nope\r\n");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(json::parse(wrong.body)["error"]["type"], "authentication_error");
  EXPECT_EQ(Call(port_, "GET", "/v1/models").status, 401);
  EXPECT_EQ(Post("/v1/chat/completions", ChatBody(), "Authorization: Bearer sekret\r\n").status,
            200);
  EXPECT_EQ(Call(port_, "GET", "/health").status, 200);  // probes need no key
}

TEST_F(ApiServerTest, QueueFullIs429WithRetryAfter) {
  StopServer();
  StartServer({}, {}, /*max_queue=*/1);
  json body = ChatBody({{"n", 2}});
  auto r = Post("/v1/chat/completions", body);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers["retry-after"], "1");
  EXPECT_EQ(json::parse(r.body)["error"]["type"], "rate_limit_error");
  // The choice that was admitted is aborted again.
  for (int i = 0; i < 100 && service_->num_active() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(service_->num_active(), 0);
  EXPECT_EQ(service_->aborted_ids().size(), 1u);
}

TEST_F(ApiServerTest, BodyLimitIs413) {
  StopServer();
  HttpServerOptions http;
  http.max_body_bytes = 1000;
  StartServer({}, http);
  json body = ChatBody({{"messages", {{{"role", "user"}, {"content", std::string(2000, 'x')}}}}});
  auto r = Post("/v1/chat/completions", body);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(json::parse(r.body)["error"]["type"], "invalid_request_error");
  // Chunked upload over the limit, no Content-Length.
  TestConnection conn(port_);
  std::string big(1500, 'y');
  std::ostringstream req;
  req << "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      << std::hex << big.size() << "\r\n"
      << big << "\r\n0\r\n\r\n";
  conn.Send(req.str());
  EXPECT_EQ(conn.ReadResponse().status, 413);
}

TEST_F(ApiServerTest, KeepAliveAndPipelining) {
  TestConnection conn(port_);
  std::string models = MakeRequest("GET", "/v1/models", "");
  std::string chat = MakeRequest("POST", "/v1/chat/completions", ChatBody().dump());
  ASSERT_TRUE(conn.Send(models + chat + models));
  auto r1 = conn.ReadResponse();
  auto r2 = conn.ReadResponse();
  auto r3 = conn.ReadResponse();
  EXPECT_EQ(r1.status, 200);
  EXPECT_EQ(r2.status, 200);
  EXPECT_EQ(json::parse(r2.body)["choices"][0]["message"]["content"], "Hello, world!");
  EXPECT_EQ(r3.status, 200);
  // And again on the same connection, streaming.
  ASSERT_TRUE(
      conn.Send(MakeRequest("POST", "/v1/chat/completions", ChatBody({{"stream", true}}).dump())));
  auto r4 = conn.ReadResponse();
  EXPECT_EQ(r4.status, 200);
  EXPECT_NE(r4.body.find("data: [DONE]"), std::string::npos);
}

TEST_F(ApiServerTest, Expect100Continue) {
  TestConnection conn(port_);
  std::string body = ChatBody().dump();
  conn.Send(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  conn.Send(body);
  EXPECT_EQ(conn.ReadResponse().status, 200);  // the 100 is skipped by the reader
}

TEST_F(ApiServerTest, DisconnectAbortsStreamingAndNonStreaming) {
  for (bool stream : {true, false}) {
    size_t before = service_->aborted_ids().size();
    {
      TestConnection conn(port_);
      json body = ChatBody({{"stream", stream}, {"max_tokens", 200}, {"ignore_eos", true}});
      conn.Send(MakeRequest("POST", "/v1/chat/completions", body.dump()));
      if (stream) ASSERT_TRUE(conn.ReadAtLeast(200));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }  // closes the socket mid-request
    for (int i = 0; i < 200 && service_->num_active() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(service_->num_active(), 0) << "stream=" << stream;
    EXPECT_EQ(service_->aborted_ids().size(), before + 1) << "stream=" << stream;
  }
  for (int i = 0; i < 100 && http_->num_active_exchanges() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(http_->num_active_exchanges(), 0);
  EXPECT_EQ(api_->num_in_flight(), 0);
}

TEST_F(ApiServerTest, DeadlineEndsWithAnError) {
  StopServer();
  ApiServerOptions opt;
  opt.request_timeout_ms = 30;
  StartServer(opt);
  auto r = Post("/v1/chat/completions", ChatBody({{"max_tokens", 200}, {"ignore_eos", true}}));
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(json::parse(r.body)["error"]["type"], "timeout_error");
}

TEST_F(ApiServerTest, IdleConnectionsAreClosed) {
  StopServer();
  HttpServerOptions http;
  http.idle_timeout_ms = 100;
  http.header_timeout_ms = 100;
  StartServer({}, http);
  TestConnection idle(port_, 3000);
  EXPECT_TRUE(idle.WaitForEof());
  TestConnection slow(port_, 3000);
  slow.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\n");  // headers never finish
  EXPECT_TRUE(slow.WaitForEof());
}

TEST_F(ApiServerTest, ManyConcurrentStreams) {
  constexpr int kClients = 64;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&] {
      auto r = Call(port_, "POST", "/v1/chat/completions", ChatBody({{"stream", true}}).dump());
      std::string text;
      for (const auto& d : SseData(r.body)) {
        if (d == "[DONE]") break;
        text += json::parse(d)["choices"][0]["delta"].value("content", "");
      }
      if (r.status == 200 && text == "Hello, world!") good.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), kClients);
}

}  // namespace
}  // namespace strata::server
