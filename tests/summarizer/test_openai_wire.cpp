// The OpenAI wire format without sockets (summarizer/openai_wire.hpp): the request body, SSE at every byte
// boundary, chunk streams, answers, <think> removal, rate-limit headers and the classification of error answers.
#include "summarizer/openai_wire.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <ctime>

using namespace cg::summarizer;
using namespace cg::summarizer::wire;
using namespace std::chrono_literals;
using json = nlohmann::json;
using Kind = Error::Kind;

namespace {

std::vector<std::string> sse_events(const std::vector<std::string_view>& pieces) {
  SseParser p;
  std::vector<std::string> events;
  for (auto piece : pieces) {
    REQUIRE(p.feed(piece, events));
  }
  p.finish(events);
  return events;
}

BodyReader::Outcome read_body(std::string_view content_type, const std::vector<std::string_view>& pieces) {
  BodyReader r(content_type);
  for (auto piece : pieces) {
    if (!r.feed(piece)) {
      break;
    }
  }
  return r.finish();
}

std::string chunk(const std::string& content) {
  json j = {{"choices", json::array({{{"index", 0}, {"delta", {{"content", content}}}, {"finish_reason", nullptr}}})}};
  return "data: " + j.dump(-1, ' ', false) + "\n\n";
}

Classified classify_now(long status, std::string_view body, Headers headers = {},
                        Backend::LimitParam sent = Backend::LimitParam::MaxTokens, bool temperature = true) {
  return classify("b1", status, headers, body, sent, temperature, std::chrono::system_clock::now());
}

} // namespace

TEST_CASE("wire: the request body", "[summarizer][wire]") {
  Request r;
  r.messages = {{"system", "Be brief."}, {"user", "Grüße"}};
  r.temperature = 0.5;
  r.max_output_tokens = 300;
  json a = json::parse(request_body("gpt-x", r, Backend::LimitParam::MaxTokens, true, true));
  CHECK(a == json::parse(R"({"model": "gpt-x", "messages": [{"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Grüße"}], "temperature": 0.5, "max_tokens": 300, "stream": true})"));
  json b = json::parse(request_body("o3", r, Backend::LimitParam::MaxCompletionTokens, false, false));
  CHECK(b["max_completion_tokens"] == 300);
  CHECK_FALSE(b.contains("max_tokens"));
  CHECK_FALSE(b.contains("temperature"));
  CHECK(b["stream"] == false);
  r.max_output_tokens = 0;
  json c = json::parse(request_body("m", r, Backend::LimitParam::MaxTokens, true, true));
  CHECK_FALSE(c.contains("max_tokens"));
  // A client's invalid UTF-8 does not throw: it becomes U+FFFD.
  r.messages = {{"user", std::string("bad \xC3 byte")}};
  json d = json::parse(request_body("m", r, Backend::LimitParam::MaxTokens, true, true));
  CHECK(d["messages"][0]["content"] == "bad \xEF\xBF\xBD byte");
}

TEST_CASE("wire: SSE gives the same events at every split point of the stream", "[summarizer][wire][sse]") {
  const std::string stream = ": keepalive\n\n"
                             "event: message\nid: 7\ndata: {\"a\": \"Grüße 👋\"}\n\n"
                             "data:no-space\r\n\r\n"
                             "data: line one\ndata: line two\n\n"
                             "data: crlf one\r\ndata: crlf two\r\n\r\n"
                             ": ping\r\r"
                             "retry: 100\rdata: cr only\r\r"
                             "data\n\n"
                             "data: [DONE]\n\n";
  const std::vector<std::string> expected = {
      "{\"a\": \"Grüße 👋\"}", "no-space", "line one\nline two", "crlf one\ncrlf two", "cr only", "", "[DONE]"};
  REQUIRE(sse_events({stream}) == expected);
  std::string_view all(stream);
  for (std::size_t i = 0; i <= all.size(); ++i) {
    INFO("split at " << i);
    REQUIRE(sse_events({all.substr(0, i), all.substr(i)}) == expected);
  }
  for (std::size_t i = 0; i <= all.size(); ++i) {
    for (std::size_t j = i; j <= all.size(); ++j) {
      INFO("split at " << i << " and " << j);
      REQUIRE(sse_events({all.substr(0, i), all.substr(i, j - i), all.substr(j)}) == expected);
    }
  }
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < all.size(); ++i) {
    bytes.push_back(all.substr(i, 1));
  }
  CHECK(sse_events(bytes) == expected);
}

