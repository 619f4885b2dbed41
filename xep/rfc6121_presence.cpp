// RFC 6121 (March 2011) §3: Managing Presence Subscriptions (the state machine of Appendix A, pre-approval §3.4)
// and §4: Exchanging Presence Information (initial presence, probes, broadcast, directed and unavailable presence).
//
// Every change of one user's subscription state, and every broadcast to the user's contacts, runs in the user's
// queue of the roster service (roster::Service), so that stanzas of one user are handled in order and read the
// roster as the previous one left it. A session's own presence state (available, last presence, directed presence)
// changes at once, in the order the session sent its stanzas. The rosters of online users are in memory: presence
// routing reads no storage. Contacts are compared by bare JID only, whatever their domain: a remote contact is routed
// like a local one (ctx.send), the core decides how far it gets.
#include "xep/rfc6121_presence.hpp"

#include <spdlog/spdlog.h>

#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <unordered_map>

namespace cg::xep::presence {

namespace asio = boost::asio;
using api::Element;
using api::Flow;
using api::Jid;
using roster::Item;
using roster::Subscription;

// ---------------------------------------------------------------------------------------------------------------
// The state machine

std::string_view to_string(State s) {
  switch (s) {
  case State::None:
    return "None";
  case State::NonePendingOut:
    return "None + Pending Out";
  case State::NonePendingIn:
    return "None + Pending In";
  case State::NonePendingOutIn:
    return "None + Pending Out+In";
  case State::To:
    return "To";
  case State::ToPendingIn:
    return "To + Pending In";
  case State::From:
    return "From";
  case State::FromPendingOut:
    return "From + Pending Out";
  case State::Both:
    return "Both";
  }
  return "None";
}

std::string_view to_string(Type t) {
  switch (t) {
  case Type::Subscribe:
    return "subscribe";
  case Type::Subscribed:
    return "subscribed";
  case Type::Unsubscribe:
    return "unsubscribe";
  case Type::Unsubscribed:
    return "unsubscribed";
  }
  return "subscribe";
}

std::optional<Type> subscription_type(std::string_view t) {
  if (t == "subscribe") {
    return Type::Subscribe;
  }
  if (t == "subscribed") {
    return Type::Subscribed;
  }
  if (t == "unsubscribe") {
    return Type::Unsubscribe;
  }
  if (t == "unsubscribed") {
    return Type::Unsubscribed;
  }
  return std::nullopt;
}

State state_of(const Item* item, bool pending_without_item) {
  if (item == nullptr) {
    // RFC 6121 §3.3.3 speaks of a request kept for a user "not yet in the contact's roster (functionally
    // equivalent to a subscription state of "None + Pending In" where the contact never added the user ...)".
    return pending_without_item ? State::NonePendingIn : State::None;
  }
  switch (item->subscription) {
  case Subscription::To:
    return item->pending_in ? State::ToPendingIn : State::To;
  case Subscription::From:
    return item->ask ? State::FromPendingOut : State::From;
  case Subscription::Both:
    return State::Both;
  case Subscription::None:
  case Subscription::Remove:
    break;
  }
  if (item->ask && item->pending_in) {
    return State::NonePendingOutIn;
  }
  if (item->ask) {
    return State::NonePendingOut;
  }
  return item->pending_in ? State::NonePendingIn : State::None;
}

void apply(State s, Item& item) {
  item.ask = s == State::NonePendingOut || s == State::NonePendingOutIn || s == State::FromPendingOut;
  item.pending_in = has_pending_in(s);
  if (s == State::Both) {
    item.subscription = Subscription::Both;
  } else if (has_to(s)) {
    item.subscription = Subscription::To;
  } else if (has_from(s)) {
    item.subscription = Subscription::From;
  } else {
    item.subscription = Subscription::None;
  }
}

bool has_from(State s) {
  return s == State::From || s == State::FromPendingOut || s == State::Both;
}

bool has_to(State s) {
  return s == State::To || s == State::ToPendingIn || s == State::Both;
}

bool has_pending_in(State s) {
  return s == State::NonePendingIn || s == State::NonePendingOutIn || s == State::ToPendingIn;
}

namespace {

using S = State;
constexpr std::size_t index(State s) {
  return static_cast<std::size_t>(s);
}

// The tables of RFC 6121 Appendix A, one row per existing state in the order of A.1 (None, None + Pending Out,
// None + Pending In, None + Pending Out+In, To, To + Pending In, From, From + Pending Out, Both).
// A.2.1: outbound "subscribe".
constexpr Transition kOutSubscribe[] = {{true, S::NonePendingOut},
                                        {true, S::NonePendingOut},
                                        {true, S::NonePendingOutIn},
                                        {true, S::NonePendingOutIn},
                                        {true, S::To},
                                        {true, S::ToPendingIn},
                                        {true, S::FromPendingOut},
                                        {true, S::FromPendingOut},
                                        {true, S::Both}};
// A.2.2: outbound "subscribed".
constexpr Transition kOutSubscribed[] = {{false, S::None}, {false, S::NonePendingOut},
                                         {true, S::From},  {true, S::FromPendingOut},
                                         {false, S::To},   {true, S::Both},
                                         {false, S::From}, {false, S::FromPendingOut},
                                         {false, S::Both}};
// A.2.3: outbound "unsubscribe".
constexpr Transition kOutUnsubscribe[] = {{true, S::None},          {true, S::None}, {true, S::NonePendingIn},
                                          {true, S::NonePendingIn}, {true, S::None}, {true, S::NonePendingIn},
                                          {true, S::From},          {true, S::From}, {true, S::From}};
// A.2.4: outbound "unsubscribed".
constexpr Transition kOutUnsubscribed[] = {{false, S::None}, {false, S::NonePendingOut},
                                           {true, S::None},  {true, S::NonePendingOut},
                                           {false, S::To},   {true, S::To},
                                           {true, S::None},  {true, S::NonePendingOut},
                                           {true, S::To}};
// A.3.1: inbound "subscribe" (From, From + Pending Out and Both: not delivered, the server answers "subscribed").
constexpr Transition kInSubscribe[] = {
    {true, S::NonePendingIn}, {true, S::NonePendingOutIn}, {false, S::NonePendingIn}, {false, S::NonePendingOutIn},
    {true, S::ToPendingIn},   {false, S::ToPendingIn},     {false, S::From},          {false, S::FromPendingOut},
    {false, S::Both}};
// A.3.2: inbound "subscribed".
constexpr Transition kInSubscribed[] = {{false, S::None},       {true, S::To},   {false, S::NonePendingIn},
                                        {true, S::ToPendingIn}, {false, S::To},  {false, S::ToPendingIn},
                                        {false, S::From},       {true, S::Both}, {false, S::Both}};
// A.3.3: inbound "unsubscribe".
constexpr Transition kInUnsubscribe[] = {{false, S::None}, {false, S::NonePendingOut},
                                         {true, S::None},  {true, S::NonePendingOut},
                                         {false, S::To},   {true, S::To},
                                         {true, S::None},  {true, S::NonePendingOut},
                                         {true, S::To}};
// A.3.4: inbound "unsubscribed".
constexpr Transition kInUnsubscribed[] = {{false, S::None},         {true, S::None}, {false, S::NonePendingIn},
                                          {true, S::NonePendingIn}, {true, S::None}, {true, S::NonePendingIn},
                                          {false, S::From},         {true, S::From}, {true, S::From}};

} // namespace

Transition outbound(Type type, State s) {
  switch (type) {
  case Type::Subscribe:
    return kOutSubscribe[index(s)];
  case Type::Subscribed:
    return kOutSubscribed[index(s)];
  case Type::Unsubscribe:
    return kOutUnsubscribe[index(s)];
  case Type::Unsubscribed:
    return kOutUnsubscribed[index(s)];
  }
  return {false, s};
}

Transition inbound(Type type, State s) {
  switch (type) {
  case Type::Subscribe:
    return kInSubscribe[index(s)];
  case Type::Subscribed:
    return kInSubscribed[index(s)];
  case Type::Unsubscribe:
    return kInUnsubscribe[index(s)];
  case Type::Unsubscribed:
    return kInUnsubscribed[index(s)];
  }
  return {false, s};
}

// ---------------------------------------------------------------------------------------------------------------
// The module

namespace {

Element make_presence(const Jid& from, const Jid& to, std::string_view type = {}) {
  Element p("presence", std::string(api::ns::client));
  p.set_attr("from", from.str());
  p.set_attr("to", to.str());
  if (!type.empty()) {
    p.set_attr("type", std::string(type));
  }
  return p;
}

Element addressed(Element stanza, const Jid& from, const Jid& to) {
  stanza.set_attr("from", from.str());
  stanza.set_attr("to", to.str());
  return stanza;
}

class Engine final : public std::enable_shared_from_this<Engine> {
public:
  Engine(api::ModuleContext& ctx, std::shared_ptr<roster::Service> svc) : ctx_(ctx), svc_(std::move(svc)) {}

