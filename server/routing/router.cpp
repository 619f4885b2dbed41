#include "server/routing/router.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

#include <charconv>

namespace cg::routing {

namespace asio = boost::asio;
using api::Flow;
using api::Route;
using api::StanzaKind;

namespace {

std::string_view message_type(const Element& stanza) {
  auto t = stanza.attr("type");
  // RFC 6121 §5.2.2: "if an application receives a message with no 'type' attribute or the application does not
  // understand the value of the 'type' attribute provided, it MUST consider the message to be of type normal".
  if (t == "chat" || t == "groupchat" || t == "headline" || t == "error") {
    return t;
  }
  return "normal";
}

int parse_priority(const Element& presence) {
  const Element* p = presence.child("priority");
  if (p == nullptr) {
    return 0;
  }
  auto text = p->text();
  int value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  // RFC 6121 §4.7.2.3: an integer between -128 and +127.
  if (ec != std::errc() || ptr != text.data() + text.size() || value < -128 || value > 127) {
    return 0;
  }
  return value;
}

} // namespace

Router::Router(SessionRegistry& registry, modules::CoreServices& core) : registry_(registry), core_(core) {}

void Router::add_host(modules::HostState* host) {
  hosts_[host->name()] = host;
}

modules::HostState* Router::host(std::string_view domain) const {
  auto it = hosts_.find(std::string(domain));
  return it == hosts_.end() ? nullptr : it->second;
}

void Router::bounce(const Element& stanza, std::string condition, std::string text) {
  // RFC 6120 §8.3.1: never answer an error with an error; IQ results are not answered either (§8.2.3).
  auto type = stanza.attr("type");
  if (type == "error" || (stanza.name() == "iq" && type == "result")) {
    return;
  }
  if (!stanza.has_attr("from")) {
    return;
  }
  route_local(api::make_error_reply(stanza, std::move(condition), std::move(text)));
}

void Router::from_client(Element stanza, const Jid& from, std::optional<Jid> to, api::AcceptToken accept) {
  modules::HostState* h = host(from.domain());
  if (h == nullptr) {
    return;
  }
  const api::Origin origin{api::OriginKind::Client, from};
  const StanzaKind kind = api::kind_of(stanza);
  const Jid no_to;
  {
    api::StanzaEvent ev{stanza, from, to ? *to : no_to, origin, kind, Route::Pre, accept};
    if (h->run_stanza_handlers(ev) == Flow::Stop) {
      return;
    }
  }
  if (to) {
    route(std::move(stanza), from, *to, origin, std::move(accept));
    return;
  }
  switch (kind) {
  case StanzaKind::Presence: {
    auto type = stanza.attr("type");
    if (type.empty()) {
      registry_.set_presence(from, true, parse_priority(stanza));
    } else if (type == "unavailable") {
      registry_.set_presence(from, false, 0);
    }
    api::StanzaEvent ev{stanza, from, no_to, origin, kind, Route::Self, accept};
    h->run_stanza_handlers(ev);
    return;
  }
  case StanzaKind::Message:
    // RFC 6121 §8.1.1.1: a message without 'to' is treated as addressed to the sender's bare JID.
    route(std::move(stanza), from, from.bare(), origin, std::move(accept));
    return;
  case StanzaKind::Iq: {
    auto type = stanza.attr("type");
    if (type == "get" || type == "set") {
      // RFC 6120 §10.3.3: no 'to' — the server handles it on behalf of the account.
      dispatch_iq(std::move(stanza), from, from.bare(), origin, api::IqScope::Account, *h);
    } else if (type == "result" || type == "error") {
      // The id is read before the stanza is moved into the call: the order in which function arguments are
      // evaluated is unspecified, and g++ moves first. (RFC 6120 §8.2.3: "The 'id' attribute is REQUIRED for IQ
      // stanzas" — it is what pairs the response with its request.)
      std::string id(stanza.attr("id"));
      h->complete_pending_iq(id, std::move(stanza));
    }
    return;
  }
  case StanzaKind::Other:
    return;
  }
}

void Router::route_local(Element stanza) {
  auto from = Jid::parse(stanza.attr("from"));
  auto to = Jid::parse(stanza.attr("to"));
  if (!to) {
    core_.logger().warn("dropping a server-generated <{}/> without a valid 'to'", stanza.name());
    return;
  }
  Jid sender = from ? *from : Jid();
  api::Origin origin{api::OriginKind::Local, sender};
  route(std::move(stanza), sender, *to, origin, nullptr);
}

void Router::from_server(Element stanza, const Jid& from, const Jid& to) {
  api::Origin origin{api::OriginKind::Server, Jid::parse(from.domain()).value_or(Jid())};
  route(std::move(stanza), from, to, origin, nullptr);
}

void Router::route(Element stanza, const Jid& from, const Jid& to, const api::Origin& origin, api::AcceptToken accept) {
  modules::HostState* h = host(to.domain());
  if (h == nullptr) {
    if (remote_) {
      remote_(std::move(stanza), from, to);
    } else {
      // RFC 6120 §10.4.3: a remote domain the server cannot reach → remote-server-not-found.
      bounce(stanza, "remote-server-not-found", "server-to-server connections are not enabled");
    }
    return;
  }
  if (to.is_domain()) {
    deliver_host(std::move(stanza), from, to, origin, *h, std::move(accept));
  } else if (to.is_bare()) {
    deliver_bare(std::move(stanza), from, to, origin, *h, std::move(accept));
  } else {
    deliver_full(std::move(stanza), from, to, origin, *h, std::move(accept));
  }
}

void Router::deliver_host(Element stanza, const Jid& from, const Jid& to, const api::Origin& origin,
                          modules::HostState& host, api::AcceptToken accept) {
  const StanzaKind kind = api::kind_of(stanza);
  api::StanzaEvent ev{stanza, from, to, origin, kind, Route::Host, std::move(accept)};
  if (host.run_stanza_handlers(ev) == Flow::Stop) {
    return;
  }
  auto type = stanza.attr("type");
  switch (kind) {
  case StanzaKind::Iq:
    if (type == "get" || type == "set") {
      dispatch_iq(std::move(stanza), from, to, origin, api::IqScope::Host, host);
    } else {
      // A response to an IQ a module sent (send_iq); the id is read before the stanza is moved (see from_client).
      std::string id(stanza.attr("id"));
      host.complete_pending_iq(id, std::move(stanza));
    }
    return;
  case StanzaKind::Message:
    // Nothing on this host takes messages addressed to the server itself.
    if (message_type(stanza) == "normal" || message_type(stanza) == "chat") {
      bounce(stanza, "service-unavailable");
    }
    return;
  default:
    return;
  }
}

void Router::with_account(const Jid& account, std::function<void(bool exists)> then) {
  // RFC 6120 §10.1: "If the server's processing of a particular request could have an effect on its processing of
  // subsequent data it might receive over that input stream ..., it MUST suspend processing of subsequent data
  // until it has processed the request." Lookups run on the blocking pool and may finish in any order, so the
  // continuations wait in one queue per account and a single lookup at a time answers all that are queued: two
  // messages to an offline account are bounced (later: stored) in the order they were sent.
  const std::string key = account.bare_str();
  {
    std::lock_guard lock(lookups_mutex_);
    if (auto it = lookups_.find(key); it != lookups_.end()) {
      it->second.push_back(std::move(then));
      return;
    }
    if (registry_.resources(account).empty()) {
      lookups_[key].push_back(std::move(then));
      asio::co_spawn(core_.executor(), run_account_lookups(account), asio::detached);
      return;
    }
  }
  // Bound resources prove the account exists, and nothing for it is queued: no need to wait.
  then(true);
}

asio::awaitable<void> Router::run_account_lookups(Jid account) {
  const std::string key = account.bare_str();
  while (true) {
    bool exists = false;
    try {
      exists = co_await core_.user_exists(account.domain(), account.node());
    } catch (const std::exception& e) {
      core_.logger().error("account lookup for {} failed: {}", key, e.what());
    }
    std::vector<std::function<void(bool exists)>> batch;
    {
      std::lock_guard lock(lookups_mutex_);
      batch.swap(lookups_[key]);
    }
    // The entry stays while the batch runs, so that what arrives meanwhile queues behind it.
    for (auto& then : batch) {
      try {
        then(exists);
      } catch (const std::exception& e) {
        // One failed delivery must not leave the account's queue stuck.
        core_.logger().error("routing to {} failed: {}", key, e.what());
      }
    }
    {
      std::lock_guard lock(lookups_mutex_);
      auto it = lookups_.find(key);
      if (it->second.empty()) {
        lookups_.erase(it);
        co_return;
      }
    }
    // More arrived while this batch ran: look again (the account may have been created or deleted since).
  }
}

void Router::deliver_message_to_account(Element stanza, const Jid& to, const std::vector<ResourceEntry>& resources) {
  auto type = message_type(stanza);
  if (type == "groupchat") {
    // RFC 6121 §8.5.2.1.1 / §8.5.2.2: groupchat to a bare JID → service-unavailable.
    bounce(stanza, "service-unavailable");
    return;
  }
  std::vector<const ResourceEntry*> targets;
  for (const auto& r : resources) {
    // Negative priority: never a target for messages to the bare JID (RFC 6121 §8.5.2.1.1).
    if (r.info.available && r.info.priority >= 0) {
      targets.push_back(&r);
    }
  }
  if (type == "normal" && targets.size() > 1) {
    // RFC 6121 §8.5.2.1.1: a normal message goes to "the highest-priority available resource" (or to all with
    // non-negative priority). We pick the highest priority, and among equals the one most recently active: a
    // normal message is not part of a conversation that other devices follow. Chat and headline messages go to
    // every resource with non-negative priority, as the same section allows, so that every device shows them.
    const ResourceEntry* best = targets.front();
    for (const auto* r : targets) {
      if (r->info.priority > best->info.priority ||
          (r->info.priority == best->info.priority && r->info.last_activity > best->info.last_activity)) {
        best = r;
      }
    }
    targets = {best};
  }
  if (targets.empty()) {
    // RFC 6121 §8.5.2.2: no available resource. Without offline storage, chat and normal messages get
    // service-unavailable; headline and error messages are dropped.
    if (type == "chat" || type == "normal") {
      bounce(stanza, "service-unavailable", "the recipient is offline");
    }
    return;
  }
  (void)to;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (i + 1 == targets.size()) {
      targets[i]->sink->deliver(std::move(stanza));
    } else {
      targets[i]->sink->deliver(stanza);
    }
  }
}

