// Administration against the real binaries: chatgroupctl on a running server's database, config errors at start
// and in check-config, a busy port, graceful shutdown, and the first start on an (almost) default config.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

using namespace it;
namespace fs = std::filesystem;

namespace {

bool can_login(const TestServer& server, const std::string& jid, const std::string& password) {
  StropheClient c(jid, password);
  return c.connect(server.port(), server.cert_path());
}

std::string source_root() {
  // This file is tests/integration/test_admin.cpp under the source root.
  return fs::path(__FILE__).parent_path().parent_path().parent_path().string();
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
}

// The lines of `text` that start with `prefix`.
std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      out.push_back(line);
    }
  }
  return out;
}

// A fresh temporary directory, removed at the end of the scope (unless CG_KEEP_TEST_DIRS is set).
struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/cg-it-admin-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    if (std::getenv("CG_KEEP_TEST_DIRS") == nullptr) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

// A socket listening on 127.0.0.1:<some free port>, held for the scope.
struct BusyPort {
  int fd = -1;
  int port = 0;
  BusyPort() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~BusyPort() { ::close(fd); }
};

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// chatgroupctl on a running server

TEST_CASE("chatgroupctl adduser while the server runs: the user logs in at once, no restart", "[admin][ctl]") {
  TestServer server;
  server.start();
  CHECK_FALSE(can_login(server, "carol@localhost/x", "carol-pw"));

  // The password comes from standard input (never the command line).
  auto [status, out] = server.ctl({"adduser", "carol@localhost"}, "carol-pw\n");
  INFO(out);
  REQUIRE(status == 0);
  CHECK(out.find("created carol@localhost") != std::string::npos);
  CHECK(out.find("carol-pw") == std::string::npos);
  CHECK(can_login(server, "carol@localhost/x", "carol-pw"));

  // The address is normalised (nodeprep): Dave@LOCALHOST is dave@localhost.
  auto [s2, out2] = server.ctl({"adduser", "Dave@LOCALHOST"}, "a password with spaces\n");
  INFO(out2);
  REQUIRE(s2 == 0);
  CHECK(can_login(server, "dave@localhost/x", "a password with spaces"));

  auto [s3, listing] = server.ctl({"users"});
  REQUIRE(s3 == 0);
  CHECK(listing.find("carol@localhost\n") != std::string::npos);
  CHECK(listing.find("dave@localhost\n") != std::string::npos);
  auto [s4, filtered] = server.ctl({"users", "localhost"});
  REQUIRE(s4 == 0);
  CHECK(filtered == listing);
  auto [s5, folded] = server.ctl({"users", "LocalHost"});
  CHECK(s5 == 0);
  CHECK(folded == listing);
  // A domain this server does not serve is an error, not an empty list.
  auto [s6, unserved] = server.ctl({"users", "example.org"});
  CHECK(s6 != 0);
  CHECK(unserved.find("example.org") != std::string::npos);
}

TEST_CASE("chatgroupctl passwd: the old password stops working, the new one works", "[admin][ctl]") {
  ServerOptions opts;
  opts.users = {{"alice", "old-pw"}};
  TestServer server(opts);
  server.start();
  REQUIRE(can_login(server, "alice@localhost/x", "old-pw"));

  auto [status, out] = server.ctl({"passwd", "alice@localhost"}, "new-pw\n");
  INFO(out);
  REQUIRE(status == 0);
  CHECK_FALSE(can_login(server, "alice@localhost/x", "old-pw"));
  CHECK(can_login(server, "alice@localhost/x", "new-pw"));

  // passwd for an account that does not exist: an error, and no account appears.
  auto [s2, out2] = server.ctl({"passwd", "nobody@localhost"}, "pw\n");
  CHECK(s2 != 0);
  CHECK(out2.find("nobody@localhost") != std::string::npos);
  CHECK_FALSE(can_login(server, "nobody@localhost/x", "pw"));
}

