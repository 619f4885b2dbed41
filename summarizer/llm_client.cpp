#include "summarizer/llm_client.hpp"

#include "summarizer/http_worker.hpp"
#include "summarizer/openai_wire.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <functional>
#include <mutex>
#include <random>
#include <type_traits>

namespace cg::summarizer {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// A server's Retry-After longer than this is not waited for: the request falls back to the next backend at once.
constexpr milliseconds kMaxRetryWait{60000};
constexpr milliseconds kMaxBackoff{30000};

// --- waiting for the worker without blocking: a callback that resumes the coroutine on its own executor ----------

template <class Handler, class Work, class T>
struct Deliver {
  std::shared_ptr<Handler> handler;
  Work work; // keeps the executor's context running until the coroutine has resumed
  T value;
  void operator()() { (*handler)(std::move(value)); }
};

template <class Handler, class Work, class T>
struct Resume {
  std::shared_ptr<Handler> handler;
  Work work;
  void operator()(T value) {
    Work target = work;
    asio::post(target, Deliver<Handler, Work, T>{std::move(handler), std::move(work), std::move(value)});
  }
};

template <class T>
struct CallbackInitiation {
  asio::any_io_executor fallback;
  std::function<void(std::function<void(T)>)> start;

  template <class Handler>
  void operator()(Handler&& handler) {
    using H = std::decay_t<Handler>;
    auto work =
        asio::prefer(asio::get_associated_executor(handler, fallback), asio::execution::outstanding_work.tracked);
    auto h = std::make_shared<H>(std::forward<Handler>(handler));
    start(Resume<H, decltype(work), T>{std::move(h), std::move(work)});
  }
};

// Calls start(resume) and suspends until resume(value) was called (from any thread).
template <class T>
asio::awaitable<T> wait_for(asio::any_io_executor fallback, std::function<void(std::function<void(T)>)> start) {
  CallbackInitiation<T> init{std::move(fallback), std::move(start)};
  T value =
      co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(T)>(std::move(init), asio::use_awaitable);
  co_return value;
}

Error error(Error::Kind kind, std::string message, int status = 0) {
  return Error{kind, status, std::move(message), std::nullopt};
}

bool backend_fault(Error::Kind k) {
  return k == Error::Kind::Server || k == Error::Kind::Timeout || k == Error::Kind::Network ||
         k == Error::Kind::Protocol;
}

std::string ms(milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

// One exchange, judged.
struct Judged {
  std::optional<Response> response;
  wire::Classified failure{};
  bool connect_timeout = false;
};

Judged judge(const Backend& be, detail::HttpOutcome& out, Backend::LimitParam limit, bool temperature) {
  using S = detail::HttpOutcome::Status;
  Judged j;
  Error& e = j.failure.error;
  const std::string who = "backend '" + be.name + "': ";
  switch (out.status) {
  case S::Done:
    break;
  case S::Cancelled:
    e = error(Error::Kind::Cancelled, who + "cancelled");
    return j;
  case S::ConnectTimeout:
    e = error(Error::Kind::Timeout, who + "connect timeout: no connection within " + ms(be.connect_timeout));
    j.connect_timeout = true;
    return j;
  case S::FirstTokenTimeout:
    e = error(Error::Kind::Timeout, who + "first-token timeout: no answer within " + ms(be.first_token_timeout),
              int(out.http_status));
    return j;
  case S::IdleTimeout:
    e = error(Error::Kind::Timeout, who + "idle timeout: the stream stalled for " + ms(be.idle_timeout),
              int(out.http_status));
    return j;
  case S::TotalTimeout:
    e = error(Error::Kind::Timeout, who + "total timeout: the exchange took longer than " + ms(be.total_timeout),
              int(out.http_status));
    return j;
  case S::Network:
    e = error(Error::Kind::Network, who + "network error: " + out.detail, int(out.http_status));
    return j;
  case S::BadUrl:
    e = error(Error::Kind::Config, who + "unusable base_url '" + be.base_url + "': " + out.detail);
    return j;
  }
  if (!out.answer) {
    j.failure = wire::classify(be.name, out.http_status, out.headers, out.error_body, limit, temperature,
                               std::chrono::system_clock::now());
    return j;
  }
  auto& a = *out.answer;
  using A = wire::BodyReader::Outcome::Status;
  const int status = int(out.http_status);
  switch (a.status) {
  case A::Ok: {
    Response r;
    r.text = std::move(a.text);
    r.finish_reason = std::move(a.finish_reason);
    r.truncated = r.finish_reason == "length";
    r.prompt_tokens = a.prompt_tokens;
    r.completion_tokens = a.completion_tokens;
    r.model = a.model.empty() ? be.model : std::move(a.model);
    r.backend = be.name;
    j.response = std::move(r);
    break;
  }
  case A::Malformed:
    e = error(Error::Kind::Protocol, who + "malformed answer: " + a.problem, status);
    break;
  case A::Incomplete:
    e = error(Error::Kind::Network, who + a.problem, status);
    break;
  case A::ServerError:
    if (wire::is_context_length(a.error)) {
      e = error(Error::Kind::ContextLength, who + "the prompt is too long for the model: " + a.error.message, status);
    } else if (a.error.code == "insufficient_quota" || a.error.type == "insufficient_quota") {
      e = error(Error::Kind::Quota, who + "quota exhausted: " + a.error.message, status);
    } else {
      e = error(Error::Kind::Server, who + "error in the answer: " + a.error.message, status);
    }
    break;
  }
  return j;
}

} // namespace

// --- shared state: what the requests of one client share, under a mutex ------------------------------------------

struct LlmClient::State {
  asio::any_io_executor io;
  std::vector<Backend> backends;
  std::size_t max_concurrent;
  detail::HttpWorker worker;

