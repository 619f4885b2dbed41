// The summary command (issue 6) against the real chatgroupd and tests/summarizer/llm_server.py (an OpenAI-compatible
// server on a free loopback port), through libstrophe: alice and bob chat (archived by MAM), alice runs 'Summarize a
// conversation' with the form's defaults, and the fake endpoint records what the server sent it.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace it;
using json = nlohmann::json;

namespace {

constexpr const char* kCommands = "http://jabber.org/protocol/commands";
constexpr const char* kData = "jabber:x:data";
constexpr const char* kSummarize = "http://chatgroup.im/commands#summarize";

// Reads from fd until `done(data)` or EOF; throws after `limit`.
template <class Done>
std::string read_until(int fd, std::chrono::milliseconds limit, Done done) {
  std::string data;
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done(data)) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
      throw std::runtime_error("no answer in time");
    }
    char buf[4096];
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    data.append(buf, static_cast<std::size_t>(n));
  }
  return data;
}

// llm_server.py as a child: it listens on 127.0.0.1 and exits when its stdin closes.
class FakeLlm {
public:
  FakeLlm() {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe failed");
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::execl("/usr/bin/python3", "/usr/bin/python3", "-I", CG_LLM_SERVER, static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    std::string line = read_until(out[0], 20s, [](const std::string& s) { return s.find('\n') != std::string::npos; });
    ::close(out[0]);
    if (line.rfind("port ", 0) != 0) {
      throw std::runtime_error("llm_server.py: " + line);
    }
    port_ = std::stoi(line.substr(5));
  }
  ~FakeLlm() {
    ::close(stdin_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  std::string url(const std::string& tag, const std::string& scenario) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + tag + "/" + scenario;
  }
  // The requests recorded under `tag`, once there are `n` (the server waits at most 10 s).
  json wait_requests(const std::string& tag, int n) const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      throw std::runtime_error("connect to llm_server.py failed");
    }
    std::string req =
        "GET /" + tag + "/_wait?n=" + std::to_string(n) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
      ::close(fd);
      throw std::runtime_error("write failed");
    }
    std::string resp = read_until(fd, 15s, [](const std::string&) { return false; });
    ::close(fd);
    auto body = resp.find("\r\n\r\n");
    REQUIRE(body != std::string::npos);
    REQUIRE(resp.rfind("HTTP/1.1 200", 0) == 0);
    return json::parse(resp.substr(body + 4));
  }

private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  int port_ = 0;
};

ServerOptions summary_server(const std::string& base_url) {
  ServerOptions opts;
  opts.users = {{"alice", "alice-pw"}, {"bob", "bob-pw"}};
  opts.set("modules", "enabled",
           R"(["disco", "ping", "roster", "presence", "mam", "carbons", "offline", "adhoc", "summary"])");
  opts.set("modules.summary", "base_url", "\"" + base_url + "\"");
  opts.set("modules.summary", "model", "\"test-model\"");
  opts.set("modules.summary", "timeout", "30");
  return opts;
}

std::string field_value(const Element& x, const std::string& var) {
  for (const auto* f : x.children("field", kData)) {
    if (f->attr("var") == var) {
      return f->child_text("value", kData);
    }
  }
  return "";
}

std::vector<std::string> field_values(const Element& x, const std::string& var) {
  std::vector<std::string> out;
  for (const auto* f : x.children("field", kData)) {
    if (f->attr("var") == var) {
      for (const auto* v : f->children("value", kData)) {
        out.push_back(v->text());
      }
    }
  }
  return out;
}

std::vector<std::string> notes(const Element& command) {
  std::vector<std::string> out;
  for (const auto* n : command.children("note", kCommands)) {
    out.push_back(std::string(n->attr("type")) + ": " + n->text());
  }
  return out;
}

bool any_contains(const std::vector<std::string>& v, const std::string& needle) {
  return std::any_of(v.begin(), v.end(), [&](const std::string& s) { return s.find(needle) != std::string::npos; });
}

// alice and bob exchange three messages (one of bob's OMEMO-encrypted); returns once alice's archive holds them all.
void chat(StropheClient& alice, StropheClient& bob) {
  // Available, so that messages to the bare JIDs are delivered (RFC 6121 §8.5.2.1.1) rather than kept offline.
  alice.send("<presence/>");
  bob.send("<presence/>");
  REQUIRE(sync_ping(alice));
  REQUIRE(sync_ping(bob));
  alice.send("<message type='chat' to='bob@localhost' id='a1'><body>Hi bob, shall we ship on Friday?</body></message>");
  REQUIRE(bob.wait_for(is_stanza("message", "id", "a1")));
  bob.send("<message type='chat' to='alice@localhost' id='b1'><body>Yes, Friday works. I will tag the release."
           "</body></message>");
  REQUIRE(alice.wait_for(is_stanza("message", "id", "b1")));
  bob.send("<message type='chat' to='alice@localhost' id='b2'><encrypted xmlns='eu.siacs.conversations.axolotl'>"
           "<header sid='1'><iv>AAAA</iv></header><payload>BBBB</payload></encrypted>"
           "<body>OMEMO-SECRET-FALLBACK-BODY</body></message>");
  REQUIRE(alice.wait_for(is_stanza("message", "id", "b2")));
  // A MAM read waits for the appends in flight (xep/xep0313_mam.cpp): after it, the archive holds the three.
  auto md = alice.iq("<iq type='get' id='md'><metadata xmlns='urn:xmpp:mam:2'/></iq>", "md");
  REQUIRE(md);
  REQUIRE(md->attr("type") == "result");
}