TEST_CASE("chatgroupctl deluser: the account can no longer log in", "[admin][ctl]") {
  ServerOptions opts;
  opts.users = {{"alice", "alice-pw"}, {"bob", "bob-pw"}};
  TestServer server(opts);
  server.start();
  REQUIRE(can_login(server, "bob@localhost/x", "bob-pw"));

  auto [status, out] = server.ctl({"deluser", "bob@localhost"});
  INFO(out);
  REQUIRE(status == 0);
  CHECK(out.find("deleted bob@localhost") != std::string::npos);
  CHECK_FALSE(can_login(server, "bob@localhost/x", "bob-pw"));
  CHECK(can_login(server, "alice@localhost/x", "alice-pw"));

  auto [s2, listing] = server.ctl({"users"});
  REQUIRE(s2 == 0);
  CHECK(listing == "alice@localhost\n");

  // Deleting it again is an error.
  auto [s3, out3] = server.ctl({"deluser", "bob@localhost"});
  CHECK(s3 != 0);
}

TEST_CASE("chatgroupctl refuses a duplicate account, an unserved domain and a missing password", "[admin][ctl]") {
  ServerOptions opts;
  opts.users = {{"alice", "alice-pw"}};
  TestServer server(opts);
  server.start();

  auto [s1, out1] = server.ctl({"adduser", "alice@localhost"}, "other-pw\n");
  INFO(out1);
  CHECK(s1 != 0);
  CHECK(out1.find("alice@localhost") != std::string::npos);
  CHECK(out1.find("exists") != std::string::npos);
  // The existing password is untouched.
  CHECK(can_login(server, "alice@localhost/x", "alice-pw"));
  CHECK_FALSE(can_login(server, "alice@localhost/x", "other-pw"));

  auto [s2, out2] = server.ctl({"adduser", "carol@example.org"}, "pw\n");
  INFO(out2);
  CHECK(s2 != 0);
  CHECK(out2.find("example.org") != std::string::npos);
  CHECK(out2.find("server.hosts") != std::string::npos);

  auto [s3, out3] = server.ctl({"adduser", "not an address"}, "pw\n");
  CHECK(s3 != 0);

  // No password on standard input: nothing is created.
  auto [s4, out4] = server.ctl({"adduser", "erin@localhost"}, "");
  INFO(out4);
  CHECK(s4 != 0);
  CHECK(out4.find("standard input") != std::string::npos);
  auto [s5, listing] = server.ctl({"users"});
  CHECK(listing == "alice@localhost\n");
}

// ---------------------------------------------------------------------------------------------------------------
// Config errors

TEST_CASE("a bad config stops chatgroupd with status 2 and FILE:LINE:COLUMN: key messages, and check-config agrees",
          "[admin][config]") {
  TempDir dir;
  const std::string bad = (dir.path / "bad.toml").string();
  write_text(bad, "[c2s]\n"
                  "prot = 5222\n"       // unknown key (a typo)
                  "port = \"5222\"\n"   // wrong type
                  "max_resources = 0\n" // out of range
                  "\n"
                  "[server]\n"
                  "shutdown_timeout = 1000\n"); // out of range

  auto [status, out] = run_program({chatgroupd_path(), "-c", bad});
  INFO(out);
  CHECK(status == 2);
  auto errors = lines_starting(out, bad + ":");
  REQUIRE(errors.size() == 4);
  CHECK(std::regex_match(errors[0], std::regex(".*bad\\.toml:2:\\d+: key 'c2s\\.prot': .*'c2s\\.port'.*")));
  CHECK(std::regex_match(errors[1], std::regex(".*bad\\.toml:3:\\d+: key 'c2s\\.port': .*integer.*")));
  CHECK(std::regex_match(errors[2], std::regex(".*bad\\.toml:4:\\d+: key 'c2s\\.max_resources': .*1.*1000.*")));
  CHECK(std::regex_match(errors[3], std::regex(".*bad\\.toml:7:\\d+: key 'server\\.shutdown_timeout': .*")));
  CHECK(out.find("chatgroupd: ready") == std::string::npos);

  // chatgroupctl check-config prints the same lines and exits 2 as well.
  auto [cstatus, cout_] = run_program({chatgroupctl_path(), "check-config", bad});
  INFO(cout_);
  CHECK(cstatus == 2);
  CHECK(lines_starting(cout_, bad + ":") == errors);

  // A syntax error: FILE:LINE:COLUMN and the parser's message.
  const std::string syntax = (dir.path / "syntax.toml").string();
  write_text(syntax, "[c2s]\nport = 5222\n[server\nthreads = 1\n");
  auto [s2, out2] = run_program({chatgroupd_path(), "-c", syntax});
  INFO(out2);
  CHECK(s2 == 2);
  auto syntax_errors = lines_starting(out2, syntax + ":3:");
  CHECK(syntax_errors.size() == 1);
  auto [s3, out3] = run_program({chatgroupctl_path(), "check-config", syntax});
  CHECK(s3 == 2);
  CHECK(lines_starting(out3, syntax + ":") == lines_starting(out2, syntax + ":"));

  // A file that does not exist.
  auto [s4, out4] = run_program({chatgroupd_path(), "-c", (dir.path / "missing.toml").string()});
  CHECK(s4 == 2);
  CHECK(out4.find("missing.toml") != std::string::npos);
}