TEST_CASE("wire: SSE delivers a last event without its blank line, and refuses oversized events",
          "[summarizer][wire][sse]") {
  CHECK(sse_events({"data: a\n\ndata: b"}) == std::vector<std::string>{"a", "b"});
  CHECK(sse_events({"data: a\n\ndata: b\n"}) == std::vector<std::string>{"a", "b"});
  SseParser p;
  std::vector<std::string> events;
  std::string big = "data: " + std::string(SseParser::kMaxEvent + 1, 'x');
  CHECK_FALSE(p.feed(big, events));
}

TEST_CASE("wire: a chunk stream — content, finish_reason, usage, model, reasoning left out, [DONE]",
          "[summarizer][wire]") {
  ChatStream s;
  CHECK(s.on_event(R"({"model": "m1", "choices": [{"delta": {"role": "assistant", "content": ""}}]})") ==
        ChatStream::Status::Ok);
  CHECK(s.on_event(R"({"choices": [{"delta": {"reasoning_content": "hmm"}}]})") == ChatStream::Status::Ok);
  CHECK(s.on_event(R"({"choices": [{"delta": {"reasoning": "hmm"}}]})") == ChatStream::Status::Ok);
  CHECK(s.on_event(R"({"choices": [{"delta": {"content": "Hi"}, "finish_reason": null}]})") == ChatStream::Status::Ok);
  CHECK(s.on_event(R"({"choices": [{"delta": {"content": null}}]})") == ChatStream::Status::Ok);
  CHECK(s.on_event(R"({"choices": [{"delta": {}, "finish_reason": "stop"}]})") == ChatStream::Status::Ok);
  CHECK(s.on_event(R"({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}})") ==
        ChatStream::Status::Ok);
  CHECK_FALSE(s.done());
  CHECK(s.on_event("[DONE]") == ChatStream::Status::Ok);
  CHECK(s.done());
  CHECK(s.on_event("not even JSON, but after [DONE]") == ChatStream::Status::Ok);
  CHECK(s.text == "Hi");
  CHECK(s.finish_reason == "stop");
  CHECK(s.model == "m1");
  CHECK(s.prompt_tokens == 5);
  CHECK(s.completion_tokens == 2);
}

TEST_CASE("wire: a chunk stream — malformed chunks, error chunks, several chunks in one event", "[summarizer][wire]") {
  {
    ChatStream s;
    CHECK(s.on_event(R"({"choices": [{"delta": {"content": "x"})") == ChatStream::Status::Malformed);
    CHECK_THAT(s.problem, Catch::Contains("not a JSON object"));
  }
  {
    ChatStream s;
    CHECK(s.on_event(R"({"choices": {"delta": {}}})") == ChatStream::Status::Malformed);
  }
  {
    ChatStream s;
    CHECK(s.on_event(R"({"choices": [{"delta": {"content": 5}}]})") == ChatStream::Status::Malformed);
  }
  {
    ChatStream s;
    CHECK(s.on_event(R"({"error": {"message": "model overloaded", "code": "overloaded"}})") ==
          ChatStream::Status::ServerError);
    CHECK(s.stream_error.message == "model overloaded");
  }
  {
    ChatStream s; // "data: {…}\ndata: {…}\n\n" from a server that forgot the blank line
    CHECK(s.on_event("{\"choices\": [{\"delta\": {\"content\": \"a\"}}]}\n"
                     "{\"choices\": [{\"delta\": {\"content\": \"b\"}, \"finish_reason\": \"stop\"}]}") ==
          ChatStream::Status::Ok);
    CHECK(s.text == "ab");
    CHECK(s.finish_reason == "stop");
  }
}

TEST_CASE("wire: a streamed answer reads the same at every split point, UTF-8 and <think> tags included",
          "[summarizer][wire][sse]") {
  std::string stream = chunk("<thi") + chunk("nk>über 🤔</th") + chunk("ink>\n\nKöln ") + chunk("👋 ok") +
                       "data: {\"choices\": [{\"delta\": {}, \"finish_reason\": \"stop\"}]}\r\n\r\n" +
                       "data: [DONE]\n\n";
  auto whole = read_body("text/event-stream", {stream});
  REQUIRE(whole.status == BodyReader::Outcome::Status::Ok);
  CHECK(whole.text == "Köln 👋 ok");
  CHECK(whole.finish_reason == "stop");
  std::string_view all(stream);
  for (std::size_t i = 0; i <= all.size(); ++i) {
    INFO("split at " << i);
    auto split = read_body("text/event-stream", {all.substr(0, i), all.substr(i)});
    REQUIRE(split.status == BodyReader::Outcome::Status::Ok);
    REQUIRE(split.text == "Köln 👋 ok");
  }
}

