// A fake module host for tier-2 tests (DESIGN.md §7): an api::ModuleContext with no sockets and no server core.
//
// It records everything a module registers (features, identities, IQ handlers by (scope, type, namespace, name),
// stanza and session handlers, idle requests, typed event handlers) and everything it does (stanzas passed to
// send(), IQs passed to send_iq(), sessions it closes, log lines), and lets a test drive the handlers: call_iq()
// runs an IQ handler coroutine to completion, fire_session() and run_stanza() deliver events.
//
// What is fake, on purpose:
// - send_iq() does not wait: it asks the scripted responder (respond_to_iqs) at once and returns its answer; no
//   responder, or one returning nullopt, means "no answer within the timeout". The requested timeout is recorded.
// - run_blocking() runs the work inline on the calling thread (there is no storage worker).
// - executor() is a single-threaded io_context that runs only inside call_iq() and run().
// - Options are the module's declared defaults (ModuleInfo::options) with per-test overrides, checked against the
//   declarations like the config loader does.
//
// One FakeHost is one module's context. A second module on the same host (e.g. one that only registers features
// for disco to collect) gets its own context from sibling(): it shares every registration and record, but has its
// own options.
#pragma once

#include "server/api/module.hpp"
#include "server/xml/writer.hpp"

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <typeindex>
#include <vector>

namespace cg::test {

using api::Element;

// Per-test option values for one module: key → value. Each key must be declared by the module, with a value of
// the declared type within the declared bounds.
using OptionOverrides = std::map<std::string, api::OptionValue, std::less<>>;

// Checks `value` against its declaration (type, bounds, choices). Returns "" when valid, else why not.
std::string check_option(const api::OptionSpec& spec, const api::OptionValue& value);

// Parses one XML element (a spec example). Throws std::invalid_argument with the parser's message on failure.
Element parse_xml(std::string_view xml);
// Like parse_xml, for a stanza as it arrives on a c2s stream: elements without a namespace get jabber:client (the
// stream's default namespace), as the stream parser would give them.
Element parse_stanza(std::string_view xml);
// The form in which two trees compare equal when they mean the same XML: whitespace-only text removed (spec
// examples are indented) and attributes sorted by name (their order carries no meaning), recursively.
Element canonical(Element el);

class FakeHost final : public api::ModuleContext {
public:
  struct IqKey {
    api::IqScope scope;
    api::IqType type;
    std::string ns;
    std::string name;
    auto operator<=>(const IqKey&) const = default;
  };
  struct StanzaHandlerEntry {
    api::StanzaKind kind;
    api::Route route;
    int priority;
    std::uint64_t seq;
    api::StanzaHandler handler;
  };
  struct SentIq {
    Element iq; // as it would be routed: 'from' stamped with the host when absent
    std::chrono::milliseconds timeout;
  };
  struct ClosedSession {
    api::Jid jid;
    std::string condition;
    std::string text;
  };
  // How send_iq() is answered: the reply stanza (a result or an error), or nullopt for "no answer in time".
  using IqResponder = std::function<std::optional<Element>(const Element& iq)>;

  explicit FakeHost(std::string host = "example.com");
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;
  ~FakeHost() override;

  // --- setting up --------------------------------------------------------------------------------------------------
  // Loads `module` into this context: its declared option defaults, overridden by `overrides`, become this
  // context's options, then module.load(*this) runs. Throws std::invalid_argument for an undeclared or invalid
  // override, std::logic_error when this context already holds a module (use sibling() for the next one).
  void load(api::Module& module, const OptionOverrides& overrides = {});
  // Another module's context on the same host (shares registrations and records; own options). Owned by this one.
  FakeHost& sibling();

  api::ServerInfo& mutable_server_info();
  // Sessions that sessions() reports, and accounts that user_exists() knows.
  void add_session(api::SessionInfo session);
  void add_user(std::string node);
  // How send_iq() is answered from now on (see the header comment).
  void respond_to_iqs(IqResponder responder);
  // Helpers for responders: the reply `iq`'s addressee would send.
  static Element result_for(const Element& iq);
  static Element error_for(const Element& iq, std::string condition);

  // --- driving handlers --------------------------------------------------------------------------------------------
  // The IQ handler the host would pick for this payload: the exact name, else one registered for any name ("").
  const api::IqHandler* find_iq_handler(api::IqScope scope, api::IqType type, std::string_view ns,
                                        std::string_view name) const;
  // Runs the handler for `iq_stanza`'s payload to completion and returns its reply. No handler → the
  // service-unavailable error the router would return (RFC 6120 §8.4). An exception from the handler propagates.
  // `origin` defaults to a client session of `from`.
  api::IqReply call_iq(api::IqScope scope, api::IqType type, const Element& iq_stanza, const api::Jid& from,
                       const api::Jid& to, std::optional<api::Origin> origin = std::nullopt);
  // The same, reading type, 'from' and 'to' from the stanza like the router: for IqScope::Account, 'to' is the
  // addressed account's bare JID, or the sender's bare JID when 'to' is absent; for IqScope::Host it defaults to
  // the host.
  api::IqReply call_iq(api::IqScope scope, const Element& iq_stanza);
  api::IqReply call_iq(api::IqScope scope, std::string_view iq_xml);
  // The stanza the router would send back for `reply` (make_iq_result or make_error_reply).
  static Element reply_stanza(const Element& iq_stanza, const api::IqReply& reply);