  // --- stanza handlers (on the sending session's I/O thread, in the order the session sent its stanzas) ------------
  // Session state changes here at once; what needs storage or the roster runs in the user's queue (roster::Service).

  // Route::Pre: presence a local client addresses to someone.
  Flow outbound_stanza(api::StanzaEvent& ev) {
    if (ev.to.empty()) {
      return Flow::Continue; // broadcast presence: Route::Self
    }
    auto self = shared_from_this();
    auto type = ev.stanza.attr("type");
    if (auto st = subscription_type(type)) {
      const Jid contact = ev.to.bare();
      if (contact == ev.from.bare()) {
        // The user is implicitly subscribed to its own presence (§4.2.2); nothing to ask or grant.
        return Flow::Stop;
      }
      roster::Service::Job job = [self, t = *st, stanza = ev.stanza, full = ev.from, contact,
                                  token = ev.accept]() -> asio::awaitable<void> {
        co_await self->outbound_subscription(t, stanza, full, contact, token);
      };
      svc_->post(ev.from, std::move(job));
      return Flow::Stop;
    }
    if (type.empty() || type == "unavailable") {
      // §4.6 directed presence: routed as it is, and remembered per session so that the session's unavailable
      // presence reaches its recipient too.
      directed(ev.from, ev.to, type.empty());
      return Flow::Continue;
    }
    return Flow::Continue; // probes and errors are routed as they are
  }

