// Resource binding (RFC 6120 §7) and stanza routing between local users (RFC 6120 §8, §10; RFC 6121 §8) against the
// real chatgroupd: libstrophe where a real client library fits, the raw client where the exact bytes matter.
#include "tests/integration/harness.hpp"

#include "server/xml/writer.hpp"

#include <catch2/catch.hpp>

#include <memory>

using namespace it;

namespace {

ServerOptions users_alice_bob(ServerOptions opts = {}) {
  opts.users = {{"alice", "alice-pw"}, {"bob", "bob-pw"}};
  return opts;
}

// The core's own answers when nobody can take a message: without the offline module (XEP-0160), which would
// otherwise store it (tests/integration/test_offline_mam_carbons.cpp covers that path).
ServerOptions without_offline_storage() {
  ServerOptions opts = users_alice_bob();
  opts.set("modules", "enabled", R"(["disco", "ping", "version", "time", "roster", "presence"])");
  return opts;
}

// A raw client logged in and bound; sends initial presence (with <priority/> when `priority` is not 0) unless
// `presence` is false, then syncs with a ping so that the presence is in effect.
std::unique_ptr<RawClient> online(const TestServer& server, const std::string& user, const std::string& resource,
                                  int priority = 0, bool presence = true) {
  auto c = std::make_unique<RawClient>();
  c->login(server.port(), user, user + "-pw", resource);
  if (presence) {
    c->send(priority == 0 ? std::string("<presence/>")
                          : "<presence><priority>" + std::to_string(priority) + "</priority></presence>");
  }
  REQUIRE(sync_ping(*c, "online"));
  return c;
}

bool has_id(const std::vector<Element>& elements, const std::string& id) {
  for (const auto& e : elements) {
    if (e.attr("id") == id) {
      return true;
    }
  }
  return false;
}

auto error_with_id(const std::string& id) {
  return [id](const Element& e) { return e.attr("id") == id && e.attr("type") == "error"; };
}

auto message_with_id(const std::string& id) {
  return [id](const Element& e) { return e.name() == "message" && e.attr("id") == id; };
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// Resource binding

TEST_CASE("bind: the client's resource, a server-generated one, and two resources of one account at once",
          "[routing][bind]") {
  TestServer server(users_alice_bob());
  server.start();

  // RFC 6120 §7.7: the client names its resource and the server accepts it.
  StropheClient phone("alice@localhost/phone", "alice-pw");
  REQUIRE(phone.connect(server.port(), server.cert_path()));
  CHECK(phone.bound_jid() == "alice@localhost/phone");

  // RFC 6120 §7.6: no resource given → the server generates one.
  StropheClient generated("alice@localhost", "alice-pw");
  REQUIRE(generated.connect(server.port(), server.cert_path()));
  const std::string gen_jid = generated.bound_jid();
  REQUIRE(gen_jid.rfind("alice@localhost/", 0) == 0);
  CHECK(gen_jid.size() > std::string("alice@localhost/").size());
  CHECK(gen_jid != "alice@localhost/phone");

  // The same with exact bytes: an empty <bind/> gets a result with a full JID.
  RawClient raw;
  login_unbound(raw, server.port(), "alice", "alice-pw");
  auto reply = request_bind(raw, "");
  REQUIRE(reply);
  REQUIRE(reply->attr("type") == "result");
  const std::string raw_jid = reply->child("bind", cg::xml::ns::bind)->child_text("jid");
  CHECK(raw_jid.rfind("alice@localhost/", 0) == 0);
  CHECK(raw_jid.size() > std::string("alice@localhost/").size());
  CHECK(raw_jid != gen_jid);

  // All three resources are bound at once: each receives what is addressed to its full JID.
  RawClient bob;
  bob.login(server.port(), "bob", "bob-pw", "desk");
  bob.send("<message to='alice@localhost/phone' id='to-phone'><body>1</body></message>");
  bob.send("<message to='" + gen_jid + "' id='to-gen'><body>2</body></message>");
  bob.send("<message to='" + raw_jid + "' id='to-raw'><body>3</body></message>");
  CHECK(phone.wait_for(message_with_id("to-phone")));
  CHECK(generated.wait_for(message_with_id("to-gen")));
  CHECK(raw.wait_for(message_with_id("to-raw")));
  CHECK_FALSE(has_id(phone.received, "to-gen"));
  CHECK_FALSE(has_id(generated.received, "to-phone"));
}

TEST_CASE("bind: a resource that resourceprep rejects gets bad-request (RFC 6120 §7.7.2.1)", "[routing][bind]") {
  TestServer server(users_alice_bob());
  server.start();
  RawClient c;
  login_unbound(c, server.port(), "alice", "alice-pw");

  // U+E000 is private use (RFC 3454 C.3), a tab is an ASCII control character (C.2.1): both are prohibited.
  for (const std::string& bad : {std::string("x&#xE000;y"), std::string("a&#9;b"), std::string(1024, 'r')}) {
    auto reply = request_bind(c, bad, "bad");
    REQUIRE(reply);
    CHECK(reply->attr("type") == "error");
    CHECK(error_condition(*reply) == "bad-request");
  }
  // The stream is still usable: a valid resource binds.
  auto ok = request_bind(c, "good", "good");
  REQUIRE(ok);
  REQUIRE(ok->attr("type") == "result");
  CHECK(ok->child("bind", cg::xml::ns::bind)->child_text("jid") == "alice@localhost/good");
  CHECK(sync_ping(c));
}

TEST_CASE("bind: resource_conflict = kick_old (default) closes the old session with <conflict/> (RFC 6120 §7.7.2.2)",
          "[routing][bind]") {
  TestServer server(users_alice_bob());
  server.start();
  RawClient old_session;
  CHECK(old_session.login(server.port(), "alice", "alice-pw", "dup") == "alice@localhost/dup");

  StropheClient fresh("alice@localhost/dup", "alice-pw");
  REQUIRE(fresh.connect(server.port(), server.cert_path()));
  CHECK(fresh.bound_jid() == "alice@localhost/dup");

  REQUIRE(old_session.wait_closed());
  CHECK(old_session.stream_error() == "conflict");
  CHECK(old_session.raw_received().find("<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") !=
        std::string::npos);

  // The new session owns the resource now.
  REQUIRE(sync_ping(fresh));
  RawClient bob;
  bob.login(server.port(), "bob", "bob-pw", "desk");
  bob.send("<message to='alice@localhost/dup' id='after'><body>x</body></message>");
  CHECK(fresh.wait_for(message_with_id("after")));
}

TEST_CASE("bind: resource_conflict = refuse answers the second bind with a <conflict/> IQ error", "[routing][bind]") {
  TestServer server(users_alice_bob(ServerOptions().set("c2s", "resource_conflict", "\"refuse\"")));
  server.start();
  RawClient first;
  first.login(server.port(), "alice", "alice-pw", "dup");

  RawClient second;
  login_unbound(second, server.port(), "alice", "alice-pw");
  auto reply = request_bind(second, "dup");
  REQUIRE(reply);
  CHECK(reply->attr("type") == "error");
  CHECK(error_condition(*reply) == "conflict");

  // The first session is untouched; the second may bind another resource.
  CHECK(sync_ping(first));
  auto other = request_bind(second, "other", "b2");
  REQUIRE(other);
  CHECK(other->attr("type") == "result");
}

TEST_CASE("bind: c2s.max_resources = 2 refuses a third resource with resource-constraint (RFC 6120 §7.6.2.1)",
          "[routing][bind]") {
  TestServer server(users_alice_bob(ServerOptions().set("c2s", "max_resources", "2")));
  server.start();
  RawClient r1;
  RawClient r2;
  RawClient r3;
  r1.login(server.port(), "alice", "alice-pw", "r1");
  r2.login(server.port(), "alice", "alice-pw", "r2");
  login_unbound(r3, server.port(), "alice", "alice-pw");

  auto reply = request_bind(r3, "r3");
  REQUIRE(reply);
  CHECK(reply->attr("type") == "error");
  CHECK(error_condition(*reply) == "resource-constraint");
  auto generated = request_bind(r3, "", "b2");
  REQUIRE(generated);
  CHECK(error_condition(*generated) == "resource-constraint");
  // Another account is not affected by alice's limit.
  RawClient bob;
  CHECK(bob.login(server.port(), "bob", "bob-pw", "r3") == "bob@localhost/r3");

  // Once r2 has gone (its stream closed), the slot is free again.
  r2.send("</stream:stream>");
  REQUIRE(r2.wait_closed());
  auto again = request_bind(r3, "r3", "b3");
  REQUIRE(again);
  CHECK(again->attr("type") == "result");
}

// ---------------------------------------------------------------------------------------------------------------
// Messages, presence and IQs between local users

TEST_CASE("a message to the bare JID reaches every available resource with priority >= 0 (RFC 6121 §8.5.2.1.1)",
          "[routing]") {
  TestServer server(without_offline_storage());
  server.start();
  auto high = online(server, "bob", "high", 5);
  auto zero = online(server, "bob", "zero", 0);
  auto negative = online(server, "bob", "negative", -1);
  auto silent = online(server, "bob", "silent", 0, false); // bound, but never sent presence

  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));
  alice.send("<message to='bob@localhost' type='chat' id='m1'><body>hello all</body></message>");
  auto at_high = high->wait_for(message_with_id("m1"));
  auto at_zero = zero->wait_for(message_with_id("m1"));
  REQUIRE(at_high);
  REQUIRE(at_zero);
  CHECK(at_high->attr("from") == "alice@localhost/phone");
  CHECK(at_zero->child_text("body") == "hello all");