TEST_CASE("wire: reading a 2xx body — JSON, sniffing, empty, incomplete, errors", "[summarizer][wire]") {
  const std::string answer = R"({"model": "m-1", "choices": [{"index": 0, "message": {"role": "assistant",
      "content": "<think>x</think>Sum.", "reasoning_content": "y"}, "finish_reason": "length"}],
      "usage": {"prompt_tokens": 10, "completion_tokens": 3}})";
  auto json_answer = read_body("application/json", {answer.substr(0, 17), answer.substr(17)});
  REQUIRE(json_answer.status == BodyReader::Outcome::Status::Ok);
  CHECK(json_answer.text == "Sum.");
  CHECK(json_answer.finish_reason == "length");
  CHECK(json_answer.model == "m-1");
  CHECK(json_answer.prompt_tokens == 10);
  CHECK(json_answer.completion_tokens == 3);

  // No usable Content-Type: the first byte decides.
  CHECK(read_body("", {"\n ", answer}).status == BodyReader::Outcome::Status::Ok);
  CHECK(read_body("text/plain", {chunk("a"), "data: [DONE]\n\n"}).text == "a");
  {
    BodyReader r("text/event-stream");
    CHECK_FALSE(r.started());
    r.feed(": ping\n\n");
    CHECK_FALSE(r.started()); // a keepalive is no token
    r.feed(chunk("a"));
    CHECK(r.started());
  }

  CHECK(read_body("application/json", {}).status == BodyReader::Outcome::Status::Malformed);
  CHECK(read_body("application/json", {"{\"choices\": [{\"mess"}).status == BodyReader::Outcome::Status::Malformed);
  CHECK(read_body("application/json", {R"({"choices": []})"}).status == BodyReader::Outcome::Status::Malformed);
  CHECK(read_body("text/event-stream", {chunk("a")}).status == BodyReader::Outcome::Status::Incomplete);
  CHECK(read_body("text/event-stream", {"data: [DONE]\n\n"}).status == BodyReader::Outcome::Status::Malformed);
  // A finish_reason without [DONE] is a complete answer (not every server sends [DONE]).
  CHECK(read_body("text/event-stream", {chunk("a"), R"(data: {"choices": [{"delta": {}, "finish_reason": "stop"}]})"})
            .status == BodyReader::Outcome::Status::Ok);
  auto error_in_200 = read_body("application/json", {R"({"error": {"message": "boom"}})"});
  CHECK(error_in_200.status == BodyReader::Outcome::Status::ServerError);
  CHECK(error_in_200.error.message == "boom");
  auto error_mid_stream =
      read_body("text/event-stream", {chunk("a"), "data: {\"error\": {\"message\": \"context size exceeded\"}}\n\n"});
  CHECK(error_mid_stream.status == BodyReader::Outcome::Status::ServerError);
  CHECK(is_context_length(error_mid_stream.error));
}

TEST_CASE("wire: strip_think", "[summarizer][wire]") {
  CHECK(strip_think("<think>a\nb</think>\n\nAnswer") == "Answer");
  CHECK(strip_think("Answer") == "Answer");
  CHECK(strip_think("One <think>x</think>two <think>y</think>three") == "One two three");
  CHECK(strip_think("Visible<think>never closed") == "Visible");
  CHECK(strip_think("reasoning without its opening tag</think>\nAnswer") == "Answer");
  CHECK(strip_think("<think></think>") == "");
  CHECK(strip_think("  padded") == "padded");
}

TEST_CASE("wire: durations and rate-limit headers", "[summarizer][wire]") {
  CHECK(parse_duration("1s") == 1000ms);
  CHECK(parse_duration("6m0s") == 360000ms);
  CHECK(parse_duration("20ms") == 20ms);
  CHECK(parse_duration("1h2m3.5s") == 3723500ms);
  CHECK(parse_duration("0.5s") == 500ms);
  CHECK_FALSE(parse_duration(""));
  CHECK_FALSE(parse_duration("soon"));
  CHECK_FALSE(parse_duration("5"));
  CHECK_FALSE(parse_duration("5 parsecs"));

  auto now = std::chrono::system_clock::from_time_t(1700000000); // Tue, 14 Nov 2023 22:13:20 GMT
  CHECK(retry_after({{"retry-after", "3"}}, now) == 3000ms);
  CHECK(retry_after({{"retry-after", "Tue, 14 Nov 2023 22:13:30 GMT"}}, now) == 10000ms);
  CHECK(retry_after({{"retry-after", "Tue, 14 Nov 2023 22:13:00 GMT"}}, now) == 0ms); // in the past
  CHECK(retry_after({{"retry-after-ms", "250"}, {"retry-after", "3"}}, now) == 250ms);
  CHECK(retry_after({{"x-ratelimit-reset-requests", "1s"}, {"x-ratelimit-reset-tokens", "6m0s"}}, now) == 360000ms);
  CHECK(retry_after({{"x-ratelimit-reset", "2"}}, now) == 2000ms);
  CHECK(retry_after({{"x-ratelimit-reset", "1700000005"}}, now) == 5000ms); // a Unix time
  CHECK_FALSE(retry_after({{"retry-after", "whenever"}}, now));
  CHECK_FALSE(retry_after({}, now));
}

