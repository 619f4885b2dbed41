// cg::summarizer::LlmClient against llm_server.py, an OpenAI-compatible server on loopback that answers each
// request from a scenario named in its path (tests/summarizer/llm_server.py) and records what it received.
#include "summarizer/llm_client.hpp"
#include "tests/summarizer/support.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

using namespace cg::summarizer;
using namespace cg::test;
using Kind = Error::Kind;

namespace {

Backend make_backend(const std::string& tag, const std::string& scenario, const std::string& name = "primary") {
  Backend b;
  b.name = name;
  b.base_url = fake_llm().url(tag, scenario);
  b.model = "model-" + scenario;
  b.api_key = "sk-test";
  b.connect_timeout = 2000ms;
  b.first_token_timeout = 5000ms;
  b.idle_timeout = 5000ms;
  b.total_timeout = 10000ms;
  b.max_retries = 2;
  b.retry_backoff = 10ms;
  b.circuit_failures = 0; // the breaker has its own tests
  return b;
}

Request hello() {
  Request r;
  r.messages = {{"system", "Summarise the conversation."}, {"user", "Grüße aus Köln 👋"}};
  return r;
}

std::size_t count(const std::string& tag) {
  return fake_llm().requests(tag).size();
}

std::chrono::milliseconds since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
}

} // namespace

TEST_CASE("llm client: a streamed answer, and the request it sends", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("stream");
  LlmClient client(loop.executor(), {make_backend(tag, "ok")});
  auto result = run(loop, client, hello());
  const Response& a = answer_of(result);
  CHECK(a.text == "Hello, world.");
  CHECK(a.finish_reason == "stop");
  CHECK_FALSE(a.truncated);
  CHECK(a.prompt_tokens == 12);
  CHECK(a.completion_tokens == 4);
  CHECK(a.model == "model-ok-served");
  CHECK(a.backend == "primary");

  auto requests = fake_llm().requests(tag);
  REQUIRE(requests.size() == 1);
  const json& q = requests[0];
  CHECK(q["path"] == "/" + tag + "/ok/chat/completions");
  const json& body = q["body"];
  CHECK(body["model"] == "model-ok");
  CHECK(body["messages"] == json::parse(R"([{"role": "system", "content": "Summarise the conversation."},
                                            {"role": "user", "content": "Grüße aus Köln 👋"}])"));
  CHECK(body["temperature"] == 0.2);
  CHECK(body["max_tokens"] == 1024);
  CHECK_FALSE(body.contains("max_completion_tokens"));
  CHECK(body["stream"] == true);
  CHECK(q["headers"]["authorization"] == "Bearer sk-test");
  CHECK(q["headers"]["content-type"] == "application/json");
  CHECK(q["headers"]["accept"] == "text/event-stream");
}

TEST_CASE("llm client: a non-streamed answer, without api_key, temperature or max_tokens", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("plain");
  Backend b = make_backend(tag, "ok");
  b.stream = false;
  b.api_key.clear();
  b.send_temperature = false;
  b.limit_param = Backend::LimitParam::MaxCompletionTokens;
  LlmClient client(loop.executor(), {b});
  Request r = hello();
  r.max_output_tokens = 200;
  auto first = run(loop, client, r);
  const Response& a = answer_of(first);
  CHECK(a.text == "Hello, world.");
  CHECK(a.finish_reason == "stop");
  CHECK(a.completion_tokens == 4);
  CHECK(a.model == "model-ok-served");
  r.max_output_tokens = 0;
  answer_of(run(loop, client, r));

  auto requests = fake_llm().requests(tag);
  REQUIRE(requests.size() == 2);
  const json& body = requests[0]["body"];
  CHECK(body["stream"] == false);
  CHECK_FALSE(body.contains("temperature"));
  CHECK(body["max_completion_tokens"] == 200);
  CHECK_FALSE(body.contains("max_tokens"));
  CHECK_FALSE(requests[0]["headers"].contains("authorization"));
  CHECK(requests[0]["headers"]["accept"] == "application/json");
  CHECK_FALSE(requests[1]["body"].contains("max_completion_tokens"));
  CHECK_FALSE(requests[1]["body"].contains("max_tokens"));
}