  struct Health {
    Backend::LimitParam limit;
    bool send_temperature;
    int failures = 0;
    bool open = false;
    bool probing = false;
    Clock::time_point open_until{};
  };
  std::mutex mu;
  std::vector<Health> health;
  std::mt19937_64 rng{std::random_device{}()};

  State(asio::any_io_executor ex, std::vector<Backend> b, std::size_t limit)
      : io(std::move(ex)), backends(std::move(b)), max_concurrent(std::max<std::size_t>(1, limit)) {
    for (const auto& be : backends) {
      health.push_back(Health{be.limit_param, be.send_temperature});
    }
  }

  struct Admission {
    bool allowed = false;
    bool probe = false;
    milliseconds wait{0};
  };
  // The circuit breaker's gate: closed → go; open → skip until the cool-down has passed, then let one probe through.
  Admission admit(std::size_t b) {
    std::lock_guard lock(mu);
    Health& h = health[b];
    if (!h.open) {
      return {true, false, {}};
    }
    auto now = Clock::now();
    if (now < h.open_until || h.probing) {
      return {false, false, std::chrono::ceil<milliseconds>(std::max(h.open_until - now, Clock::duration(0)))};
    }
    h.probing = true;
    return {true, true, {}};
  }
  void healthy(std::size_t b) {
    std::lock_guard lock(mu);
    Health& h = health[b];
    h.failures = 0;
    h.open = false;
    h.probing = false;
  }
  // A failure of the backend's own making. True when the circuit is open (now): stop using the backend.
  bool failed(std::size_t b, bool probe) {
    std::lock_guard lock(mu);
    Health& h = health[b];
    const Backend& be = backends[b];
    ++h.failures;
    if (probe || (be.circuit_failures > 0 && h.failures >= be.circuit_failures)) {
      h.open = true;
      h.open_until = Clock::now() + be.circuit_cooldown;
    }
    if (probe) {
      h.probing = false;
    }
    return h.open;
  }
  void release_probe(std::size_t b) {
    std::lock_guard lock(mu);
    health[b].probing = false;
  }

  std::pair<Backend::LimitParam, bool> settings(std::size_t b) {
    std::lock_guard lock(mu);
    return {health[b].limit, health[b].send_temperature};
  }
  void switch_limit(std::size_t b, Backend::LimitParam rejected) {
    std::lock_guard lock(mu);
    if (health[b].limit == rejected) {
      health[b].limit = rejected == Backend::LimitParam::MaxTokens ? Backend::LimitParam::MaxCompletionTokens
                                                                   : Backend::LimitParam::MaxTokens;
    }
  }
  void drop_temperature(std::size_t b) {
    std::lock_guard lock(mu);
    health[b].send_temperature = false;
  }