  // Calls the session handlers registered for ev.kind, then runs the io_context until it is idle (so that work
  // the handlers spawned — e.g. a ping awaiting its answer — completes).
  void fire_session(const api::SessionEvent& ev);
  // Runs the stanza handlers of (ev.kind, ev.route) in priority order until one returns Flow::Stop.
  api::Flow run_stanza(api::StanzaEvent& ev);
  // Runs the io_context until no work is left; returns the number of handlers run.
  std::size_t run();

  // --- what was registered -----------------------------------------------------------------------------------------
  const std::vector<std::string>& registered_features() const;         // in registration order, duplicates kept
  const std::vector<std::string>& registered_account_features() const; // likewise
  // Stream features the modules added for a stage, in registration order.
  std::vector<api::Element> registered_stream_features(api::StreamStage stage) const;
  const std::map<IqKey, api::IqHandler>& iq_handlers() const;
  bool has_iq_handler(api::IqScope scope, api::IqType type, std::string_view ns, std::string_view name) const;
  const std::vector<StanzaHandlerEntry>& stanza_handlers() const;
  std::size_t session_handler_count(api::SessionEventKind kind) const;
  const std::vector<std::chrono::seconds>& idle_requests() const;
  // The shortest idle request (what the real host would use), or nullopt if none.
  std::optional<std::chrono::seconds> idle_after() const;
  std::size_t event_handler_count(std::type_index type) const;

  // --- what was done -----------------------------------------------------------------------------------------------
  const std::vector<Element>& sent() const;
  const std::vector<SentIq>& sent_iqs() const;
  const std::vector<ClosedSession>& closed_sessions() const;
  const std::vector<std::string>& logged() const; // "level: message"
  int blocking_runs() const;
  void clear_records(); // forgets sent stanzas, sent IQs, closed sessions and log lines

  // --- api::ModuleContext ------------------------------------------------------------------------------------------
  const std::string& host() const override;
  const api::ServerInfo& server_info() const override;
  spdlog::logger& log() override;
  api::asio::any_io_executor executor() override;
  const api::OptionValue& option_value(std::string_view key) const override;

  void add_feature(std::string feature) override;
  void add_identity(api::Identity identity) override;
  void add_account_feature(std::string feature) override;
  void add_stream_feature(api::StreamStage stage, api::Element feature) override;
  std::vector<std::string> features() const override;
  std::vector<api::Identity> identities() const override;
  std::vector<std::string> account_features() const override;

  void on_stanza(api::StanzaKind kind, api::Route route, api::StanzaHandler handler, int priority = 0) override;
  void on_iq(api::IqScope scope, api::IqType type, std::string payload_ns, std::string payload_name,
             api::IqHandler handler) override;
  void on_session(api::SessionEventKind kind, api::SessionHandler handler) override;
  void request_idle_events(std::chrono::seconds after) override;

  void send(Element stanza) override;
  api::asio::awaitable<std::optional<Element>> send_iq(Element iq, std::chrono::milliseconds timeout) override;
  void close_session(const api::Jid& full_jid, std::string condition, std::string text) override;
  std::vector<api::SessionInfo> sessions(const api::Jid& bare_jid) const override;

  storage::Driver& storage() override;
  api::asio::awaitable<void> run_blocking(std::function<void()> work) override;
  api::asio::awaitable<bool> user_exists(std::string_view node) override;
  // Accounts: a node → password table; delete_account also removes the node's sessions.
  api::asio::awaitable<AccountResult> create_account(std::string node, std::string password) override;
  api::asio::awaitable<AccountResult> set_password(std::string node, std::string password) override;
  api::asio::awaitable<AccountResult> delete_account(std::string node) override;
  // The password an account created or changed through the API has ("" if none).
  std::string password_of(const std::string& node) const;

protected:
  void add_event_handler(std::type_index type, std::shared_ptr<void> handler, int priority) override;
  void for_each_event_handler(std::type_index type,
                              const std::function<bool(const std::shared_ptr<void>&)>& visit) override;

private:
  struct State;
  explicit FakeHost(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
  std::string module_name_;
  std::map<std::string, api::OptionValue, std::less<>> options_;
  std::vector<std::unique_ptr<FakeHost>> siblings_;
};

} // namespace cg::test

// Catch prints elements as XML when a comparison fails.
template <>
struct Catch::StringMaker<cg::xml::Element> {
  static std::string convert(const cg::xml::Element& el) { return cg::xml::to_string(el); }
};