void Router::no_such_account(const Element& stanza) {
  const StanzaKind kind = api::kind_of(stanza);
  if (kind == StanzaKind::Message) {
    // RFC 6121 §8.5.1: "the server MUST either (a) silently ignore the message or (b) return a
    // <service-unavailable/> stanza error" — the sender learns the address is wrong.
    bounce(stanza, "service-unavailable");
  } else if (kind == StanzaKind::Presence && stanza.attr("type") == "subscribe") {
    // RFC 6121 §3.1.3: a subscription request to an account that does not exist is answered with "unsubscribed".
    Element reply("presence", std::string(api::ns::client));
    reply.set_attr("from", Jid::parse(stanza.attr("to")).value_or(Jid()).bare_str());
    reply.set_attr("to", Jid::parse(stanza.attr("from")).value_or(Jid()).bare_str());
    reply.set_attr("type", "unsubscribed");
    if (!reply.attr("to").empty() && !reply.attr("from").empty()) {
      route_local(std::move(reply));
    }
  }
  // Other presence to an account that does not exist is ignored (RFC 6121 §8.5.1).
}

void Router::deliver_to_account(Element stanza, const Jid& from, const Jid& to, const api::Origin& origin,
                                api::AcceptToken accept) {
  modules::HostState* h = host(to.domain());
  if (h == nullptr) {
    return;
  }
  const StanzaKind kind = api::kind_of(stanza);
  {
    api::StanzaEvent ev{stanza, from, to, origin, kind, Route::Bare, std::move(accept)};
    if (h->run_stanza_handlers(ev) == Flow::Stop) {
      return;
    }
  }
  // The resources as they are now: the account may have come online while its lookup ran.
  auto resources = registry_.resources(to);
  if (kind == StanzaKind::Message) {
    deliver_message_to_account(std::move(stanza), to, resources);
  } else if (kind == StanzaKind::Presence) {
    // RFC 6121 §8.5.2.1.2 / §8.5.2.2: presence goes to every available resource; with none it is dropped here
    // (the presence module stores subscription requests for later).
    for (const auto& r : resources) {
      if (r.info.available) {
        r.sink->deliver(stanza);
      }
    }
  }
}

