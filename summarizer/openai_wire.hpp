// The OpenAI chat-completions wire format, without any I/O: the request body, the server-sent-events stream, the
// non-streamed answer, error bodies and rate-limit headers. Pure functions and incremental parsers, so that every
// byte boundary can be tested without a socket.
#pragma once

#include "summarizer/llm_client.hpp"

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cg::summarizer::wire {

// Response header names in lower case; a repeated header keeps its last value.
using Headers = std::map<std::string, std::string>;

// {model, messages, temperature (if send_temperature), max_tokens | max_completion_tokens (if > 0), stream}.
std::string request_body(const std::string& model, const Request& r, Backend::LimitParam limit, bool send_temperature,
                         bool stream);

// Server-sent events (the WHATWG EventSource grammar, the parts a chat stream uses): bytes in at any boundary,
// each event's data out. Lines end in LF, CRLF or CR; "data:" lines are joined with LF; comments (":…") and other
// fields are skipped; an event ends at an empty line (or at the end of the stream, see finish()).
class SseParser {
public:
  static constexpr std::size_t kMaxEvent = 4 * 1024 * 1024;
  // Appends the data of each completed event to `events`. False once an event or line exceeds kMaxEvent.
  bool feed(std::string_view bytes, std::vector<std::string>& events);
  // The end of the stream: an event not yet closed by an empty line is delivered.
  void finish(std::vector<std::string>& events);

private:
  void end_line(std::vector<std::string>& events);
  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool after_cr_ = false;
};

// An error object as servers send it: {"error": {"message", "type", "code", "param"}} (OpenAI, vLLM),
// {"error": "text"} (Ollama), {"message": …} or {"detail": …} (FastAPI); otherwise the raw text, shortened.
struct ErrorBody {
  std::string message, type, code, param;
};
ErrorBody parse_error_body(std::string_view body);

// The stream of chat.completion.chunk objects: content deltas, finish_reason, usage, model; [DONE]. Ignores
// reasoning_content / reasoning deltas. A chunk that is not JSON is a protocol error; an {"error": …} chunk is an
// error reported mid-stream.
class ChatStream {
public:
  enum class Status { Ok, Malformed, ServerError };
  Status on_event(std::string_view data);
  bool done() const { return done_; } // [DONE] seen
  std::size_t events() const { return events_; }
  std::string text, finish_reason, model;
  int prompt_tokens = -1, completion_tokens = -1;
  std::string problem;     // what was malformed (Status::Malformed)
  ErrorBody stream_error;  // Status::ServerError
  bool saw_choice = false; // at least one chunk had a choice

private:
  Status on_object(std::string_view chunk);
  bool done_ = false;
  std::size_t events_ = 0;
};

// The body of a successful (2xx) answer, streamed or not: decided by Content-Type (text/event-stream → SSE,
// application/json → JSON), else by its first non-blank byte ('{' → JSON, anything else → SSE).
class BodyReader {
public:
  static constexpr std::size_t kMaxJson = 8 * 1024 * 1024;
  enum class Mode { Unknown, Sse, Json };
  explicit BodyReader(std::string_view content_type);
  // False when the body cannot be a valid answer (malformed chunk, error chunk, too large): see problem().
  bool feed(std::string_view bytes);
  // Progress for the first-token timer: a stream's first event, or a JSON answer's first byte.
  bool started() const;
  Mode mode() const { return mode_; }

  // After the last byte: the answer, or what went wrong.
  struct Outcome {
    enum class Status { Ok, Malformed, ServerError, Incomplete } status = Status::Ok;
    std::string text, finish_reason, model;
    int prompt_tokens = -1, completion_tokens = -1;
    std::string problem;
    ErrorBody error;
  };
  Outcome finish();

private:
  bool feed_sse(std::string_view bytes);
  bool take_events();
  Mode mode_ = Mode::Unknown;
  std::string json_;
  SseParser sse_;
  ChatStream stream_;
  std::vector<std::string> pending_;
  bool failed_ = false;
  Outcome::Status fail_status_ = Outcome::Status::Ok;
  std::string problem_;
};

// The answer without its reasoning: every <think>…</think> block is removed, an unclosed <think> drops the rest,
// and a leading "…</think>" without its opening tag (chat templates that put <think> in the prompt) drops what
// comes before it. Leading whitespace left behind is trimmed.
std::string strip_think(std::string_view text);

// Go-style durations as in OpenAI's x-ratelimit-reset-* headers: "1s", "6m0s", "20ms", "1h2m3.5s", "0.5s".
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// How long the server asks us to wait: retry-after-ms, Retry-After (delta-seconds or HTTP-date),
// x-ratelimit-reset-requests / -tokens (durations; the longer one) or x-ratelimit-reset (seconds, a duration, or a
// Unix time). Never negative.
std::optional<std::chrono::milliseconds> retry_after(const Headers& headers, std::chrono::system_clock::time_point now);

// A failed HTTP exchange as an Error, with what the caller may change and retry once.
struct Classified {
  Error error;
  enum class Fix { None, SwitchLimitParam, DropTemperature } fix = Fix::None;
};
Classified classify(const std::string& backend, long status, const Headers& headers, std::string_view body,
                    Backend::LimitParam sent_limit, bool sent_temperature, std::chrono::system_clock::time_point now);

// True for a context-length complaint (OpenAI, vLLM, llama.cpp, Ollama wording).
bool is_context_length(const ErrorBody& e);

} // namespace cg::summarizer::wire
