// The module API (DESIGN.md §4): the only interface between the XMPP core and a feature (xep/, summarizer/).
//
// A module declares what it is (ModuleInfo: name, specs, dependencies, typed options) and, in load(), registers
// handlers through its ModuleContext — one context per (module, host). Every registration is recorded and undone
// by the host when the module unloads.
//
// Threading: handlers run on the I/O thread of the session that produced the stanza, possibly on several threads
// at once. A module's own state needs its own lock (or confinement to a strand from make_strand()). Blocking work
// (storage) goes through run_blocking(), never directly on an I/O thread.
#pragma once

#include "server/api/jid.hpp"
#include "server/api/options.hpp"
#include "server/api/stanza.hpp"
#include "storage/store.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeindex>
#include <variant>
#include <vector>

namespace spdlog {
class logger;
}

namespace cg::api {

namespace asio = boost::asio;

// A specification a module implements, for the generated "supported XEPs" table and for humans.
struct Spec {
  std::string name;    // "XEP-0199", "RFC 6121 §2"
  std::string version; // the version implemented, e.g. "2.0.1"
  std::string status;  // "complete" or "partial"
  std::string note;    // what is left out, if anything
};

struct ModuleInfo {
  std::string name;    // "ping"; its options live in the [modules.ping] table
  std::string summary; // one line
  std::vector<Spec> specs;
  std::vector<std::string> depends; // names of modules that must load first
  std::vector<OptionSpec> options;
  bool default_enabled = true; // in modules.enabled by default
};

struct Identity {
  std::string category; // "server"
  std::string type;     // "im"
  std::string name;     // "ChatGroup"
  std::string lang;
  bool operator==(const Identity&) const = default;
};

enum class Flow { Continue, Stop };

// Where a stanza entered the server.
enum class OriginKind {
  Client, // a local client session (its 'from' was stamped by the server)
  Server, // a remote server (s2s)
  Local,  // generated inside the server (a module or the core)
};
struct Origin {
  OriginKind kind = OriginKind::Local;
  Jid jid; // Client: the session's full JID; Server: the remote domain; Local: the host
};

// The routing stage a stanza handler hooks (Prosody's "pre-message", "message/bare", ...):
enum class Route {
  Pre,  // from a local client, before routing (stanza has its stamped 'from')
  Bare, // to a local account's bare JID
  Full, // to a local full JID (the resource may not be online)
  Host, // to the host itself (no localpart)
  Self, // a client stanza with no 'to' (presence broadcast, or message to self)
};

// Keeps a client's stanza "in progress" for stream management (XEP-0198): the server acknowledges a stanza to the
// client (<a h=''/>) only once every copy of its token is gone. A handler that finishes with a stanza later than
// it returns — a durable write for an offline user — keeps a copy until then. Null for stanzas that no client
// waits on.
using AcceptToken = std::shared_ptr<void>;

// Route::Bare and Route::Full events fire only for accounts that exist; stanzas to accounts that do not exist get
// the core's answers (RFC 6121 §8.5.1) and are never shown to modules.
struct StanzaEvent {
  Element& stanza; // handlers may modify it (e.g. add a stanza-id) before delivery
  const Jid& from;
  const Jid& to;
  const Origin& origin;
  StanzaKind kind;
  Route route;
  AcceptToken accept = nullptr;
};
using StanzaHandler = std::function<Flow(StanzaEvent&)>;

enum class IqType { Get, Set };
// Which addresses an IQ handler serves: the host's domain, or user accounts (an IQ to a user's bare JID, or an IQ
// from a client with no 'to', which RFC 6120 §10.3.3 says the server handles on behalf of the account), or a
// client connection that has not authenticated yet (e.g. XEP-0077 in-band registration; 'from' is empty and
// IqRequest::peer tells the remote address).
enum class IqScope { Host, Account, Unauthenticated };

struct IqRequest {
  const Element& stanza;
  const Element& payload; // the single child element
  const Jid& from;
  const Jid& to; // for IqScope::Account: the account's bare JID ('to' absent → the sender's bare JID)
  IqType type;
  const Origin& origin;
  std::string peer = {}; // IqScope::Unauthenticated: the connection's remote address (for rate limits)
};

class IqReply {
public:
  static IqReply result(std::optional<Element> payload = std::nullopt) {
    IqReply r;
    r.value_ = std::move(payload);
    return r;
  }
  static IqReply error(StanzaError e) {
    IqReply r;
    r.value_ = std::move(e);
    return r;
  }
  static IqReply error(std::string condition, std::string text = {}) {
    return error(StanzaError::make(std::move(condition), std::move(text)));
  }
  bool is_error() const { return std::holds_alternative<StanzaError>(value_); }
  const StanzaError& error_value() const { return std::get<StanzaError>(value_); }
  const std::optional<Element>& payload() const { return std::get<std::optional<Element>>(value_); }
  std::optional<Element>& payload() { return std::get<std::optional<Element>>(value_); }

private:
  std::variant<std::optional<Element>, StanzaError> value_;
};
using IqHandler = std::function<asio::awaitable<IqReply>(const IqRequest&)>;

// A local client session, as modules see it.
struct SessionInfo {
  Jid jid;                                             // full JID
  bool available = false;                              // has sent available presence (and not unavailable since)
  int priority = 0;                                    // from its last presence
  std::string peer;                                    // remote address:port
  bool secure = false;                                 // TLS
  std::chrono::steady_clock::time_point last_activity; // when it bound, or last sent presence
};

// Where a stream feature is advertised: in the features after TLS and before authentication (with the SASL
// mechanisms), or in those after authentication (with resource binding).
enum class StreamStage { BeforeAuth, AfterAuth };

enum class SessionEventKind { Bound, Closed, Idle };
struct SessionEvent {
  SessionEventKind kind;
  Jid jid;               // full JID
  std::string condition; // Closed: the stream error condition if the stream ended with one, else ""
};
using SessionHandler = std::function<void(const SessionEvent&)>;

struct ServerInfo {
  std::string name;    // "ChatGroup"
  std::string version; // the project version
  std::vector<std::string> hosts;
};

class ModuleContext {
public:
  virtual ~ModuleContext() = default;