void Router::deliver_bare(Element stanza, const Jid& from, const Jid& to, const api::Origin& origin,
                          modules::HostState& host, api::AcceptToken accept) {
  const StanzaKind kind = api::kind_of(stanza);
  if (kind == StanzaKind::Iq) {
    {
      api::StanzaEvent ev{stanza, from, to, origin, kind, Route::Bare, accept};
      if (host.run_stanza_handlers(ev) == Flow::Stop) {
        return;
      }
    }
    auto type = stanza.attr("type");
    if (type == "get" || type == "set") {
      // (run_iq checks that the account exists.)
      dispatch_iq(std::move(stanza), from, to, origin, api::IqScope::Account, host);
    }
    return;
  }
  if (kind != StanzaKind::Message && kind != StanzaKind::Presence) {
    return;
  }
  // Through with_account even when resources are bound, so that a stanza never overtakes an earlier one to the
  // same account that still waits for its lookup (RFC 6120 §10.1).
  with_account(to,
               [this, stanza = std::move(stanza), from, to, origin, accept = std::move(accept)](bool exists) mutable {
                 if (!exists) {
                   no_such_account(stanza);
                   return;
                 }
                 deliver_to_account(std::move(stanza), from, to, origin, std::move(accept));
               });
}

void Router::deliver_full(Element stanza, const Jid& from, const Jid& to, const api::Origin& origin,
                          modules::HostState& host, api::AcceptToken accept) {
  const StanzaKind kind = api::kind_of(stanza);
  if (auto sink = registry_.find(to)) {
    api::StanzaEvent ev{stanza, from, to, origin, kind, Route::Full, accept};
    if (host.run_stanza_handlers(ev) == Flow::Stop) {
      return;
    }
    sink->deliver(std::move(stanza));
    return;
  }
  auto type = stanza.attr("type");
  if (type == "error") {
    return; // RFC 6120 §8.3.1: errors are never bounced
  }
  if (kind == StanzaKind::Iq) {
    // RFC 6121 §8.5.3.2.3 (and RFC 6120 §10.5.3.2): IQ to a resource that is not connected.
    if (type == "get" || type == "set") {
      bounce(stanza, "service-unavailable", "no such resource");
    }
    return;
  }
  if (kind == StanzaKind::Presence) {
    // RFC 6121 §8.5.3.2.2: subscription-related presence is treated as addressed to the bare JID; other presence
    // to a resource that is not connected is dropped.
    if (type == "subscribe" || type == "subscribed" || type == "unsubscribe" || type == "unsubscribed") {
      deliver_bare(std::move(stanza), from, to.bare(), origin, host, std::move(accept));
    }
    return;
  }
  if (kind != StanzaKind::Message) {
    return;
  }
  auto mtype = message_type(stanza);
  if (mtype == "headline") {
    return; // §8.5.3.2.1: headline to a missing resource is dropped
  }
  if (mtype == "groupchat") {
    bounce(stanza, "service-unavailable");
    return;
  }
  // §8.5.3.2.1: chat and normal messages are treated as if addressed to the bare JID.
  Jid bare = to.bare();
  with_account(bare,
               [this, stanza = std::move(stanza), bare, from, origin, accept = std::move(accept)](bool exists) mutable {
                 if (!exists) {
                   bounce(stanza, "service-unavailable");
                   return;
                 }
                 deliver_to_account(std::move(stanza), from, bare, origin, std::move(accept));
               });
}

