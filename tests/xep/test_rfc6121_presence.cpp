// RFC 6121 §3 (presence subscriptions) and §4 (presence): the state machine tables of Appendix A row by row, as
// pure transitions and through the module's handlers, the spec's examples, and presence broadcast, probes, directed
// and unavailable presence against the fake host.
#include "tests/xep/fake_host.hpp"
#include "xep/rfc6121_presence.hpp"
#include "xep/rfc6121_roster.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

using cg::api::Element;
using cg::api::Flow;
using cg::api::Jid;
using cg::api::Origin;
using cg::api::OriginKind;
using cg::api::Route;
using cg::api::SessionEvent;
using cg::api::SessionEventKind;
using cg::api::SessionInfo;
using cg::api::StanzaEvent;
using cg::api::StanzaKind;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
using cg::test::parse_xml;
namespace presence = cg::xep::presence;
namespace roster = cg::xep::roster;
using presence::State;
using presence::Transition;
using presence::Type;
using roster::Item;
using roster::Subscription;

namespace {

const Jid kJuliet = *Jid::parse("juliet@example.com");
const Jid kBalcony = *Jid::parse("juliet@example.com/balcony");
const Jid kChamber = *Jid::parse("juliet@example.com/chamber");
const Jid kRomeo = *Jid::parse("romeo@example.net"); // a contact on another domain: nothing here depends on it
const Jid kRomeoOrchard = *Jid::parse("romeo@example.net/orchard");
const Jid kNurse = *Jid::parse("nurse@example.com");
const Jid kNurseHall = *Jid::parse("nurse@example.com/hall");

// The roster and presence modules on a fake host, routing as the core would route each stanza it is given.
struct PresenceHost {
  FakeHost host{"example.com"};
  std::unique_ptr<cg::api::Module> roster_module = roster::make_module();
  std::unique_ptr<cg::api::Module> presence_module = presence::make_module();
  std::shared_ptr<int> token = std::make_shared<int>(0); // a client stanza's accept token

  explicit PresenceHost(const cg::test::OptionOverrides& roster_options = {}) {
    host.load(*roster_module, roster_options);
    host.sibling().load(*presence_module);
    host.add_user("juliet");
    host.add_user("nurse");
  }

  void bind(const Jid& full) {
    SessionInfo s;
    s.jid = full;
    s.available = true;
    host.add_session(s);
    host.fire_session(SessionEvent{SessionEventKind::Bound, full, ""});
  }

  // A presence stanza from a local client session: 'from' stamped as the c2s session does (bare for subscription
  // stanzas), Route::Pre, then Route::Self when it has no 'to' — the router's order. Runs the queued work.
  Flow from_client(const Jid& full, const std::string& xml, bool run = true) {
    Element st = parse_stanza(xml);
    const bool sub = presence::subscription_type(st.attr("type")).has_value();
    st.set_attr("from", sub ? full.bare().str() : full.str());
    Jid to;
    if (st.has_attr("to")) {
      to = *Jid::parse(st.attr("to"));
    }
    const Origin origin{OriginKind::Client, full};
    StanzaEvent pre{st, full, to, origin, StanzaKind::Presence, Route::Pre, token};
    Flow flow = host.run_stanza(pre);
    if (flow == Flow::Continue && !st.has_attr("to")) {
      StanzaEvent self{st, full, to, origin, StanzaKind::Presence, Route::Self, token};
      host.run_stanza(self);
    }
    if (run) {
      host.run();
    }
    return flow;
  }

  // A presence stanza to a local account from elsewhere: Route::Bare or Route::Full by its 'to'.
  Flow to_account(const std::string& xml, OriginKind kind = OriginKind::Server) {
    Element st = parse_stanza(xml);
    const Jid from = *Jid::parse(st.attr("from"));
    const Jid to = *Jid::parse(st.attr("to"));
    const Origin origin{kind, kind == OriginKind::Server ? *Jid::parse(from.domain()) : *Jid::parse("example.com")};
    StanzaEvent ev{st, from, to, origin, StanzaKind::Presence, to.is_bare() ? Route::Bare : Route::Full, nullptr};
    Flow flow = host.run_stanza(ev);
    host.run();
    return flow;
  }

  // Presence stanzas sent so far, as "type from → to" lines ("available" for no type).
  std::vector<std::string> presences() const {
    std::vector<std::string> out;
    for (const auto& s : host.sent()) {
      if (s.name() == "presence") {
        std::string type(s.attr("type"));
        out.push_back((type.empty() ? std::string("available") : type) + " " + std::string(s.attr("from")) + " -> " +
                      std::string(s.attr("to")));
      }
    }
    return out;
  }
  bool sent(const std::string& line) const {
    auto p = presences();
    return std::find(p.begin(), p.end(), line) != p.end();
  }
  std::vector<Element> pushes(const Jid& to) const {
    std::vector<Element> out;
    for (const auto& s : host.sent()) {
      if (s.name() == "iq" && s.attr("to") == to.str() && s.child("query", roster::ns) != nullptr) {
        out.push_back(s);
      }
    }
    return out;
  }

