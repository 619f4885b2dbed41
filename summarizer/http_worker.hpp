// The thread that runs libcurl for one LlmClient: a curl multi handle driven by curl_multi_poll, woken by
// curl_multi_wakeup when a job arrives or everything is cancelled. It owns every wait of a request — the FIFO queue
// for a concurrency slot of its group (backend), the transfer itself with its four timeouts, and the pauses between
// retries — so that cancellation ends all of them in one place.
//
// Callbacks (HttpJob::done, the delay's done) run on the worker thread, exactly once each, and must only hand the
// result on (LlmClient posts it to the request's executor); a job submitted after stop() completes at once, on the
// caller's thread, with Status::Cancelled.
#pragma once

#include "summarizer/openai_wire.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cg::summarizer::detail {

struct HttpOutcome {
  enum class Status {
    Done, // an HTTP answer (any status); for 2xx `answer` says whether its body made sense
    Cancelled,
    ConnectTimeout,
    FirstTokenTimeout,
    IdleTimeout,
    TotalTimeout,
    Network, // refused, reset, cut short; `detail` holds libcurl's words
    BadUrl   // libcurl cannot use the URL (malformed, not http/https)
  } status = Status::Done;
  long http_status = 0;
  wire::Headers headers;
  std::string error_body;                          // the body of a non-2xx answer (at most 64 KiB)
  std::optional<wire::BodyReader::Outcome> answer; // a 2xx answer
  std::string detail;
};

struct HttpJob {
  std::string url;
  std::string body;                 // POSTed as is
  std::vector<std::string> headers; // "Name: value"
  std::string proxy;                // "" = none (and not from the environment)
  bool stream = false;              // first_token_timeout applies to streamed answers only
  std::chrono::milliseconds connect_timeout{5000}, first_token_timeout{60000}, idle_timeout{30000},
      total_timeout{300000};
  std::size_t group = 0; // transfers of one group share `limit` slots, in FIFO order
  std::size_t limit = 1;
  std::uint64_t generation = 0; // from HttpWorker::generation() when the request began
  std::function<void(HttpOutcome)> done;
};

class HttpWorker {
public:
  HttpWorker();
  ~HttpWorker(); // stop()
  HttpWorker(const HttpWorker&) = delete;
  HttpWorker& operator=(const HttpWorker&) = delete;

  // The current cancellation generation: a job or delay of an older generation is cancelled.
  std::uint64_t generation() const;
  void submit(HttpJob job);
  // done(true) after `d`; done(false) if cancelled first.
  void delay(std::chrono::milliseconds d, std::uint64_t generation, std::function<void(bool)> done);
  // Cancels every job and delay submitted so far (their generation is now old).
  void cancel_all();
  // cancel_all(), then ends and joins the thread. Idempotent.
  void stop();

  // Transfers running now (not queued), for tests and diagnostics.
  std::size_t active() const;

  struct Impl;

private:
  std::unique_ptr<Impl> impl_;
};

} // namespace cg::summarizer::detail
