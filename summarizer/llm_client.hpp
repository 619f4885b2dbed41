// The LLM client (issue 6): chat completions against any OpenAI-compatible endpoint — OpenAI, Ollama, the llama.cpp
// server, vLLM — with streaming (SSE), timeouts, retries, an ordered list of fallback backends, a circuit breaker
// per backend and a concurrency limit per backend. The summary feature calls complete(); nothing here knows XMPP.
//
// Threading: libcurl runs on one worker thread per client (curl multi, woken by curl_multi_wakeup); a request's
// coroutine waits for its transfer without blocking its I/O thread and resumes on its own executor. Every wait of a
// request (the queue for a backend's concurrency slot, the transfer, the pause before a retry) sits on the worker,
// so cancel_all() and the destructor end all of them at once with Error::Kind::Cancelled.
//
// Choices made here (see summarizer/llm_client.cpp for the details):
//   - Config (401/403/404 and other 4xx that a retry cannot fix) and ContextLength end the request at once: the
//     first needs an administrator, the second a shorter prompt from the caller. Every other error (after the
//     retries that kind allows) falls back to the next backend.
//   - Retried on the same backend, up to max_retries: 429 (after Retry-After / retry-after-ms /
//     x-ratelimit-reset-*, with jitter; a wait longer than a minute is not waited for), 5xx and 408 (exponential
//     backoff from retry_backoff, or the server's Retry-After), connection errors and connect timeouts.
//   - The timeouts of one HTTP exchange: connect_timeout (TCP and TLS); first_token_timeout from the start of the
//     exchange to the first event of a stream (a ": ping" keepalive is not an event; a non-streamed answer counts
//     from its first byte); idle_timeout between two reads once the stream runs; total_timeout the whole exchange.
//     A request waiting for a concurrency slot is not timed.
//   - The circuit breaker counts consecutive failed exchanges of the backend's own making (5xx, timeouts, network,
//     malformed answers): after circuit_failures of them the backend is skipped for circuit_cooldown, then one
//     request probes it (half-open): success closes the circuit, failure opens it again.
//   - A 400 about an unsupported 'max_tokens' (or 'max_completion_tokens') switches to the other parameter, and a
//     400 about an unsupported 'temperature' drops it, each at most once per request; the backend remembers it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cg::summarizer {

struct Backend {
  std::string name;     // for messages and Response::backend
  std::string base_url; // "https://api.openai.com/v1", "http://127.0.0.1:11434/v1"; "/chat/completions" is appended
  std::string api_key;  // sent as "Authorization: Bearer …" when not empty
  std::string model;
  std::size_t context_tokens = 8192; // the model's context window, for the caller's prompt budget
  enum class LimitParam { MaxTokens, MaxCompletionTokens } limit_param = LimitParam::MaxTokens;
  bool send_temperature = true;
  std::chrono::milliseconds connect_timeout{5000}, first_token_timeout{60000}, idle_timeout{30000},
      total_timeout{300000};
  int max_retries = 2;
  bool stream = true;
  // Beyond the list:
  std::chrono::milliseconds retry_backoff{500};      // the first pause before retrying a 5xx or network error; doubles
  int circuit_failures = 5;                          // consecutive failures that open the circuit (0: never)
  std::chrono::milliseconds circuit_cooldown{30000}; // how long an open circuit skips the backend
  std::string proxy; // an HTTP(S) proxy URL; empty: connect directly (the *_proxy environment is not used)
};

struct ChatMessage {
  std::string role; // "system", "user", "assistant"
  std::string content;
};

struct Request {
  std::vector<ChatMessage> messages;
  double temperature = 0.2;
  int max_output_tokens = 1024; // <= 0: no limit parameter is sent
};

struct Response {
  std::string text;                               // the answer, without <think>…</think> blocks
  std::string finish_reason;                      // "stop", "length", … (empty if the server named none)
  bool truncated = false;                         // finish_reason == "length"
  int prompt_tokens = -1, completion_tokens = -1; // from "usage" when the server sent it
  std::string model;   // the model that answered, as the server named it (else Backend::model)
  std::string backend; // Backend::name
};

struct Error {
  enum class Kind {
    Config,        // 401, 403, 404, other 4xx a retry cannot fix, an unusable base_url: fix the configuration
    RateLimited,   // 429 after the allowed retries
    Quota,         // error code "insufficient_quota"
    ContextLength, // the prompt does not fit: the caller shrinks it
    Server,        // 5xx after the allowed retries (also: every backend's circuit is open)
    Timeout,       // connect, first token, idle or total: the message says which
    Network,       // connection refused or reset, stream cut short
    Protocol,      // a malformed answer
    Cancelled      // cancel_all() or the client's destruction
  } kind;
  int http_status = 0;
  std::string message; // names the backend
  std::optional<std::chrono::milliseconds> retry_after;
};

using Result = std::variant<Response, Error>;

class LlmClient {
public:
  // backends: tried in this order. max_concurrent_per_backend: exchanges in flight per backend (at least 1); the
  // rest wait in a FIFO queue.
  LlmClient(boost::asio::any_io_executor io, std::vector<Backend> backends, std::size_t max_concurrent_per_backend = 2);
  ~LlmClient(); // ends every request in flight with Cancelled, and joins the worker thread
  LlmClient(const LlmClient&) = delete;
  LlmClient& operator=(const LlmClient&) = delete;

  // Resumes on the caller's executor. Never throws for a failed request: errors are values.
  boost::asio::awaitable<Result> complete(Request r);

  // Ends every request started before this call with Cancelled, promptly (the worker aborts their transfers).
  // Requests started afterwards run normally.
  void cancel_all();

  struct State; // summarizer/llm_client.cpp: what the client's requests share (the worker, breakers, settings)

private:
  std::shared_ptr<State> state_;
};

} // namespace cg::summarizer