// Stage 1 (execute), then 'complete' with the form as offered; returns the final <command/> reply.
Element run_with_defaults(StropheClient& alice) {
  auto first = alice.iq(std::string("<iq type='set' id='s1' to='localhost'><command xmlns='") + kCommands + "' node='" +
                            kSummarize + "' action='execute'/></iq>",
                        "s1");
  REQUIRE(first);
  REQUIRE(first->attr("type") == "result");
  const Element* cmd = first->child("command", kCommands);
  REQUIRE(cmd);
  CHECK(cmd->attr("status") == "executing");
  const Element* form = cmd->child("x", kData);
  REQUIRE(form);
  CHECK(field_value(*form, "conversation") == "bob@localhost");
  CHECK(field_value(*form, "scope") == "last-hours");
  CHECK(field_value(*form, "count") == "24");
  CHECK(form->child_text("instructions", kData).find("127.0.0.1") != std::string::npos); // where the data goes
  const std::string sid(cmd->attr("sessionid"));
  auto done = alice.iq(std::string("<iq type='set' id='s2' to='localhost'><command xmlns='") + kCommands + "' node='" +
                           kSummarize + "' sessionid='" + sid + "' action='complete'/></iq>",
                       "s2", 40s);
  REQUIRE(done);
  REQUIRE(done->attr("type") == "result");
  const Element* final_cmd = done->child("command", kCommands);
  REQUIRE(final_cmd);
  CHECK(final_cmd->attr("status") == "completed");
  return *final_cmd;
}

} // namespace

TEST_CASE("summary: alice summarises her chat with bob through the fake LLM, encrypted messages never sent",
          "[modules][summary]") {
  FakeLlm llm;
  TestServer server(summary_server(llm.url("ok1", "ok")));
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  StropheClient bob("bob@localhost/pc", "bob-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));
  REQUIRE(bob.connect(server.port(), server.cert_path()));
  chat(alice, bob);

  Element cmd = run_with_defaults(alice);

  // What the server sent the model: the transcript lines, never the encrypted message's body.
  json requests = llm.wait_requests("ok1", 1);
  REQUIRE(requests.size() == 1);
  const json& body = requests[0]["body"];
  CHECK(body["model"] == "test-model");
  REQUIRE(body["messages"].size() == 2);
  const std::string system = body["messages"][0]["content"];
  const std::string user = body["messages"][1]["content"];
  CHECK(system.find("never instructions") != std::string::npos);
  CHECK(user.find("Z me: Hi bob, shall we ship on Friday?") != std::string::npos);
  CHECK(user.find("Z bob@localhost: Yes, Friday works. I will tag the release.") != std::string::npos);
  CHECK(user.find("[m1] ") != std::string::npos);
  CHECK(user.find("[m2] ") != std::string::npos);
  CHECK(user.find("[m3]") == std::string::npos);
  CHECK(user.rfind("<<<TRANSCRIPT-", 0) == 0);
  CHECK(requests.dump().find("OMEMO-SECRET-FALLBACK-BODY") == std::string::npos);

  // What alice gets: the label, the scripted answer, and the note about the encrypted message.
  const Element* form = cmd.child("x", kData);
  REQUIRE(form);
  CHECK(form->attr("type") == "result");
  const std::string label = field_value(*form, "label");
  CHECK(label.rfind("AI-generated summary of 2 messages with bob@localhost, from ", 0) == 0);
  CHECK(label.find("(model test-model-served)") != std::string::npos);
  CHECK(field_values(*form, "summary") == std::vector<std::string>{"Hello, world."});
  auto n = notes(cmd);
  CHECK(any_contains(n, "1 end-to-end encrypted message(s) were not sent"));
}

TEST_CASE("summary: an endpoint that refuses the API key gives a plain error note, and the server keeps running",
          "[modules][summary]") {
  FakeLlm llm;
  TestServer server(summary_server(llm.url("bad1", "unauthorized")));
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  StropheClient bob("bob@localhost/pc", "bob-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));
  REQUIRE(bob.connect(server.port(), server.cert_path()));
  chat(alice, bob);

  Element cmd = run_with_defaults(alice);
  CHECK(cmd.child("x", kData) == nullptr);
  auto n = notes(cmd);
  CHECK(any_contains(n, "error: The summary service is not configured correctly; the administrator has been told."));
  CHECK(llm.wait_requests("bad1", 1).size() == 1);
  CHECK(server.log().find("summary: the LLM endpoint refused the request (HTTP 401)") != std::string::npos);
  CHECK(sync_ping(alice));
  CHECK(server.running());
}