void Router::dispatch_iq(Element stanza, Jid from, Jid to, api::Origin origin, api::IqScope scope,
                         modules::HostState& host) {
  asio::co_spawn(core_.executor(),
                 run_iq(std::move(stanza), std::move(from), std::move(to), std::move(origin), scope, &host),
                 asio::detached);
}

asio::awaitable<void> Router::run_iq(Element stanza, Jid from, Jid to, api::Origin origin, api::IqScope scope,
                                     modules::HostState* host) {
  const Element* payload = stanza.first_child();
  if (payload == nullptr) {
    bounce(stanza, "bad-request", "an IQ get or set carries exactly one payload element");
    co_return;
  }
  const api::IqType type = stanza.attr("type") == "get" ? api::IqType::Get : api::IqType::Set;
  std::optional<api::IqReply> reply;
  std::string failure;
  try {
    if (scope == api::IqScope::Account && to != from.bare()) {
      // (co_await kept out of a || expression: GCC 12 miscompiles co_await in short-circuit operands.)
      bool exists = !registry_.resources(to).empty();
      if (!exists) {
        exists = co_await core_.user_exists(to.domain(), to.node());
      }
      if (!exists) {
        // RFC 6121 §8.5.1: an IQ to an account that does not exist → service-unavailable.
        reply = api::IqReply::error("service-unavailable");
      }
    }
    if (!reply) {
      const api::IqHandler* handler = host->find_iq_handler(scope, type, payload->ns(), payload->name());
      if (handler == nullptr) {
        // RFC 6120 §8.4: "If an entity receives an IQ stanza of type "get" or "set" containing a child element
        // qualified by a namespace it does not understand, the entity MUST return an IQ stanza of type "error"
        // with an error condition of <service-unavailable/>".
        reply = api::IqReply::error("service-unavailable");
      } else {
        api::IqRequest req{stanza, *payload, from, to, type, origin};
        reply = co_await (*handler)(req);
      }
    }
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure.empty() || !reply) {
    core_.logger().error("IQ handler for <{} xmlns='{}'/> from {} failed: {}", payload->name(), payload->ns(),
                         from.str(), failure);
    bounce(stanza, "internal-server-error");
    co_return;
  }
  if (reply->is_error()) {
    route_local(api::make_error_reply(stanza, reply->error_value()));
  } else {
    route_local(api::make_iq_result(stanza, std::move(reply->payload())));
  }
}

} // namespace cg::routing