  // Negative priority and no presence: never a target. The ping answer comes after anything routed earlier.
  REQUIRE(sync_ping(*negative, "s1"));
  REQUIRE(sync_ping(*silent, "s2"));
  CHECK_FALSE(has_id(negative->skipped, "m1"));
  CHECK_FALSE(has_id(silent->skipped, "m1"));
  REQUIRE(sync_ping(alice));
  for (const auto& e : alice.received) {
    INFO(cg::xml::to_string(e));
    CHECK(e.attr("type") != "error"); // delivered: no error came back
  }

  // When only negative-priority resources remain available, it is as if none were (RFC 6121 §8.5.2.1.1 →
  // §8.5.2.2): without offline storage the sender gets service-unavailable.
  high->send("<presence type='unavailable'/>");
  REQUIRE(sync_ping(*high, "s3"));
  zero->send("<presence type='unavailable'/>");
  REQUIRE(sync_ping(*zero, "s4"));
  alice.send("<message to='bob@localhost' type='chat' id='m2'><body>anyone?</body></message>");
  auto err = alice.wait_for(error_with_id("m2"));
  REQUIRE(err);
  CHECK(error_condition(*err) == "service-unavailable");
  REQUIRE(sync_ping(*negative, "s5"));
  CHECK_FALSE(has_id(negative->skipped, "m2"));
}

