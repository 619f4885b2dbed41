// Rosters (RFC 6121 §2, roster versioning §2.6) and presence (§3 subscriptions, §4 presence) against the real
// chatgroupd, with libstrophe clients and, where the exact bytes or an abrupt disconnect matter, the raw client.
//
// Synchronisation without sleeps: the server handles one user's roster and presence work in order, so a roster get
// round trip ("settle") returns only after everything that user sent before it has been handled — including the
// presence it broadcast to others. A ping round trip of the receiving client then shows what reached it.
#include "tests/integration/harness.hpp"

#include "server/xml/writer.hpp"

#include <catch2/catch.hpp>

#include <memory>

using namespace it;

namespace {

constexpr const char* kRoster = "jabber:iq:roster";

ServerOptions three_users(ServerOptions opts = {}) {
  opts.users = {{"alice", "alice-pw"}, {"bob", "bob-pw"}, {"carol", "carol-pw"}};
  return opts;
}

std::unique_ptr<StropheClient> connect(const TestServer& server, const std::string& jid) {
  const std::string user = jid.substr(0, jid.find('@'));
  auto c = std::make_unique<StropheClient>(jid, user + "-pw");
  REQUIRE(c->connect(server.port(), server.cert_path()));
  return c;
}

int g_seq = 0;
std::string next_id(const std::string& prefix) {
  return prefix + std::to_string(++g_seq);
}

// A roster get; `ver` = nullopt: without the attribute.
std::optional<Element> roster_get(StropheClient& c, std::optional<std::string> ver = std::nullopt) {
  const std::string id = next_id("rg");
  const std::string attr = ver ? " ver='" + *ver + "'" : "";
  return c.iq("<iq type='get' id='" + id + "'><query xmlns='jabber:iq:roster'" + attr + "/></iq>", id);
}

std::optional<Element> roster_set(StropheClient& c, const std::string& item_xml) {
  const std::string id = next_id("rs");
  return c.iq("<iq type='set' id='" + id + "'><query xmlns='jabber:iq:roster'>" + item_xml + "</query></iq>", id);
}

// Returns once the server has handled everything this client's account sent before (see the header comment).
void settle(StropheClient& c) {
  auto r = roster_get(c);
  REQUIRE(r);
  REQUIRE(r->attr("type") == "result");
}

// A client that is available (initial presence sent and handled).
std::unique_ptr<StropheClient> online(const TestServer& server, const std::string& jid) {
  auto c = connect(server, jid);
  c->send("<presence/>");
  settle(*c);
  return c;
}

const Element* query_of(const Element& e) {
  return e.child("query", kRoster);
}

// A roster push about `jid`.
auto push_for(const std::string& jid) {
  return [jid](const Element& e) {
    if (e.name() != "iq" || e.attr("type") != "set") {
      return false;
    }
    const Element* q = e.child("query", kRoster);
    const Element* item = q != nullptr ? q->child("item", kRoster) : nullptr;
    return item != nullptr && item->attr("jid") == jid;
  };
}

const Element& pushed_item(const Element& push) {
  return *push.child("query", kRoster)->child("item", kRoster);
}

// Presence from `from` of `type` ("" = available).
auto presence_from(const std::string& from, const std::string& type = "") {
  return [from, type](const Element& e) {
    return e.name() == "presence" && e.attr("from") == from && e.attr("type") == type;
  };
}

bool received(const std::vector<Element>& list, const std::function<bool(const Element&)>& pred) {
  return std::any_of(list.begin(), list.end(), pred);
}

// Answers the roster push with a result, as a client does (RFC 6121 §2.1.6); the server ignores it.
void ack_push(StropheClient& c, const Element& push) {
  c.send("<iq type='result' id='" + std::string(push.attr("id")) + "'/>");
}

// `a` subscribes to `b` and `b` approves (RFC 6121 §3.1); both must be available.
void subscribe(StropheClient& a, const std::string& a_bare, StropheClient& b, const std::string& b_bare) {
  a.send("<presence to='" + b_bare + "' type='subscribe'/>");
  REQUIRE(b.wait_for(presence_from(a_bare, "subscribe")));
  b.send("<presence to='" + a_bare + "' type='subscribed'/>");
  REQUIRE(a.wait_for(presence_from(b_bare, "subscribed")));
  settle(b);
  settle(a);
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// Rosters

TEST_CASE("roster: get, set and remove, pushed to both interested resources (RFC 6121 §2.1-2.5)", "[rfc6121][roster]") {
  TestServer server(three_users());
  server.start();
  auto phone = connect(server, "alice@localhost/phone");
  auto laptop = connect(server, "alice@localhost/laptop");
  auto tablet = connect(server, "alice@localhost/tablet"); // never asks for the roster: not interested

  auto empty = roster_get(*phone);
  REQUIRE(empty);
  REQUIRE(empty->attr("type") == "result");
  REQUIRE(query_of(*empty) != nullptr);
  CHECK(query_of(*empty)->element_count() == 0);
  REQUIRE(roster_get(*laptop));

  // Add: the result to the phone, a push to both interested resources (the phone included, §2.3.2).
  auto added = roster_set(*phone, "<item jid='bob@localhost' name='Bob'><group>Friends</group></item>");
  REQUIRE(added);
  CHECK(added->attr("type") == "result");
  auto p1 = phone->wait_for(push_for("bob@localhost"));
  auto l1 = laptop->wait_for(push_for("bob@localhost"));
  REQUIRE(p1);
  REQUIRE(l1);
  CHECK(pushed_item(*l1).attr("name") == "Bob");
  CHECK(pushed_item(*l1).attr("subscription") == "none");
  CHECK(pushed_item(*l1).child_text("group") == "Friends");
  CHECK((l1->attr("from").empty() || l1->attr("from") == "alice@localhost"));
  ack_push(*phone, *p1);
  ack_push(*laptop, *l1);

  // Update from the laptop: renamed, other groups.
  REQUIRE(roster_set(*laptop, "<item jid='bob@localhost' name='Robert'><group>Work</group><group>Chess</group>"
                              "</item>"));
  auto p2 = phone->wait_for(push_for("bob@localhost"));
  REQUIRE(p2);
  CHECK(pushed_item(*p2).attr("name") == "Robert");
  CHECK(pushed_item(*p2).children("group").size() == 2);
  REQUIRE(laptop->wait_for(push_for("bob@localhost")));

  auto full = roster_get(*phone);
  REQUIRE(full);
  REQUIRE(query_of(*full)->element_count() == 1);
  CHECK(query_of(*full)->child("item", kRoster)->attr("name") == "Robert");

  // Remove: the push says subscription='remove'; the item is gone.
  REQUIRE(roster_set(*phone, "<item jid='bob@localhost' subscription='remove'/>"));
  auto p3 = phone->wait_for(push_for("bob@localhost"));
  auto l3 = laptop->wait_for(push_for("bob@localhost"));
  REQUIRE(p3);
  REQUIRE(l3);
  CHECK(pushed_item(*l3).attr("subscription") == "remove");
  CHECK(query_of(*roster_get(*laptop))->element_count() == 0);

  // Removing it again: item-not-found (§2.5.3); two items at once: bad-request (§2.3.3).
  auto again = roster_set(*phone, "<item jid='bob@localhost' subscription='remove'/>");
  REQUIRE(again);
  CHECK(error_condition(*again) == "item-not-found");
  auto two = roster_set(*phone, "<item jid='bob@localhost'/><item jid='carol@localhost'/>");
  REQUIRE(two);
  CHECK(error_condition(*two) == "bad-request");
  // Another account's roster: forbidden.
  auto bob = connect(server, "bob@localhost/desk");
  auto foreign = bob->iq("<iq type='get' id='f1' to='alice@localhost'><query xmlns='jabber:iq:roster'/></iq>", "f1");
  REQUIRE(foreign);
  CHECK(error_condition(*foreign) == "forbidden");

  // The resource that never requested the roster got no push.
  REQUIRE(sync_ping(*tablet));
  CHECK_FALSE(received(tablet->received, [](const Element& e) { return e.child("query", kRoster) != nullptr; }));
}

TEST_CASE("roster versioning: the current version gets an empty result and later pushes (RFC 6121 §2.6)",
          "[rfc6121][roster]") {
  TestServer server(three_users());
  server.start();
  // §2.6.1: the stream feature, after authentication.
  RawClient raw;
  Element features = login_unbound(raw, server.port(), "alice", "alice-pw");
  CHECK(features.child("ver", "urn:xmpp:features:rosterver") != nullptr);

  auto phone = connect(server, "alice@localhost/phone");
  REQUIRE(roster_set(*phone, "<item jid='bob@localhost'/>"));
  auto first = roster_get(*phone, "");
  REQUIRE(first);
  const std::string ver(query_of(*first)->attr("ver"));
  CHECK_FALSE(ver.empty());
  CHECK(query_of(*first)->element_count() == 1);

  // A second session with that version: an empty result.
  auto laptop = connect(server, "alice@localhost/laptop");
  auto same = roster_get(*laptop, ver);
  REQUIRE(same);
  CHECK(same->attr("type") == "result");
  CHECK(same->element_count() == 0);
  // Later changes arrive as pushes with the new version.
  REQUIRE(roster_set(*phone, "<item jid='carol@localhost' name='Carol'/>"));
  auto push = laptop->wait_for(push_for("carol@localhost"));
  REQUIRE(push);
  const std::string next(query_of(*push)->attr("ver"));
  CHECK_FALSE(next.empty());
  CHECK(next != ver);
  // With the pushed version the roster is current; with the old one it is sent whole.
  CHECK(roster_get(*laptop, next)->element_count() == 0);
  auto stale = roster_get(*laptop, ver);
  REQUIRE(query_of(*stale) != nullptr);
  CHECK(query_of(*stale)->attr("ver") == next);
  CHECK(query_of(*stale)->element_count() == 2);
  // Without 'ver': the whole roster.
  CHECK(query_of(*roster_get(*laptop))->element_count() == 2);
}

TEST_CASE("roster: modules.roster.max_items refuses a new item with resource-constraint", "[rfc6121][roster]") {
  TestServer server(three_users(ServerOptions().set("modules.roster", "max_items", "2")));
  server.start();
  auto alice = connect(server, "alice@localhost/phone");
  REQUIRE(roster_set(*alice, "<item jid='bob@localhost'/>")->attr("type") == "result");
  REQUIRE(roster_set(*alice, "<item jid='carol@localhost'/>")->attr("type") == "result");
  auto third = roster_set(*alice, "<item jid='dave@localhost'/>");
  REQUIRE(third);
  CHECK(third->attr("type") == "error");
  CHECK(error_condition(*third) == "resource-constraint");
  // A subscription request that needs a new item is refused too, and never reaches the contact.
  alice->send("<presence to='erin@localhost' type='subscribe' id='sub-erin'/>");
  auto refused = alice->wait_for([](const Element& e) { return e.attr("id") == "sub-erin"; });
  REQUIRE(refused);
  CHECK(refused->attr("type") == "error");
  CHECK(error_condition(*refused) == "resource-constraint");
  // Updating an existing item still works.
  CHECK(roster_set(*alice, "<item jid='bob@localhost' name='Bob'/>")->attr("type") == "result");
  CHECK(query_of(*roster_get(*alice))->element_count() == 2);
}

// ---------------------------------------------------------------------------------------------------------------
// Subscriptions

TEST_CASE("subscription handshake in both directions, then presence to subscribers only (RFC 6121 §3.1, §4.2, §4.4)",
          "[rfc6121][presence]") {
  TestServer server(three_users());
  server.start();
  auto alice = connect(server, "alice@localhost/phone");
  auto bob = connect(server, "bob@localhost/desk");
  auto carol = connect(server, "carol@localhost/home");
  for (auto* c : {alice.get(), bob.get(), carol.get()}) {
    REQUIRE(roster_get(*c));
    c->send("<presence/>");
    settle(*c);
  }

  // A asks B (§3.1.1): A's roster gets the item with ask='subscribe'; B gets the request from A's bare JID.
  alice->send("<presence to='bob@localhost' type='subscribe' id='s1'><status>Hi, Bob!</status></presence>");
  auto ask = alice->wait_for(push_for("bob@localhost"));
  REQUIRE(ask);
  CHECK(pushed_item(*ask).attr("ask") == "subscribe");
  CHECK(pushed_item(*ask).attr("subscription") == "none");
  auto request = bob->wait_for(presence_from("alice@localhost", "subscribe"));
  REQUIRE(request);
  CHECK(request->child_text("status") == "Hi, Bob!");
  // B approves (§3.1.5): B's roster has A with 'from', A's with 'to' (§3.1.6); A gets B's current presence.
  bob->send("<presence to='alice@localhost' type='subscribed'/>");
  auto from = bob->wait_for(push_for("alice@localhost"));
  REQUIRE(from);
  CHECK(pushed_item(*from).attr("subscription") == "from");
  REQUIRE(alice->wait_for(presence_from("bob@localhost", "subscribed")));
  auto to = alice->wait_for(push_for("bob@localhost"));
  REQUIRE(to);
  CHECK(pushed_item(*to).attr("subscription") == "to");
  CHECK_FALSE(pushed_item(*to).has_attr("ask"));
  REQUIRE(alice->wait_for(presence_from("bob@localhost/desk")));

  // The other order: B asks A, A approves: 'both' on each side.
  bob->send("<presence to='alice@localhost' type='subscribe'/>");
  REQUIRE(alice->wait_for(presence_from("bob@localhost", "subscribe")));
  alice->send("<presence to='bob@localhost' type='subscribed'/>");
  REQUIRE(bob->wait_for(presence_from("alice@localhost", "subscribed")));
  REQUIRE(bob->wait_for(presence_from("alice@localhost/phone")));
  settle(*alice);
  settle(*bob);
  for (auto* c : {alice.get(), bob.get()}) {
    auto r = roster_get(*c);
    REQUIRE(query_of(*r)->element_count() == 1);
    CHECK(query_of(*r)->child("item", kRoster)->attr("subscription") == "both");
  }

  // §4.4: A's new presence reaches B (a subscriber), and not C.
  carol->received.clear();
  alice->send("<presence><show>away</show><status>lunch</status></presence>");
  auto away = bob->wait_for(
      [](const Element& e) { return presence_from("alice@localhost/phone")(e) && e.child_text("show") == "away"; });
  REQUIRE(away);
  CHECK(away->child_text("status") == "lunch");
  settle(*alice);
  REQUIRE(sync_ping(*carol));
  CHECK_FALSE(received(carol->received, presence_from("alice@localhost/phone")));
  // C's probe about A is not answered: no presence leaks to a non-subscriber (§4.3.2).
  carol->send("<presence to='alice@localhost' type='probe'/>");
  REQUIRE(sync_ping(*carol)); // the probe is in alice's queue now
  settle(*alice);             // ... and handled
  REQUIRE(sync_ping(*carol));
  CHECK_FALSE(received(carol->received, [](const Element& e) {
    return e.name() == "presence" && e.attr("from").rfind("alice@localhost", 0) == 0;
  }));
}

TEST_CASE("pre-approval: the contact's request is approved by the server (RFC 6121 §3.4)", "[rfc6121][presence]") {
  TestServer server(three_users());
  server.start();
  RawClient raw;
  Element features = login_unbound(raw, server.port(), "alice", "alice-pw");
  CHECK(features.child("sub", "urn:xmpp:features:pre-approval") != nullptr);

  auto alice = connect(server, "alice@localhost/phone");
  auto bob = online(server, "bob@localhost/desk");
  REQUIRE(roster_get(*alice));
  alice->send("<presence><status>pre-approved you</status></presence>");
  // A pre-approves B: the item with approved='true', nothing sent to B.
  alice->send("<presence to='bob@localhost' type='subscribed'/>");
  auto approved = alice->wait_for(push_for("bob@localhost"));
  REQUIRE(approved);
  CHECK(pushed_item(*approved).attr("approved") == "true");
  CHECK(pushed_item(*approved).attr("subscription") == "none");
  settle(*alice);
  REQUIRE(sync_ping(*bob));
  CHECK_FALSE(received(bob->received, presence_from("alice@localhost", "subscribed")));

  // B asks: approved at once, with A's presence; A's roster says 'from'; A never sees the request. (The approval
  // goes to B's interested resources, §3.1.6: B asks for its roster first.)
  REQUIRE(roster_get(*bob));
  bob->send("<presence to='alice@localhost' type='subscribe'/>");
  REQUIRE(bob->wait_for(presence_from("alice@localhost", "subscribed")));
  auto presence = bob->wait_for(presence_from("alice@localhost/phone"));
  REQUIRE(presence);
  CHECK(presence->child_text("status") == "pre-approved you");
  auto from = alice->wait_for(push_for("bob@localhost"));
  REQUIRE(from);
  CHECK(pushed_item(*from).attr("subscription") == "from");
  CHECK_FALSE(pushed_item(*from).has_attr("approved"));
  settle(*alice);
  CHECK_FALSE(received(alice->received, presence_from("bob@localhost", "subscribe")));
}

TEST_CASE("a subscription request to an offline user is stored and delivered at login, also after a restart "
          "(RFC 6121 §3.1.3)",
          "[rfc6121][presence]") {
  TestServer server;
  server.add_user("alice", "alice-pw");
  server.add_user("bob", "bob-pw");
  server.start();
  {
    auto alice = connect(server, "alice@localhost/phone");
    REQUIRE(roster_get(*alice));
    alice->send("<presence to='bob@localhost' type='subscribe' id='req'><status>It is Alice</status>"
                "<nick xmlns='http://jabber.org/protocol/nick'>Ally</nick></presence>");
    auto ask = alice->wait_for(push_for("bob@localhost"));
    REQUIRE(ask);
    // Bob's server side has kept it (the module logs that at debug level).
    REQUIRE(wait_for_log(server, "kept the subscription request from alice@localhost to bob@localhost"));
    alice->disconnect();
  }
  // The request must survive the server.
  REQUIRE(server.stop() == 0);
  server.start();

  auto bob = connect(server, "bob@localhost/desk");
  // Bound, no presence yet: not delivered. Initial presence: delivered, whole.
  REQUIRE(sync_ping(*bob));
  CHECK_FALSE(received(bob->received, presence_from("alice@localhost", "subscribe")));
  bob->send("<presence/>");
  auto request = bob->wait_for(presence_from("alice@localhost", "subscribe"));
  REQUIRE(request);
  CHECK(request->attr("id") == "req");
  CHECK(request->child_text("status") == "It is Alice");
  CHECK(request->child("nick", "http://jabber.org/protocol/nick") != nullptr);
  // Not in bob's roster until he answers.
  CHECK(query_of(*roster_get(*bob))->element_count() == 0);
  // Still unanswered at the next login: delivered again.
  bob->disconnect();
  bob = connect(server, "bob@localhost/desk");
  REQUIRE(roster_get(*bob));
  bob->send("<presence/>");
  REQUIRE(bob->wait_for(presence_from("alice@localhost", "subscribe")));

  // Bob approves while alice is offline; at her login her roster says 'to' and she sees bob online (probe).
  bob->send("<presence to='alice@localhost' type='subscribed'/>");
  auto from = bob->wait_for(push_for("alice@localhost"));
  REQUIRE(from);
  CHECK(pushed_item(*from).attr("subscription") == "from");
  REQUIRE(wait_for_log(server, "subscribed from bob@localhost to alice@localhost"));
  auto alice = connect(server, "alice@localhost/phone");
  auto r = roster_get(*alice);
  REQUIRE(query_of(*r)->element_count() == 1);
  CHECK(query_of(*r)->child("item", kRoster)->attr("subscription") == "to");
  CHECK_FALSE(query_of(*r)->child("item", kRoster)->has_attr("ask"));
  alice->send("<presence/>");
  REQUIRE(alice->wait_for(presence_from("bob@localhost/desk")));
  // Answered: bob's next login brings no request.
  bob->disconnect();
  bob = connect(server, "bob@localhost/desk");
  bob->send("<presence/>");
  settle(*bob);
  REQUIRE(sync_ping(*bob));
  CHECK_FALSE(received(bob->received, presence_from("alice@localhost", "subscribe")));
}

TEST_CASE("unsubscribe and unsubscribed end each direction of a subscription (RFC 6121 §3.2, §3.3)",
          "[rfc6121][presence]") {
  TestServer server(three_users());
  server.start();
  auto alice = online(server, "alice@localhost/phone");
  auto bob = online(server, "bob@localhost/desk");
  subscribe(*alice, "alice@localhost", *bob, "bob@localhost");
  subscribe(*bob, "bob@localhost", *alice, "alice@localhost");
  alice->received.clear();
  bob->received.clear();

  // §3.3: A unsubscribes from B: A has 'from', B has 'to'; B's resources tell A they are unavailable to her.
  alice->send("<presence to='bob@localhost' type='unsubscribe'/>");
  REQUIRE(bob->wait_for(presence_from("alice@localhost", "unsubscribe")));
  auto b_push = bob->wait_for(push_for("alice@localhost"));
  REQUIRE(b_push);
  CHECK(pushed_item(*b_push).attr("subscription") == "to");
  auto a_push = alice->wait_for(push_for("bob@localhost"));
  REQUIRE(a_push);
  CHECK(pushed_item(*a_push).attr("subscription") == "from");
  REQUIRE(alice->wait_for(presence_from("bob@localhost/desk", "unavailable")));
  // A's presence still reaches B, B's no longer reaches A.
  settle(*bob);
  alice->received.clear();
  bob->send("<presence><show>dnd</show></presence>");
  settle(*bob);
  REQUIRE(sync_ping(*alice));
  CHECK_FALSE(received(alice->received, presence_from("bob@localhost/desk")));
  alice->send("<presence><show>chat</show></presence>");
  REQUIRE(bob->wait_for(
      [](const Element& e) { return presence_from("alice@localhost/phone")(e) && e.child_text("show") == "chat"; }));

  // §3.2: A cancels B's subscription: B gets A's unavailable and the unsubscribed; both sides end with 'none'.
  alice->send("<presence to='bob@localhost' type='unsubscribed'/>");
  REQUIRE(bob->wait_for(presence_from("alice@localhost/phone", "unavailable")));
  REQUIRE(bob->wait_for(presence_from("alice@localhost", "unsubscribed")));
  auto b_none = bob->wait_for(push_for("alice@localhost"));
  REQUIRE(b_none);
  CHECK(pushed_item(*b_none).attr("subscription") == "none");
  auto a_none = alice->wait_for(push_for("bob@localhost"));
  REQUIRE(a_none);
  CHECK(pushed_item(*a_none).attr("subscription") == "none");
}

// ---------------------------------------------------------------------------------------------------------------
// Presence

TEST_CASE("probes at login: the later user sees the earlier one's presence at once (RFC 6121 §4.2, §4.3)",
          "[rfc6121][presence]") {
  TestServer server(three_users());
  server.start();
  {
    auto alice = online(server, "alice@localhost/phone");
    auto bob = online(server, "bob@localhost/desk");
    subscribe(*alice, "alice@localhost", *bob, "bob@localhost");
    subscribe(*bob, "bob@localhost", *alice, "alice@localhost");
    alice->disconnect();
    bob->disconnect();
  }
  // A is online with a status; B logs in afterwards.
  auto alice = connect(server, "alice@localhost/phone");
  REQUIRE(roster_get(*alice));
  alice->send("<presence><status>in the garden</status></presence>");
  settle(*alice);
  auto bob = connect(server, "bob@localhost/desk");
  bob->send("<presence><priority>5</priority></presence>");
  // B's probe is answered with A's last presence; A gets B's initial presence.
  auto seen = bob->wait_for(presence_from("alice@localhost/phone"));
  REQUIRE(seen);
  CHECK(seen->child_text("status") == "in the garden");
  auto back = alice->wait_for(presence_from("bob@localhost/desk"));
  REQUIRE(back);
  CHECK(back->child_text("priority") == "5");
  // B's own initial presence comes back to B (§4.2.2).
  REQUIRE(bob->wait_for(presence_from("bob@localhost/desk")));
  // A second resource of A sees the first one's presence, and the first sees the second (§4.2.2).
  auto tablet = connect(server, "alice@localhost/tablet");
  tablet->send("<presence/>");
  REQUIRE(tablet->wait_for(presence_from("alice@localhost/phone")));
  REQUIRE(alice->wait_for(presence_from("alice@localhost/tablet")));
  REQUIRE(bob->wait_for(presence_from("alice@localhost/tablet")));
}

TEST_CASE("unavailable presence when a session ends cleanly or abruptly (RFC 6121 §4.5)", "[rfc6121][presence]") {
  TestServer server(three_users());
  server.start();
  auto alice = online(server, "alice@localhost/phone");
  {
    auto bob = online(server, "bob@localhost/desk");
    subscribe(*alice, "alice@localhost", *bob, "bob@localhost");
    subscribe(*bob, "bob@localhost", *alice, "alice@localhost");
    bob->disconnect();
  }

  // Clean: the stream is closed without unavailable presence.
  {
    RawClient bob;
    bob.login(server.port(), "bob", "bob-pw", "raw");
    bob.send("<presence/>");
    REQUIRE(alice->wait_for(presence_from("bob@localhost/raw")));
    bob.send("</stream:stream>");
    REQUIRE(bob.wait_closed());
  }
  REQUIRE(alice->wait_for(presence_from("bob@localhost/raw", "unavailable")));

  // Abrupt: the connection drops (no </stream:stream>, no unavailable).
  {
    RawClient bob;
    bob.login(server.port(), "bob", "bob-pw", "raw2");
    bob.send("<presence/>");
    REQUIRE(alice->wait_for(presence_from("bob@localhost/raw2")));
  } // the socket is closed here
  REQUIRE(alice->wait_for(presence_from("bob@localhost/raw2", "unavailable")));

  // Explicit unavailable presence, with a status.
  auto bob = connect(server, "bob@localhost/boat");
  bob->send("<presence/>");
  REQUIRE(alice->wait_for(presence_from("bob@localhost/boat")));
  bob->send("<presence type='unavailable'><status>gone fishing</status></presence>");
  auto gone = alice->wait_for(presence_from("bob@localhost/boat", "unavailable"));
  REQUIRE(gone);
  CHECK(gone->child_text("status") == "gone fishing");
}

TEST_CASE("directed presence reaches its recipient, and so does the sender's unavailable presence (RFC 6121 §4.6)",
          "[rfc6121][presence]") {
  TestServer server(three_users());
  server.start();
  auto carol = connect(server, "carol@localhost/home");
  carol->send("<presence/>");
  settle(*carol);
  auto bob = connect(server, "bob@localhost/desk");
  bob->send("<presence/>");
  settle(*bob);
  {
    RawClient alice;
    alice.login(server.port(), "alice", "alice-pw", "phone");
    alice.send("<presence/>");
    // No subscription between alice and carol: directed presence only.
    alice.send("<presence to='carol@localhost/home'><status>just for you</status></presence>");
    auto directed = carol->wait_for(presence_from("alice@localhost/phone"));
    REQUIRE(directed);
    CHECK(directed->child_text("status") == "just for you");
    // Alice's unavailable presence reaches carol: the session remembered its directed presence.
    alice.send("<presence type='unavailable'/>");
    REQUIRE(carol->wait_for(presence_from("alice@localhost/phone", "unavailable")));
    // Directed again, then the connection drops.
    alice.send("<presence to='carol@localhost'/>");
    REQUIRE(carol->wait_for(presence_from("alice@localhost/phone")));
  }
  REQUIRE(carol->wait_for(presence_from("alice@localhost/phone", "unavailable")));
  // Bob, with neither subscription nor directed presence, saw nothing of alice.
  REQUIRE(sync_ping(*bob));
  CHECK_FALSE(received(bob->received, [](const Element& e) {
    return e.name() == "presence" && e.attr("from").rfind("alice@localhost", 0) == 0;
  }));
}