TEST_CASE("wire: classifying error answers of OpenAI, vLLM, llama.cpp and Ollama", "[summarizer][wire]") {
  auto c401 = classify_now(401, R"({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})");
  CHECK(c401.error.kind == Kind::Config);
  CHECK(c401.error.http_status == 401);
  CHECK_THAT(c401.error.message,
             Catch::Contains("'b1'") && Catch::Contains("401") && Catch::Contains("Incorrect API key provided"));
  CHECK(classify_now(403, "Forbidden").error.kind == Kind::Config);
  auto c404 = classify_now(404, R"({"error": "model 'llama9' not found, try pulling it first"})"); // Ollama
  CHECK(c404.error.kind == Kind::Config);
  CHECK_THAT(c404.error.message, Catch::Contains("llama9") && Catch::Contains("base_url and model"));

  auto c429 = classify_now(429, R"({"error": {"message": "Rate limit reached"}})", {{"retry-after", "7"}});
  CHECK(c429.error.kind == Kind::RateLimited);
  CHECK(c429.error.retry_after == 7000ms);
  auto quota = classify_now(429, R"({"error": {"message": "You exceeded your current quota",
                                    "type": "insufficient_quota", "code": "insufficient_quota"}})");
  CHECK(quota.error.kind == Kind::Quota);

  CHECK(classify_now(500, "oops").error.kind == Kind::Server);
  CHECK(classify_now(503, "").error.kind == Kind::Server);
  CHECK(classify_now(408, "").error.kind == Kind::Server);

  for (const char* body : {
           R"({"error": {"message": "This model's maximum context length is 4096 tokens.", "code": null}})", // vLLM
           R"({"error": {"code": "context_length_exceeded", "message": "too long"}})",                       // OpenAI
           R"({"error": {"code": 400, "type": "exceed_context_size_error",
               "message": "the request exceeds the available context size, try increasing it"}})", // llama.cpp
           R"({"object": "error", "message": "Input length exceeds the context window", "code": 400})",
       }) {
    INFO(body);
    CHECK(classify_now(400, body).error.kind == Kind::ContextLength);
  }
  CHECK(classify_now(413, "Payload Too Large").error.kind == Kind::ContextLength);

  auto no_max = classify_now(400, R"({"error": {"message": "Unsupported parameter: 'max_tokens' is not supported )"
                                  R"(with this model. Use 'max_completion_tokens' instead.", "param": "max_tokens", )"
                                  R"("code": "unsupported_parameter"}})");
  CHECK(no_max.error.kind == Kind::Config);
  CHECK(no_max.fix == Classified::Fix::SwitchLimitParam);
  auto no_mct = classify_now(400,
                             R"({"object": "error", "message": "[{'type': 'extra_forbidden', 'loc': ('body', )"
                             R"('max_completion_tokens'), 'msg': 'Extra inputs are not permitted'}]", "code": 400})",
                             {}, Backend::LimitParam::MaxCompletionTokens);
  CHECK(no_mct.fix == Classified::Fix::SwitchLimitParam);
  // The same complaint about a parameter we did not send changes nothing.
  CHECK(classify_now(400, R"({"error": {"message": "Unsupported parameter: 'max_tokens'"}})", {},
                     Backend::LimitParam::MaxCompletionTokens)
            .fix == Classified::Fix::None);
  auto temp = classify_now(400, R"({"error": {"message": "Unsupported value: 'temperature' does not support 0.2 )"
                                R"(with this model. Only the default (1) value is supported.", )"
                                R"("param": "temperature", "code": "unsupported_value"}})");
  CHECK(temp.fix == Classified::Fix::DropTemperature);
  CHECK(classify_now(400, R"({"error": {"message": "Invalid value for 'temperature'"}})").fix == Classified::Fix::None);
  CHECK(classify_now(400, R"({"error": {"message": "messages must not be empty"}})").error.kind == Kind::Config);
}
