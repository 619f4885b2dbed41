// Account data against the real chatgroupd: XEP-0054 vCards, XEP-0049 private XML storage, XEP-0012 last activity,
// XEP-0191 blocking and XEP-0077 in-band registration — libstrophe clients for the ordinary client path, the raw
// client where the stream itself matters (features, stream errors, registration before authentication).
//
// Synchronisation without sleeps: one client's stanzas are handled in order, so the answer to an IQ (or to a
// blocked message) shows that everything the client sent before has been handled; a ping round trip of another
// client then shows what reached it.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <charconv>
#include <memory>

using namespace it;

namespace {

constexpr const char* kVcard = "vcard-temp";
constexpr const char* kPrivate = "jabber:iq:private";
constexpr const char* kLast = "jabber:iq:last";
constexpr const char* kBlocking = "urn:xmpp:blocking";
constexpr const char* kBlockingErrors = "urn:xmpp:blocking:errors";
constexpr const char* kRegister = "jabber:iq:register";
constexpr const char* kRegisterFeature = "http://jabber.org/features/iq-register";
constexpr const char* kDiscoInfo = "http://jabber.org/protocol/disco#info";

ServerOptions users(ServerOptions opts = {}) {
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

// An IQ with `payload`, to `to` ("" = none); the reply (result or error).
Element iq(StropheClient& c, const std::string& type, const std::string& payload, const std::string& to = "") {
  const std::string id = next_id("iq");
  auto reply = c.iq(
      "<iq type='" + type + "' id='" + id + "'" + (to.empty() ? "" : " to='" + to + "'") + ">" + payload + "</iq>", id);
  REQUIRE(reply);
  return *reply;
}

Element iq(RawClient& c, const std::string& type, const std::string& payload, const std::string& to = "") {
  const std::string id = next_id("iq");
  auto reply = c.iq(
      "<iq type='" + type + "' id='" + id + "'" + (to.empty() ? "" : " to='" + to + "'") + ">" + payload + "</iq>", id);
  REQUIRE(reply);
  return *reply;
}

std::vector<std::string> features_of(const Element& query) {
  std::vector<std::string> out;
  for (const auto* f : query.children("feature", kDiscoInfo)) {
    out.emplace_back(f->attr("var"));
  }
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::vector<std::string> server_features(StropheClient& c) {
  Element r = iq(c, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", "localhost");
  REQUIRE(r.attr("type") == "result");
  return features_of(*r.child("query", kDiscoInfo));
}

auto message_with_body(const std::string& body) {
  return [body](const Element& e) { return e.name() == "message" && e.child_text("body") == body; };
}

auto presence_from(const std::string& from, const std::string& type = "") {
  return [from, type](const Element& e) {
    return e.name() == "presence" && e.attr("from") == from && e.attr("type") == type;
  };
}

bool received(const std::vector<Element>& list, const std::function<bool(const Element&)>& pred) {
  return std::any_of(list.begin(), list.end(), pred);
}

std::int64_t seconds_of(const Element& reply) {
  REQUIRE(reply.attr("type") == "result");
  const Element* q = reply.child("query", kLast);
  REQUIRE(q != nullptr);
  const auto text = q->attr("seconds");
  std::int64_t n = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  REQUIRE(ec == std::errc());
  return n;
}

// A roster get round trip: the server has handled what this account sent before (roster and presence work of one
// user is done in order).
void settle(StropheClient& c) {
  Element r = iq(c, "get", "<query xmlns='jabber:iq:roster'/>");
  REQUIRE(r.attr("type") == "result");
}

// `a` subscribes to `b`'s presence and `b` approves (RFC 6121 §3.1); both online and available.
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
// XEP-0054 vcard-temp

TEST_CASE("vcard: set and get one's own, another user reads it, nobody else writes it, size limit (XEP-0054)",
          "[account][xep0054]") {
  TestServer server(users(ServerOptions().set("modules.vcard", "max_size", "2048")));
  server.start();
  auto alice = connect(server, "alice@localhost/desk");
  auto bob = connect(server, "bob@localhost/desk");
  CHECK(contains(server_features(*alice), kVcard));

  // No vCard yet: the owner gets an empty one (§3.1), others item-not-found (§3.3).
  Element empty = iq(*alice, "get", "<vCard xmlns='vcard-temp'/>");
  REQUIRE(empty.attr("type") == "result");
  REQUIRE(empty.child("vCard", kVcard) != nullptr);
  CHECK(empty.child("vCard", kVcard)->children().empty());
  CHECK(error_condition(iq(*bob, "get", "<vCard xmlns='vcard-temp'/>", "alice@localhost")) == "item-not-found");

  const std::string card = "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>alice</NICKNAME>"
                           "<N><FAMILY>Liddell</FAMILY><GIVEN>Alice</GIVEN></N></vCard>";
  CHECK(iq(*alice, "set", card).attr("type") == "result");
  Element own = iq(*alice, "get", "<vCard xmlns='vcard-temp'/>");
  REQUIRE(own.child("vCard", kVcard) != nullptr);
  CHECK(own.child("vCard", kVcard)->child_text("FN", kVcard) == "Alice Liddell");

  // Another user reads it at the bare JID (the server answers, §3.3), even while Alice is offline.
  alice->disconnect();
  Element other = iq(*bob, "get", "<vCard xmlns='vcard-temp'/>", "alice@localhost");
  REQUIRE(other.attr("type") == "result");
  CHECK(other.attr("from") == "alice@localhost");
  CHECK(other.child("vCard", kVcard)->child_text("NICKNAME", kVcard) == "alice");

  // Nobody else sets it (§3.2: forbidden).
  Element forged = iq(*bob, "set", "<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>", "alice@localhost");
  CHECK(forged.attr("type") == "error");
  CHECK(error_condition(forged) == "forbidden");
  CHECK(iq(*bob, "get", "<vCard xmlns='vcard-temp'/>", "alice@localhost")
            .child("vCard", kVcard)
            ->child_text("FN", kVcard) == "Alice Liddell");

  // Over modules.vcard.max_size: not-acceptable, and the old vCard stays.
  alice = connect(server, "alice@localhost/desk");
  Element big = iq(*alice, "set",
                   "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>" +
                       std::string(3000, 'A') + "</BINVAL></PHOTO></vCard>");
  CHECK(big.attr("type") == "error");
  CHECK(error_condition(big) == "not-acceptable");
  CHECK(iq(*alice, "get", "<vCard xmlns='vcard-temp'/>").child("vCard", kVcard)->child_text("FN", kVcard) ==
        "Alice Liddell");
  // Kept in storage: the same after a restart.
  alice->disconnect();
  bob->disconnect();
  REQUIRE(server.stop() == 0);
  server.start();
  bob = connect(server, "bob@localhost/desk");
  CHECK(iq(*bob, "get", "<vCard xmlns='vcard-temp'/>", "alice@localhost")
            .child("vCard", kVcard)
            ->child_text("FN", kVcard) == "Alice Liddell");
  // A vCard of a user that does not exist: the router's service-unavailable.
  CHECK(error_condition(iq(*bob, "get", "<vCard xmlns='vcard-temp'/>", "nobody@localhost")) == "service-unavailable");
}

// ---------------------------------------------------------------------------------------------------------------
// XEP-0049 private XML storage

TEST_CASE("private: store and retrieve per namespace, from another resource — others and reserved namespaces "
          "refused (XEP-0049)",
          "[account][xep0049]") {
  TestServer server(users());
  server.start();
  auto phone = connect(server, "alice@localhost/phone");
  auto bob = connect(server, "bob@localhost/desk");

  const std::string bookmarks = "<storage xmlns='storage:bookmarks'><conference jid='tea@muc.localhost' "
                                "autojoin='true' name='Tea party'><nick>alice</nick></conference></storage>";
  CHECK(iq(*phone, "set",
           "<query xmlns='jabber:iq:private'>" + bookmarks +
               "<prefs xmlns='urn:example:prefs'><theme>dark</theme></prefs></query>")
            .attr("type") == "result");

  // Another resource of the same account reads each element by its namespace.
  auto laptop = connect(server, "alice@localhost/laptop");
  Element got = iq(*laptop, "get", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>");
  REQUIRE(got.attr("type") == "result");
  const Element* storage = got.child("query", kPrivate)->child("storage", "storage:bookmarks");
  REQUIRE(storage != nullptr);
  const Element* conf = storage->child("conference", "storage:bookmarks");
  REQUIRE(conf != nullptr);
  CHECK(conf->attr("jid") == "tea@muc.localhost");
  CHECK(conf->child_text("nick", "storage:bookmarks") == "alice");
  Element prefs = iq(*laptop, "get", "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query>");
  CHECK(prefs.child("query", kPrivate)->child("prefs", "urn:example:prefs")->child_text("theme", "urn:example:prefs") ==
        "dark");
  // Nothing stored under a namespace: the element comes back empty.
  Element none = iq(*laptop, "get", "<query xmlns='jabber:iq:private'><x xmlns='urn:example:none'/></query>");
  REQUIRE(none.attr("type") == "result");
  CHECK(none.child("query", kPrivate)->child("x", "urn:example:none")->children().empty());

  // Another user: forbidden, to read and to write (§2.3, §5).
  Element peek = iq(*bob, "get", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>",
                    "alice@localhost");
  CHECK(error_condition(peek) == "forbidden");
  const Element* echoed = peek.child("query", kPrivate);
  const Element* leaked = echoed != nullptr ? echoed->child("storage", "storage:bookmarks") : nullptr;
  CHECK((leaked == nullptr || leaked->children().empty())); // nothing of Alice's data comes back
  CHECK(error_condition(iq(*bob, "set", "<query xmlns='jabber:iq:private'>" + bookmarks + "</query>",
                           "alice@localhost")) == "forbidden");

  // Reserved namespaces and an empty query: not-acceptable (§2.3).
  CHECK(error_condition(iq(*phone, "set",
                           "<query xmlns='jabber:iq:private'><vCard xmlns='vcard-temp'><FN>A</FN>"
                           "</vCard></query>")) == "not-acceptable");
  CHECK(error_condition(iq(*phone, "set", "<query xmlns='jabber:iq:private'><x xmlns='jabber:client'/></query>")) ==
        "not-acceptable");
  CHECK(error_condition(iq(*phone, "get", "<query xmlns='jabber:iq:private'><query/></query>")) == "not-acceptable");
  CHECK(error_condition(iq(*phone, "get", "<query xmlns='jabber:iq:private'/>")) == "not-acceptable");

  // Bob's own storage is his.
  CHECK(iq(*bob, "get", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
            .child("query", kPrivate)
            ->child("storage", "storage:bookmarks")
            ->children()
            .empty());
}

// ---------------------------------------------------------------------------------------------------------------
// XEP-0012 last activity

TEST_CASE("last: the server's uptime — 0 for an online user — forbidden without a presence subscription (XEP-0012)",
          "[account][xep0012]") {
  TestServer server(users());
  server.start();
  auto alice = connect(server, "alice@localhost/desk");
  auto bob = connect(server, "bob@localhost/desk");
  CHECK(contains(server_features(*alice), kLast));

  // §4: to the server, its uptime, without text.
  Element up = iq(*bob, "get", "<query xmlns='jabber:iq:last'/>", "localhost");
  CHECK(seconds_of(up) >= 0);
  CHECK(seconds_of(up) < 120);
  CHECK(up.child("query", kLast)->children().empty());

  // The user asking about the own account while available: 0 (§2).
  alice->send("<presence/>");
  CHECK(seconds_of(iq(*alice, "get", "<query xmlns='jabber:iq:last'/>")) == 0);
  // Bob is not subscribed to Alice's presence: forbidden (§2, §7) — whether she is online or not.
  CHECK(error_condition(iq(*bob, "get", "<query xmlns='jabber:iq:last'/>", "alice@localhost")) == "forbidden");
  alice->disconnect();
  CHECK(error_condition(iq(*bob, "get", "<query xmlns='jabber:iq:last'/>", "alice@localhost")) == "forbidden");
}

TEST_CASE("last: a subscribed contact learns how long ago the user logged out, and their last status (XEP-0012 §2)",
          "[account][xep0012][presence]") {
  TestServer server(users());
  server.start();
  auto alice = connect(server, "alice@localhost/desk");
  auto bob = connect(server, "bob@localhost/desk");
  alice->send("<presence/>");
  bob->send("<presence/>");
  subscribe(*bob, "bob@localhost", *alice, "alice@localhost"); // Bob sees Alice's presence

  // Online: 0.
  Element online = iq(*bob, "get", "<query xmlns='jabber:iq:last'/>", "alice@localhost");
  CHECK(seconds_of(online) == 0);
  // Alice says goodbye and leaves; Bob sees her go.
  alice->send("<presence type='unavailable'><status>Heading Home</status></presence>");
  REQUIRE(bob->wait_for(presence_from("alice@localhost/desk", "unavailable")));
  alice->disconnect();
  REQUIRE(wait_for_log(server, "alice@localhost/desk disconnected"));
  Element gone = iq(*bob, "get", "<query xmlns='jabber:iq:last'/>", "alice@localhost");
  CHECK(seconds_of(gone) <= 5);
  CHECK(gone.child("query", kLast)->text() == "Heading Home");
  // Carol, not subscribed, learns nothing.
  auto carol = connect(server, "carol@localhost/desk");
  CHECK(error_condition(iq(*carol, "get", "<query xmlns='jabber:iq:last'/>", "alice@localhost")) == "forbidden");
}

// ---------------------------------------------------------------------------------------------------------------
// XEP-0191 blocking

TEST_CASE("blocking: a blocked user's messages, presence and IQs stop — the user's own are refused with <blocked/> — "
          "pushes — unblock restores (XEP-0191)",
          "[account][xep0191]") {
  TestServer server(users());
  server.start();
  auto phone = connect(server, "alice@localhost/phone");
  auto laptop = connect(server, "alice@localhost/laptop");
  auto bob = connect(server, "bob@localhost/desk");
  auto carol = connect(server, "carol@localhost/desk");
  for (auto* c : {phone.get(), laptop.get(), bob.get(), carol.get()}) {
    c->send("<presence/>");
    REQUIRE(sync_ping(*c));
  }
  CHECK(contains(server_features(*phone), kBlocking));

  // The laptop asks for the blocklist (and so gets pushes); the phone does not.
  Element list = iq(*laptop, "get", "<blocklist xmlns='urn:xmpp:blocking'/>");
  REQUIRE(list.attr("type") == "result");
  CHECK(list.child("blocklist", kBlocking)->children().empty());

  // Before: Bob's message arrives.
  bob->send("<message to='alice@localhost' type='chat'><body>before</body></message>");
  REQUIRE(phone->wait_for(message_with_body("before")));

  CHECK(iq(*phone, "set", "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>").attr("type") ==
        "result");
  // §5.3: the push reaches the resource that asked for the list.
  auto push = laptop->wait_for([](const Element& e) {
    return e.name() == "iq" && e.attr("type") == "set" && e.child("block", kBlocking) != nullptr;
  });
  REQUIRE(push);
  REQUIRE(push->child("block", kBlocking)->child("item", kBlocking) != nullptr);
  CHECK(push->child("block", kBlocking)->child("item", kBlocking)->attr("jid") == "bob@localhost");
  laptop->send("<iq type='result' id='" + std::string(push->attr("id")) + "'/>");
  Element listed = iq(*laptop, "get", "<blocklist xmlns='urn:xmpp:blocking'/>");
  REQUIRE(listed.child("blocklist", kBlocking)->child("item", kBlocking) != nullptr);
  CHECK(listed.child("blocklist", kBlocking)->child("item", kBlocking)->attr("jid") == "bob@localhost");

  // Bob's directed presence is dropped without a word; his message gets service-unavailable (after the presence:
  // one stream is handled in order), and his IQ to Alice's account too.
  bob->send("<presence to='alice@localhost/phone'><status>hello?</status></presence>");
  bob->send("<message to='alice@localhost' type='chat' id='m-blocked'><body>blocked</body></message>");
  auto bounced = bob->wait_for([](const Element& e) { return e.name() == "message" && e.attr("id") == "m-blocked"; });
  REQUIRE(bounced);
  CHECK(bounced->attr("type") == "error");
  CHECK(error_condition(*bounced) == "service-unavailable");
  CHECK(error_condition(iq(*bob, "get", "<vCard xmlns='vcard-temp'/>", "alice@localhost")) == "service-unavailable");
  CHECK(error_condition(iq(*bob, "get", "<ping xmlns='urn:xmpp:ping'/>", "alice@localhost/phone")) ==
        "service-unavailable");
  REQUIRE(sync_ping(*phone));
  REQUIRE(sync_ping(*laptop));
  for (auto* c : {phone.get(), laptop.get()}) {
    CHECK_FALSE(received(c->received, message_with_body("blocked")));
    CHECK_FALSE(received(c->received, presence_from("bob@localhost/desk")));
  }
  // Carol is not blocked.
  carol->send("<message to='alice@localhost' type='chat'><body>from carol</body></message>");
  CHECK(phone->wait_for(message_with_body("from carol")));

  // Alice's own stanzas to Bob: not-acceptable with <blocked xmlns='urn:xmpp:blocking:errors'/>, not delivered.
  phone->send("<message to='bob@localhost' type='chat' id='to-bob'><body>psst</body></message>");
  auto refused = phone->wait_for([](const Element& e) { return e.name() == "message" && e.attr("id") == "to-bob"; });
  REQUIRE(refused);
  CHECK(refused->attr("type") == "error");
  CHECK(error_condition(*refused) == "not-acceptable");
  REQUIRE(refused->child("error") != nullptr);
  CHECK(has_child(*refused->child("error"), "blocked", kBlockingErrors));
  REQUIRE(sync_ping(*bob));
  CHECK_FALSE(received(bob->received, message_with_body("psst")));

  // Unblock: the push, then Bob gets through again and Alice reaches him.
  CHECK(iq(*phone, "set", "<unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock>").attr("type") ==
        "result");
  auto unpush = laptop->wait_for([](const Element& e) {
    return e.name() == "iq" && e.attr("type") == "set" && e.child("unblock", kBlocking) != nullptr;
  });
  REQUIRE(unpush);
  CHECK(unpush->child("unblock", kBlocking)->child("item", kBlocking)->attr("jid") == "bob@localhost");
  bob->send("<message to='alice@localhost' type='chat'><body>after</body></message>");
  CHECK(phone->wait_for(message_with_body("after")));
  phone->send("<message to='bob@localhost' type='chat'><body>welcome back</body></message>");
  CHECK(bob->wait_for(message_with_body("welcome back")));
}

TEST_CASE("blocking: the block outlives the session and a restart, covers a whole domain, and unblock-all lifts it "
          "(XEP-0191)",
          "[account][xep0191]") {
  TestServer server(users());
  server.start();
  {
    auto alice = connect(server, "alice@localhost/phone");
    CHECK(iq(*alice, "set",
             "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/>"
             "<item jid='example.org'/></block>")
              .attr("type") == "result");
    alice->disconnect();
  }
  // Alice is offline: Bob's message is refused, not kept for her.
  auto bob = connect(server, "bob@localhost/desk");
  bob->send("<message to='alice@localhost' type='chat' id='offline'><body>while away</body></message>");
  auto bounced = bob->wait_for([](const Element& e) { return e.name() == "message" && e.attr("id") == "offline"; });
  REQUIRE(bounced);
  CHECK(error_condition(*bounced) == "service-unavailable");

  // And after a restart: the blocklists are read back from storage when the server starts.
  bob->disconnect();
  REQUIRE(server.stop() == 0);
  server.start();
  bob = connect(server, "bob@localhost/desk");
  bob->send("<message to='alice@localhost' type='chat' id='restarted'><body>after restart</body></message>");
  bounced = bob->wait_for([](const Element& e) { return e.name() == "message" && e.attr("id") == "restarted"; });
  REQUIRE(bounced);
  CHECK(error_condition(*bounced) == "service-unavailable");

  auto alice = connect(server, "alice@localhost/phone");
  alice->send("<presence/>");
  REQUIRE(sync_ping(*alice));
  CHECK_FALSE(received(alice->received, message_with_body("while away")));
  CHECK_FALSE(received(alice->received, message_with_body("after restart")));
  Element list = iq(*alice, "get", "<blocklist xmlns='urn:xmpp:blocking'/>");
  std::vector<std::string> items;
  for (const auto* i : list.child("blocklist", kBlocking)->children("item", kBlocking)) {
    items.emplace_back(i->attr("jid"));
  }
  CHECK(items == std::vector<std::string>{"bob@localhost", "example.org"});
  // A domain item covers every address at it (§4): the error comes back at once (no s2s attempt).
  Element remote = iq(*alice, "get", "<ping xmlns='urn:xmpp:ping'/>", "someone@chat.example.org");
  CHECK(error_condition(remote) == "not-acceptable");

  CHECK(iq(*alice, "set", "<unblock xmlns='urn:xmpp:blocking'/>").attr("type") == "result");
  CHECK(iq(*alice, "get", "<blocklist xmlns='urn:xmpp:blocking'/>").child("blocklist", kBlocking)->children().empty());
  bob->send("<message to='alice@localhost' type='chat'><body>again</body></message>");
  CHECK(alice->wait_for(message_with_body("again")));
}

TEST_CASE("blocking: a blocked contact who had the user's presence gets unavailable, and the presence again on "
          "unblock (XEP-0191 §5.3, §5.4)",
          "[account][xep0191][presence]") {
  TestServer server(users());
  server.start();
  auto alice = connect(server, "alice@localhost/phone");
  auto bob = connect(server, "bob@localhost/desk");
  alice->send("<presence><status>in the garden</status></presence>");
  bob->send("<presence/>");
  subscribe(*bob, "bob@localhost", *alice, "alice@localhost"); // Bob sees Alice's presence
  alice->send("<presence><status>in the garden</status></presence>");
  REQUIRE(bob->wait_for(presence_from("alice@localhost/phone")));
  settle(*alice);
  REQUIRE(sync_ping(*bob));
  bob->received.clear();

  CHECK(iq(*alice, "set", "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>").attr("type") ==
        "result");
  CHECK(bob->wait_for(presence_from("alice@localhost/phone", "unavailable")));
  // While blocked, Alice's presence changes do not reach Bob.
  alice->send("<presence><status>still here</status></presence>");
  settle(*alice);
  REQUIRE(sync_ping(*bob));
  CHECK_FALSE(received(bob->received, [](const Element& e) {
    return e.name() == "presence" && e.child_text("status") == "still here";
  }));

  CHECK(iq(*alice, "set", "<unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock>").attr("type") ==
        "result");
  auto back = bob->wait_for(presence_from("alice@localhost/phone"));
  REQUIRE(back);
  CHECK(back->child_text("status") == "still here");
}

// ---------------------------------------------------------------------------------------------------------------
// XEP-0077 in-band registration

TEST_CASE("register: off by default — no stream feature, a pre-authentication IQ ends the stream, no in-band "
          "password change (XEP-0077)",
          "[account][xep0077]") {
  TestServer server(users());
  server.start();
  RawClient c;
  c.connect(server.port());
  Element features = c.starttls_and_reopen();
  CHECK_FALSE(has_child(features, "register", kRegisterFeature));
  c.send("<iq type='get' id='reg1'><query xmlns='jabber:iq:register'/></iq>");
  REQUIRE(c.wait_closed());
  CHECK(c.stream_error() == "not-authorized");

  auto alice = connect(server, "alice@localhost/desk");
  CHECK_FALSE(contains(server_features(*alice), kRegister));
  Element change = iq(*alice, "set",
                      "<query xmlns='jabber:iq:register'><username>alice</username>"
                      "<password>new</password></query>");
  CHECK(error_condition(change) == "service-unavailable");
}

TEST_CASE("register: on — offered after TLS only — register, log in, conflict, rate limit per address — change the "
          "password — remove the account (XEP-0077)",
          "[account][xep0077]") {
  TestServer server(users(ServerOptions()
                              .set("modules", "enabled", "[\"disco\", \"ping\", \"register\"]")
                              .set("modules.register", "max_per_hour", "3")
                              .set("auth", "failure_delay", "0")));
  server.start();

  // Before TLS (required by default): nothing but STARTTLS is offered, and a registration IQ ends the stream.
  {
    RawClient plain;
    plain.connect(server.port());
    plain.open_stream();
    REQUIRE(plain.next()); // the stream header
    auto features = plain.next_element();
    REQUIRE(features);
    CHECK_FALSE(has_child(*features, "register", kRegisterFeature));
    plain.send("<iq type='get' id='reg0'><query xmlns='jabber:iq:register'/></iq>");
    REQUIRE(plain.wait_closed());
    CHECK(plain.stream_error() == "not-authorized");
  }

  RawClient c;
  c.connect(server.port());
  Element features = c.starttls_and_reopen();
  // §8: the stream feature, after TLS, with the SASL mechanisms.
  CHECK(has_child(features, "register", kRegisterFeature));
  // §3.1: the fields.
  Element form = iq(c, "get", "<query xmlns='jabber:iq:register'/>");
  REQUIRE(form.attr("type") == "result");
  const Element* q = form.child("query", kRegister);
  REQUIRE(q != nullptr);
  CHECK(q->child("username", kRegister) != nullptr);
  CHECK(q->child("password", kRegister) != nullptr);
  CHECK_FALSE(q->child_text("instructions", kRegister).empty());
  // Missing password: not-acceptable (not counted against the limit).
  CHECK(error_condition(iq(c, "set", "<query xmlns='jabber:iq:register'><username>dave</username></query>")) ==
        "not-acceptable");
  // 1: created. 2: the same name again, conflict. 3: another name. 4: over max_per_hour = 3.
  CHECK(iq(c, "set",
           "<query xmlns='jabber:iq:register'><username>dave</username><password>dave-pw</password>"
           "</query>")
            .attr("type") == "result");
  CHECK(error_condition(iq(c, "set",
                           "<query xmlns='jabber:iq:register'><username>dave</username>"
                           "<password>other</password></query>")) == "conflict");
  CHECK(iq(c, "set",
           "<query xmlns='jabber:iq:register'><username>erin</username><password>erin-pw</password>"
           "</query>")
            .attr("type") == "result");
  Element limited = iq(c, "set",
                       "<query xmlns='jabber:iq:register'><username>frank</username>"
                       "<password>frank-pw</password></query>");
  CHECK(error_condition(limited) == "policy-violation");
  CHECK(limited.child("error")->attr("type") == "wait");
  {
    // The limit is per address, not per connection.
    RawClient again;
    again.connect(server.port());
    again.starttls_and_reopen();
    CHECK(error_condition(iq(again, "set",
                             "<query xmlns='jabber:iq:register'><username>frank</username>"
                             "<password>frank-pw</password></query>")) == "policy-violation");
  }

  // The new account logs in (on a fresh connection; libstrophe, a real client).
  auto dave = std::make_unique<StropheClient>("dave@localhost/desk", "dave-pw");
  REQUIRE(dave->connect(server.port(), server.cert_path()));
  auto dave2 = std::make_unique<StropheClient>("dave@localhost/phone", "dave-pw");
  REQUIRE(dave2->connect(server.port(), server.cert_path()));
  CHECK(contains(server_features(*dave), kRegister));
  // §3.1: registered.
  Element reg = iq(*dave, "get", "<query xmlns='jabber:iq:register'/>");
  REQUIRE(reg.attr("type") == "result");
  CHECK(reg.child("query", kRegister)->child("registered", kRegister) != nullptr);
  CHECK(reg.child("query", kRegister)->child_text("username", kRegister) == "dave");

  // §3.3: password change (example 18: to the server, with the username).
  CHECK(iq(*dave, "set",
           "<query xmlns='jabber:iq:register'><username>dave</username><password>new-pw</password>"
           "</query>",
           "localhost")
            .attr("type") == "result");
  CHECK(error_condition(iq(*dave, "set",
                           "<query xmlns='jabber:iq:register'><username>dave</username><password/>"
                           "</query>")) == "bad-request");
  {
    RawClient old_pw;
    old_pw.connect(server.port());
    old_pw.starttls_and_reopen();
    CHECK(old_pw.authenticate("SCRAM-SHA-256", "dave", "dave-pw").name() == "failure");
  }
  {
    RawClient new_pw;
    CHECK(new_pw.login(server.port(), "dave", "new-pw", "check") == "dave@localhost/check");
  }

  // §3.2: remove — the result first, then <not-authorized/> on every session of the account.
  RawClient raw;
  raw.login(server.port(), "dave", "new-pw", "raw");
  auto removed =
      raw.iq("<iq type='set' id='unreg1'><query xmlns='jabber:iq:register'><remove/></query></iq>", "unreg1");
  REQUIRE(removed);
  CHECK(removed->attr("type") == "result");
  REQUIRE(raw.wait_closed());
  CHECK(raw.stream_error() == "not-authorized");
  CHECK(dave->wait_disconnected());
  CHECK(dave2->wait_disconnected());
  {
    RawClient after;
    after.connect(server.port());
    after.starttls_and_reopen();
    CHECK(after.authenticate("SCRAM-SHA-256", "dave", "new-pw").name() == "failure");
  }
  // Erin, registered on the same connection, is unaffected.
  RawClient erin;
  CHECK(erin.login(server.port(), "erin", "erin-pw", "x") == "erin@localhost/x");
}
