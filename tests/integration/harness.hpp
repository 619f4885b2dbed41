// Integration test harness: the real chatgroupd as a child process on loopback, a raw TCP/TLS client for
// protocol-level tests, and a libstrophe client for the ordinary client path. Every wait is bounded and waits for
// an event (a line, bytes, a stanza, a process exit) — never a fixed sleep.
#pragma once

#include "server/xml/element.hpp"
#include "server/xml/stream_parser.hpp"

#include <openssl/ssl.h>
#include <strophe.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace it {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using cg::xml::Element;

// A free TCP port on 127.0.0.1 (bound and released; the server binds it right after).
int free_port();

// ---------------------------------------------------------------------------------------------------------------
// The server under test

struct ServerOptions {
  // Config values, section → key → TOML value text (e.g. set("c2s", "max_stanza_size", "4096")). They override
  // the harness's own settings (loopback ports, a data dir in the test's temp dir, debug logging).
  std::map<std::string, std::map<std::string, std::string>> settings;
  ServerOptions& set(const std::string& section, const std::string& key, const std::string& toml_value) {
    settings[section][key] = toml_value;
    return *this;
  }
  // Users to create (with chatgroupctl) before start: name (or name@domain) → password.
  std::map<std::string, std::string> users;
  // The domain of users given without one (the first of server.hosts when a test sets them).
  std::string domain = "localhost";
};

class TestServer {
public:
  explicit TestServer(ServerOptions options = {});
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  void start(); // launches and waits for "chatgroupd: ready" (throws on timeout or early exit)
  // SIGTERM and wait for exit; returns the exit status (or -1 on timeout, after SIGKILL).
  int stop(std::chrono::milliseconds timeout = 10s);
  void signal(int sig);
  // Waits for the server process to exit (after a signal); its status, or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = 10s);
  bool running();

  int port() const { return port_; }
  int tls_port() const { return tls_port_; }
  const std::string& dir() const { return dir_; }
  std::string cert_path() const { return dir_ + "/data/selfsigned.crt"; }
  std::string config_path() const { return dir_ + "/chatgroup.toml"; }
  std::string log() const; // the server's stderr so far

  // chatgroupctl against this server's config; `input` goes to its stdin. Returns {exit status, stdout+stderr}.
  std::pair<int, std::string> ctl(const std::vector<std::string>& args, const std::string& input = "") const;
  void add_user(const std::string& node, const std::string& password) const;

private:
  ServerOptions options_;
  std::string dir_;
  int port_ = 0;
  int tls_port_ = 0;
  int pid_ = -1;
  int stdout_fd_ = -1;
  bool users_added_ = false;
};

// Runs a program to completion with `input` on stdin; returns {status, stdout+stderr}.
std::pair<int, std::string> run_program(const std::vector<std::string>& argv, const std::string& input = "",
                                        std::chrono::milliseconds timeout = 20s);

std::string chatgroupd_path();
std::string chatgroupctl_path();

// ---------------------------------------------------------------------------------------------------------------
// A raw client: bytes in and out over TCP, optionally TLS; incoming XML is parsed into stream events.

class RawClient {
public:
  RawClient();
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void connect(int port);
  // TLS handshake as a client (after <proceed/>, or at once for direct TLS). max_version 0 = library default.
  void start_tls(int max_version = 0, const std::string& alpn = "");
  bool secure() const { return ssl_ != nullptr; }
  SSL* ssl() const { return ssl_; }

  void send(const std::string& data);
  // Opens a client stream to `to` (a fresh parser for the server's response).
  void open_stream(const std::string& to = "localhost", const std::string& extra_attrs = "version='1.0'");
  // Opens a server-to-server stream (jabber:server, with the dialback namespace declared).
  void open_server_stream(const std::string& from, const std::string& to);