TEST_CASE("values the schema cannot check (a domain, an address, a certificate without its key) are config errors "
          "for chatgroupd and check-config alike",
          "[admin][config]") {
  TempDir dir;
  const std::string bad = (dir.path / "values.toml").string();
  write_text(bad, "[server]\n"
                  "hosts = [\"localhost\", \"not a domain!\"]\n"
                  "data_dir = \"" +
                      (dir.path / "data").string() +
                      "\"\n"
                      "\n"
                      "[tls]\n"
                      "certificate = \"/nonexistent/cert.pem\"\n"
                      "\n"
                      "[c2s]\n"
                      "port = 0\n"
                      "direct_tls_port = 0\n"
                      "addresses = [\"127.0.0.1\", \"no-ip\"]\n");

  // check-config must not call "ok" a file that chatgroupd refuses.
  auto [cstatus, cout_] = run_program({chatgroupctl_path(), "check-config", bad});
  INFO(cout_);
  CHECK(cstatus == 2);
  auto errors = lines_starting(cout_, bad + ":");
  REQUIRE(errors.size() == 3);
  CHECK(std::regex_match(errors[0], std::regex(".*values\\.toml:2:\\d+: key 'server\\.hosts': .*not a domain!.*")));
  CHECK(std::regex_match(errors[1], std::regex(".*values\\.toml:6:\\d+: key 'tls\\.(certificate|key)': .*")));
  CHECK(std::regex_match(errors[2], std::regex(".*values\\.toml:11:\\d+: key 'c2s\\.addresses': .*no-ip.*")));

  // chatgroupd: the same lines, status 2 (a config error), and nothing created.
  auto [status, out] = run_program({chatgroupd_path(), "-c", bad});
  INFO(out);
  CHECK(status == 2);
  CHECK(lines_starting(out, bad + ":") == errors);
  CHECK_FALSE(fs::exists(dir.path / "data"));

  // An empty host list is an error too.
  const std::string empty = (dir.path / "empty.toml").string();
  write_text(empty, "[server]\nhosts = []\n");
  auto [s2, out2] = run_program({chatgroupctl_path(), "check-config", empty});
  INFO(out2);
  CHECK(s2 == 2);
  CHECK(out2.find("empty.toml:2:") != std::string::npos);
  CHECK(out2.find("key 'server.hosts'") != std::string::npos);
}