  // --- who and where -------------------------------------------------------------------------------------------
  virtual const std::string& host() const = 0;
  virtual const ServerInfo& server_info() const = 0;
  virtual spdlog::logger& log() = 0;
  // The executor of the server's I/O threads; use make_strand() for state confined to one strand.
  virtual asio::any_io_executor executor() = 0;
  asio::strand<asio::any_io_executor> make_strand() { return asio::make_strand(executor()); }

  // --- options of this module ([modules.<name>]) -----------------------------------------------------------------
  virtual const OptionValue& option_value(std::string_view key) const = 0;
  template <class T>
  T option(std::string_view key) const {
    return std::get<T>(option_value(key));
  }

  // --- service discovery (XEP-0030 collects these) --------------------------------------------------------------
  virtual void add_feature(std::string feature) = 0;
  virtual void add_identity(Identity identity) = 0;
  // Features for user accounts (disco#info to a bare JID).
  virtual void add_account_feature(std::string feature) = 0;
  virtual std::vector<std::string> features() const = 0; // of the host, sorted, unique
  virtual std::vector<Identity> identities() const = 0;
  virtual std::vector<std::string> account_features() const = 0;
  // A stream feature the host's client streams advertise (e.g. <ver xmlns='urn:xmpp:features:rosterver'/>).
  virtual void add_stream_feature(StreamStage stage, Element feature) = 0;

  // --- handlers ----------------------------------------------------------------------------------------------------
  // Higher priority runs first; the first handler returning Flow::Stop ends the event. When no handler stops a
  // delivery event, the core applies RFC 6120/6121's default routing.
  virtual void on_stanza(StanzaKind kind, Route route, StanzaHandler handler, int priority = 0) = 0;
  // Handles IQs of `type` whose payload is <payload_name xmlns=payload_ns> (payload_name "" = any name). An IQ
  // get/set nobody handles is answered with service-unavailable (RFC 6120 §8.4).
  virtual void on_iq(IqScope scope, IqType type, std::string payload_ns, std::string payload_name,
                     IqHandler handler) = 0;
  virtual void on_session(SessionEventKind kind, SessionHandler handler) = 0;
  // Idle events (SessionEventKind::Idle) fire for sessions silent for this long; the shortest request wins.
  virtual void request_idle_events(std::chrono::seconds after) = 0;