  // Waits for the next stream event (header, element, close, or the connection closing → nullopt).
  std::optional<cg::xml::StreamEvent> next(std::chrono::milliseconds timeout = 10s);
  // Waits for the next top-level element (skipping nothing: a header/close first is an error → nullopt).
  std::optional<Element> next_element(std::chrono::milliseconds timeout = 10s);
  // Waits until an element matching `pred` arrives; earlier elements are kept in `skipped`.
  std::optional<Element> wait_for(const std::function<bool(const Element&)>& pred,
                                  std::chrono::milliseconds timeout = 10s);
  // Waits for the server to close the TCP connection; returns false on timeout.
  bool wait_closed(std::chrono::milliseconds timeout = 10s);
  // The stream error condition if one arrived (after next()/wait_closed saw it).
  const std::string& stream_error() const { return stream_error_; }
  const std::string& stream_error_text() const { return stream_error_text_; }
  const std::string& raw_received() const { return raw_; }

  // Negotiation helpers (assert on the way):
  // STARTTLS on a fresh connection: open stream, read features, starttls, TLS, reopen stream; returns features.
  Element starttls_and_reopen(const std::string& to = "localhost", int max_version = 0);
  // SASL with an independent client implementation. mechanism: PLAIN, SCRAM-SHA-1/256/512[-PLUS].
  // cb_type: the channel binding for -PLUS ("tls-exporter", "tls-server-end-point", "tls-unique").
  // Returns the final <success/> or <failure/> element.
  Element authenticate(const std::string& mechanism, const std::string& user, const std::string& password,
                       const std::string& cb_type = "");
  // After <success/>: reopen the stream, bind `resource` ("" = server-generated); returns the bound full JID.
  std::string bind(const std::string& resource = "");
  // connect + STARTTLS + SCRAM-SHA-256 + bind, returns the full JID.
  std::string login(int port, const std::string& user, const std::string& password, const std::string& resource = "");
  // Sends an IQ and waits for the reply with the same id.
  std::optional<Element> iq(const std::string& xml, const std::string& id, std::chrono::milliseconds timeout = 10s);

  std::vector<Element> skipped;

  // (Appended for the stream and SASL tests.)
  // TLS handshake with a client context the caller configures (versions, ciphers, security level, ALPN); throws
  // like start_tls() when the handshake fails (and the client is then left without TLS).
  void start_tls_with(const std::function<void(SSL_CTX*)>& configure);
  // SCRAM with the GS2 header ("n,,", "y,,", "p=tls-exporter,,", "n,a=authzid,") and the channel-binding data
  // given verbatim, to send wrong ones on purpose. Returns the server's final <success/> or <failure/>, or its
  // first answer when that is not a <challenge/>.
  Element authenticate_scram(const std::string& mechanism, const std::string& user, const std::string& password,
                             const std::string& gs2_header, const std::string& cb_data);
  // Pipelining: waits for the next top-level element and restarts the parser just past it, so that what the
  // server sent after it (a new stream header after <success/>, in the same read or later) goes to a fresh parser.
  std::optional<Element> next_element_then_restart(std::chrono::milliseconds timeout = 10s);

private:
  bool fill(Clock::time_point deadline);
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  cg::xml::StreamParser parser_;
  std::string raw_;
  std::string stream_error_;
  std::string stream_error_text_;
  bool closed_ = false;
};

// Channel binding data as the client computes it, independently of the server's code.
std::string client_tls_exporter(SSL* ssl);
std::string client_tls_server_end_point(SSL* ssl);
std::string client_tls_unique(SSL* ssl);

// ---------------------------------------------------------------------------------------------------------------
// libstrophe: a real client library. One context per client; the event loop runs only inside the wait calls.

class StropheClient {
public:
  StropheClient(const std::string& jid, const std::string& password);
  ~StropheClient();
  StropheClient(const StropheClient&) = delete;
  StropheClient& operator=(const StropheClient&) = delete;

