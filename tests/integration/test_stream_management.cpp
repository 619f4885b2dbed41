// XEP-0198 Stream Management against the real server: enabling, acknowledgements in both directions, errors,
// and resumption after a lost connection with every unacknowledged stanza delivered exactly once.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>

#include <memory>

using namespace it;
namespace ns = cg::xml::ns;

namespace {

constexpr const char* kSm = "urn:xmpp:sm:3";

ServerOptions two_users() {
  ServerOptions o;
  o.users = {{"alice", "alice-pw"}, {"bob", "bob-pw"}};
  return o;
}

std::optional<Element> sm_element(RawClient& c, const std::string& name) {
  return c.wait_for([&](const Element& e) { return e.is(name, kSm); });
}

// Logs in, binds `resource`, sends initial presence and enables stream management (with resumption when asked).
Element login_with_sm(RawClient& c, int port, const std::string& user, const std::string& resource,
                      bool resume = true) {
  c.login(port, user, user + "-pw", resource);
  c.send("<presence/>");
  REQUIRE(sync_ping(c));
  c.send(resume ? "<enable xmlns='urn:xmpp:sm:3' resume='true'/>" : "<enable xmlns='urn:xmpp:sm:3'/>");
  auto enabled = sm_element(c, "enabled");
  REQUIRE(enabled);
  c.skipped.clear(); // from here on, what the client receives counts toward h
  return *enabled;
}

// Stanzas (not stream management nonzas) among `elements`.
std::size_t stanzas_in(const std::vector<Element>& elements) {
  std::size_t n = 0;
  for (const auto& e : elements) {
    if (e.ns() == ns::client && (e.name() == "message" || e.name() == "presence" || e.name() == "iq")) {
      ++n;
    }
  }
  return n;
}

std::string message(const std::string& to, const std::string& id, const std::string& body) {
  return "<message to='" + to + "' type='chat' id='" + id + "'><body>" + body + "</body></message>";
}

} // namespace

TEST_CASE("sm: the feature is offered after authentication, and <enable/> needs a bound resource", "[sm]") {
  TestServer server(two_users());
  server.start();
  RawClient c;
  Element features = login_unbound(c, server.port(), "alice", "alice-pw");
  CHECK(has_child(features, "sm", kSm));
  // XEP-0198 §3: enabling before resource binding is refused.
  c.send("<enable xmlns='urn:xmpp:sm:3'/>");
  auto failed = sm_element(c, "failed");
  REQUIRE(failed);
  CHECK(has_child(*failed, "unexpected-request", ns::stanza_errors));
  REQUIRE(request_bind(c, "<resource>r</resource>"));
  c.send("<enable xmlns='urn:xmpp:sm:3' resume='true' max='60'/>");
  auto enabled = sm_element(c, "enabled");
  REQUIRE(enabled);
  CHECK(enabled->attr("resume") == "true");
  CHECK_FALSE(enabled->attr("id").empty());
  CHECK(enabled->attr("max") == "60"); // the client's max, being below c2s.resume_timeout
  // A second <enable/> is refused too.
  c.send("<enable xmlns='urn:xmpp:sm:3'/>");
  REQUIRE(sm_element(c, "failed"));
}

