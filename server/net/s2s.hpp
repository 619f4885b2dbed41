// Server-to-server streams (RFC 6120, XEP-0220 Server Dialback, XEP-0178 SASL EXTERNAL, XEP-0368 direct TLS).
//
//   S2SManager  one per server: routes stanzas for remote domains to the outgoing stream of their (local, remote)
//               pair, creating it on demand; bounces what cannot be delivered; keeps the live streams for listing
//               and shutdown; answers dialback verification requests through outgoing streams.
//   S2SOut      an outgoing stream for one (local, remote) pair: resolve (SRV, then the domain), connect, TLS,
//               authenticate (SASL EXTERNAL with a verified certificate, else dialback), then send; stanzas queue
//               (bounded) until the stream is ready and are bounced if it never is.
//   S2SIn       an incoming stream: TLS, SASL EXTERNAL and dialback; every stanza's 'from' must be a domain the
//               peer proved on this stream and its 'to' one of ours.
//
// Each stream runs on its own strand; the manager's methods are thread-safe.
#pragma once

#include "server/api/jid.hpp"
#include "server/net/resolver.hpp"
#include "server/xml/element.hpp"
#include "server/xml/stream_parser.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cg::core {
class Server;
}

namespace cg::net {

namespace asio = boost::asio;
class Transport;
class S2SManager;

struct S2SSettings {
  bool enabled = true;
  bool require_encryption = true;
  bool allow_dialback = true;
  bool dialback_without_tls = false;
  xml::ParserLimits parser_limits{512 * 1024, 64};
  std::chrono::seconds connect_timeout{10};
  std::chrono::seconds auth_timeout{60};
  std::chrono::seconds idle_timeout{600};
  std::size_t max_queue = 1000;
  std::size_t max_send_queue = 8 << 20;
  std::size_t max_connections_per_ip = 64;
  std::size_t max_streams_per_domain = 8;
  std::chrono::seconds max_backoff{300};
  std::vector<std::string> allow;
  std::vector<std::string> deny;
};

// What `chatgroupctl s2s` shows of a live stream.
struct S2SInfo {
  bool incoming = false;
  std::string local;  // our domain
  std::string remote; // the peer's domain(s), space-separated for incoming streams with several
  std::string peer;   // address:port
  std::string auth;   // "sasl-external", "dialback", "" (not yet)
  std::string tls;    // TLS version, "" without TLS
  std::string state;
};

// The I/O shared by both directions: transport, parser, output queue and writer, stream errors.
class S2SStream : public std::enable_shared_from_this<S2SStream> {
public:
  virtual ~S2SStream();
  S2SStream(const S2SStream&) = delete;
  S2SStream& operator=(const S2SStream&) = delete;

  // Ends the stream with a stream error (thread-safe).
  void close(std::string condition, std::string text);
  virtual S2SInfo info() const = 0;

protected:
  S2SStream(core::Server& server, S2SManager& manager, asio::any_io_executor strand);

  // Reads once and feeds the parser; false when the connection is gone.
  asio::awaitable<bool> read_some();
  void send(const xml::Element& el);
  void send_raw(std::string_view data);
  void stream_error(std::string_view condition, std::string_view text = {});
  asio::awaitable<void> flush();
  // Output still queued gets a bounded chance to leave, then the connection closes.
  asio::awaitable<void> close_transport();
  void reset_parser();
  void touch() { last_activity_ = std::chrono::steady_clock::now(); }
  // Arms the timer that ends the stream with `condition` unless it is re-armed or cancelled.
  void arm_timer(std::chrono::steady_clock::duration after, std::string condition);
  virtual void on_timer(const std::string& condition);
  virtual void on_closing() {}
  virtual const char* direction() const = 0;