TEST_CASE("'from' is stamped with the sender's full JID and a spoofed 'from' is overwritten (RFC 6120 §8.1.2.1)",
          "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  auto bob = online(server, "bob", "laptop");
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  // To a full JID, claiming to be someone else.
  alice.send("<message to='bob@localhost/laptop' from='mallory@localhost/evil' type='chat' id='full'>"
             "<body>to full</body></message>");
  auto m1 = bob->wait_for(message_with_id("full"));
  REQUIRE(m1);
  CHECK(m1->attr("from") == "alice@localhost/phone");
  CHECK(m1->attr("to") == "bob@localhost/laptop");
  CHECK(m1->child_text("body") == "to full");

  // To the bare JID, claiming to be the recipient itself.
  alice.send("<message to='bob@localhost' from='bob@localhost/laptop' type='chat' id='bare'>"
             "<body>to bare</body></message>");
  auto m2 = bob->wait_for(message_with_id("bare"));
  REQUIRE(m2);
  CHECK(m2->attr("from") == "alice@localhost/phone");

  // The answer goes back to alice's full JID (delivered to a connected resource even without presence).
  bob->send("<message to='alice@localhost/phone' from='alice@localhost/phone' type='chat' id='reply'>"
            "<body>hi alice</body></message>");
  auto m3 = alice.wait_for(message_with_id("reply"));
  REQUIRE(m3);
  CHECK(m3->attr("from") == "bob@localhost/laptop");

  // An IQ between two full JIDs, both ways, 'from' stamped each time.
  alice.send("<iq type='get' id='q1' to='bob@localhost/laptop' from='localhost'>"
             "<query xmlns='urn:example:peer'/></iq>");
  auto q = bob->wait_for([](const Element& e) { return e.name() == "iq" && e.attr("id") == "q1"; });
  REQUIRE(q);
  CHECK(q->attr("from") == "alice@localhost/phone");
  bob->send("<iq type='result' id='q1' to='alice@localhost/phone'/>");
  auto r = alice.wait_for([](const Element& e) { return e.name() == "iq" && e.attr("id") == "q1"; });
  REQUIRE(r);
  CHECK(r->attr("type") == "result");
  CHECK(r->attr("from") == "bob@localhost/laptop");

  // Subscription requests carry the sender's BARE JID (RFC 6120 §8.1.2.1, RFC 6121 §3.1.2).
  alice.send("<presence to='bob@localhost' type='subscribe' id='sub' from='mallory@localhost'/>");
  auto sub = bob->wait_for([](const Element& e) { return e.name() == "presence" && e.attr("id") == "sub"; });
  REQUIRE(sub);
  CHECK(sub->attr("type") == "subscribe");
  CHECK(sub->attr("from") == "alice@localhost");
  // Directed presence (not subscription-related) keeps the full JID.
  alice.send("<presence to='bob@localhost/laptop' id='directed'/>");
  auto directed = bob->wait_for([](const Element& e) { return e.name() == "presence" && e.attr("id") == "directed"; });
  REQUIRE(directed);
  CHECK(directed->attr("from") == "alice@localhost/phone");
}

