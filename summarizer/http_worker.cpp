#include "summarizer/http_worker.hpp"

#include "summarizer/curl_global.hpp"

#include <curl/curl.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace cg::summarizer::detail {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kMaxErrorBody = 64 * 1024;
// curl_multi_poll never sleeps longer than this, whatever the deadlines say (a safety net, not a mechanism).
constexpr milliseconds kMaxPoll{1000};

struct Transfer {
  HttpJob job;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
  wire::Headers headers;
  long status = 0;
  std::optional<wire::BodyReader> reader;
  std::string error_body;
  bool reader_failed = false;
  bool first = false; // the first-token moment has passed
  Clock::time_point start, last_read;

  bool success() const { return status >= 200 && status < 300; }
  std::string content_type() const {
    auto it = headers.find("content-type");
    return it == headers.end() ? std::string() : it->second;
  }
  // The earliest moment one of the job's timeouts fires.
  Clock::time_point deadline() const {
    Clock::time_point d = start + job.total_timeout;
    if (!first && job.stream) {
      d = std::min(d, start + job.first_token_timeout);
    }
    if (first) {
      d = std::min(d, last_read + job.idle_timeout);
    }
    return d;
  }
  std::optional<HttpOutcome::Status> expired(Clock::time_point now) const {
    if (now >= start + job.total_timeout) {
      return HttpOutcome::Status::TotalTimeout;
    }
    if (!first && job.stream && now >= start + job.first_token_timeout) {
      return HttpOutcome::Status::FirstTokenTimeout;
    }
    if (first && now >= last_read + job.idle_timeout) {
      return HttpOutcome::Status::IdleTimeout;
    }
    return std::nullopt;
  }
};

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t len = size * n;
  std::string_view line(data, len);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) {
    line.remove_suffix(1);
  }
  t->last_read = Clock::now();
  if (line.rfind("HTTP/", 0) == 0) {
    t->headers.clear(); // a new response (after a 100 Continue, say)
    return len;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) {
    return len;
  }
  std::string name(line.substr(0, colon));
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
    value.remove_prefix(1);
  }
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
    value.remove_suffix(1);
  }
  t->headers[name] = std::string(value);
  return len;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t len = size * n;
  t->last_read = Clock::now();
  if (t->status == 0) {
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
  }
  if (t->success()) {
    if (!t->reader) {
      t->reader.emplace(t->content_type());
    }
    if (!t->reader->feed(std::string_view(data, len))) {
      t->reader_failed = true;
      return 0; // ends the transfer (CURLE_WRITE_ERROR); the reader knows why
    }
    t->first = t->first || t->reader->started();
  } else {
    t->error_body.append(data, std::min(len, kMaxErrorBody - std::min(kMaxErrorBody, t->error_body.size())));
    t->first = true;
  }
  return len;
}

struct Delay {
  Clock::time_point due;
  std::uint64_t generation;
  std::function<void(bool)> done;
};

} // namespace

struct HttpWorker::Impl {
  // Shared with the submitting threads, under `mu`.
  mutable std::mutex mu;
  std::vector<HttpJob> incoming;
  std::vector<Delay> incoming_delays;
  std::uint64_t generation = 0;
  bool stopping = false;
  bool stopped = false;
  std::atomic<std::size_t> active_count{0};

  // The worker thread's own.
  CURLM* multi = nullptr;
  std::map<std::size_t, std::deque<HttpJob>> queued;
  std::map<std::size_t, std::size_t> running; // per group
  std::list<std::unique_ptr<Transfer>> active;
  std::vector<Delay> delays;
  std::thread thread;

  void run();
  void start_queued();
  void start(HttpJob job);
  void finish(std::list<std::unique_ptr<Transfer>>::iterator it, std::optional<HttpOutcome::Status> forced,
              CURLcode code);
  void cancel_older_than(std::uint64_t gen, bool everything);
  int poll_timeout(Clock::time_point now);
};

namespace {

void cancelled(HttpJob& job) {
  HttpOutcome out;
  out.status = HttpOutcome::Status::Cancelled;
  auto done = std::move(job.done);
  done(std::move(out));
}

} // namespace