  core::Server& server_;
  S2SManager& manager_;
  asio::any_io_executor strand_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<xml::StreamParser> parser_;
  asio::steady_timer timer_;
  bool closing_ = false;
  bool header_sent_ = false;
  std::string close_condition_;
  std::chrono::steady_clock::time_point last_activity_;
  std::string peer_;

private:
  void start_writer();
  asio::awaitable<void> write_loop();
  std::string out_;
  std::string writing_buf_;
  bool writing_ = false;
  std::optional<asio::steady_timer> flush_timer_;
};

class S2SIn final : public S2SStream {
public:
  S2SIn(core::Server& server, S2SManager& manager, asio::ip::tcp::socket socket, bool direct_tls);
  ~S2SIn() override;
  void start();
  S2SInfo info() const override;

private:
  asio::awaitable<void> run();
  void on_open(const xml::StreamEvent& ev);
  void send_header();
  void send_features();
  asio::awaitable<void> on_element(xml::Element& el);
  asio::awaitable<void> on_starttls();
  void on_sasl_auth(const xml::Element& el);
  void on_db_result(const xml::Element& el);
  void on_db_verify(const xml::Element& el);
  void on_stanza(xml::Element el);
  const char* direction() const override { return "s2s-in"; }
  bool peer_verified_for(const std::string& domain) const;
  // Counts this stream against s2s.max_streams_per_domain once per remote domain; false (and a stream error) when
  // the domain has too many.
  bool claim(const std::string& domain);
  std::set<std::string> claimed_;

  bool direct_tls_;
  bool version1_ = false;
  bool sasl_done_ = false;
  std::string stream_id_;
  std::string header_from_;
  std::string header_to_;
  std::string address_;
  bool counted_ = false;
  // Proved (remote domain, local domain) pairs: stanzas may flow from the first to the second.
  mutable std::mutex info_mutex_;
  std::set<std::pair<std::string, std::string>> authorized_;
  std::string auth_method_;
  // Dialback requests under verification (remote, local).
  std::set<std::pair<std::string, std::string>> pending_;
};

class S2SOut final : public S2SStream {
public:
  S2SOut(core::Server& server, S2SManager& manager, std::string local, std::string remote);
  ~S2SOut() override;
  void start();
  S2SInfo info() const override;
  const std::string& local() const { return local_; }
  const std::string& remote() const { return remote_; }

  // Thread-safe: queues a stanza (sent once the stream is authenticated). False when this stream is closing
  // (the caller routes the stanza anew).
  bool enqueue(xml::Element stanza);
  // Thread-safe: asks the remote (authoritative) server whether `key` is valid for the stream `id` that it opened
  // to our domain `local` (XEP-0220 §2.2, <db:verify/>); `done` gets true/false, or nullopt when no answer could be
  // had.
  void verify(std::string local, std::string id, std::string key, std::function<void(std::optional<bool>)> done);
  // Dialback piggybacking (XEP-0220 §2.5): another of our domains authenticates over this stream.
  void add_local(std::string local);
  // Authenticated by dialback and open: further local domains may piggyback on it.
  bool can_piggyback() const { return piggyback_ok_.load(); }

private:
  enum class State { Connecting, Negotiating, Authenticating, Ready, Closed };
  asio::awaitable<void> run();
  asio::awaitable<bool> connect();
  void send_header();
  asio::awaitable<void> on_element(xml::Element& el);
  asio::awaitable<void> on_features(const xml::Element& features);
  void authenticate();
  void ready();
  void fail(std::string condition, std::string text);
  void send_verifies();
  void on_timer(const std::string& condition) override;
  void on_closing() override;
  const char* direction() const override { return "s2s-out"; }