TEST_CASE("llm client: a JSON answer to a streaming request is read as JSON", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("json");
  LlmClient client(loop.executor(), {make_backend(tag, "json")});
  auto result = run(loop, client, hello());
  const Response& a = answer_of(result);
  CHECK(a.text == "Hello from JSON.");
  CHECK(a.prompt_tokens == 12);
  CHECK(fake_llm().requests(tag)[0]["body"]["stream"] == true);
}

TEST_CASE("llm client: a stream cut inside data:, inside UTF-8 and inside CRLF, with comments and reasoning",
          "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("split");
  LlmClient client(loop.executor(), {make_backend(tag, "split")});
  auto result = run(loop, client, hello());
  const Response& a = answer_of(result);
  CHECK(a.text == "Grüße 👋 — ok"); // reasoning_content left out
  CHECK(a.finish_reason == "stop");
}

TEST_CASE("llm client: <think> blocks are removed, also with tags split across chunks", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("think");
  LlmClient client(loop.executor(), {make_backend(tag, "think")});
  auto result = run(loop, client, hello());
  CHECK(answer_of(result).text == "The answer is 42.");
}

TEST_CASE("llm client: finish_reason length marks the answer truncated", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("length");
  LlmClient client(loop.executor(), {make_backend(tag, "length")});
  auto result = run(loop, client, hello());
  const Response& a = answer_of(result);
  CHECK(a.text == "A partial answ");
  CHECK(a.finish_reason == "length");
  CHECK(a.truncated);
}

TEST_CASE("llm client: first-token timeout (a keepalive is not a token)", "[summarizer][llm][timeout]") {
  Loop loop;
  auto tag = unique_tag("slow-first");
  Backend b = make_backend(tag, "slow-first");
  b.first_token_timeout = 300ms;
  LlmClient client(loop.executor(), {b});
  auto t0 = Clock::now();
  auto result = run(loop, client, hello());
  auto elapsed = since(t0);
  const Error& e = error_of(result);
  CHECK(e.kind == Kind::Timeout);
  CHECK_THAT(e.message, Catch::Contains("first-token timeout") && Catch::Contains("primary"));
  CHECK(elapsed >= 300ms);
  CHECK(elapsed < 3000ms);
  CHECK(count(tag) == 1); // a slow model is not asked again
}

TEST_CASE("llm client: idle timeout when a stream stalls", "[summarizer][llm][timeout]") {
  Loop loop;
  auto tag = unique_tag("stall");
  Backend b = make_backend(tag, "stall");
  b.idle_timeout = 300ms;
  LlmClient client(loop.executor(), {b});
  auto t0 = Clock::now();
  auto result = run(loop, client, hello());
  auto elapsed = since(t0);
  const Error& e = error_of(result);
  CHECK(e.kind == Kind::Timeout);
  CHECK_THAT(e.message, Catch::Contains("idle timeout"));
  CHECK(elapsed >= 300ms);
  CHECK(elapsed < 3000ms);
}

TEST_CASE("llm client: total timeout of an exchange", "[summarizer][llm][timeout]") {
  Loop loop;
  auto tag = unique_tag("total");
  Backend b = make_backend(tag, "stall");
  b.total_timeout = 400ms;
  LlmClient client(loop.executor(), {b});
  auto t0 = Clock::now();
  auto result = run(loop, client, hello());
  auto elapsed = since(t0);
  const Error& e = error_of(result);
  CHECK(e.kind == Kind::Timeout);
  CHECK_THAT(e.message, Catch::Contains("total timeout"));
  CHECK(elapsed >= 400ms);
  CHECK(elapsed < 3000ms);
}

TEST_CASE("llm client: connect timeout against a listener whose backlog is full", "[summarizer][llm][timeout]") {
  // A loopback listener with a full accept queue drops further SYNs: the connection attempt hangs.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 0) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  std::vector<int> fillers;
  for (int i = 0; i < 2; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(fd);
  }
  pollfd p{fillers[0], POLLOUT, 0};
  REQUIRE(::poll(&p, 1, 2000) == 1); // the first filler is in the accept queue: the queue is full

  Loop loop;
  Backend b = make_backend("unused", "ok");
  b.base_url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/v1";
  b.connect_timeout = 300ms;
  b.max_retries = 0;
  LlmClient client(loop.executor(), {b});
  auto t0 = Clock::now();
  auto result = run(loop, client, hello());
  auto elapsed = since(t0);
  for (int fd : fillers) {
    ::close(fd);
  }
  ::close(listener);
  const Error& e = error_of(result);
  CHECK(e.kind == Kind::Timeout);
  CHECK_THAT(e.message, Catch::Contains("connect timeout"));
  CHECK(elapsed >= 250ms); // libcurl's own timer, which may round a millisecond down
  CHECK(elapsed < 3000ms);
}