TEST_CASE("no available resource: chat and normal get service-unavailable, headline and error are dropped "
          "(RFC 6121 §8.5.2.2)",
          "[routing]") {
  TestServer server(without_offline_storage());
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  // bob exists but is offline.
  alice.send("<message to='bob@localhost' type='chat' id='chat1'><body>are you there?</body></message>");
  auto e1 = alice.wait_for(error_with_id("chat1"));
  REQUIRE(e1);
  CHECK(e1->name() == "message");
  CHECK(e1->attr("from") == "bob@localhost");
  CHECK(e1->attr("to") == "alice@localhost/phone");
  CHECK(error_condition(*e1) == "service-unavailable");

  alice.send("<message to='bob@localhost' id='normal1'><body>no type: normal</body></message>");
  auto e2 = alice.wait_for(error_with_id("normal1"));
  REQUIRE(e2);
  CHECK(error_condition(*e2) == "service-unavailable");

  alice.send("<message to='bob@localhost' type='headline' id='head1'><body>news</body></message>");
  alice.send("<message to='bob@localhost' type='error' id='err1'><error type='cancel'>"
             "<undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
  REQUIRE(sync_ping(alice, "after-headline"));
  CHECK_FALSE(has_id(alice.received, "head1"));
  CHECK_FALSE(has_id(alice.received, "err1"));

  // bob connected and bound but never sent presence: still no available resource.
  auto bob = online(server, "bob", "quiet", 0, false);
  alice.send("<message to='bob@localhost' type='chat' id='chat2'><body>now?</body></message>");
  auto e3 = alice.wait_for(error_with_id("chat2"));
  REQUIRE(e3);
  CHECK(error_condition(*e3) == "service-unavailable");
  alice.send("<message to='bob@localhost' type='headline' id='head2'><body>news</body></message>");
  REQUIRE(sync_ping(alice, "after-headline2"));
  CHECK_FALSE(has_id(alice.received, "head2"));
  REQUIRE(sync_ping(*bob));
  CHECK_FALSE(has_id(bob->skipped, "chat2"));
  CHECK_FALSE(has_id(bob->skipped, "head2"));
}

TEST_CASE("stanzas to an account that does not exist: message and IQ get service-unavailable (RFC 6121 §8.5.1)",
          "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");

  alice.send("<message to='nobody@localhost' type='chat' id='m1'><body>hello?</body></message>");
  auto e1 = alice.wait_for(error_with_id("m1"));
  REQUIRE(e1);
  CHECK(e1->attr("from") == "nobody@localhost");
  CHECK(error_condition(*e1) == "service-unavailable");

  alice.send("<message to='nobody@localhost/res' type='chat' id='m2'><body>hello?</body></message>");
  auto e2 = alice.wait_for(error_with_id("m2"));
  REQUIRE(e2);
  CHECK(error_condition(*e2) == "service-unavailable");

  for (const std::string& to : {std::string("nobody@localhost"), std::string("nobody@localhost/res")}) {
    auto r = alice.iq(
        "<iq type='get' id='q' to='" + to + "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", "q");
    REQUIRE(r);
    CHECK(r->attr("type") == "error");
    CHECK(r->attr("from") == to);
    CHECK(error_condition(*r) == "service-unavailable");
  }

  // Presence to a non-existent account is dropped silently.
  alice.send("<presence to='nobody@localhost' type='subscribe' id='p1'/>");
  REQUIRE(sync_ping(alice));
  CHECK_FALSE(has_id(alice.skipped, "p1"));
}