void HttpWorker::Impl::start(HttpJob job) {
  auto t = std::make_unique<Transfer>();
  t->job = std::move(job);
  t->start = t->last_read = Clock::now();
  t->easy = curl_easy_init();
  if (t->easy == nullptr) {
    HttpOutcome out;
    out.status = HttpOutcome::Status::Network;
    out.detail = "curl_easy_init failed";
    auto done = std::move(t->job.done);
    done(std::move(out));
    return;
  }
  CURL* e = t->easy;
  for (const auto& h : t->job.headers) {
    t->header_list = curl_slist_append(t->header_list, h.c_str());
  }
  t->header_list = curl_slist_append(t->header_list, "Expect:"); // no 100-continue round trip
  curl_easy_setopt(e, CURLOPT_URL, t->job.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->job.body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->job.body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->header_list);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "ChatGroup");
  curl_easy_setopt(e, CURLOPT_PROXY, t->job.proxy.c_str());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  // Aborting a transfer whose name lookup still runs must not wait for getaddrinfo(): the lookup thread is left to
  // end on its own (libcurl's threaded resolver otherwise joins it on cleanup).
  curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
  // The only timeout libcurl enforces; the others are the loop's (they depend on the stream's events).
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<long long>(1, t->job.connect_timeout.count())));
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
  if (curl_multi_add_handle(multi, e) != CURLM_OK) {
    curl_slist_free_all(t->header_list);
    curl_easy_cleanup(e);
    HttpOutcome out;
    out.status = HttpOutcome::Status::Network;
    out.detail = "curl_multi_add_handle failed";
    auto done = std::move(t->job.done);
    done(std::move(out));
    return;
  }
  ++running[t->job.group];
  ++active_count;
  active.push_back(std::move(t));
}

void HttpWorker::Impl::start_queued() {
  for (auto& [group, q] : queued) {
    while (!q.empty() && running[group] < std::max<std::size_t>(1, q.front().limit)) {
      HttpJob job = std::move(q.front());
      q.pop_front();
      start(std::move(job));
    }
  }
}

void HttpWorker::Impl::finish(std::list<std::unique_ptr<Transfer>>::iterator it,
                              std::optional<HttpOutcome::Status> forced, CURLcode code) {
  Transfer& t = **it;
  HttpOutcome out;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &out.http_status);
  t.status = out.http_status;
  if (forced) {
    out.status = *forced;
  } else if (code == CURLE_OPERATION_TIMEDOUT) {
    out.status = HttpOutcome::Status::ConnectTimeout;
  } else if (code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL) {
    out.status = HttpOutcome::Status::BadUrl;
    out.detail = t.errbuf[0] != '\0' ? std::string(t.errbuf) : std::string(curl_easy_strerror(code));
  } else if (t.success() && (code == CURLE_OK || t.reader_failed)) {
    if (!t.reader) {
      t.reader.emplace(t.content_type());
    }
    out.answer = t.reader->finish();
  } else if (code == CURLE_OK && out.http_status >= 100) {
    out.error_body = std::move(t.error_body);
  } else {
    // Cut short. A stream that was already complete (the server reset the connection after [DONE]) still counts.
    std::optional<wire::BodyReader::Outcome> answer;
    if (t.success() && t.reader) {
      answer = t.reader->finish();
    }
    if (answer && answer->status == wire::BodyReader::Outcome::Status::Ok) {
      out.answer = std::move(answer);
    } else {
      out.status = HttpOutcome::Status::Network;
      out.detail = t.errbuf[0] != '\0' ? std::string(t.errbuf) : std::string(curl_easy_strerror(code));
    }
  }
  out.headers = std::move(t.headers);
  curl_multi_remove_handle(multi, t.easy);
  curl_easy_cleanup(t.easy);
  curl_slist_free_all(t.header_list);
  --running[t.job.group];
  --active_count;
  auto done = std::move(t.job.done);
  active.erase(it);
  done(std::move(out));
}

void HttpWorker::Impl::cancel_older_than(std::uint64_t gen, bool everything) {
  for (auto it = active.begin(); it != active.end();) {
    auto next = std::next(it);
    if (everything || (*it)->job.generation < gen) {
      finish(it, HttpOutcome::Status::Cancelled, CURLE_OK);
    }
    it = next;
  }
  for (auto& [group, q] : queued) {
    std::deque<HttpJob> keep;
    for (auto& job : q) {
      if (everything || job.generation < gen) {
        cancelled(job);
      } else {
        keep.push_back(std::move(job));
      }
    }
    q = std::move(keep);
  }
  std::vector<Delay> keep;
  for (auto& d : delays) {
    if (everything || d.generation < gen) {
      auto done = std::move(d.done);
      done(false);
    } else {
      keep.push_back(std::move(d));
    }
  }
  delays = std::move(keep);
}