  // Connects to 127.0.0.1:port (STARTTLS mandatory, or direct TLS with legacy_ssl), trusting `cafile`.
  // Returns true once the session is established (bound), false on failure/disconnect/timeout.
  bool connect(int port, const std::string& cafile, bool direct_tls = false, std::chrono::milliseconds timeout = 15s);
  bool connected() const { return state_ == State::Connected; }
  bool failed() const { return state_ == State::Failed || state_ == State::Disconnected; }
  void disconnect(std::chrono::milliseconds timeout = 5s);

  void send(const std::string& xml);
  // Runs the loop until a received stanza matches `pred` (kept in `received` too) or the timeout.
  std::optional<Element> wait_for(const std::function<bool(const Element&)>& pred,
                                  std::chrono::milliseconds timeout = 10s);
  // Sends an IQ and waits for the reply with that id.
  std::optional<Element> iq(const std::string& xml, const std::string& id, std::chrono::milliseconds timeout = 10s);
  // Runs the loop until the connection drops; returns false on timeout.
  bool wait_disconnected(std::chrono::milliseconds timeout = 10s);
  // Answer server pings (XEP-0199) automatically (default on).
  void answer_pings(bool on) { answer_pings_ = on; }

  std::string bound_jid() const;
  std::vector<Element> received;
  int disconnect_error = 0;
  std::string stream_error; // condition of a received stream error, if any

  // libstrophe callbacks (public for the C trampolines).
  void on_conn(xmpp_conn_event_t status, int error, xmpp_stream_error_t* stream_error);
  void on_stanza(xmpp_stanza_t* stanza);

private:
  void run_once();
  enum class State { Idle, Connecting, Connected, Failed, Disconnected } state_ = State::Idle;
  xmpp_ctx_t* ctx_ = nullptr;
  xmpp_conn_t* conn_ = nullptr;
  bool answer_pings_ = true;
};

// Predicates.
std::function<bool(const Element&)> is_stanza(std::string name, std::string attr = {}, std::string value = {});
bool has_child(const Element& el, std::string_view name, std::string_view ns);
// The error condition of an error stanza ("" when none).
std::string error_condition(const Element& stanza);

} // namespace it

// ---------------------------------------------------------------------------------------------------------------
// Helpers for the routing, module and administration tests (appended).

namespace it {

// connect + STARTTLS + SCRAM-SHA-256, then reopens the stream and returns the features (bind not done yet).
Element login_unbound(RawClient& client, int port, const std::string& user, const std::string& password);
// Sends a bind request ("" = no <resource/>, the server picks one) and returns the IQ reply (nullopt on timeout).
std::optional<Element> request_bind(RawClient& client, const std::string& resource_xml, const std::string& id = "b1");
// A ping round trip to the server: everything the client sent before it has been processed by the server once the
// answer arrives (one stream is handled in order). Returns false when no result came.
bool sync_ping(RawClient& client, const std::string& id = "sync");
bool sync_ping(StropheClient& client, const std::string& id = "sync");
// The certificate's SHA-256 fingerprint as `openssl x509 -fingerprint` prints it ("" when unreadable).
std::string cert_fingerprint(const std::string& pem_path);

// A program running in the background with its own working directory; stdout and stderr go to one pipe.
// Killed (SIGKILL) on destruction if still running.
class Daemon {
public:
  Daemon(const std::vector<std::string>& argv, const std::string& cwd);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  // Reads output until it contains `needle` (true) or the program exits / the timeout passes (false).
  bool wait_output(const std::string& needle, std::chrono::milliseconds timeout = 30s);
  // Sends `sig` and waits for the exit status (nullopt on timeout, then SIGKILL).
  std::optional<int> stop(int sig, std::chrono::milliseconds timeout = 10s);
  const std::string& output() const { return out_; }

private:
  int pid_ = -1;
  int fd_ = -1;
  std::string out_;
};

} // namespace it

// ---------------------------------------------------------------------------------------------------------------
// Helpers for the stream, TLS and SASL tests (appended).

namespace it {

// Waits until the server's log contains `needle` (inotify on the log file: no polling); false on timeout.
bool wait_for_log(const TestServer& server, const std::string& needle, std::chrono::milliseconds timeout = 10s);

} // namespace it