TEST_CASE("llm client: an unusable base_url is a Config error, a refused connection a Network error",
          "[summarizer][llm]") {
  Loop loop;
  Backend bad = make_backend("unused", "ok");
  bad.base_url = "ftp://127.0.0.1/v1";
  LlmClient c1(loop.executor(), {bad});
  auto r1 = run(loop, c1, hello());
  CHECK(error_of(r1).kind == Kind::Config);
  CHECK_THAT(error_of(r1).message, Catch::Contains("base_url"));

  // A bound socket that does not listen: connections to its port are refused.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  Backend refused = make_backend("unused", "ok");
  refused.base_url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/v1";
  LlmClient c2(loop.executor(), {refused});
  auto r2 = run(loop, c2, hello());
  ::close(fd);
  CHECK(error_of(r2).kind == Kind::Network);
  CHECK_THAT(error_of(r2).message, Catch::Contains("network error"));
}

TEST_CASE("llm client: 429 with Retry-After is retried once the server's delay has passed", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("ratelimit");
  LlmClient client(loop.executor(), {make_backend(tag, "ratelimit")});
  auto result = run(loop, client, hello());
  CHECK(answer_of(result).text == "Hello, world.");
  auto requests = fake_llm().requests(tag);
  REQUIRE(requests.size() == 2);
  double gap = requests[1]["t"].get<double>() - requests[0]["t"].get<double>();
  CHECK(gap >= 0.99); // Retry-After: 1 (the backoff alone would be 10 ms)
  CHECK(gap < 5.0);
}

TEST_CASE("llm client: 429 with x-ratelimit-reset headers waits for the longer reset", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("reset-hdr");
  LlmClient client(loop.executor(), {make_backend(tag, "ratelimit-reset")});
  auto result = run(loop, client, hello());
  CHECK(answer_of(result).text == "Hello, world.");
  auto requests = fake_llm().requests(tag);
  REQUIRE(requests.size() == 2);
  double gap = requests[1]["t"].get<double>() - requests[0]["t"].get<double>();
  CHECK(gap >= 0.39); // x-ratelimit-reset-requests: 400ms (tokens: 20ms)
}

TEST_CASE("llm client: a 500 is retried", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("flaky");
  LlmClient client(loop.executor(), {make_backend(tag, "flaky")});
  auto result = run(loop, client, hello());
  CHECK(answer_of(result).text == "Hello, world.");
  CHECK(count(tag) == 2);
}

TEST_CASE("llm client: 500 every time ends after max_retries retries with a Server error", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("down");
  LlmClient client(loop.executor(), {make_backend(tag, "down")});
  auto result = run(loop, client, hello());
  const Error& e = error_of(result);
  CHECK(e.kind == Kind::Server);
  CHECK(e.http_status == 500);
  CHECK_THAT(e.message, Catch::Contains("'primary'") && Catch::Contains("500"));
  CHECK(count(tag) == 3); // the first try and two retries
}

TEST_CASE("llm client: 401 is a Config error, neither retried nor passed to the next backend", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("401");
  auto tag2 = unique_tag("401-next");
  LlmClient client(loop.executor(), {make_backend(tag, "unauthorized"), make_backend(tag2, "ok", "secondary")});
  auto result = run(loop, client, hello());
  const Error& e = error_of(result);
  CHECK(e.kind == Kind::Config);
  CHECK(e.http_status == 401);
  CHECK_THAT(e.message, Catch::Contains("'primary'") && Catch::Contains("401") && Catch::Contains("api_key"));
  CHECK(count(tag) == 1);
  CHECK(count(tag2) == 0);
}

TEST_CASE("llm client: a context-length 400 is ContextLength, not retried", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("context");
  LlmClient client(loop.executor(), {make_backend(tag, "context")});
  auto result = run(loop, client, hello());
  const Error& e = error_of(result);
  CHECK(e.kind == Kind::ContextLength);
  CHECK(e.http_status == 400);
  CHECK_THAT(e.message, Catch::Contains("maximum context length"));
  CHECK(count(tag) == 1);
}