  // The pause before retry number `retries` + 1, or nothing if the server asks for more than we wait.
  std::optional<milliseconds> pause(const Backend& be, const Error& e, int retries) {
    std::lock_guard lock(mu);
    milliseconds wait{0};
    if (e.retry_after) {
      // The server's word, plus up to a fifth more so that many clients do not come back at the same instant.
      milliseconds spread = *e.retry_after / 5 + milliseconds(10);
      wait = *e.retry_after + milliseconds(std::uniform_int_distribution<long long>(0, spread.count())(rng));
    } else {
      milliseconds backoff = be.retry_backoff;
      for (int i = 0; i < retries && backoff < kMaxBackoff; ++i) {
        backoff *= 2;
      }
      backoff = std::min(backoff, kMaxBackoff);
      wait = milliseconds(std::uniform_int_distribution<long long>(backoff.count() / 2, backoff.count())(rng));
    }
    if (wait > kMaxRetryWait) {
      return std::nullopt;
    }
    return wait;
  }

  detail::HttpJob job(std::size_t b, const Request& r, Backend::LimitParam limit, bool temperature,
                      std::uint64_t generation) const {
    const Backend& be = backends[b];
    detail::HttpJob j;
    std::string base = be.base_url;
    while (!base.empty() && base.back() == '/') {
      base.pop_back();
    }
    j.url = base + "/chat/completions";
    j.body = wire::request_body(be.model, r, limit, temperature, be.stream);
    j.headers.push_back("Content-Type: application/json");
    j.headers.push_back(be.stream ? "Accept: text/event-stream" : "Accept: application/json");
    if (!be.api_key.empty()) {
      j.headers.push_back("Authorization: Bearer " + be.api_key);
    }
    j.proxy = be.proxy;
    j.stream = be.stream;
    j.connect_timeout = be.connect_timeout;
    j.first_token_timeout = be.first_token_timeout;
    j.idle_timeout = be.idle_timeout;
    j.total_timeout = be.total_timeout;
    j.group = b;
    j.limit = max_concurrent;
    j.generation = generation;
    return j;
  }
};

namespace {

using State = LlmClient::State;

// Releases a half-open probe that ended without a verdict (cancelled, or an answer that says nothing about health).
struct ProbeGuard {
  State* st;
  std::size_t b;
  bool active;
  ~ProbeGuard() {
    if (active) {
      st->release_probe(b);
    }
  }
};

struct BackendOutcome {
  Result result;
  bool fall_back = false;
};

asio::awaitable<detail::HttpOutcome> exchange(std::shared_ptr<State> st, detail::HttpJob job) {
  auto job_ptr = std::make_shared<detail::HttpJob>(std::move(job));
  State* raw = st.get();
  std::function<void(std::function<void(detail::HttpOutcome)>)> start =
      [raw, job_ptr](std::function<void(detail::HttpOutcome)> resume) {
        job_ptr->done = std::move(resume);
        raw->worker.submit(std::move(*job_ptr));
      };
  detail::HttpOutcome out = co_await wait_for<detail::HttpOutcome>(st->io, std::move(start));
  co_return out;
}

asio::awaitable<bool> pause_for(std::shared_ptr<State> st, milliseconds d, std::uint64_t generation) {
  State* raw = st.get();
  std::function<void(std::function<void(bool)>)> start = [raw, d, generation](std::function<void(bool)> resume) {
    raw->worker.delay(d, generation, std::move(resume));
  };
  bool elapsed = co_await wait_for<bool>(st->io, std::move(start));
  co_return elapsed;
}

// One backend: the exchange, and the retries its errors allow. Bounded: at most max_retries retries, plus one
// switch of the limit parameter and one drop of the temperature.
asio::awaitable<BackendOutcome> try_backend(std::shared_ptr<State> st, std::size_t b, const Request& r,
                                            std::uint64_t generation, bool probe) {
  const Backend& be = st->backends[b];
  ProbeGuard guard{st.get(), b, probe};
  const int max_retries = std::max(0, be.max_retries);
  int retries = 0;
  bool switched = false;
  bool dropped = false;
  Error last = error(Error::Kind::Server, "backend '" + be.name + "': no attempt");
  for (int attempt = 0; attempt < max_retries + 3; ++attempt) {
    auto [limit, temperature] = st->settings(b);
    detail::HttpJob job = st->job(b, r, limit, temperature, generation);
    detail::HttpOutcome out = co_await exchange(st, std::move(job));
    Judged j = judge(be, out, limit, temperature);
    if (j.response) {
      st->healthy(b);
      guard.active = false;
      co_return BackendOutcome{std::move(*j.response), false};
    }
    Error e = std::move(j.failure.error);
    if (e.kind == Error::Kind::Cancelled) {
      co_return BackendOutcome{std::move(e), false};
    }
    if (j.failure.fix == wire::Classified::Fix::SwitchLimitParam && !switched) {
      switched = true;
      st->switch_limit(b, limit);
      continue;
    }
    if (j.failure.fix == wire::Classified::Fix::DropTemperature && !dropped) {
      dropped = true;
      st->drop_temperature(b);
      continue;
    }
    bool open = false;
    if (backend_fault(e.kind)) {
      open = st->failed(b, guard.active);
    } else {
      st->healthy(b); // it answered, and sensibly: the circuit has no reason to stay open
    }
    guard.active = false;
    if (e.kind == Error::Kind::Config || e.kind == Error::Kind::ContextLength) {
      co_return BackendOutcome{std::move(e), false};
    }
    const bool retryable = e.kind == Error::Kind::RateLimited || e.kind == Error::Kind::Server ||
                           e.kind == Error::Kind::Network || j.connect_timeout;
    if (!retryable || open || retries >= max_retries) {
      co_return BackendOutcome{std::move(e), true};
    }
    auto wait = st->pause(be, e, retries);
    if (!wait) {
      co_return BackendOutcome{std::move(e), true};
    }
    bool elapsed = co_await pause_for(st, *wait, generation);
    if (!elapsed) {
      co_return BackendOutcome{error(Error::Kind::Cancelled, "backend '" + be.name + "': cancelled"), false};
    }
    ++retries;
    last = std::move(e);
  }
  co_return BackendOutcome{std::move(last), true};
}

} // namespace

LlmClient::LlmClient(asio::any_io_executor io, std::vector<Backend> backends, std::size_t max_concurrent_per_backend)
    : state_(std::make_shared<State>(std::move(io), std::move(backends), max_concurrent_per_backend)) {}

LlmClient::~LlmClient() {
  // Requests still running hold the state (and so the worker object); they resume with Cancelled.
  state_->worker.stop();
}

void LlmClient::cancel_all() {
  state_->worker.cancel_all();
}

asio::awaitable<Result> LlmClient::complete(Request r) {
  std::shared_ptr<State> st = state_; // the coroutine may outlive the client
  const std::uint64_t generation = st->worker.generation();
  if (st->backends.empty()) {
    co_return error(Error::Kind::Config, "no LLM backend is configured");
  }
  std::string story; // what happened at each backend, for the final error
  std::optional<Error> last;
  std::optional<milliseconds> soonest;
  for (std::size_t b = 0; b < st->backends.size(); ++b) {
    const Backend& be = st->backends[b];
    State::Admission admission = st->admit(b);
    if (!story.empty()) {
      story += "; ";
    }
    if (!admission.allowed) {
      story += "backend '" + be.name + "': circuit open (skipped for another " + ms(admission.wait) + ")";
      if (!soonest || admission.wait < *soonest) {
        soonest = admission.wait;
      }
      continue;
    }
    BackendOutcome outcome = co_await try_backend(st, b, r, generation, admission.probe);
    if (std::holds_alternative<Response>(outcome.result)) {
      co_return std::move(outcome.result);
    }
    Error e = std::get<Error>(std::move(outcome.result));
    if (!outcome.fall_back) {
      co_return e;
    }
    story += e.message;
    last = std::move(e);
  }
  if (!last) {
    Error e = error(Error::Kind::Server, "no LLM backend available: " + story);
    e.retry_after = soonest;
    co_return e;
  }
  last->message = std::move(story);
  co_return std::move(*last);
}

} // namespace cg::summarizer