  // Route::Self: presence without 'to' — the session's availability, for its own resources at once and for its
  // subscribers from the user's queue (they need the roster).
  Flow self_stanza(api::StanzaEvent& ev) {
    auto type = ev.stanza.attr("type");
    if (type.empty()) {
      available(ev.stanza, ev.from, ev.accept);
    } else if (type == "unavailable") {
      Element stanza = ev.stanza;
      stanza.remove_attr("to");
      stanza.set_attr("from", ev.from.str());
      unavailable(ev.from, std::move(stanza), false, ev.accept);
    }
    // Other modules (offline delivery) act on available presence too.
    return Flow::Continue;
  }

  // Route::Bare and Route::Full: presence to a local account.
  Flow inbound_stanza(api::StanzaEvent& ev, bool full_route) {
    auto type = ev.stanza.attr("type");
    auto st = subscription_type(type);
    if (!st && type != "probe") {
      // RFC 6121 §4.2.3 (and §4.4.3, §4.5.3, §4.6.4 by reference): "Upon receiving presence from the user, the
      // contact's server MUST deliver the user's presence stanza to all of the contact's available resources" —
      // the sender's server decided who gets it (broadcast to subscribers, or directed presence, which any entity
      // may send). Errors are delivered as well. The core's default delivery does both.
      return Flow::Continue;
    }
    if (st && full_route && ev.origin.kind == api::OriginKind::Local) {
      // This module's own delivery of an already processed subscription stanza to one resource.
      return Flow::Continue;
    }
    if (ev.from.empty()) {
      return Flow::Stop;
    }
    const Jid user = ev.to.bare();
    auto self = shared_from_this();
    if (st) {
      // §3.1.3 etc.: subscription stanzas are about the bare JIDs, also when addressed to a full JID.
      const Jid contact = ev.from.bare();
      if (contact == user) {
        return Flow::Stop;
      }
      roster::Service::Job job = [self, t = *st, stanza = ev.stanza, user, contact,
                                  token = ev.accept]() -> asio::awaitable<void> {
        co_await self->inbound_subscription(t, stanza, user, contact, token);
      };
      svc_->post(user, std::move(job));
      return Flow::Stop;
    }
    // A probe is answered by the server on the account's behalf and never shown to its clients.
    roster::Service::Job job = [self, user, prober = ev.from]() -> asio::awaitable<void> {
      co_await self->answer_probe(user, prober);
    };
    svc_->post(user, std::move(job));
    return Flow::Stop;
  }

