// The router: every stanza passes here once its 'from' is known (stamped for clients, generated inside).
//
// Routing rules (RFC 6120 §10, RFC 6121 §8), in the order they are applied:
//
//   origin  | 'to'                     | what happens
//   --------+--------------------------+-----------------------------------------------------------------------------
//   client  | (any)                    | Route::Pre handlers of the sender's host run first; Stop ends routing
//   client  | absent, presence         | the session's availability/priority is updated; Route::Self handlers
//   client  | absent, message          | as if sent to the sender's bare JID (RFC 6121 §8.1.1.1)
//   client  | absent, iq get/set       | handled by the server for the account (RFC 6120 §10.3.3), IqScope::Account
//   any     | remote domain            | the remote router (s2s) or remote-server-not-found (RFC 6120 §10.4.3)
//   any     | local domain             | Route::Host handlers; iq get/set → IqScope::Host handlers, else
//           |                          | service-unavailable (RFC 6120 §8.4); results/errors → awaiting send_iq
//   any     | local bare JID           | Route::Bare handlers; then by kind:
//           |                          |   message chat/normal/headline: every available resource with priority ≥ 0
//           |                          |     (RFC 6121 §8.5.2.1.1); none: chat/normal → service-unavailable,
//           |                          |     headline/error → dropped (§8.5.2.2); groupchat → service-unavailable
//           |                          |   presence: every available resource (§8.5.2.1.2); none → dropped
//           |                          |   iq get/set: IqScope::Account handlers, else service-unavailable
//   any     | local full JID           | Route::Full handlers; the resource if bound; otherwise (§8.5.3.2):
//           |                          |   message chat/normal → as to the bare JID; headline/error → dropped;
//           |                          |   groupchat → service-unavailable; presence → dropped;
//           |                          |   iq get/set → service-unavailable
//   any     | no such local account    | iq get/set and message → service-unavailable; presence → dropped (§8.5.1)
//
// An error stanza is never answered with another error (RFC 6120 §8.3.1). Messages to one account are handled in
// the order they arrive, also while its existence is being looked up in storage (RFC 6120 §10.1).
#pragma once

#include "server/modules/host_state.hpp"
#include "server/routing/registry.hpp"

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace cg::routing {

using api::Element;
using api::Jid;

class Router {
public:
  Router(SessionRegistry& registry, modules::CoreServices& core);

  void add_host(modules::HostState* host);
  bool is_local(std::string_view domain) const { return hosts_.contains(std::string(domain)); }
  modules::HostState* host(std::string_view domain) const;

  // A stanza from a bound client session: 'from' is stamped, 'to' parsed (nullopt when absent). `accept` is held
  // until the stanza is handled (XEP-0198 acknowledgement; see api::AcceptToken).
  void from_client(Element stanza, const Jid& from, std::optional<Jid> to, api::AcceptToken accept = nullptr);
  // A stanza generated inside the server ('from' set by the generator).
  void route_local(Element stanza);
  // A stanza from a remote server, its 'from' domain already proved on that stream and its 'to' a local domain.
  void from_server(Element stanza, const Jid& from, const Jid& to);

  // The s2s manager (issue 4) plugs in here; without it remote domains get remote-server-not-found.
  using RemoteRoute = std::function<void(Element stanza, const Jid& from, const Jid& to)>;
  void set_remote_route(RemoteRoute route) { remote_ = std::move(route); }

  // Replies to `stanza` with an error unless it is itself an error (or an IQ result).
  void bounce(const Element& stanza, std::string condition, std::string text = {});

private:
  void route(Element stanza, const Jid& from, const Jid& to, const api::Origin& origin, api::AcceptToken accept);
  void deliver_host(Element stanza, const Jid& from, const Jid& to, const api::Origin& origin, modules::HostState& host,
                    api::AcceptToken accept);
  void deliver_bare(Element stanza, const Jid& from, const Jid& to, const api::Origin& origin, modules::HostState& host,
                    api::AcceptToken accept);
  void deliver_full(Element stanza, const Jid& from, const Jid& to, const api::Origin& origin, modules::HostState& host,
                    api::AcceptToken accept);
  // A message or presence to an account known to exist: Route::Bare handlers, then the default delivery.
  void deliver_to_account(Element stanza, const Jid& from, const Jid& to, const api::Origin& origin,
                          api::AcceptToken accept);
  // Stanzas to an account that does not exist (RFC 6121 §8.5.1, §3.1.3).
  void no_such_account(const Element& stanza);
  // Default delivery of a message to an account known to exist.
  void deliver_message_to_account(Element stanza, const Jid& to, const std::vector<ResourceEntry>& resources);
  void dispatch_iq(Element stanza, Jid from, Jid to, api::Origin origin, api::IqScope scope, modules::HostState& host);
  boost::asio::awaitable<void> run_iq(Element stanza, Jid from, Jid to, api::Origin origin, api::IqScope scope,
                                      modules::HostState* host);
  // Runs `then` once it is known whether `account` exists: at once when it has bound resources and nothing is
  // queued for it, otherwise after a lookup in storage. Continuations for one account run in the order they were
  // queued (RFC 6120 §10.1 in-order processing), however many lookups are in flight.
  void with_account(const Jid& account, std::function<void(bool exists)> then);
  boost::asio::awaitable<void> run_account_lookups(Jid account);

  SessionRegistry& registry_;
  modules::CoreServices& core_;
  std::unordered_map<std::string, modules::HostState*> hosts_;
  RemoteRoute remote_;
  // Per bare JID: the continuations waiting for its account lookup, in arrival order. An entry exists while a
  // lookup for that account is in flight or its continuations are running.
  std::mutex lookups_mutex_;
  std::unordered_map<std::string, std::vector<std::function<void(bool exists)>>> lookups_;
};

} // namespace cg::routing