  roster::Store store() { return roster::Store(host.storage()); }
  std::optional<Item> item(const std::string& user, const Jid& contact) {
    return store().get("example.com", user, contact);
  }
  State state(const std::string& user, const Jid& contact) {
    auto i = item(user, contact);
    const bool pending = store().pending("example.com", user, contact).has_value();
    return presence::state_of(i ? &*i : nullptr, pending);
  }
  // Stores juliet's item for `contact` in state `s` (and the request a pending-in state implies) before juliet's
  // sessions start.
  void seed(const std::string& user, const Jid& contact, State s, bool approved = false) {
    Item i;
    i.jid = contact;
    presence::apply(s, i);
    i.approved = approved;
    store().put("example.com", user, i);
    if (presence::has_pending_in(s)) {
      store().set_pending("example.com", user, contact,
                          parse_stanza("<presence from='" + contact.str() + "' to='" + user +
                                       "@example.com' type='subscribe'><status>hi</status></presence>"));
    }
  }
  // juliet's balcony: bound, interested in its roster, available.
  void juliet_online() {
    bind(kBalcony);
    REQUIRE_FALSE(host.call_iq(cg::api::IqScope::Account, "<iq from='juliet@example.com/balcony' id='r' type='get'>"
                                                          "<query xmlns='jabber:iq:roster'/></iq>")
                      .is_error());
    from_client(kBalcony, "<presence/>");
    host.clear_records();
  }
};

struct Row {
  State before;
  bool pass;
  State after;
};

// RFC 6121 Appendix A, transcribed: the existing state, whether the stanza is routed (A.2) or delivered (A.3), the
// new state ("no state change": the same).
constexpr Row kA21[] = {{State::None, true, State::NonePendingOut},
                        {State::NonePendingOut, true, State::NonePendingOut},
                        {State::NonePendingIn, true, State::NonePendingOutIn},
                        {State::NonePendingOutIn, true, State::NonePendingOutIn},
                        {State::To, true, State::To},
                        {State::ToPendingIn, true, State::ToPendingIn},
                        {State::From, true, State::FromPendingOut},
                        {State::FromPendingOut, true, State::FromPendingOut},
                        {State::Both, true, State::Both}};
constexpr Row kA22[] = {{State::None, false, State::None},
                        {State::NonePendingOut, false, State::NonePendingOut},
                        {State::NonePendingIn, true, State::From},
                        {State::NonePendingOutIn, true, State::FromPendingOut},
                        {State::To, false, State::To},
                        {State::ToPendingIn, true, State::Both},
                        {State::From, false, State::From},
                        {State::FromPendingOut, false, State::FromPendingOut},
                        {State::Both, false, State::Both}};
constexpr Row kA23[] = {{State::None, true, State::None},
                        {State::NonePendingOut, true, State::None},
                        {State::NonePendingIn, true, State::NonePendingIn},
                        {State::NonePendingOutIn, true, State::NonePendingIn},
                        {State::To, true, State::None},
                        {State::ToPendingIn, true, State::NonePendingIn},
                        {State::From, true, State::From},
                        {State::FromPendingOut, true, State::From},
                        {State::Both, true, State::From}};
constexpr Row kA24[] = {{State::None, false, State::None},
                        {State::NonePendingOut, false, State::NonePendingOut},
                        {State::NonePendingIn, true, State::None},
                        {State::NonePendingOutIn, true, State::NonePendingOut},
                        {State::To, false, State::To},
                        {State::ToPendingIn, true, State::To},
                        {State::From, true, State::None},
                        {State::FromPendingOut, true, State::NonePendingOut},
                        {State::Both, true, State::To}};
constexpr Row kA31[] = {{State::None, true, State::NonePendingIn},
                        {State::NonePendingOut, true, State::NonePendingOutIn},
                        {State::NonePendingIn, false, State::NonePendingIn},
                        {State::NonePendingOutIn, false, State::NonePendingOutIn},
                        {State::To, true, State::ToPendingIn},
                        {State::ToPendingIn, false, State::ToPendingIn},
                        {State::From, false, State::From},
                        {State::FromPendingOut, false, State::FromPendingOut},
                        {State::Both, false, State::Both}};
constexpr Row kA32[] = {{State::None, false, State::None},
                        {State::NonePendingOut, true, State::To},
                        {State::NonePendingIn, false, State::NonePendingIn},
                        {State::NonePendingOutIn, true, State::ToPendingIn},
                        {State::To, false, State::To},
                        {State::ToPendingIn, false, State::ToPendingIn},
                        {State::From, false, State::From},
                        {State::FromPendingOut, true, State::Both},
                        {State::Both, false, State::Both}};
constexpr Row kA33[] = {{State::None, false, State::None},
                        {State::NonePendingOut, false, State::NonePendingOut},
                        {State::NonePendingIn, true, State::None},
                        {State::NonePendingOutIn, true, State::NonePendingOut},
                        {State::To, false, State::To},
                        {State::ToPendingIn, true, State::To},
                        {State::From, true, State::None},
                        {State::FromPendingOut, true, State::NonePendingOut},
                        {State::Both, true, State::To}};
constexpr Row kA34[] = {{State::None, false, State::None},
                        {State::NonePendingOut, true, State::None},
                        {State::NonePendingIn, false, State::NonePendingIn},
                        {State::NonePendingOutIn, true, State::NonePendingIn},
                        {State::To, true, State::None},
                        {State::ToPendingIn, true, State::NonePendingIn},
                        {State::From, false, State::From},
                        {State::FromPendingOut, true, State::From},
                        {State::Both, true, State::From}};

struct Table {
  const char* name;
  Type type;
  bool outbound;
  const Row* rows;
};
const Table kTables[] = {
    {"A.2.1 outbound subscribe", Type::Subscribe, true, kA21},
    {"A.2.2 outbound subscribed", Type::Subscribed, true, kA22},
    {"A.2.3 outbound unsubscribe", Type::Unsubscribe, true, kA23},
    {"A.2.4 outbound unsubscribed", Type::Unsubscribed, true, kA24},
    {"A.3.1 inbound subscribe", Type::Subscribe, false, kA31},
    {"A.3.2 inbound subscribed", Type::Subscribed, false, kA32},
    {"A.3.3 inbound unsubscribe", Type::Unsubscribe, false, kA33},
    {"A.3.4 inbound unsubscribed", Type::Unsubscribed, false, kA34},
};

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// The state machine

TEST_CASE("presence: roster items map to the states of Appendix A.1 and back", "[rfc6121][presence][state]") {
  for (State s : presence::kAllStates) {
    INFO(presence::to_string(s));
    Item item;
    item.jid = kRomeo;
    presence::apply(s, item);
    CHECK(presence::state_of(&item) == s);
    // §2.1.2.2: 'ask' is shown exactly in the pending-out states.
    CHECK(item.ask == (s == State::NonePendingOut || s == State::NonePendingOutIn || s == State::FromPendingOut));
    CHECK(item.pending_in == presence::has_pending_in(s));
  }
  CHECK(presence::state_of(nullptr) == State::None);
  CHECK(presence::state_of(nullptr, true) == State::NonePendingIn);
  CHECK(presence::to_string(State::NonePendingOutIn) == "None + Pending Out+In");
  for (auto t : {Type::Subscribe, Type::Subscribed, Type::Unsubscribe, Type::Unsubscribed}) {
    CHECK(presence::subscription_type(presence::to_string(t)) == t);
  }
  CHECK_FALSE(presence::subscription_type("probe"));
  CHECK_FALSE(presence::subscription_type(""));
}

TEST_CASE("presence: every row of the Appendix A tables as a pure transition", "[rfc6121][presence][state]") {
  for (const auto& table : kTables) {
    for (std::size_t i = 0; i < 9; ++i) {
      const Row& row = table.rows[i];
      INFO(table.name << ", " << presence::to_string(row.before));
      CHECK(row.before == presence::kAllStates[i]);
      const Transition t =
          table.outbound ? presence::outbound(table.type, row.before) : presence::inbound(table.type, row.before);
      CHECK(t == Transition{row.pass, row.after});
    }
  }
}

TEST_CASE("presence: every row of Appendix A.2 through the module (the user's server)", "[rfc6121][presence][state]") {
  for (const auto& table : kTables) {
    if (!table.outbound) {
      continue;
    }
    for (std::size_t i = 0; i < 9; ++i) {
      const Row& row = table.rows[i];
      INFO(table.name << ", " << presence::to_string(row.before));
      PresenceHost p;
      p.seed("juliet", kRomeo, row.before);
      p.juliet_online();
      const std::string type(presence::to_string(table.type));
      CHECK(p.from_client(kBalcony, "<presence to='romeo@example.net' type='" + type + "'/>") == Flow::Stop);
      const bool routed = p.sent(type + " juliet@example.com -> romeo@example.net");
      const bool preapproval =
          table.type == Type::Subscribed &&
          (row.before == State::None || row.before == State::NonePendingOut || row.before == State::To);
      auto item = p.item("juliet", kRomeo);
      REQUIRE(item);
      if (preapproval) {
        // §3.4.2: a "subscribed" with no pending request is a pre-approval: noted, pushed, not routed.
        CHECK_FALSE(routed);
        CHECK(item->approved);
        CHECK(p.state("juliet", kRomeo) == row.before);
        CHECK(p.pushes(kBalcony).size() == 1);
        continue;
      }
      CHECK(routed == row.pass);
      CHECK(p.state("juliet", kRomeo) == row.after);
      // A state change is pushed to the interested resource (§3.1.2, §3.1.5, §3.2.2, §3.3.2); none otherwise.
      CHECK(p.pushes(kBalcony).size() == (row.after != row.before ? 1u : 0u));
      if (const auto pushes = p.pushes(kBalcony); !pushes.empty()) {
        // (pushes() returns a copy: keep it alive while pointing into it.)
        const Element* pushed = pushes[0].child("query", roster::ns)->first_child();
        CHECK(pushed->attr("subscription") == roster::to_string(item->subscription));
      }
      // The stored request goes once the user answered it (approved or denied).
      CHECK(p.store().pending("example.com", "juliet", kRomeo).has_value() == presence::has_pending_in(row.after));
      // §3.2.2: cancelling the contact's subscription tells it that the user is unavailable; §3.1.5: approving one
      // sends the user's current presence.
      CHECK(p.sent("unavailable juliet@example.com/balcony -> romeo@example.net") ==
            (table.type == Type::Unsubscribed && presence::has_from(row.before)));
      CHECK(p.sent("available juliet@example.com/balcony -> romeo@example.net") ==
            (table.type == Type::Subscribed && row.pass));
      // The client's accept token is released once the work is done.
      CHECK(p.token.use_count() == 1);
    }
  }
}

TEST_CASE("presence: every row of Appendix A.3 through the module (the contact's server)",
          "[rfc6121][presence][state]") {
  for (const auto& table : kTables) {
    if (table.outbound) {
      continue;
    }
    for (std::size_t i = 0; i < 9; ++i) {
      const Row& row = table.rows[i];
      INFO(table.name << ", " << presence::to_string(row.before));
      PresenceHost p;
      p.seed("juliet", kRomeo, row.before);
      p.juliet_online();
      const std::string type(presence::to_string(table.type));
      CHECK(p.to_account("<presence from='romeo@example.net' to='juliet@example.com' type='" + type + "'/>") ==
            Flow::Stop);
      const bool delivered = p.sent(type + " romeo@example.net -> juliet@example.com/balcony");
      if (table.type == Type::Subscribe && presence::has_from(row.before)) {
        // A.3.1 "no *": §3.1.3 "the contact's server MUST auto-reply on behalf of the contact by sending a presence
        // stanza of type "subscribed"".
        CHECK(p.sent("subscribed juliet@example.com -> romeo@example.net"));
      } else {
        CHECK_FALSE(p.sent("subscribed juliet@example.com -> romeo@example.net"));
      }
      CHECK(delivered == row.pass);
      CHECK(p.state("juliet", kRomeo) == row.after);
      CHECK(p.pushes(kBalcony).size() == (row.after != row.before ? 1u : 0u));
      CHECK(p.store().pending("example.com", "juliet", kRomeo).has_value() == presence::has_pending_in(row.after));
      // A.3.3: an unsubscribe from a subscriber is answered with unavailable from each available resource.
      CHECK(p.sent("unavailable juliet@example.com/balcony -> romeo@example.net") ==
            (table.type == Type::Unsubscribe && presence::has_from(row.before)));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Subscriptions: the spec's examples and the cases without a roster item

TEST_CASE("presence: a subscription request creates the item with ask='subscribe' and is routed from the bare JID "
          "(RFC 6121 §3.1.1, §3.1.2)",
          "[rfc6121][presence][subscription]") {
  PresenceHost p;
  p.juliet_online();
  // §3.1.1, Example: the user's client sends a subscription request (here to a full JID: about the bare JID).
  p.from_client(kBalcony, "<presence id='xk3h1v69' to='romeo@example.net/orchard' type='subscribe'/>");
  // §3.1.2, Example: the user's server stamps the bare JID and routes the request.
  std::vector<Element> routed;
  for (const auto& s : p.host.sent()) {
    if (s.name() == "presence") {
      routed.push_back(s);
    }
  }
  REQUIRE(routed.size() == 1);
  CHECK(canonical(routed[0]) == canonical(parse_stanza("<presence from='juliet@example.com' id='xk3h1v69' "
                                                       "to='romeo@example.net' type='subscribe'/>")));
  // §3.1.2, Example: the roster push with ask='subscribe'.
  auto pushes = p.pushes(kBalcony);
  REQUIRE(pushes.size() == 1);
  CHECK(canonical(*pushes[0].child("query", roster::ns)->first_child()) ==
        canonical(parse_xml("<item xmlns='jabber:iq:roster' ask='subscribe' jid='romeo@example.net' "
                            "subscription='none'/>")));
  CHECK(p.state("juliet", kRomeo) == State::NonePendingOut);
}

TEST_CASE("presence: an inbound request for a user with no item is kept out of the roster, delivered, and answered "
          "(RFC 6121 §3.1.3-§3.1.6, §3.3.3)",
          "[rfc6121][presence][subscription]") {
  PresenceHost p;
  p.juliet_online();
  // §3.1.3: delivered to the available resource; kept as "None + Pending In" without a roster item (no push).
  p.to_account("<presence from='romeo@example.net' id='xk3h1v69' to='juliet@example.com' type='subscribe'>"
               "<status>Let us meet</status></presence>");
  CHECK(p.sent("subscribe romeo@example.net -> juliet@example.com/balcony"));
  CHECK_FALSE(p.item("juliet", kRomeo));
  CHECK(p.state("juliet", kRomeo) == State::NonePendingIn);
  CHECK(p.pushes(kBalcony).empty());
  {
    auto r = p.host.call_iq(cg::api::IqScope::Account, "<iq from='juliet@example.com/balcony' id='g' type='get'>"
                                                       "<query xmlns='jabber:iq:roster'/></iq>");
    CHECK(r.payload()->element_count() == 0);
  }
  // §3.1.5: the user approves: the item appears with subscription 'from', the approval is routed, and the user's
  // current presence follows it.
  p.host.clear_records();
  p.from_client(kBalcony, "<presence id='h4v1c4kj' to='romeo@example.net' type='subscribed'/>");
  CHECK(p.presences() == std::vector<std::string>{"subscribed juliet@example.com -> romeo@example.net",
                                                  "available juliet@example.com/balcony -> romeo@example.net"});
  auto pushes = p.pushes(kBalcony);
  REQUIRE(pushes.size() == 1);
  CHECK(canonical(*pushes[0].child("query", roster::ns)->first_child()) ==
        canonical(parse_xml("<item xmlns='jabber:iq:roster' jid='romeo@example.net' subscription='from'/>")));
  CHECK_FALSE(p.store().pending("example.com", "juliet", kRomeo));

  // §3.3.3: a request withdrawn before the user answered it leaves no trace.
  PresenceHost q;
  q.juliet_online();
  q.to_account("<presence from='romeo@example.net' to='juliet@example.com' type='subscribe'/>");
  q.to_account("<presence from='romeo@example.net' to='juliet@example.com' type='unsubscribe'/>");
  CHECK(q.state("juliet", kRomeo) == State::None);
  CHECK_FALSE(q.item("juliet", kRomeo));
  // ... and a request the user denies likewise (§3.2.2 on "None + Pending In").
  q.to_account("<presence from='romeo@example.net' to='juliet@example.com' type='subscribe'/>");
  q.host.clear_records();
  q.from_client(kBalcony, "<presence to='romeo@example.net' type='unsubscribed'/>");
  CHECK(q.presences() == std::vector<std::string>{"unsubscribed juliet@example.com -> romeo@example.net"});
  CHECK(q.state("juliet", kRomeo) == State::None);
  CHECK(q.pushes(kBalcony).empty());
}

TEST_CASE("presence: a request to an offline user is stored whole and delivered at each login until answered "
          "(RFC 6121 §3.1.3)",
          "[rfc6121][presence][subscription]") {
  PresenceHost p;
  // juliet has no session: the request is kept (status and nick included).
  p.to_account("<presence from='romeo@example.net' id='sub1' to='juliet@example.com' type='subscribe'>"
               "<status>It is I</status><nick xmlns='http://jabber.org/protocol/nick'>Romeo</nick></presence>");
  CHECK(p.presences().empty());
  auto stored = p.store().pending("example.com", "juliet", kRomeo);
  REQUIRE(stored);
  CHECK(stored->child_text("status") == "It is I");
  // A second request while the first is pending is not stored again (§3.1.3 "SHOULD store only one").
  p.to_account("<presence from='romeo@example.net' id='sub2' to='juliet@example.com' type='subscribe'/>");
  CHECK(p.store().pending("example.com", "juliet", kRomeo)->attr("id") == "sub1");

  // Bound but not available yet: nothing. Initial presence: delivered to the new resource, as it was sent.
  p.bind(kBalcony);
  CHECK(p.presences().empty());
  p.from_client(kBalcony, "<presence/>");
  std::optional<Element> delivered;
  for (const auto& s : p.host.sent()) {
    if (s.name() == "presence" && s.attr("type") == "subscribe") {
      delivered = s;
    }
  }
  REQUIRE(delivered);
  CHECK(delivered->attr("to") == "juliet@example.com/balcony");
  CHECK(delivered->attr("from") == "romeo@example.net");
  CHECK(delivered->attr("id") == "sub1");
  CHECK(delivered->child_text("status") == "It is I");
  CHECK(delivered->child("nick", "http://jabber.org/protocol/nick")->text() == "Romeo");

  // Subsequent presence does not deliver it again; the next session's initial presence does.
  p.host.clear_records();
  p.from_client(kBalcony, "<presence><show>away</show></presence>");
  CHECK_FALSE(p.sent("subscribe romeo@example.net -> juliet@example.com/balcony"));
  p.bind(kChamber);
  p.from_client(kChamber, "<presence/>");
  CHECK(p.sent("subscribe romeo@example.net -> juliet@example.com/chamber"));
  CHECK_FALSE(p.sent("subscribe romeo@example.net -> juliet@example.com/balcony"));

  // Approved: never again.
  p.from_client(kChamber, "<presence to='romeo@example.net' type='subscribed'/>");
  p.host.fire_session(SessionEvent{SessionEventKind::Closed, kChamber, ""});
  p.host.clear_records();
  p.from_client(kChamber, "<presence/>");
  CHECK_FALSE(p.sent("subscribe romeo@example.net -> juliet@example.com/chamber"));
  CHECK(p.state("juliet", kRomeo) == State::From);
}

TEST_CASE("presence: pre-approval (RFC 6121 §3.4)", "[rfc6121][presence][subscription]") {
  PresenceHost p;
  // §3.4: the stream feature.
  auto features = p.host.registered_stream_features(cg::api::StreamStage::AfterAuth);
  CHECK(std::any_of(features.begin(), features.end(),
                    [](const Element& f) { return f.is("sub", presence::ns_preapproval_feature); }));
  p.juliet_online();
  // §3.4.2: no request pending and no item: an item with approved='true' is created and pushed, nothing routed.
  p.from_client(kBalcony, "<presence to='romeo@example.net' type='subscribed'/>");
  CHECK(p.presences().empty());
  auto pushes = p.pushes(kBalcony);
  REQUIRE(pushes.size() == 1);
  CHECK(canonical(*pushes[0].child("query", roster::ns)->first_child()) ==
        canonical(parse_xml("<item xmlns='jabber:iq:roster' approved='true' jid='romeo@example.net' "
                            "subscription='none'/>")));
  // Again: nothing changes.
  p.host.clear_records();
  p.from_client(kBalcony, "<presence to='romeo@example.net' type='subscribed'/>");
  CHECK(p.host.sent().empty());
  // The contact's request is then approved by the server: "subscribed" back, current presence, the item is 'from'.
  p.to_account("<presence from='romeo@example.net' to='juliet@example.com' type='subscribe'/>");
  CHECK(p.presences() == std::vector<std::string>{"subscribed juliet@example.com -> romeo@example.net",
                                                  "available juliet@example.com/balcony -> romeo@example.net"});
  auto item = p.item("juliet", kRomeo);
  REQUIRE(item);
  CHECK(item->subscription == Subscription::From);
  CHECK_FALSE(item->approved);
  CHECK_FALSE(p.store().pending("example.com", "juliet", kRomeo));

  // A pre-approval is withdrawn by "unsubscribed" (not routed: there was no subscription).
  PresenceHost q;
  q.juliet_online();
  q.from_client(kBalcony, "<presence to='romeo@example.net' type='subscribed'/>");
  q.from_client(kBalcony, "<presence to='romeo@example.net' type='unsubscribed'/>");
  CHECK(q.presences().empty());
  CHECK_FALSE(q.item("juliet", kRomeo)->approved);
  q.to_account("<presence from='romeo@example.net' to='juliet@example.com' type='subscribe'/>");
  CHECK(q.sent("subscribe romeo@example.net -> juliet@example.com/balcony"));
  CHECK(q.state("juliet", kRomeo) == State::NonePendingIn);
}

TEST_CASE("presence: a full roster refuses a subscription that needs a new item with resource-constraint",
          "[rfc6121][presence][subscription]") {
  PresenceHost p({{"max_items", std::int64_t{1}}});
  p.seed("juliet", kNurse, State::None);
  p.juliet_online();
  p.from_client(kBalcony, "<presence id='s1' to='romeo@example.net' type='subscribe'/>");
  std::optional<Element> error;
  for (const auto& s : p.host.sent()) {
    if (s.attr("type") == "error") {
      error = s;
    }
  }
  REQUIRE(error);
  CHECK(error->attr("to") == "juliet@example.com/balcony");
  CHECK(error->attr("from") == "romeo@example.net");
  CHECK(cg::api::parse_error(*error).condition == "resource-constraint");
  CHECK_FALSE(p.sent("subscribe juliet@example.com -> romeo@example.net"));
  CHECK_FALSE(p.item("juliet", kRomeo));
  // An existing item is not limited.
  p.host.clear_records();
  p.from_client(kBalcony, "<presence to='nurse@example.com' type='subscribe'/>");
  CHECK(p.sent("subscribe juliet@example.com -> nurse@example.com"));
}

TEST_CASE("presence: subscription stanzas addressed to a resource are about the bare JIDs, the module's own "
          "deliveries pass",
          "[rfc6121][presence][subscription]") {
  PresenceHost p;
  p.juliet_online();
  CHECK(p.to_account("<presence from='romeo@example.net/orchard' to='juliet@example.com/balcony' type='subscribe'/>") ==
        Flow::Stop);
  CHECK(p.sent("subscribe romeo@example.net -> juliet@example.com/balcony"));
  CHECK(p.state("juliet", kRomeo) == State::NonePendingIn);
  // What this module itself sends to one resource (Local origin) is delivered as it is.
  CHECK(p.to_account("<presence from='romeo@example.net' to='juliet@example.com/balcony' type='subscribe'/>",
                     OriginKind::Local) == Flow::Continue);
  // Subscription stanzas between an account and itself are dropped.
  p.host.clear_records();
  CHECK(p.from_client(kBalcony, "<presence to='juliet@example.com' type='subscribe'/>") == Flow::Stop);
  CHECK(p.host.sent().empty());
  CHECK_FALSE(p.item("juliet", kJuliet));
}

// ---------------------------------------------------------------------------------------------------------------
// Presence

TEST_CASE("presence: initial presence is broadcast to subscribers and own resources, probes go to the contacts the "
          "user is subscribed to (RFC 6121 §4.2, §4.3.1)",
          "[rfc6121][presence][broadcast]") {
  PresenceHost p;
  const Jid to = *Jid::parse("to@example.org");
  const Jid from = *Jid::parse("from@example.org");
  const Jid both = *Jid::parse("both@example.org");
  const Jid none = *Jid::parse("none@example.org");
  const Jid pending = *Jid::parse("pending@example.org");
  p.seed("juliet", to, State::To);
  p.seed("juliet", from, State::From);
  p.seed("juliet", both, State::Both);
  p.seed("juliet", none, State::None);
  p.seed("juliet", pending, State::NonePendingOut);
  p.bind(kBalcony);
  p.bind(kChamber);
  // The chamber is available first.
  p.from_client(kChamber, "<presence><show>dnd</show></presence>");
  p.host.clear_records();

  p.from_client(kBalcony, "<presence><status>at the window</status></presence>");
  auto sent = p.presences();
  std::sort(sent.begin(), sent.end());
  CHECK(sent == std::vector<std::string>{
                    "available juliet@example.com/balcony -> both@example.org",
                    "available juliet@example.com/balcony -> from@example.org",
                    "available juliet@example.com/balcony -> juliet@example.com/balcony", // §4.2.2: itself too
                    "available juliet@example.com/balcony -> juliet@example.com/chamber",
                    "available juliet@example.com/chamber -> juliet@example.com/balcony", // the other resource
                    "probe juliet@example.com -> both@example.org",
                    "probe juliet@example.com -> to@example.org",
                });
  // The broadcast is the client's presence, with its content.
  for (const auto& s : p.host.sent()) {
    if (s.attr("to") == "from@example.org") {
      CHECK(s.child_text("status") == "at the window");
    }
    if (s.attr("from") == "juliet@example.com/chamber") {
      CHECK(s.child_text("show") == "dnd");
    }
  }
  // §4.4.2: subsequent presence is broadcast the same way, without probes.
  p.host.clear_records();
  p.from_client(kBalcony, "<presence><show>away</show></presence>");
  sent = p.presences();
  std::sort(sent.begin(), sent.end());
  CHECK(sent == std::vector<std::string>{
                    "available juliet@example.com/balcony -> both@example.org",
                    "available juliet@example.com/balcony -> from@example.org",
                    "available juliet@example.com/balcony -> juliet@example.com/balcony",
                    "available juliet@example.com/balcony -> juliet@example.com/chamber",
                });
  // The Self event continues to other modules (offline delivery acts on available presence too).
  Element again = parse_stanza("<presence/>");
  StanzaEvent self{again,       kBalcony, Jid(), Origin{OriginKind::Client, kBalcony}, StanzaKind::Presence,
                   Route::Self, nullptr};
  CHECK(p.host.run_stanza(self) == Flow::Continue);
  p.host.run();
}

TEST_CASE("presence: probes are answered with the last presence of each available resource, only for subscribers "
          "(RFC 6121 §4.3.2)",
          "[rfc6121][presence][probe]") {
  PresenceHost p;
  p.seed("juliet", kRomeo, State::From); // romeo is subscribed to juliet
  p.seed("juliet", kNurse, State::To);   // the nurse is not
  p.host.add_user("romeo");

  // Subscribed, but no available resource: "unavailable" from the bare JID.
  CHECK(p.to_account("<presence from='romeo@example.net' to='juliet@example.com' type='probe'/>") == Flow::Stop);
  CHECK(p.presences() == std::vector<std::string>{"unavailable juliet@example.com -> romeo@example.net"});

  p.bind(kBalcony);
  p.bind(kChamber);
  p.from_client(kBalcony, "<presence><status>first</status></presence>");
  p.from_client(kChamber, "<presence><show>xa</show></presence>");
  p.from_client(kChamber, "<presence><show>chat</show></presence>"); // the last one counts
  p.host.clear_records();
  p.to_account("<presence from='romeo@example.net' to='juliet@example.com' type='probe'/>");
  auto sent = p.presences();
  std::sort(sent.begin(), sent.end());
  CHECK(sent == std::vector<std::string>{"available juliet@example.com/balcony -> romeo@example.net",
                                         "available juliet@example.com/chamber -> romeo@example.net"});
  for (const auto& s : p.host.sent()) {
    if (s.attr("from") == "juliet@example.com/chamber") {
      CHECK(s.child_text("show") == "chat");
    } else {
      CHECK(s.child_text("status") == "first");
    }
  }
  // A probe from a full JID is answered to that JID.
  p.host.clear_records();
  p.to_account("<presence from='romeo@example.net/orchard' to='juliet@example.com' type='probe'/>");
  CHECK(p.sent("available juliet@example.com/balcony -> romeo@example.net/orchard"));

  // Not subscribed (the nurse), or unknown: nothing at all, online or not.
  p.host.clear_records();
  p.to_account("<presence from='nurse@example.com/hall' to='juliet@example.com' type='probe'/>");
  p.to_account("<presence from='stranger@example.org' to='juliet@example.com/balcony' type='probe'/>");
  CHECK(p.host.sent().empty());

  // An unavailable resource no longer counts.
  p.from_client(kChamber, "<presence type='unavailable'/>");
  p.host.clear_records();
  p.to_account("<presence from='romeo@example.net' to='juliet@example.com' type='probe'/>");
  CHECK(p.presences() == std::vector<std::string>{"available juliet@example.com/balcony -> romeo@example.net"});
}

TEST_CASE("presence: other presence to an account is delivered by the core (RFC 6121 §4.2.3, §4.4.3, §4.5.3)",
          "[rfc6121][presence]") {
  PresenceHost p;
  p.juliet_online();
  // Available, unavailable and error presence: the module lets the core deliver them (Flow::Continue).
  for (const std::string type : {"", " type='unavailable'", " type='error'"}) {
    CHECK(p.to_account("<presence from='romeo@example.net/orchard' to='juliet@example.com'" + type + "/>") ==
          Flow::Continue);
    CHECK(p.to_account("<presence from='romeo@example.net/orchard' to='juliet@example.com/balcony'" + type + "/>") ==
          Flow::Continue);
  }
  CHECK(p.host.sent().empty());
  // A client's probe or error presence with 'to' is routed by the core as well.
  CHECK(p.from_client(kBalcony, "<presence to='romeo@example.net' type='probe'/>") == Flow::Continue);
}

TEST_CASE("presence: unavailable presence reaches subscribers, own resources and directed-presence recipients "
          "(RFC 6121 §4.5, §4.6)",
          "[rfc6121][presence][unavailable]") {
  PresenceHost p;
  p.seed("juliet", kRomeo, State::Both);
  p.seed("juliet", kNurse, State::To);
  p.bind(kBalcony);
  p.bind(kChamber);
  p.from_client(kBalcony, "<presence/>");
  p.from_client(kChamber, "<presence/>");
  // Directed presence (§4.6): the core routes it as sent (Flow::Continue); the module remembers it.
  p.host.clear_records();
  CHECK(p.from_client(kBalcony, "<presence to='room@muc.example.org/juliet'><x xmlns='urn:example'/></presence>") ==
        Flow::Continue);
  CHECK(p.host.sent().empty());
  p.from_client(kBalcony, "<presence to='nurse@example.com/hall'/>");
  p.from_client(kBalcony, "<presence to='romeo@example.net/orchard'/>"); // a subscriber anyway
  p.from_client(kBalcony, "<presence to='gone@example.org'/>");
  p.from_client(kBalcony, "<presence to='gone@example.org' type='unavailable'/>"); // no longer directed
  p.host.clear_records();

  // §4.5.2: the client's unavailable presence.
  p.from_client(kBalcony, "<presence type='unavailable'><status>bye</status></presence>");
  auto sent = p.presences();
  std::sort(sent.begin(), sent.end());
  CHECK(sent == std::vector<std::string>{
                    "unavailable juliet@example.com/balcony -> juliet@example.com/chamber",
                    "unavailable juliet@example.com/balcony -> nurse@example.com/hall",
                    "unavailable juliet@example.com/balcony -> romeo@example.net",
                    "unavailable juliet@example.com/balcony -> room@muc.example.org/juliet",
                });
  for (const auto& s : p.host.sent()) {
    CHECK(s.child_text("status") == "bye");
  }
  // Once unavailable, the session's directed presence is forgotten and it ends silently.
  p.host.clear_records();
  p.host.fire_session(SessionEvent{SessionEventKind::Closed, kBalcony, ""});
  CHECK(p.host.sent().empty());

  // A session that ends without unavailable presence (closed stream, lost connection): the same broadcast.
  p.from_client(kChamber, "<presence to='nurse@example.com/hall'/>");
  p.host.clear_records();
  p.host.fire_session(SessionEvent{SessionEventKind::Closed, kChamber, "connection-timeout"});
  sent = p.presences();
  std::sort(sent.begin(), sent.end());
  CHECK(sent == std::vector<std::string>{"unavailable juliet@example.com/chamber -> nurse@example.com/hall",
                                         "unavailable juliet@example.com/chamber -> romeo@example.net"});
  // Gone: probes get "unavailable".
  p.host.clear_records();
  p.to_account("<presence from='romeo@example.net' to='juliet@example.com' type='probe'/>");
  CHECK(p.presences() == std::vector<std::string>{"unavailable juliet@example.com -> romeo@example.net"});
}

TEST_CASE("presence: a session that only sent directed presence tells only its recipients when it ends",
          "[rfc6121][presence][unavailable]") {
  PresenceHost p;
  p.seed("juliet", kRomeo, State::Both);
  p.bind(kBalcony);
  p.from_client(kBalcony, "<presence to='room@muc.example.org/j'/>");
  p.host.clear_records();
  p.host.fire_session(SessionEvent{SessionEventKind::Closed, kBalcony, ""});
  CHECK(p.presences() == std::vector<std::string>{"unavailable juliet@example.com/balcony -> room@muc.example.org/j"});
}

TEST_CASE("presence: one user's stanzas are handled in order and hold their accept token until done",
          "[rfc6121][presence]") {
  PresenceHost p;
  p.juliet_online();
  // Queued, not yet run: the token is held by the queued work.
  p.from_client(kBalcony, "<presence to='romeo@example.net' type='subscribe'/>", false);
  p.from_client(kBalcony, "<presence to='romeo@example.net' type='unsubscribe'/>", false);
  CHECK(p.token.use_count() > 1);
  p.host.run();
  CHECK(p.token.use_count() == 1);
  CHECK(p.presences() == std::vector<std::string>{"subscribe juliet@example.com -> romeo@example.net",
                                                  "unsubscribe juliet@example.com -> romeo@example.net"});
  CHECK(p.state("juliet", kRomeo) == State::None);
}
