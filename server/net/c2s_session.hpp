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
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace cg::core {
class Server;
}

namespace cg::net {

namespace asio = boost::asio;
class Transport;

// XEP-0198 stream management state of one session (moves to the new session when a client resumes).
struct SmState {
  bool enabled = false;
  bool resumable = false;
  std::string id; // the resumption id (resumable sessions)
  std::chrono::seconds max{0};
  // Inbound: stanzas received since <enable/>, and how many of them are handled (contiguously from the start).
  std::uint32_t in_received = 0;
  std::uint32_t in_handled = 0;
  std::deque<bool> in_flight;          // done flags of stanzas in_handled .. in_received-1
  std::deque<std::uint32_t> pending_r; // <r/> answers owed once in_handled reaches these counts
  // Outbound: stanzas sent since <enable/> and those the client has not acknowledged yet (oldest first).
  std::uint32_t out_sent = 0;
  std::uint32_t out_acked = 0;
  std::deque<xml::Element> unacked;
  bool ack_requested = false;
};

struct SmTransfer {
  api::Jid jid; // the full JID the session was bound to
  SmState sm;
};

class C2SSession final : public std::enable_shared_from_this<C2SSession>, public routing::ClientSink {
public:
  C2SSession(core::Server& server, asio::ip::tcp::socket socket, bool direct_tls);
  ~C2SSession() override;

  void start();

  // routing::ClientSink (thread-safe)
  void deliver(xml::Element stanza) override;
  void close(std::string condition, std::string text) override;

  // XEP-0198 resumption: hands this session's state to `successor` (on this session's strand) if it is
  // resumable and belongs to `bare`; nullopt otherwise. Waits until every stanza received so far is handled.
  asio::awaitable<std::optional<SmTransfer>> transfer_to(std::shared_ptr<C2SSession> successor, api::Jid bare);
  // A stanza received after <enable/> has been handled (its accept token is gone). Strand only.
  void sm_handled(std::uint32_t seq);

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
  // `app_xml`: an application-specific condition element, already serialised.
  void stream_error(std::string_view condition, std::string_view text = {}, std::string_view app_xml = {});
  void restart_stream(std::uint64_t carry_from);
  std::vector<std::string> offered_mechanisms() const;

  // XEP-0198 stream management.
  asio::awaitable<void> on_sm_element(const xml::Element& el);
  asio::awaitable<void> on_resume(const xml::Element& el);
  void sm_enable(const xml::Element& el);
  void sm_ack(const xml::Element& el);
  void sm_answer_requests();
  void detach(std::shared_ptr<C2SSession> successor, const api::Jid& bare,
              std::function<void(std::optional<SmTransfer>)> done);
  asio::awaitable<void> hibernate();
  void reroute_unacked();
  api::AcceptToken sm_ticket();

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
  SmState sm_;
  bool r_scheduled_ = false;
  bool hibernating_ = false;
  bool transferred_ = false; // resumed by another session: this one ends without a trace
  bool finished_ = false;
  std::optional<asio::steady_timer> hibernate_timer_;
  std::weak_ptr<C2SSession> successor_;
  std::function<void()> pending_transfer_; // a resumption waiting for in-flight stanzas to be handled
};

} // namespace cg::net