  // §4.5.2 also covers a session that ends without unavailable presence (a closed stream, a lost connection): its
  // contacts must not keep seeing it online.
  void session_closed(const Jid& full) {
    Element stanza("presence", std::string(api::ns::client));
    stanza.set_attr("type", "unavailable");
    stanza.set_attr("from", full.str());
    unavailable(full, std::move(stanza), true, nullptr);
  }

private:
  struct Session {
    bool available = false;      // sent available presence, and no unavailable since
    std::optional<Element> last; // its last available presence ('from' = the session, no 'to')
    std::set<Jid> directed;      // who got directed available presence from it (§4.6)
  };

  // --- §3: subscriptions -------------------------------------------------------------------------------------------

  // Appendix A.2, the user's server: `stanza` is a subscription stanza the user (session `full`) sent to `contact`.
  asio::awaitable<void> outbound_subscription(Type type, Element stanza, Jid full, Jid contact, api::AcceptToken) {
    const Jid user = full.bare();
    auto item = co_await svc_->item(user, contact);
    bool pending_without_item = false;
    if (!item) {
      auto request = co_await svc_->pending(user, contact);
      pending_without_item = request.has_value();
    }
    const State before = state_of(item ? &*item : nullptr, pending_without_item);
    // §3.1.2: "the user's server MUST ... stamp the outbound subscription request with the bare JID
    // <user@domainpart> of the user"; subscriptions are between bare JIDs, so 'to' is the contact's bare JID.
    const Element routed = addressed(stanza, user, contact);

    if (type == Type::Subscribed && !has_pending_in(before) && !has_from(before)) {
      // §3.4.2 pre-approval: no request is pending, so "subscribed" approves one in advance. "If the contact is
      // not yet in the user's roster, the user's server MUST create a roster item for the contact with a state of
      // "None" and set the 'approved' flag to a value of "true"" ... "However, the user's server MUST NOT route
      // the presence stanza of type "subscribed" to the contact."
      if (item && item->approved) {
        co_return;
      }
      Item next;
      if (item) {
        next = *item;
      } else {
        const bool room = co_await has_room(user);
        if (!room) {
          refuse(stanza, full, contact);
          co_return;
        }
        next.jid = contact;
      }
      next.approved = true;
      co_await svc_->put(user, std::move(next));
      co_return;
    }

    const Transition t = outbound(type, before);
    std::optional<Item> next;
    if (item) {
      next = *item;
    } else if ((type == Type::Subscribe || type == Type::Subscribed) && t.pass) {
      // §3.1.2: a request to a contact not in the roster creates its item ("None + Pending Out"); approving a
      // request from someone never added (§3.1.5) creates one too ("From").
      const bool room = co_await has_room(user);
      if (!room) {
        refuse(stanza, full, contact);
        co_return;
      }
      next.emplace();
      next->jid = contact;
    }
    bool changed = false;
    if (next) {
      if (t.next != state_of(&*next)) {
        apply(t.next, *next);
        changed = true;
      }
      // §3.2.2 (cancelling the contact's subscription) also cancels a pre-approval; approving settles it.
      if ((type == Type::Unsubscribed || type == Type::Subscribed) && next->approved) {
        next->approved = false;
        changed = true;
      }
      if (!item) {
        changed = true;
      }
    }
    if (changed) {
      // The roster push of §3.1.2, §3.1.5, §3.2.2, §3.3.2 (the item's new state, to the interested resources).
      co_await svc_->put(user, std::move(*next));
    }
    if (has_pending_in(before) && !has_pending_in(t.next)) {
      // Approved or denied: the stored request is no longer delivered at login.
      co_await svc_->drop_pending(user, contact);
    }
    if (!t.pass) {
      co_return;
    }
    if (type == Type::Unsubscribed && has_from(before)) {
      // §3.2.2: when the user cancels the contact's subscription the user's server sends the contact "unavailable"
      // from each of the user's available resources (it gets no more presence from them).
      for (const auto& s : available_sessions(user)) {
        ctx_.send(make_presence(s, contact, "unavailable"));
      }
    }
    ctx_.send(routed);
    if (type == Type::Subscribed) {
      // §3.1.5: once the subscription is approved, "the user's server MUST then also send current presence to the
      // contact from each of the user's available resources" (the contact's server treats it as initial presence).
      send_current_presence(user, contact);
    }
  }