  // Module-defined extension points: any type E can be an event.
  template <class E>
  void on(std::function<Flow(E&)> handler, int priority = 0) {
    add_event_handler(std::type_index(typeid(E)), std::make_shared<std::function<Flow(E&)>>(std::move(handler)),
                      priority);
  }
  template <class E>
  Flow fire(E& event) {
    Flow flow = Flow::Continue;
    for_each_event_handler(std::type_index(typeid(E)), [&](const std::shared_ptr<void>& h) {
      flow = (*static_cast<std::function<Flow(E&)>*>(h.get()))(event);
      return flow == Flow::Stop;
    });
    return flow;
  }

  // --- acting ------------------------------------------------------------------------------------------------------
  // Routes a stanza generated by the server. 'from' must be set (the host, or a local user for stanzas sent on a
  // user's behalf); module-generated stanzas skip Route::Pre.
  virtual void send(Element stanza) = 0;
  // Sends an IQ get/set and waits for the reply (the result or error stanza); nullopt when none came within
  // `timeout`. The IQ's id is replaced by a unique one while in flight and restored on the reply.
  virtual asio::awaitable<std::optional<Element>> send_iq(Element iq, std::chrono::milliseconds timeout) = 0;
  // Ends a local client session with a stream error.
  virtual void close_session(const Jid& full_jid, std::string condition, std::string text) = 0;
  // The local sessions of an account (empty if none).
  virtual std::vector<SessionInfo> sessions(const Jid& bare_jid) const = 0;

  // --- storage -----------------------------------------------------------------------------------------------------
  virtual storage::Driver& storage() = 0;
  // Runs blocking work (storage) on the storage worker and resumes the caller on its executor afterwards.
  // g++ 12 trap: never build the std::function (or any lambda, or a ?: value) inside the co_await expression —
  // name it first (`std::function<void()> job = ...; co_await ctx.run_blocking(std::move(job));`).
  virtual asio::awaitable<void> run_blocking(std::function<void()> work) = 0;
  template <class F>
  asio::awaitable<std::invoke_result_t<F>> blocking(F f) {
    using R = std::invoke_result_t<F>;
    if constexpr (std::is_void_v<R>) {
      std::function<void()> work = std::move(f);
      co_await run_blocking(std::move(work));
    } else {
      std::optional<R> result;
      std::function<void()> work = [&] { result.emplace(f()); };
      co_await run_blocking(std::move(work));
      co_return std::move(*result);
    }
  }
  virtual asio::awaitable<bool> user_exists(std::string_view node) = 0;

  // --- accounts of this host (XEP-0077; the same operations as chatgroupctl) -----------------------------------------
  enum class AccountResult { Ok, Exists, NotFound, InvalidUsername, InvalidPassword };
  virtual asio::awaitable<AccountResult> create_account(std::string node, std::string password) = 0;
  virtual asio::awaitable<AccountResult> set_password(std::string node, std::string password) = 0;
  // Deletes the account and all its data, and closes its sessions (with <not-authorized/>).
  virtual asio::awaitable<AccountResult> delete_account(std::string node) = 0;

protected:
  virtual void add_event_handler(std::type_index type, std::shared_ptr<void> handler, int priority) = 0;
  // Calls `visit` for each handler of `type` in priority order until it returns true.
  virtual void for_each_event_handler(std::type_index type,
                                      const std::function<bool(const std::shared_ptr<void>&)>& visit) = 0;
};

class Module {
public:
  virtual ~Module() = default;
  virtual ModuleInfo info() const = 0;
  virtual void load(ModuleContext& ctx) = 0;
};

using ModuleFactory = std::unique_ptr<Module> (*)();

} // namespace cg::api