  std::string local_;
  std::string remote_;
  State state_ = State::Connecting;
  bool direct_tls_ = false;
  bool cert_verified_ = false;
  std::string cert_error_;
  bool sasl_done_ = false;
  bool external_failed_ = false;
  bool dialback_offered_ = false;
  bool sasl_external_offered_ = false;
  bool version1_ = true;
  std::string stream_id_; // the id the remote server gave the stream (dialback keys are bound to it)
  std::string failure_condition_;
  std::string failure_text_;
  std::deque<xml::Element> queue_;
  // Our other domains piggybacking on this stream: authenticated yet or not, and their stanzas waiting.
  struct Piggyback {
    bool ready = false;
    std::deque<xml::Element> queue;
  };
  std::map<std::string, Piggyback> extra_;
  std::atomic<bool> piggyback_ok_{false};
  void request_piggyback(const std::string& local);
  struct Verify {
    std::string local;
    std::string id;
    std::string key;
    std::function<void(std::optional<bool>)> done;
    bool sent = false;
  };
  std::deque<Verify> verifies_;
  mutable std::mutex info_mutex_;
  std::string auth_method_;
  std::string state_text_ = "connecting";
  std::string piggybacked_; // " c.example d.example": our other domains authenticated on this stream
};

class S2SManager {
public:
  S2SManager(core::Server& server, S2SSettings settings, ResolverOptions resolver);
  ~S2SManager();

  const S2SSettings& settings() const { return settings_; }
  Resolver& resolver() { return *resolver_; }
  const std::string& secret() const { return secret_; }

  // The router's remote route: a stanza from one of our domains to a remote domain.
  void route(xml::Element stanza, const api::Jid& from, const api::Jid& to);
  // Dialback: verifies a key with the authoritative server of `remote` (see S2SOut::verify).
  void verify(const std::string& local, const std::string& remote, std::string id, std::string key,
              std::function<void(std::optional<bool>)> done);
  // Federation policy: s2s.allow / s2s.deny.
  bool allowed(const std::string& domain) const;

  // Streams register themselves; these are called from their strands.
  void add(const std::shared_ptr<S2SStream>& stream);
  void remove(const S2SStream* stream);
  // An outgoing stream has ended: `failed` when it never became ready (its queued stanzas are bounced with
  // `condition`); `leftover` holds stanzas that arrived while it was closing (they are routed anew).
  void out_ended(const S2SOut* out, bool failed, const std::string& condition, const std::string& text,
                 std::deque<xml::Element> leftover);
  void out_ready(const S2SOut* out);
  // A piggybacking domain was refused: the pair no longer maps to `out`.
  void forget(const std::string& local, const std::string& remote, const S2SOut* out);
  // Incoming connections per address.
  bool add_incoming_address(const std::string& address);
  void remove_incoming_address(const std::string& address);
  // Authenticated incoming streams per remote domain (s2s.max_streams_per_domain).
  bool claim_incoming_domain(const std::string& domain);
  void release_incoming_domain(const std::string& domain);

  std::vector<S2SInfo> list() const;
  void close_all(const std::string& condition, const std::string& text);
  std::size_t count() const;

  // Bounces `stanza` to its (local) sender with `condition`.
  void bounce(const xml::Element& stanza, const std::string& condition, const std::string& text);

private:
  std::shared_ptr<S2SOut> outgoing(const std::string& local, const std::string& remote, bool create);

  core::Server& server_;
  S2SSettings settings_;
  std::unique_ptr<Resolver> resolver_;
  std::string secret_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<S2SOut>> out_;
  std::map<const S2SStream*, std::weak_ptr<S2SStream>> streams_;
  struct Backoff {
    std::chrono::steady_clock::time_point until;
    std::chrono::seconds wait{0};
    std::string condition;
    std::string text;
  };
  std::map<std::string, Backoff> backoff_;
  std::map<std::string, std::size_t> per_address_;
  std::map<std::string, std::size_t> per_domain_;
};

// Stanzas arrive from a server stream in jabber:server; inside the server they are jabber:client (the writer puts
// them back into the namespace of the stream they leave on).
void to_client_namespace(xml::Element& el);

// The condition of a <stream:error/> a peer sent ("undefined-condition" when it names none).
std::string peer_stream_error(const xml::Element& error);

} // namespace cg::net