TEST_CASE("a resource that is gone: chat goes to the bare JID's resources, an IQ gets service-unavailable "
          "(RFC 6121 §8.5.3.2)",
          "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  auto bob = online(server, "bob", "laptop");
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");

  // §8.5.3.2.1: a chat message to a full JID with no such resource is treated as addressed to the bare JID.
  alice.send("<message to='bob@localhost/gone' type='chat' id='m1'><body>where are you?</body></message>");
  auto m = bob->wait_for(message_with_id("m1"));
  REQUIRE(m);
  CHECK(m->attr("from") == "alice@localhost/phone");
  CHECK(m->child_text("body") == "where are you?");

  // §8.5.3.2.3: an IQ get to a resource that is not connected → service-unavailable.
  auto r = alice.iq("<iq type='get' id='q1' to='bob@localhost/gone'><query xmlns='jabber:iq:version'/></iq>", "q1");
  REQUIRE(r);
  CHECK(r->attr("type") == "error");
  CHECK(r->attr("from") == "bob@localhost/gone");
  CHECK(error_condition(*r) == "service-unavailable");
  REQUIRE(sync_ping(*bob));
  CHECK_FALSE(has_id(bob->skipped, "q1"));

  // A headline to the missing resource is dropped, not bounced.
  alice.send("<message to='bob@localhost/gone' type='headline' id='h1'><body>news</body></message>");
  REQUIRE(sync_ping(alice, "s2"));
  CHECK_FALSE(has_id(alice.skipped, "h1"));
}

TEST_CASE("an IQ to a remote domain gets remote-server-not-found while s2s is off (RFC 6120 §10.4.3)", "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  auto r = alice.iq("<iq type='get' id='r1' to='example.net'><ping xmlns='urn:xmpp:ping'/></iq>", "r1");
  REQUIRE(r);
  CHECK(r->attr("type") == "error");
  CHECK(r->attr("from") == "example.net");
  CHECK(error_condition(*r) == "remote-server-not-found");

  auto r2 = alice.iq("<iq type='get' id='r2' to='someone@example.net/res'><ping xmlns='urn:xmpp:ping'/></iq>", "r2");
  REQUIRE(r2);
  CHECK(error_condition(*r2) == "remote-server-not-found");

  alice.send("<message to='someone@example.net' type='chat' id='m1'><body>hi</body></message>");
  auto m = alice.wait_for(error_with_id("m1"));
  REQUIRE(m);
  CHECK(error_condition(*m) == "remote-server-not-found");
}