  // Appendix A.3, the contact's server: `stanza` is a subscription stanza from `contact` to the local `user`.
  asio::awaitable<void> inbound_subscription(Type type, Element stanza, Jid user, Jid contact, api::AcceptToken) {
    auto item = co_await svc_->item(user, contact);
    bool pending_without_item = false;
    if (!item) {
      auto request = co_await svc_->pending(user, contact);
      pending_without_item = request.has_value();
    }
    const State before = state_of(item ? &*item : nullptr, pending_without_item);
    const Element delivered = addressed(stanza, contact, user);

    if (type == Type::Subscribe) {
      if (has_from(before)) {
        // §3.1.3: "If the contact exists and the user already has a subscription to the contact's presence, then
        // the contact's server MUST auto-reply on behalf of the contact by sending a presence stanza of type
        // "subscribed" from the contact's bare JID to the user's bare JID." (With current presence, as after an
        // approval: the asking side has evidently lost it.)
        ctx_.send(make_presence(user, contact, "subscribed"));
        send_current_presence(user, contact);
        co_return;
      }
      if (item && item->approved) {
        // §3.4: the contact pre-approved the user: the contact's server approves on its behalf, "then push the
        // modified roster item" — None → From, None + Pending Out → From + Pending Out, To → Both.
        Item next = *item;
        next.approved = false;
        apply(has_to(before) ? State::Both : (before == State::NonePendingOut ? State::FromPendingOut : State::From),
              next);
        co_await svc_->put(user, std::move(next));
        ctx_.send(make_presence(user, contact, "subscribed"));
        send_current_presence(user, contact);
        co_return;
      }
      const Transition t = inbound(type, before);
      if (!t.pass) {
        // Already pending: §3.1.3 "the contact's server SHOULD store only one of those requests ... and MUST
        // deliver only one of the requests when the contact next has an available resource".
        co_return;
      }
      // §3.1.3: "the contact's server MUST keep a record of the complete presence stanza comprising the
      // subscription request, including any extended content contained therein; and then deliver the request when
      // the contact next has an available resource. The contact's server MUST continue to deliver the
      // subscription request whenever the contact creates an available resource, until the contact either
      // approves or denies the request." Kept also while the contact is online, for its next login.
      co_await svc_->set_pending(user, contact, delivered);
      if (item) {
        Item next = *item;
        apply(t.next, next);
        co_await svc_->put(user, std::move(next));
      }
      ctx_.log().debug("presence: kept the subscription request from {} to {} ({} -> {})", contact.str(), user.str(),
                       to_string(before), to_string(t.next));
      // §3.1.3: "if there is at least one available resource associated with the contact when the subscription
      // request is received by the contact's server, then the contact's server MUST send that subscription request
      // to all available resources in accordance with Section 8".
      for (const auto& s : available_sessions(user)) {
        ctx_.send(addressed(delivered, contact, s));
      }
      co_return;
    }

    if (type == Type::Unsubscribe && !item) {
      // §3.3.3: "if the contact's server is keeping track of an inbound presence subscription request from the
      // user to the contact but the user is not yet in the contact's roster ..., then the contact's server MUST
      // simply remove any record of the inbound presence subscription request".
      if (pending_without_item) {
        co_await svc_->drop_pending(user, contact);
      }
      co_return;
    }

    const Transition t = inbound(type, before);
    if (!t.pass || !item) {
      // "no state change" rows are neither delivered nor pushed (A.3.2 – A.3.4).
      co_return;
    }
    Item next = *item;
    apply(t.next, next);
    co_await svc_->put(user, std::move(next));
    if (has_pending_in(before) && !has_pending_in(t.next)) {
      co_await svc_->drop_pending(user, contact);
    }
    ctx_.log().debug("presence: {} from {} to {} ({} -> {})", to_string(type), contact.str(), user.str(),
                     to_string(before), to_string(t.next));
    // §3.1.6, §3.2.3, §3.3.3: "deliver the inbound subscription approval / cancellation / unsubscribe to all of the
    // user's interested resources" (and to its available ones, which may not have asked for the roster).
    std::set<Jid> targets;
    for (const auto& r : svc_->interested(user)) {
      targets.insert(r);
    }
    for (const auto& s : available_sessions(user)) {
      targets.insert(s);
    }
    for (const auto& r : targets) {
      ctx_.send(addressed(delivered, contact, r));
    }
    if (type == Type::Unsubscribe && has_from(before)) {
      // §3.3.3: the contact's server "MUST send presence of type "unavailable" from all of the contact's available
      // resources to the user" who is no longer subscribed.
      for (const auto& s : available_sessions(user)) {
        ctx_.send(make_presence(s, contact, "unavailable"));
      }
    }
  }

