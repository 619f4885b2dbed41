// A client-to-server stream (RFC 6120): the stream state machine (header, features, STARTTLS, SASL, resource
// binding), stanza checks and 'from' stamping, and the send queue. One coroutine reads and processes; writes run
// in a short-lived coroutine whenever the queue has data. Everything runs on the session's strand.
#pragma once

#include "server/api/jid.hpp"
#include "server/api/module.hpp"
#include "server/routing/registry.hpp"
#include "server/sasl/sasl.hpp"
#include "server/xml/stream_parser.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace cg::core {
class Server;
}

namespace cg::net {

namespace asio = boost::asio;
class Transport;

class C2SSession final : public std::enable_shared_from_this<C2SSession>, public routing::ClientSink {
public:
  C2SSession(core::Server& server, asio::ip::tcp::socket socket, bool direct_tls);
  ~C2SSession() override;

  void start();

  // routing::ClientSink (thread-safe)
  void deliver(xml::Element stanza) override;
  void close(std::string condition, std::string text) override;

private:
  using Clock = std::chrono::steady_clock;
  enum class Phase { AwaitHeader, Negotiating, Closed };

  asio::awaitable<void> run();
  asio::awaitable<void> process_events();
  asio::awaitable<void> handle_event(xml::StreamEvent& ev);
  void on_open(const xml::StreamEvent& ev);
  asio::awaitable<void> on_element(xml::Element& el, std::uint64_t end_offset);
  asio::awaitable<void> on_starttls();
  asio::awaitable<void> on_auth(const xml::Element& el, std::uint64_t end_offset);
  asio::awaitable<void> on_sasl_response(const xml::Element& el, std::uint64_t end_offset);
  asio::awaitable<void> sasl_feed(std::optional<std::string> decoded, std::uint64_t end_offset);
  asio::awaitable<void> sasl_continue(sasl::Step step, std::uint64_t end_offset);
  asio::awaitable<void> sasl_fail(std::string condition, std::string text);
  void on_iq_before_bind(const xml::Element& iq);
  const api::IqHandler* unauthenticated_iq_handler(const xml::Element& iq) const;
  asio::awaitable<void> on_unauthenticated_iq(const xml::Element& iq);
  void bind_resource(const xml::Element& iq, const xml::Element& bind);
  void on_stanza(xml::Element stanza);
  bool check_stanza(xml::Element& stanza, std::optional<api::Jid>& to);

  // Stream output.
  void send_header();
  void send_features();
  void send(const xml::Element& el);
  void send_raw(std::string_view data);
  void start_writer();
  asio::awaitable<void> write_loop();
  asio::awaitable<void> flush();
  void stream_error(std::string_view condition, std::string_view text = {});
  void restart_stream(std::uint64_t carry_from);
  std::vector<std::string> offered_mechanisms() const;

  // Timers.
  void arm_watchdog(Clock::duration after);
  void on_watchdog();
  asio::awaitable<void> finish();

  core::Server& server_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<xml::StreamParser> parser_;
  asio::steady_timer watchdog_;
  std::optional<asio::steady_timer> flush_timer_;
  bool direct_tls_;
  Phase phase_ = Phase::AwaitHeader;
  bool header_sent_ = false;
  bool closing_ = false;
  bool authenticated_ = false;
  bool bound_ = false;
  bool writing_ = false;
  bool over_limit_ = false;
  bool idle_fired_ = false;
  std::string stream_host_;
  std::string stream_id_;
  std::string lang_;
  std::string close_condition_;
  api::Jid jid_; // bare after SASL, full after bind
  std::unique_ptr<sasl::ServerMechanism> mechanism_;
  bool mechanism_plus_offered_ = false;
  int auth_failures_ = 0;
  std::string preauth_raw_;       // bytes fed to the current parser before authentication (for restarts)
  std::size_t preauth_total_ = 0; // bytes received before authentication, across restarts
  std::string out_;
  std::string writing_buf_;
  Clock::time_point created_;
  Clock::time_point last_activity_;
  double rate_tokens_ = 0;
  Clock::time_point rate_time_;
  std::string peer_address_;
};

} // namespace cg::net