int HttpWorker::Impl::poll_timeout(Clock::time_point now) {
  long curl_ms = -1;
  curl_multi_timeout(multi, &curl_ms);
  Clock::time_point wake = now + kMaxPoll;
  if (curl_ms >= 0) {
    wake = std::min(wake, now + milliseconds(curl_ms));
  }
  for (const auto& t : active) {
    wake = std::min(wake, t->deadline());
  }
  for (const auto& d : delays) {
    wake = std::min(wake, d.due);
  }
  if (wake <= now) {
    return 0;
  }
  // Round up, so that a wake-up is never early by a fraction of a millisecond (and then spins).
  auto ms = std::chrono::ceil<milliseconds>(wake - now).count();
  return static_cast<int>(ms);
}

void HttpWorker::Impl::run() {
  for (;;) {
    std::vector<HttpJob> jobs;
    std::vector<Delay> new_delays;
    std::uint64_t gen = 0;
    bool stop = false;
    {
      std::lock_guard lock(mu);
      jobs.swap(incoming);
      new_delays.swap(incoming_delays);
      gen = generation;
      stop = stopping;
    }
    for (auto& job : jobs) {
      queued[job.group].push_back(std::move(job));
    }
    for (auto& d : new_delays) {
      delays.push_back(std::move(d));
    }
    cancel_older_than(gen, stop);
    if (stop) {
      break;
    }
    start_queued();

    int still_running = 0;
    curl_multi_perform(multi, &still_running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) {
        continue;
      }
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      CURLcode code = msg->data.result;
      auto it = std::find_if(active.begin(), active.end(), [t](const auto& p) { return p.get() == t; });
      if (it != active.end()) {
        finish(it, std::nullopt, code);
      }
    }

    auto now = Clock::now();
    for (auto it = active.begin(); it != active.end();) {
      auto next = std::next(it);
      if (auto why = (*it)->expired(now)) {
        finish(it, *why, CURLE_OK);
      }
      it = next;
    }
    std::vector<Delay> waiting;
    for (auto& d : delays) {
      if (d.due <= now) {
        auto done = std::move(d.done);
        done(true);
      } else {
        waiting.push_back(std::move(d));
      }
    }
    delays = std::move(waiting);
    start_queued();

    curl_multi_poll(multi, nullptr, 0, poll_timeout(Clock::now()), nullptr);
  }
  std::lock_guard lock(mu);
  stopped = true;
}

HttpWorker::HttpWorker() : impl_(std::make_unique<Impl>()) {
  ensure_curl_global_init();
  impl_->multi = curl_multi_init();
  if (impl_->multi == nullptr) {
    throw std::runtime_error("curl_multi_init failed");
  }
  impl_->thread = std::thread([impl = impl_.get()] {
    pthread_setname_np(pthread_self(), "cg-llm-curl");
    impl->run();
  });
}

HttpWorker::~HttpWorker() {
  stop();
  curl_multi_cleanup(impl_->multi);
}

std::uint64_t HttpWorker::generation() const {
  std::lock_guard lock(impl_->mu);
  return impl_->generation;
}

void HttpWorker::submit(HttpJob job) {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->stopping && job.generation >= impl_->generation) {
      impl_->incoming.push_back(std::move(job));
      curl_multi_wakeup(impl_->multi);
      return;
    }
  }
  cancelled(job);
}

void HttpWorker::delay(std::chrono::milliseconds d, std::uint64_t generation, std::function<void(bool)> done) {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->stopping && generation >= impl_->generation) {
      impl_->incoming_delays.push_back(Delay{Clock::now() + d, generation, std::move(done)});
      curl_multi_wakeup(impl_->multi);
      return;
    }
  }
  done(false);
}

void HttpWorker::cancel_all() {
  std::lock_guard lock(impl_->mu);
  ++impl_->generation;
  if (!impl_->stopped) {
    curl_multi_wakeup(impl_->multi);
  }
}

void HttpWorker::stop() {
  {
    std::lock_guard lock(impl_->mu);
    ++impl_->generation;
    impl_->stopping = true;
    if (!impl_->stopped) {
      curl_multi_wakeup(impl_->multi);
    }
  }
  // Never called from the worker thread: its callbacks only post results (they own no LlmClient state).
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
}

std::size_t HttpWorker::active() const {
  return impl_->active_count.load();
}

} // namespace cg::summarizer::detail