TEST_CASE("llm client: unsupported max_tokens switches to max_completion_tokens, and the backend remembers",
          "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("new-model");
  LlmClient client(loop.executor(), {make_backend(tag, "new-model")});
  auto first = run(loop, client, hello());
  CHECK(answer_of(first).text == "Hello, world.");
  auto second = run(loop, client, hello());
  CHECK(answer_of(second).text == "Hello, world.");
  auto requests = fake_llm().requests(tag);
  REQUIRE(requests.size() == 3);
  CHECK(requests[0]["body"]["max_tokens"] == 1024);
  CHECK(requests[1]["body"]["max_completion_tokens"] == 1024);
  CHECK_FALSE(requests[1]["body"].contains("max_tokens"));
  CHECK(requests[2]["body"]["max_completion_tokens"] == 1024);
}

TEST_CASE("llm client: unsupported max_completion_tokens switches to max_tokens", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("old-model");
  Backend b = make_backend(tag, "old-model");
  b.limit_param = Backend::LimitParam::MaxCompletionTokens;
  LlmClient client(loop.executor(), {b});
  auto result = run(loop, client, hello());
  CHECK(answer_of(result).text == "Hello, world.");
  auto requests = fake_llm().requests(tag);
  REQUIRE(requests.size() == 2);
  CHECK(requests[0]["body"]["max_completion_tokens"] == 1024);
  CHECK(requests[1]["body"]["max_tokens"] == 1024);
}

TEST_CASE("llm client: malformed JSON is a Protocol error, streamed or not", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("malformed");
  Backend streamed = make_backend(tag, "malformed");
  Backend plain = make_backend(tag, "malformed-json");
  plain.stream = false;
  LlmClient client1(loop.executor(), {streamed});
  LlmClient client2(loop.executor(), {plain});
  auto r1 = run(loop, client1, hello());
  auto r2 = run(loop, client2, hello());
  CHECK(error_of(r1).kind == Kind::Protocol);
  CHECK_THAT(error_of(r1).message, Catch::Contains("malformed"));
  CHECK(error_of(r2).kind == Kind::Protocol);
  CHECK(count(tag) == 2); // not retried
}

TEST_CASE("llm client: a connection reset mid-stream is a Network error", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("reset");
  Backend b = make_backend(tag, "reset");
  b.max_retries = 1;
  LlmClient client(loop.executor(), {b});
  auto result = run(loop, client, hello());
  const Error& e = error_of(result);
  CHECK(e.kind == Kind::Network);
  CHECK(count(tag) == 2); // a network error is retried
}

TEST_CASE("llm client: insufficient_quota is Quota and not retried", "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("quota");
  LlmClient client(loop.executor(), {make_backend(tag, "quota")});
  auto result = run(loop, client, hello());
  const Error& e = error_of(result);
  CHECK(e.kind == Kind::Quota);
  CHECK(e.http_status == 429);
  CHECK(count(tag) == 1);
}

TEST_CASE("llm client: falls back to the next backend once the retries are spent", "[summarizer][llm]") {
  Loop loop;
  auto tag_a = unique_tag("fallback-a");
  auto tag_b = unique_tag("fallback-b");
  Backend a = make_backend(tag_a, "down", "A");
  a.max_retries = 1;
  LlmClient client(loop.executor(), {a, make_backend(tag_b, "ok", "B")});
  auto result = run(loop, client, hello());
  const Response& r = answer_of(result);
  CHECK(r.backend == "B");
  CHECK(r.model == "model-ok-served");
  CHECK(count(tag_a) == 2);
  CHECK(count(tag_b) == 1);

  SECTION("when every backend fails, the error tells the story of each") {
    auto tag_c = unique_tag("fallback-c");
    Backend c = make_backend(tag_c, "slow-first", "C");
    c.first_token_timeout = 200ms;
    LlmClient both(loop.executor(), {a, c});
    auto failed = run(loop, both, hello());
    const Error& e = error_of(failed);
    CHECK(e.kind == Kind::Timeout); // the last backend's
    CHECK_THAT(e.message, Catch::Contains("backend 'A': HTTP 500") && Catch::Contains("backend 'C': first-token"));
  }
}

