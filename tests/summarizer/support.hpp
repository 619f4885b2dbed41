// Test support for the summarizer: llm_server.py (an OpenAI-compatible server on a free loopback port) as a child
// process, a blocking HTTP GET for its control endpoints, and an io_context on its own thread that runs the
// client's coroutines while the test thread waits for their results (bounded) or talks to the server.
#pragma once

#include "summarizer/llm_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <fcntl.h>
#include <future>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace cg::test {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using json = nlohmann::json;

// Reads from `fd` until `done(buffer)` or EOF; throws after `limit`.
template <class Done>
std::string read_until(int fd, std::chrono::milliseconds limit, Done done, const char* what) {
  std::string data;
  auto deadline = Clock::now() + limit;
  while (!done(data)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
      throw std::runtime_error(std::string(what) + ": no answer in time");
    }
    char buf[4096];
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      throw std::runtime_error(std::string(what) + ": read failed");
    }
    if (n == 0) {
      break;
    }
    data.append(buf, static_cast<std::size_t>(n));
  }
  return data;
}

// llm_server.py, started once per test binary.
class FakeLlm {
public:
  FakeLlm() {
    int to_child[2];
    int from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe failed");
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(to_child[0], 0);
      ::dup2(from_child[1], 1);
      // Debian's python3 by full path; -I ignores PYTHON* variables and user packages (HACKING.md).
      ::execl("/usr/bin/python3", "/usr/bin/python3", "-I", CG_LLM_SERVER, static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    stdin_ = to_child[1];
    std::string line = read_until(
        from_child[0], 20s, [](const std::string& s) { return s.find('\n') != std::string::npos; }, "llm_server.py");
    ::close(from_child[0]);
    if (line.rfind("port ", 0) != 0) {
      throw std::runtime_error("llm_server.py said: " + line);
    }
    port_ = std::stoi(line.substr(5));
  }
  ~FakeLlm() {
    ::close(stdin_); // the server exits on EOF
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  int port() const { return port_; }
  std::string url(const std::string& tag, const std::string& scenario) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + tag + "/" + scenario;
  }

  // GET on the control endpoints: {status, body as JSON}.
  std::pair<int, json> get(const std::string& path) const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      throw std::runtime_error("cannot connect to llm_server.py");
    }
    std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
      ::close(fd);
      throw std::runtime_error("cannot write to llm_server.py");
    }
    std::string response;
    try {
      response = read_until(
          fd, 20s, [](const std::string&) { return false; }, "llm_server.py control");
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
    auto blank = response.find("\r\n\r\n");
    if (response.rfind("HTTP/1.", 0) != 0 || blank == std::string::npos) {
      throw std::runtime_error("llm_server.py sent: " + response);
    }
    return {std::stoi(response.substr(9, 3)), json::parse(response.substr(blank + 4))};
  }
  // The requests of `tag` so far.
  json requests(const std::string& tag) const { return get("/" + tag + "/_requests").second; }
  // The requests of `tag`, once there are at least n (the server waits, at most 10 s).
  json wait_requests(const std::string& tag, int n) const {
    auto [status, body] = get("/" + tag + "/_wait?n=" + std::to_string(n));
    if (status != 200) {
      throw std::runtime_error("llm_server.py: fewer than " + std::to_string(n) + " requests for " + tag);
    }
    return body;
  }
  json stats(const std::string& tag) const { return get("/" + tag + "/_stats").second; }

private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  int port_ = 0;
};

inline const FakeLlm& fake_llm() {
  static FakeLlm instance;
  return instance;
}

// A tag of its own for each use, so that tests never see each other's requests.
inline std::string unique_tag(const std::string& base) {
  static std::atomic<int> counter{0};
  return base + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

// An io_context on its own thread. Declare it before the clients that use it (they must go first).
class Loop {
public:
  Loop() : thread_([this] { ioc_.run(); }) {}
  ~Loop() {
    guard_.reset();
    ioc_.stop();
    thread_.join();
  }
  asio::any_io_executor executor() { return ioc_.get_executor(); }

  std::future<summarizer::Result> start(summarizer::LlmClient& client, summarizer::Request r) {
    auto promise = std::make_shared<std::promise<summarizer::Result>>();
    auto future = promise->get_future();
    asio::co_spawn(ioc_, client.complete(std::move(r)), [promise](std::exception_ptr e, summarizer::Result result) {
      if (e) {
        promise->set_exception(e);
      } else {
        promise->set_value(std::move(result));
      }
    });
    return future;
  }

private:
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(ioc_);
  std::thread thread_;
};

// The result, waiting at most `limit` for it.
inline summarizer::Result result_of(std::future<summarizer::Result>& f, std::chrono::milliseconds limit = 20s) {
  REQUIRE(f.wait_for(limit) == std::future_status::ready);
  return f.get();
}

inline summarizer::Result run(Loop& loop, summarizer::LlmClient& client, summarizer::Request r) {
  auto f = loop.start(client, std::move(r));
  return result_of(f);
}

inline const summarizer::Response& answer_of(const summarizer::Result& r) {
  if (const auto* e = std::get_if<summarizer::Error>(&r)) {
    FAIL("expected an answer, got error " << static_cast<int>(e->kind) << ": " << e->message);
  }
  return std::get<summarizer::Response>(r);
}

inline const summarizer::Error& error_of(const summarizer::Result& r) {
  if (const auto* a = std::get_if<summarizer::Response>(&r)) {
    FAIL("expected an error, got the answer: " << a->text);
  }
  return std::get<summarizer::Error>(r);
}

} // namespace cg::test