TEST_CASE("a malformed 'to' gets jid-malformed (RFC 6120 §8.3.3.8)", "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");

  alice.send("<message to='a@b@c' type='chat' id='m1'><body>x</body></message>");
  auto e1 = alice.wait_for(error_with_id("m1"));
  REQUIRE(e1);
  CHECK(e1->name() == "message");
  CHECK(error_condition(*e1) == "jid-malformed");

  auto e2 = alice.iq("<iq type='get' id='q1' to='@x'><ping xmlns='urn:xmpp:ping'/></iq>", "q1");
  REQUIRE(e2);
  CHECK(e2->attr("type") == "error");
  CHECK(error_condition(*e2) == "jid-malformed");

  alice.send("<presence to='user@' id='p1'/>");
  auto e3 = alice.wait_for(error_with_id("p1"));
  REQUIRE(e3);
  CHECK(e3->name() == "presence");
  CHECK(error_condition(*e3) == "jid-malformed");

  // An error stanza with a bad 'to' is not answered.
  alice.send("<message to='a@b@c' type='error' id='m2'/>");
  REQUIRE(sync_ping(alice));
  CHECK_FALSE(has_id(alice.skipped, "m2"));
}

TEST_CASE("IQ syntax: no id, an unknown type, or a get with two children gets bad-request (RFC 6120 §8.2.3)",
          "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");
  auto iq_error = [](const Element& e) { return e.name() == "iq" && e.attr("type") == "error"; };

  alice.send("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  auto no_id = alice.wait_for(iq_error);
  REQUIRE(no_id);
  CHECK(error_condition(*no_id) == "bad-request");

  alice.send("<iq type='fetch' id='t1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  auto bad_type = alice.wait_for(iq_error);
  REQUIRE(bad_type);
  CHECK(bad_type->attr("id") == "t1");
  CHECK(error_condition(*bad_type) == "bad-request");

  alice.send("<iq type='get' id='t2' to='localhost'><ping xmlns='urn:xmpp:ping'/>"
             "<query xmlns='jabber:iq:version'/></iq>");
  auto two = alice.wait_for(iq_error);
  REQUIRE(two);
  CHECK(two->attr("id") == "t2");
  CHECK(error_condition(*two) == "bad-request");

  alice.send("<iq type='set' id='t3' to='localhost'/>");
  auto none = alice.wait_for(iq_error);
  REQUIRE(none);
  CHECK(none->attr("id") == "t3");
  CHECK(error_condition(*none) == "bad-request");

  // A valid IQ right after is answered normally: the stream survived.
  CHECK(sync_ping(alice));
}

TEST_CASE("an IQ get or set to the server in a namespace nobody handles gets service-unavailable (RFC 6120 §8.4)",
          "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  auto r1 = alice.iq("<iq type='get' id='u1' to='localhost'><query xmlns='urn:example:unknown'/></iq>", "u1");
  REQUIRE(r1);
  CHECK(r1->attr("type") == "error");
  CHECK(r1->attr("from") == "localhost");
  CHECK(error_condition(*r1) == "service-unavailable");

  // A known namespace with a type nobody handles (ping is a get).
  auto r2 = alice.iq("<iq type='set' id='u2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", "u2");
  REQUIRE(r2);
  CHECK(error_condition(*r2) == "service-unavailable");

  // No 'to' (the account) and the own bare JID: the same rule.
  auto r3 = alice.iq("<iq type='get' id='u3'><query xmlns='urn:example:unknown'/></iq>", "u3");
  REQUIRE(r3);
  CHECK(error_condition(*r3) == "service-unavailable");
  auto r4 = alice.iq("<iq type='set' id='u4' to='alice@localhost'><query xmlns='urn:example:unknown'/></iq>", "u4");
  REQUIRE(r4);
  CHECK(error_condition(*r4) == "service-unavailable");
}

TEST_CASE("an error stanza is never answered with another error (RFC 6120 §8.3.1)", "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");
  const std::string err = "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                          "</error>";

  // Each of these would get an error if it were not itself an error.
  alice.send("<message to='nobody@localhost' type='error' id='e1'>" + err + "</message>");
  alice.send("<message to='bob@localhost' type='error' id='e2'>" + err + "</message>");
  alice.send("<message to='localhost' type='error' id='e3'>" + err + "</message>");
  alice.send("<message to='bob@localhost/gone' type='error' id='e4'>" + err + "</message>");
  alice.send("<iq to='nobody@localhost' type='error' id='e5'>" + err + "</iq>");
  alice.send("<iq to='bob@localhost/gone' type='error' id='e6'>" + err + "</iq>");
  alice.send("<iq to='example.net' type='error' id='e7'>" + err + "</iq>");
  alice.send("<message to='someone@example.net' type='error' id='e8'>" + err + "</message>");
  alice.send("<presence to='nobody@localhost' type='error' id='e9'>" + err + "</presence>");
  alice.send("<iq to='localhost' type='error' id='e10'>" + err + "</iq>");
  REQUIRE(sync_ping(alice));
  CHECK(alice.skipped.empty());

  // The same stanzas as non-errors are answered (the check above is not vacuous).
  alice.send("<message to='nobody@localhost' type='chat' id='c1'><body>x</body></message>");
  CHECK(alice.wait_for(error_with_id("c1")));
}