TEST_CASE("llm client: the circuit breaker skips a failing backend, then lets one probe through",
          "[summarizer][llm][circuit]") {
  Loop loop;
  auto tag_a = unique_tag("circuit-a");
  auto tag_b = unique_tag("circuit-b");
  Backend a = make_backend(tag_a, "down", "A");
  a.max_retries = 0;
  a.circuit_failures = 2;
  a.circuit_cooldown = 60000ms;
  LlmClient client(loop.executor(), {a, make_backend(tag_b, "ok", "B")});
  for (int i = 0; i < 2; ++i) {
    auto r = run(loop, client, hello());
    CHECK(answer_of(r).backend == "B");
  }
  CHECK(count(tag_a) == 2); // two failures: the circuit opens
  auto skipped = run(loop, client, hello());
  CHECK(answer_of(skipped).backend == "B");
  CHECK(count(tag_a) == 2); // skipped

  SECTION("half-open after the cool-down: one probe, and a failed probe opens the circuit again") {
    auto tag_c = unique_tag("circuit-c");
    Backend c = make_backend(tag_c, "down", "C");
    c.max_retries = 0;
    c.circuit_failures = 1;
    c.circuit_cooldown = 300ms;
    LlmClient single(loop.executor(), {c});
    CHECK(error_of(run(loop, single, hello())).kind == Kind::Server);
    auto open = run(loop, single, hello());
    const Error& e = error_of(open);
    CHECK(e.kind == Kind::Server);
    CHECK_THAT(e.message, Catch::Contains("circuit open"));
    REQUIRE(e.retry_after);
    CHECK(*e.retry_after <= 300ms);
    CHECK(count(tag_c) == 1);
    // The cool-down is the behaviour under test: time has to pass. Wait as long as the error says.
    std::this_thread::sleep_for(*e.retry_after + 50ms);
    CHECK(error_of(run(loop, single, hello())).kind == Kind::Server);
    CHECK(count(tag_c) == 2); // the probe
    CHECK_THAT(error_of(run(loop, single, hello())).message, Catch::Contains("circuit open"));
    CHECK(count(tag_c) == 2);
  }
}

TEST_CASE("llm client: at most max_concurrent_per_backend exchanges in flight, the rest wait their turn",
          "[summarizer][llm]") {
  Loop loop;
  auto tag = unique_tag("pairs");
  // The server holds each request until two of them are in flight: a client that keeps to two at a time always
  // reaches two, one that does not reaches six.
  LlmClient client(loop.executor(), {make_backend(tag, "pairs")}, 2);
  std::vector<std::future<Result>> futures;
  for (int i = 0; i < 6; ++i) {
    futures.push_back(loop.start(client, hello()));
  }
  for (auto& f : futures) {
    auto r = result_of(f);
    CHECK(answer_of(r).text == "Hello, world.");
  }
  auto stats = fake_llm().stats(tag);
  CHECK(stats["count"] == 6);
  CHECK(stats["max_inflight"] == 2);
}

TEST_CASE("llm client: cancel_all ends running, queued and waiting requests promptly with Cancelled",
          "[summarizer][llm][cancel]") {
  Loop loop;
  auto tag = unique_tag("mixed");
  // With two slots: #1 hangs; #2 gets 429 "come back in 30 s" and waits; #3 takes its slot and hangs; #4 queues.
  LlmClient client(loop.executor(), {make_backend(tag, "mixed")}, 2);
  std::vector<std::future<Result>> futures;
  for (int i = 0; i < 4; ++i) {
    futures.push_back(loop.start(client, hello()));
  }
  fake_llm().wait_requests(tag, 3);
  auto t0 = Clock::now();
  client.cancel_all();
  for (auto& f : futures) {
    auto r = result_of(f, 2000ms);
    CHECK(error_of(r).kind == Kind::Cancelled);
  }
  auto elapsed = since(t0);
  CHECK(elapsed < 500ms);
  CHECK(count(tag) == 3); // the queued one never went out

  // A request started after cancel_all runs normally.
  auto after = run(loop, client, hello());
  CHECK(answer_of(after).text == "Hello, world.");
}

TEST_CASE("llm client: destroying the client cancels its requests promptly", "[summarizer][llm][cancel]") {
  Loop loop;
  auto tag = unique_tag("hang");
  auto client = std::make_unique<LlmClient>(loop.executor(), std::vector<Backend>{make_backend(tag, "hang")});
  auto f = loop.start(*client, hello());
  fake_llm().wait_requests(tag, 1);
  auto t0 = Clock::now();
  client.reset();
  auto r = result_of(f, 2000ms);
  auto elapsed = since(t0);
  CHECK(error_of(r).kind == Kind::Cancelled);
  CHECK(elapsed < 500ms);
}