  asio::awaitable<bool> has_room(const Jid& user) {
    auto r = co_await svc_->roster(user);
    co_return r->items.size() < svc_->max_items();
  }

  // A subscription stanza that would need a new roster item when the roster is full.
  void refuse(const Element& stanza, const Jid& full, const Jid& contact) {
    Element sent = addressed(stanza, full, contact);
    ctx_.send(api::make_error_reply(sent, "resource-constraint",
                                    "the roster is full (" + std::to_string(svc_->max_items()) + " items)"));
  }

  // --- §4: presence ------------------------------------------------------------------------------------------------

  // Available presence without 'to' from session `full` (§4.2 initial, §4.4 subsequent). The session's state
  // changes here, in the order the session sent its stanzas; what needs the roster follows in the user's queue.
  void available(const Element& sent, const Jid& full, const api::AcceptToken& token) {
    const Jid user = full.bare();
    Element stanza = sent;
    stanza.remove_attr("to");
    stanza.set_attr("from", full.str());
    bool initial = false;
    std::vector<std::pair<Jid, Element>> others; // the user's other available resources and their presence
    {
      std::lock_guard lock(mutex_);
      auto& resources = sessions_[user.str()];
      Session& s = resources[full.resource()];
      initial = !s.available;
      s.available = true;
      s.last = stanza;
      for (const auto& [resource, other] : resources) {
        if (resource != full.resource() && other.available && other.last) {
          others.emplace_back(user.with_resource(resource), *other.last);
        }
      }
    }
    // §4.2.2: "The user's server MUST also broadcast initial presence from the user's newly available resource to
    // all of the user's available resources, including the resource that generated the presence notification in
    // the first place (i.e., an entity is implicitly subscribed to its own presence)." (§4.4.2 likewise.)
    ctx_.send(addressed(stanza, full, full));
    for (const auto& [other, presence] : others) {
      ctx_.send(addressed(stanza, full, other));
    }
    if (initial) {
      // ... and the new resource learns the presence of the user's other resources.
      for (const auto& [other, presence] : others) {
        ctx_.send(addressed(presence, other, full));
      }
    }
    roster::Service::Job job = [self = shared_from_this(), stanza = std::move(stanza), full, initial,
                                token]() -> asio::awaitable<void> {
      co_await self->broadcast(stanza, full, initial, token);
    };
    svc_->post(user, std::move(job));
  }