TEST_CASE("an IQ without 'to' is answered by the server on behalf of the account (RFC 6120 §10.3.3)", "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  auto r = alice.iq("<iq type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", "d1");
  REQUIRE(r);
  REQUIRE(r->attr("type") == "result");
  const Element* q = r->child("query", "http://jabber.org/protocol/disco#info");
  REQUIRE(q);
  bool account = false;
  for (const auto* id : q->children("identity")) {
    account = account || (id->attr("category") == "account" && id->attr("type") == "registered");
  }
  CHECK(account);
  CHECK((r->attr("from").empty() || r->attr("from") == "alice@localhost"));
}

TEST_CASE("the stream's xml:lang is added to stanzas that have none (RFC 6120 §8.1.5)", "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  auto bob = online(server, "bob", "laptop");

  RawClient alice;
  alice.connect(server.port());
  alice.starttls_and_reopen();
  REQUIRE(alice.authenticate("SCRAM-SHA-256", "alice", "alice-pw").name() == "success");
  alice.open_stream("localhost", "version='1.0' xml:lang='de'");
  auto features = alice.next_element();
  REQUIRE(features);
  auto bound = request_bind(alice, "phone");
  REQUIRE(bound);
  REQUIRE(bound->attr("type") == "result");

  alice.send("<message to='bob@localhost' type='chat' id='l1'><body>Hallo</body></message>");
  auto m1 = bob->wait_for(message_with_id("l1"));
  REQUIRE(m1);
  CHECK(m1->attr("xml:lang") == "de");

  // A stanza's own xml:lang is kept.
  alice.send("<message to='bob@localhost' type='chat' id='l2' xml:lang='fr'><body>Salut</body></message>");
  auto m2 = bob->wait_for(message_with_id("l2"));
  REQUIRE(m2);
  CHECK(m2->attr("xml:lang") == "fr");
}

TEST_CASE("'to' is normalised before routing: localpart and domain fold case, the resource does not (RFC 7622)",
          "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  auto bob = online(server, "bob", "laptop");
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");

  alice.send("<message to='BOB@LocalHost/laptop' type='chat' id='n1'><body>x</body></message>");
  auto m = bob->wait_for(message_with_id("n1"));
  REQUIRE(m);
  CHECK(m->attr("from") == "alice@localhost/phone");

  // A resource is case-sensitive: 'LAPTOP' is another, unconnected resource → an IQ gets service-unavailable.
  auto r = alice.iq("<iq type='get' id='q1' to='bob@localhost/LAPTOP'><query xmlns='jabber:iq:version'/></iq>", "q1");
  REQUIRE(r);
  CHECK(error_condition(*r) == "service-unavailable");
  REQUIRE(sync_ping(*bob));
  CHECK_FALSE(has_id(bob->skipped, "q1"));
}

TEST_CASE("a message without 'to' goes to the sender's own bare JID (RFC 6121 §8.1.1.1)", "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  auto phone = online(server, "alice", "phone");
  auto laptop = online(server, "alice", "laptop");

  phone->send("<message type='chat' id='self1'><body>note to self</body></message>");
  auto at_laptop = laptop->wait_for(message_with_id("self1"));
  REQUIRE(at_laptop);
  CHECK(at_laptop->attr("from") == "alice@localhost/phone");
  CHECK(at_laptop->child_text("body") == "note to self");
  CHECK(phone->wait_for(message_with_id("self1")));
}