TEST_CASE("sm: <r/> is answered with the number of stanzas handled since <enable/>", "[sm]") {
  TestServer server(two_users());
  server.start();
  RawClient c;
  Element enabled = login_with_sm(c, server.port(), "alice", "r", false);
  CHECK_FALSE(enabled.has_attr("id")); // no resumption asked, none offered
  for (int i = 0; i < 3; ++i) {
    c.send("<iq type='get' id='p" + std::to_string(i) + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  }
  // A refused stanza counts as handled too (its error reply is its handling).
  c.send("<iq type='bogus' id='bad'/>");
  c.send("<r xmlns='urn:xmpp:sm:3'/>");
  auto a = sm_element(c, "a");
  REQUIRE(a);
  CHECK(a->attr("h") == "4");
}

TEST_CASE("sm: the server asks for acknowledgements of what it sends", "[sm]") {
  TestServer server(two_users());
  server.start();
  RawClient alice;
  login_with_sm(alice, server.port(), "alice", "phone");
  RawClient bob;
  bob.login(server.port(), "bob", "bob-pw", "desk");
  bob.send(message("alice@localhost/phone", "m1", "one"));
  REQUIRE(alice.wait_for(is_stanza("message", "id", "m1")));
  // XEP-0198 §4: the server requests an acknowledgement for what it sent.
  REQUIRE(sm_element(alice, "r"));
  const std::size_t sent = stanzas_in(alice.skipped) + 1;
  alice.send("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(sent) + "'/>");
  REQUIRE(sync_ping(alice));
  CHECK(alice.stream_error().empty());
}

TEST_CASE("sm: acknowledging more than was sent is a stream error (handled-count-too-high)", "[sm]") {
  TestServer server(two_users());
  server.start();
  RawClient c;
  login_with_sm(c, server.port(), "alice", "r");
  c.send("<a xmlns='urn:xmpp:sm:3' h='1000'/>");
  REQUIRE(c.wait_closed());
  CHECK(c.stream_error() == "undefined-condition");
  CHECK(c.raw_received().find("handled-count-too-high") != std::string::npos);
}

TEST_CASE("sm: after a lost connection the client resumes and gets every unacknowledged stanza exactly once", "[sm]") {
  TestServer server(two_users());
  server.start();
  RawClient bob;
  bob.login(server.port(), "bob", "bob-pw", "desk");

  auto alice = std::make_unique<RawClient>();
  Element enabled = login_with_sm(*alice, server.port(), "alice", "phone");
  const std::string previd(enabled.attr("id"));
  REQUIRE_FALSE(previd.empty());

  // m1 arrives and is acknowledged; m2 arrives but is not; then the connection drops without </stream:stream>.
  bob.send(message("alice@localhost/phone", "m1", "one"));
  REQUIRE(alice->wait_for(is_stanza("message", "id", "m1")));
  REQUIRE(sync_ping(*alice));
  // Everything received so far (m1, the ping's result and whatever came before) is acknowledged.
  const std::size_t received = stanzas_in(alice->skipped) + 2;
  alice->send("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(received) + "'/>");
  bob.send(message("alice@localhost/phone", "m2", "two"));
  REQUIRE(alice->wait_for(is_stanza("message", "id", "m2")));
  alice.reset(); // the TCP connection closes abruptly
  REQUIRE(wait_for_log(server, "waiting"));

  // While the session waits, what is sent to it is kept for it.
  bob.send(message("alice@localhost/phone", "m3", "three"));
  bob.send(message("alice@localhost", "m4", "four"));
  REQUIRE(sync_ping(bob));

  RawClient again;
  login_unbound(again, server.port(), "alice", "alice-pw");
  again.send("<resume xmlns='urn:xmpp:sm:3' previd='" + previd + "' h='" + std::to_string(received) + "'/>");
  auto resumed = sm_element(again, "resumed");
  REQUIRE(resumed);
  CHECK(resumed->attr("previd") == previd);
  // m2 (received but not acknowledged), m3 and m4 come again, once each, in order.
  std::vector<std::string> ids;
  while (ids.size() < 3) {
    auto m = again.wait_for([](const Element& e) { return e.name() == "message"; });
    REQUIRE(m);
    ids.emplace_back(m->attr("id"));
  }
  CHECK(ids == std::vector<std::string>{"m2", "m3", "m4"});
  // The resumed session is the same resource: it is bound, and new messages arrive.
  bob.send(message("alice@localhost/phone", "m5", "five"));
  REQUIRE(again.wait_for(is_stanza("message", "id", "m5")));
  REQUIRE(sync_ping(again));
  for (const auto& e : again.skipped) {
    CHECK(e.attr("id") != "m1"); // acknowledged: never sent again
  }
}

TEST_CASE("sm: resuming an unknown session, or another user's, fails and the client binds anew", "[sm]") {
  TestServer server(two_users());
  server.start();
  RawClient alice;
  Element enabled = login_with_sm(alice, server.port(), "alice", "phone");
  const std::string previd(enabled.attr("id"));

  RawClient mallory;
  login_unbound(mallory, server.port(), "bob", "bob-pw");
  SECTION("another user's session id") {
    mallory.send("<resume xmlns='urn:xmpp:sm:3' previd='" + previd + "' h='0'/>");
  }
  SECTION("an id that never existed") {
    mallory.send("<resume xmlns='urn:xmpp:sm:3' previd='nonsense' h='0'/>");
  }
  auto failed = sm_element(mallory, "failed");
  INFO(mallory.raw_received());
  REQUIRE(failed);
  CHECK(has_child(*failed, "item-not-found", ns::stanza_errors));
  auto bound = request_bind(mallory, "<resource>x</resource>");
  REQUIRE(bound);
  CHECK(bound->attr("type") == "result");
  // Alice's session is untouched.
  REQUIRE(sync_ping(alice));
}

TEST_CASE("sm: a session nobody resumes ends after c2s.resume_timeout", "[sm]") {
  TestServer server(ServerOptions(two_users()).set("c2s", "resume_timeout", "1"));
  server.start();
  auto alice = std::make_unique<RawClient>();
  Element enabled = login_with_sm(*alice, server.port(), "alice", "phone");
  CHECK(enabled.attr("max") == "1");
  const std::string previd(enabled.attr("id"));
  alice.reset();
  REQUIRE(wait_for_log(server, "alice@localhost/phone disconnected"));
  RawClient again;
  login_unbound(again, server.port(), "alice", "alice-pw");
  again.send("<resume xmlns='urn:xmpp:sm:3' previd='" + previd + "' h='0'/>");
  REQUIRE(sm_element(again, "failed"));
}

TEST_CASE("sm: a client that closes its stream properly does not leave a session to resume", "[sm]") {
  TestServer server(two_users());
  server.start();
  RawClient alice;
  Element enabled = login_with_sm(alice, server.port(), "alice", "phone");
  const std::string previd(enabled.attr("id"));
  alice.send("</stream:stream>");
  REQUIRE(alice.wait_closed());
  REQUIRE(wait_for_log(server, "alice@localhost/phone disconnected"));
  RawClient again;
  login_unbound(again, server.port(), "alice", "alice-pw");
  again.send("<resume xmlns='urn:xmpp:sm:3' previd='" + previd + "' h='0'/>");
  REQUIRE(sm_element(again, "failed"));
}