  asio::awaitable<void> broadcast(Element stanza, Jid full, bool initial, api::AcceptToken) {
    const Jid user = full.bare();
    auto roster = co_await svc_->roster(user);
    if (initial) {
      // §4.3.1: "When a server needs to discover the availability of a user's contact, it sends a presence probe
      // from the bare JID <user@domainpart> of the user to the bare JID <contact@domainpart> of the contact" — for
      // every contact the user is subscribed to (§4.2.2: "the user's server MUST send a presence probe to each
      // contact with a subscription type of "to" or "both"").
      for (const auto& [jid, item] : roster->items) {
        if (item.subscription == Subscription::To || item.subscription == Subscription::Both) {
          ctx_.send(make_presence(user, jid, "probe"));
        }
      }
    }
    // §4.2.2 (initial) / §4.4.2 (subsequent): "the user's server MUST broadcast it to all contacts who are
    // subscribed to the user's presence, i.e., who have a subscription type of "from" or "both"".
    for (const auto& [jid, item] : roster->items) {
      if (item.subscription == Subscription::From || item.subscription == Subscription::Both) {
        ctx_.send(addressed(stanza, full, jid));
      }
    }
    if (initial) {
      // §3.1.3: a subscription request kept for the user is delivered "when the contact next has an available
      // resource".
      for (const auto& [contact, request] : roster->pending_in) {
        ctx_.send(addressed(request, contact, full));
      }
    }
  }

  // §4.5.2: the session becomes unavailable (it said so, or it ended): "the user's server MUST broadcast the
  // unavailable presence notification to all contacts" subscribed to the user's presence, to the user's other
  // available resources, and (§4.6.3) to every entity that got directed presence from the session.
  void unavailable(const Jid& full, Element stanza, bool session_ended, const api::AcceptToken& token) {
    const Jid user = full.bare();
    Session old;
    std::vector<Jid> others;
    {
      std::lock_guard lock(mutex_);
      auto it = sessions_.find(user.str());
      if (it != sessions_.end()) {
        if (auto s = it->second.find(full.resource()); s != it->second.end()) {
          old = std::move(s->second);
          if (session_ended) {
            it->second.erase(s);
          } else {
            s->second = Session{};
          }
        }
        for (const auto& [resource, other] : it->second) {
          if (resource != full.resource() && other.available) {
            others.push_back(user.with_resource(resource));
          }
        }
        if (it->second.empty()) {
          sessions_.erase(it);
        }
      }
    }
    if (!old.available && old.directed.empty()) {
      return;
    }
    if (old.available) {
      for (const auto& other : others) {
        ctx_.send(addressed(stanza, full, other));
      }
    }
    roster::Service::Job job = [self = shared_from_this(), stanza = std::move(stanza), full,
                                was_available = old.available, directed = std::move(old.directed),
                                token]() -> asio::awaitable<void> {
      co_await self->broadcast_unavailable(stanza, full, was_available, directed, token);
    };
    svc_->post(user, std::move(job));
  }

  asio::awaitable<void> broadcast_unavailable(Element stanza, Jid full, bool was_available, std::set<Jid> directed,
                                              api::AcceptToken) {
    const Jid user = full.bare();
    std::set<Jid> subscribers;
    if (was_available) {
      auto roster = co_await svc_->roster(user);
      for (const auto& [jid, item] : roster->items) {
        if (item.subscription == Subscription::From || item.subscription == Subscription::Both) {
          subscribers.insert(jid);
          ctx_.send(addressed(stanza, full, jid));
        }
      }
    }
    for (const auto& to : directed) {
      // Subscribers were told above (to their bare JID, which reaches every resource).
      if (!subscribers.contains(to.bare()) && to.bare() != user) {
        ctx_.send(addressed(stanza, full, to));
      }
    }
  }

  // §4.6.3: directed presence: available presence to `to` is remembered per session, unavailable forgets it.
  void directed(const Jid& full, const Jid& to, bool available) {
    std::lock_guard lock(mutex_);
    Session& s = sessions_[full.bare().str()][full.resource()];
    if (available) {
      s.directed.insert(to);
    } else {
      s.directed.erase(to);
    }
  }