TEST_CASE("messages to the server itself: chat and normal get service-unavailable, headline is dropped", "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");

  alice.send("<message to='localhost' type='chat' id='s1'><body>hello server</body></message>");
  auto e = alice.wait_for(error_with_id("s1"));
  REQUIRE(e);
  CHECK(e->attr("from") == "localhost");
  CHECK(error_condition(*e) == "service-unavailable");

  alice.send("<message to='localhost' type='headline' id='s2'><body>news</body></message>");
  REQUIRE(sync_ping(alice));
  CHECK_FALSE(has_id(alice.skipped, "s2"));
}

TEST_CASE("a groupchat message to a user's bare or full JID gets service-unavailable (RFC 6121 §8.5.2.1.1)",
          "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  auto bob = online(server, "bob", "laptop");
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");

  alice.send("<message to='bob@localhost' type='groupchat' id='g1'><body>x</body></message>");
  auto e1 = alice.wait_for(error_with_id("g1"));
  REQUIRE(e1);
  CHECK(error_condition(*e1) == "service-unavailable");
  alice.send("<message to='bob@localhost/gone' type='groupchat' id='g2'><body>x</body></message>");
  auto e2 = alice.wait_for(error_with_id("g2"));
  REQUIRE(e2);
  CHECK(error_condition(*e2) == "service-unavailable");
  REQUIRE(sync_ping(*bob));
  CHECK_FALSE(has_id(bob->skipped, "g1"));
  CHECK_FALSE(has_id(bob->skipped, "g2"));
}

TEST_CASE("messages to an account are handled in the order they were sent, also while it is looked up "
          "(RFC 6120 §10.1)",
          "[routing]") {
  TestServer server(without_offline_storage());
  server.start();
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");
  constexpr int kCount = 100;
  auto send_batch = [&](const std::string& to, const std::string& prefix) {
    std::string batch;
    for (int i = 0; i < kCount; ++i) {
      batch += "<message to='" + to + "' type='chat' id='" + prefix + std::to_string(i) + "'><body>x</body></message>";
    }
    alice.send(batch);
  };
  auto check_order = [&](const std::string& prefix) {
    std::string order;
    int in_place = 0;
    for (int i = 0; i < kCount; ++i) {
      auto e = alice.wait_for([&](const Element& el) { return el.attr("id").rfind(prefix, 0) == 0; });
      REQUIRE(e);
      CHECK(error_condition(*e) == "service-unavailable");
      order += std::string(e->attr("id")) + " ";
      in_place += e->attr("id") == prefix + std::to_string(i) ? 1 : 0;
    }
    INFO(order);
    CHECK(in_place == kCount);
  };
  // bob exists but is offline: each message needs a storage lookup before it is bounced.
  send_batch("bob@localhost", "off");
  check_order("off");
  // The same for an account that does not exist.
  send_batch("nobody@localhost", "none");
  check_order("none");
}

TEST_CASE("a normal message to the bare JID goes to the highest-priority resource, the most recent among equals "
          "(RFC 6121 §8.5.2.1.1)",
          "[routing]") {
  TestServer server(users_alice_bob());
  server.start();
  auto high = online(server, "bob", "high", 5);
  auto low = online(server, "bob", "low", 1);
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  alice.send("<message to='bob@localhost' id='n1'><body>for the highest</body></message>");
  REQUIRE(high->wait_for(message_with_id("n1")));
  REQUIRE(sync_ping(*low, "s1"));
  CHECK_FALSE(has_id(low->skipped, "n1"));

  // Equal priorities: the resource that most recently sent presence gets it.
  auto later = online(server, "bob", "later", 5);
  alice.send("<message to='bob@localhost' type='normal' id='n2'><body>for the most recent</body></message>");
  REQUIRE(later->wait_for(message_with_id("n2")));
  REQUIRE(sync_ping(*high, "s2"));
  CHECK_FALSE(has_id(high->skipped, "n2"));

  // A chat message still reaches every resource with non-negative priority.
  alice.send("<message to='bob@localhost' type='chat' id='c1'><body>for everyone</body></message>");
  REQUIRE(high->wait_for(message_with_id("c1")));
  REQUIRE(low->wait_for(message_with_id("c1")));
  REQUIRE(later->wait_for(message_with_id("c1")));
}