TEST_CASE("check-config accepts conf/chatgroup.example.toml and the embedded default it is generated from",
          "[admin][config]") {
  const std::string example = source_root() + "/conf/chatgroup.example.toml";
  REQUIRE(fs::exists(example));
  auto [status, out] = run_program({chatgroupctl_path(), "check-config", example});
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find(": ok") != std::string::npos);

  // `chatgroupd --print-example-config | chatgroupctl check-config /dev/stdin`, and the file in the repository is
  // exactly that output.
  auto [ps, printed] = run_program({chatgroupd_path(), "--print-example-config"});
  REQUIRE(ps == 0);
  CHECK(printed == read_text(example));
  auto [cs, checked] = run_program({chatgroupctl_path(), "check-config", "/dev/stdin"}, printed);
  INFO(checked);
  CHECK(cs == 0);
  auto [ds, dchecked] = run_program({chatgroupd_path(), "--check-config", "-c", example});
  INFO(dchecked);
  CHECK(ds == 0);
}

TEST_CASE("a port already in use stops chatgroupd with status 1 naming the address and the option", "[admin][config]") {
  TempDir dir;
  BusyPort busy;
  const std::string cfg = (dir.path / "chatgroup.toml").string();

  write_text(cfg, "[server]\ndata_dir = \"" + (dir.path / "data").string() + "\"\n[c2s]\nport = " +
                      std::to_string(busy.port) + "\ndirect_tls_port = 0\n[s2s]\nenabled = false\n");
  auto [status, out] = run_program({chatgroupd_path(), "-c", cfg});
  INFO(out);
  CHECK(status == 1);
  CHECK(out.find("127.0.0.1:" + std::to_string(busy.port)) != std::string::npos);
  CHECK(out.find("c2s.port") != std::string::npos);
  CHECK(out.find("chatgroupd: ready") == std::string::npos);

  // The same for the direct TLS port.
  write_text(cfg, "[server]\ndata_dir = \"" + (dir.path / "data").string() + "\"\n[c2s]\nport = 0\ndirect_tls_port = " +
                      std::to_string(busy.port) + "\n[s2s]\nenabled = false\n");
  auto [s2, out2] = run_program({chatgroupd_path(), "-c", cfg});
  INFO(out2);
  CHECK(s2 == 1);
  CHECK(out2.find("127.0.0.1:" + std::to_string(busy.port)) != std::string::npos);
  CHECK(out2.find("c2s.direct_tls_port") != std::string::npos);
}

// ---------------------------------------------------------------------------------------------------------------
// Shutdown

TEST_CASE("SIGTERM: every client gets <system-shutdown/> and the server exits 0 well within shutdown_timeout",
          "[admin][shutdown]") {
  ServerOptions opts;
  opts.users = {{"alice", "alice-pw"}, {"bob", "bob-pw"}};
  opts.set("server", "shutdown_timeout", "10");
  TestServer server(opts);
  server.start();

  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));
  RawClient bob;
  bob.login(server.port(), "bob", "bob-pw", "laptop");
  REQUIRE(sync_ping(bob));
  // A connection that has not authenticated yet is closed the same way.
  RawClient anonymous;
  anonymous.connect(server.port());
  anonymous.open_stream();
  REQUIRE(anonymous.next_element()); // the features: the stream is open
  // A connection that has sent nothing at all does not hold the shutdown up either.
  RawClient silent;
  silent.connect(server.port());

  auto started = Clock::now();
  const int status = server.stop(15s);
  auto took = Clock::now() - started;
  CHECK(status == 0);
  // It does not wait for the deadline: the streams close as soon as the error is written.
  CHECK(took < 5s);

  REQUIRE(bob.wait_closed());
  CHECK(bob.stream_error() == "system-shutdown");
  REQUIRE(anonymous.wait_closed());
  CHECK(anonymous.stream_error() == "system-shutdown");
  REQUIRE(alice.wait_disconnected());
  CHECK(alice.stream_error == "system-shutdown");
  CHECK(silent.wait_closed());
}