  // §4.3.2: a probe from `prober` about the local `user`.
  asio::awaitable<void> answer_probe(Jid user, Jid prober) {
    auto item = co_await svc_->item(user, prober.bare());
    const State state = state_of(item ? &*item : nullptr);
    if (!has_from(state)) {
      // §4.3.2: if the entity that sent the probe is not subscribed to the user's presence the server reveals
      // nothing: "the contact's server MUST NOT reveal the contact's presence" (the probe is ignored).
      co_return;
    }
    std::vector<std::pair<Jid, Element>> last;
    {
      std::lock_guard lock(mutex_);
      if (auto it = sessions_.find(user.str()); it != sessions_.end()) {
        for (const auto& [resource, s] : it->second) {
          if (s.available && s.last) {
            last.emplace_back(user.with_resource(resource), *s.last);
          }
        }
      }
    }
    if (last.empty()) {
      // §4.3.2: "if the contact has no available resources, then the server MUST reply to the presence probe by
      // sending to the user a presence stanza of type "unavailable"".
      ctx_.send(make_presence(user, prober, "unavailable"));
      co_return;
    }
    // §4.3.2: "the contact's server MUST reply to the presence probe by sending to the user the full XML of the
    // last presence stanza that the contact's server received from each of the contact's available resources".
    for (const auto& [from, presence] : last) {
      ctx_.send(addressed(presence, from, prober));
    }
  }

  void send_current_presence(const Jid& user, const Jid& contact) {
    std::vector<std::pair<Jid, Element>> last;
    {
      std::lock_guard lock(mutex_);
      if (auto it = sessions_.find(user.str()); it != sessions_.end()) {
        for (const auto& [resource, s] : it->second) {
          if (s.available && s.last) {
            last.emplace_back(user.with_resource(resource), *s.last);
          }
        }
      }
    }
    for (const auto& [from, presence] : last) {
      ctx_.send(addressed(presence, from, contact));
    }
  }

  std::vector<Jid> available_sessions(const Jid& user) {
    std::vector<Jid> out;
    std::lock_guard lock(mutex_);
    if (auto it = sessions_.find(user.str()); it != sessions_.end()) {
      for (const auto& [resource, s] : it->second) {
        if (s.available) {
          out.push_back(user.with_resource(resource));
        }
      }
    }
    return out;
  }

  api::ModuleContext& ctx_;
  std::shared_ptr<roster::Service> svc_;
  std::mutex mutex_;
  // bare JID → resource → the session's presence state, changed in the order the session's stanzas arrive (the
  // session's own I/O thread) and read by jobs of the user's queue (probes, subscriptions).
  std::unordered_map<std::string, std::map<std::string, Session>> sessions_;
};

class PresenceModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"presence",
            "Presence and subscriptions: the subscription state machine, pre-approval, probes, broadcast, directed "
            "presence, unavailable presence when a session ends",
            {{"RFC 6121 §3", "RFC 6121", "complete", ""},
             {"RFC 6121 §4", "RFC 6121", "complete", "no presence quotas; remote contacts as far as s2s goes"}},
            {"roster"},
            {},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    auto svc = roster::find_service(ctx);
    if (!svc) {
      throw std::logic_error("the presence module needs the roster module");
    }
    auto engine = std::make_shared<Engine>(ctx, std::move(svc));
    // §3.4: pre-approvals are supported (a "subscribed" without a pending request approves in advance).
    ctx.add_stream_feature(api::StreamStage::AfterAuth, Element("sub", std::string(ns_preapproval_feature)));
    // Low priority on Route::Pre: modules that filter what a client sends (blocking) see it first.
    ctx.on_stanza(
        api::StanzaKind::Presence, api::Route::Pre,
        [engine](api::StanzaEvent& ev) { return engine->outbound_stanza(ev); }, -100);
    ctx.on_stanza(api::StanzaKind::Presence, api::Route::Self,
                  [engine](api::StanzaEvent& ev) { return engine->self_stanza(ev); });
    ctx.on_stanza(api::StanzaKind::Presence, api::Route::Bare,
                  [engine](api::StanzaEvent& ev) { return engine->inbound_stanza(ev, false); });
    ctx.on_stanza(api::StanzaKind::Presence, api::Route::Full,
                  [engine](api::StanzaEvent& ev) { return engine->inbound_stanza(ev, true); });
    ctx.on_session(api::SessionEventKind::Closed,
                   [engine](const api::SessionEvent& ev) { engine->session_closed(ev.jid); });
  }
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<PresenceModule>();
}

} // namespace cg::xep::presence