TEST_CASE("SIGTERM: a direct TLS connection that never sent its ClientHello does not hold the shutdown up",
          "[admin][shutdown]") {
  ServerOptions opts;
  opts.users = {{"bob", "bob-pw"}};
  opts.set("server", "shutdown_timeout", "3");
  TestServer server(opts);
  server.start();
  RawClient silent_tls;
  silent_tls.connect(server.tls_port());
  RawClient bob;
  bob.login(server.port(), "bob", "bob-pw", "laptop");
  REQUIRE(sync_ping(bob)); // by now the server has accepted the silent connection too

  auto started = Clock::now();
  const int status = server.stop(10s);
  auto took = Clock::now() - started;
  CHECK(status == 0);
  // DESIGN.md §3: "stop listening → <system-shutdown/> to every stream → wait up to a deadline → cancel". A
  // connection still in its TLS handshake has no stream to close: it is dropped at once, not at the deadline.
  CHECK(took < 2s);
  CHECK(silent_tls.wait_closed(1s));
}

// ---------------------------------------------------------------------------------------------------------------
// The embedded default

TEST_CASE("first start on a config that sets only the ports: database and self-signed certificate are made, then "
          "reused",
          "[admin][default]") {
  TempDir dir;
  const int port = free_port();
  const int tls_port = free_port();
  write_text(dir.path / "chatgroup.toml", "[c2s]\nport = " + std::to_string(port) + "\ndirect_tls_port = " +
                                              std::to_string(tls_port) + "\n[s2s]\nenabled = false\n");
  const fs::path data = dir.path / "data";
  const std::string cert = (data / "selfsigned.crt").string();
  REQUIRE_FALSE(fs::exists(data));

  std::string fingerprint;
  {
    Daemon d({chatgroupd_path(), "-c", "chatgroup.toml"}, dir.path.string());
    const bool ready = d.wait_output("chatgroupd: ready");
    INFO(d.output());
    REQUIRE(ready);
    // data_dir defaults to ./data, relative to the working directory.
    CHECK(fs::exists(data / "chatgroup.sqlite"));
    REQUIRE(fs::exists(cert));
    CHECK(d.output().find("self-signed") != std::string::npos);

    // A self-signed certificate for localhost: subject = issuer, SAN DNS:localhost, and it verifies against itself.
    auto [s1, san] = run_program({"/usr/bin/openssl", "x509", "-in", cert, "-noout", "-ext", "subjectAltName"});
    INFO(san);
    CHECK(s1 == 0);
    CHECK(san.find("DNS:localhost") != std::string::npos);
    auto [s2, verify] = run_program({"/usr/bin/openssl", "verify", "-CAfile", cert, cert});
    INFO(verify);
    CHECK(s2 == 0);
    fingerprint = cert_fingerprint(cert);
    REQUIRE_FALSE(fingerprint.empty());

    // chatgroupctl with the same config, from the same directory, works on the server's database; a real client
    // then verifies the certificate against the name localhost and logs in.
    auto [s3, added] = run_program({"/bin/sh", "-c",
                                    "cd '" + dir.path.string() + "' && exec '" + chatgroupctl_path() +
                                        "' -c chatgroup.toml adduser alice@localhost"},
                                   "alice-pw\n");
    INFO(added);
    REQUIRE(s3 == 0);
    StropheClient alice("alice@localhost/x", "alice-pw");
    CHECK(alice.connect(port, cert));
    alice.disconnect();

    auto status = d.stop(SIGTERM);
    REQUIRE(status);
    CHECK(*status == 0);
  }
  {
    Daemon d({chatgroupd_path(), "-c", "chatgroup.toml"}, dir.path.string());
    const bool ready = d.wait_output("chatgroupd: ready");
    INFO(d.output());
    REQUIRE(ready);
    // The same certificate and the same database: alice still logs in, over direct TLS this time.
    CHECK(cert_fingerprint(cert) == fingerprint);
    StropheClient alice("alice@localhost/x", "alice-pw");
    CHECK(alice.connect(tls_port, cert, true));
    alice.disconnect();
    auto status = d.stop(SIGTERM);
    REQUIRE(status);
    CHECK(*status == 0);
  }
}
