// XEP-0199: XMPP Ping 2.0.1 — the spec's examples, and the ping module against the fake host.
#include "tests/xep/fake_host.hpp"
#include "xep/xep0199_ping.hpp"

#include <catch2/catch.hpp>

using cg::api::Element;
using cg::api::IqReply;
using cg::api::IqScope;
using cg::api::IqType;
using cg::api::Jid;
using cg::api::SessionEvent;
using cg::api::SessionEventKind;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
namespace ping = cg::xep::ping;

namespace {

// XEP-0199 Example 1: Server-to-client ping.
constexpr const char* kExample1 = R"(
<iq from='capulet.lit' to='juliet@capulet.lit/balcony' id='s2c1' type='get'>
  <ping xmlns='urn:xmpp:ping'/>
</iq>)";

// XEP-0199 Example 2: Pong (the client's answer).
constexpr const char* kExample2 = R"(
<iq from='juliet@capulet.lit/balcony' to='capulet.lit' id='s2c1' type='result'/>)";

// XEP-0199 Example 3: Ping not supported (by the client).
constexpr const char* kExample3 = R"(
<iq from='juliet@capulet.lit/balcony' to='capulet.lit' id='s2c1' type='error'>
  <ping xmlns='urn:xmpp:ping'/>
  <error type='cancel'>
    <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
  </error>
</iq>)";

// XEP-0199 Example 4: Client-to-server ping.
constexpr const char* kExample4 = R"(
<iq from='juliet@capulet.lit/balcony' to='capulet.lit' id='c2s1' type='get'>
  <ping xmlns='urn:xmpp:ping'/>
</iq>)";

// XEP-0199 Example 5: Pong (the server's answer).
constexpr const char* kExample5 = R"(
<iq from='capulet.lit' to='juliet@capulet.lit/balcony' id='c2s1' type='result'/>)";

const Jid kJuliet = *Jid::parse("juliet@capulet.lit/balcony");

SessionEvent idle(const Jid& jid) {
  return SessionEvent{SessionEventKind::Idle, jid, ""};
}

} // namespace

TEST_CASE("ping: XEP-0199 examples are well-formed pings, pongs and errors", "[xep0199][spec]") {
  const Element ping_iq = parse_stanza(kExample1);
  const Element* payload = ping_iq.first_child();
  REQUIRE(payload != nullptr);
  CHECK(payload->is("ping", ping::ns));
  CHECK(payload->nodes().empty());
  // A pong is the plain IQ result of the ping (example 2).
  CHECK(canonical(cg::api::make_iq_result(ping_iq)) == canonical(parse_stanza(kExample2)));
  // "Ping not supported" (example 3) reads as service-unavailable/cancel.
  const Element unsupported = parse_stanza(kExample3);
  CHECK(cg::api::is_error(unsupported));
  auto error = cg::api::parse_error(unsupported);
  CHECK(error.condition == "service-unavailable");
  CHECK(error.type == cg::api::ErrorType::Cancel);
  // And is what make_error_reply builds, but for the echoed payload (optional, RFC 6120 §8.3.1).
  Element expected = unsupported;
  expected.remove_children("ping", ping::ns);
  CHECK(canonical(cg::api::make_error_reply(ping_iq, "service-unavailable")) == canonical(expected));
}

TEST_CASE("ping: the module registers the feature and answers the server's pings (XEP-0199 examples 4, 5)",
          "[xep0199][module]") {
  FakeHost host("capulet.lit");
  auto module = ping::make_module();
  host.load(*module);
  // XEP-0199 §8: "If an entity supports the XMPP Ping protocol, it MUST report that by including a service
  // discovery feature of "urn:xmpp:ping"".
  CHECK(host.features() == std::vector<std::string>{"urn:xmpp:ping"});
  CHECK(host.account_features() == std::vector<std::string>{"urn:xmpp:ping"});
  REQUIRE(host.has_iq_handler(IqScope::Host, IqType::Get, ping::ns, "ping"));

  const Element request = parse_stanza(kExample4);
  IqReply reply = host.call_iq(IqScope::Host, request);
  REQUIRE_FALSE(reply.is_error());
  CHECK_FALSE(reply.payload()); // an empty result
  CHECK(canonical(FakeHost::reply_stanza(request, reply)) == canonical(parse_stanza(kExample5)));
}

TEST_CASE("ping: a client's ping to its own account, or without 'to', is answered by the server", "[xep0199][module]") {
  // XEP-0199 §4.2: "The client MAY include a 'to' address of the client's bare JID ... or MAY include no 'to'
  // address (this signifies that the stanza shall be handled by the server on behalf of the connected user's bare
  // JID ...)". The router hands such IQs to the account-scope handlers (RFC 6120 §10.3.3).
  FakeHost host("capulet.lit");
  auto module = ping::make_module();
  host.load(*module);
  REQUIRE(host.has_iq_handler(IqScope::Account, IqType::Get, ping::ns, "ping"));

  for (const char* xml : {"<iq from='juliet@capulet.lit/balcony' id='c2s1' type='get'>"
                          "<ping xmlns='urn:xmpp:ping'/></iq>",
                          "<iq from='juliet@capulet.lit/balcony' to='juliet@capulet.lit' id='c2s1' type='get'>"
                          "<ping xmlns='urn:xmpp:ping'/></iq>"}) {
    IqReply reply = host.call_iq(IqScope::Account, xml);
    CHECK_FALSE(reply.is_error());
  }
  // Someone else pinging an account's bare JID learns nothing (the same answer as for an account that does not
  // exist): service-unavailable.
  IqReply other = host.call_iq(IqScope::Account, "<iq from='romeo@montague.lit/home' to='juliet@capulet.lit' "
                                                 "id='e' type='get'><ping xmlns='urn:xmpp:ping'/></iq>");
  REQUIRE(other.is_error());
  CHECK(other.error_value().condition == "service-unavailable");
}

TEST_CASE("ping: idle clients are pinged at modules.ping.idle", "[xep0199][module]") {
  SECTION("the default") {
    FakeHost host("capulet.lit");
    auto module = ping::make_module();
    host.load(*module);
    CHECK(host.idle_requests() == std::vector<std::chrono::seconds>{std::chrono::seconds(300)});
    CHECK(host.session_handler_count(SessionEventKind::Idle) == 1);
  }
  SECTION("a configured value") {
    FakeHost host("capulet.lit");
    auto module = ping::make_module();
    host.load(*module, {{"idle", std::int64_t{42}}});
    CHECK(host.idle_requests() == std::vector<std::chrono::seconds>{std::chrono::seconds(42)});
    CHECK(host.session_handler_count(SessionEventKind::Idle) == 1);
  }
  SECTION("idle = 0: no idle events, no pings; pings to the server are still answered") {
    FakeHost host("capulet.lit");
    auto module = ping::make_module();
    host.load(*module, {{"idle", std::int64_t{0}}});
    CHECK(host.idle_requests().empty());
    CHECK(host.session_handler_count(SessionEventKind::Idle) == 0);
    host.fire_session(idle(kJuliet));
    CHECK(host.sent_iqs().empty());
    CHECK(host.closed_sessions().empty());
    CHECK_FALSE(host.call_iq(IqScope::Host, kExample4).is_error());
    CHECK(host.features() == std::vector<std::string>{"urn:xmpp:ping"});
  }
}

TEST_CASE("ping: an idle client that does not answer is disconnected with connection-timeout", "[xep0199][module]") {
  FakeHost host("capulet.lit");
  auto module = ping::make_module();
  host.load(*module, {{"timeout", std::int64_t{7}}});
  // No responder: send_iq reports that no answer came within the timeout.
  host.fire_session(idle(kJuliet));

  // The ping went to the full JID of the idle session, with the configured timeout, as XEP-0199 example 1.
  REQUIRE(host.sent_iqs().size() == 1);
  const auto& sent = host.sent_iqs().front();
  CHECK(sent.timeout == std::chrono::seconds(7));
  Element expected = parse_stanza(kExample1);
  expected.remove_attr("id");
  Element ping_iq = sent.iq;
  CHECK_FALSE(ping_iq.attr("id").empty());
  ping_iq.remove_attr("id");
  CHECK(canonical(ping_iq) == canonical(expected));

  REQUIRE(host.closed_sessions().size() == 1);
  CHECK(host.closed_sessions().front().jid == kJuliet);
  CHECK(host.closed_sessions().front().condition == "connection-timeout");
  // Logged, so that an operator can tell why the client went away.
  CHECK_FALSE(host.logged().empty());
}

TEST_CASE("ping: an idle client that answers stays connected, whatever the answer", "[xep0199][module]") {
  FakeHost host("capulet.lit");
  auto module = ping::make_module();
  host.load(*module);

  SECTION("a pong (XEP-0199 example 2)") {
    host.respond_to_iqs([](const Element& iq) { return FakeHost::result_for(iq); });
  }
  SECTION("service-unavailable from a client without ping support (XEP-0199 example 3)") {
    host.respond_to_iqs([](const Element& iq) {
      Element reply = parse_stanza(kExample3);
      reply.set_attr("id", std::string(iq.attr("id")));
      return std::optional<Element>(reply);
    });
  }
  SECTION("any other error") {
    host.respond_to_iqs([](const Element& iq) { return FakeHost::error_for(iq, "feature-not-implemented"); });
  }

  host.fire_session(idle(kJuliet));
  REQUIRE(host.sent_iqs().size() == 1);
  CHECK(host.sent_iqs().front().iq.attr("to") == "juliet@capulet.lit/balcony");
  CHECK(host.closed_sessions().empty());
}

TEST_CASE("ping: each idle session is pinged on its own", "[xep0199][module]") {
  FakeHost host("capulet.lit");
  auto module = ping::make_module();
  host.load(*module);
  const Jid romeo = *Jid::parse("romeo@capulet.lit/orchard");
  // Juliet answers, Romeo does not.
  host.respond_to_iqs([](const Element& iq) -> std::optional<Element> {
    if (iq.attr("to") == "juliet@capulet.lit/balcony") {
      return FakeHost::result_for(iq);
    }
    return std::nullopt;
  });
  host.fire_session(idle(kJuliet));
  host.fire_session(idle(romeo));
  REQUIRE(host.sent_iqs().size() == 2);
  CHECK(host.sent_iqs()[0].iq.attr("id") != host.sent_iqs()[1].iq.attr("id"));
  REQUIRE(host.closed_sessions().size() == 1);
  CHECK(host.closed_sessions().front().jid == romeo);
}

TEST_CASE("ping: other session events do not ping", "[xep0199][module]") {
  FakeHost host("capulet.lit");
  auto module = ping::make_module();
  host.load(*module);
  host.fire_session(SessionEvent{SessionEventKind::Bound, kJuliet, ""});
  host.fire_session(SessionEvent{SessionEventKind::Closed, kJuliet, ""});
  CHECK(host.sent_iqs().empty());
  CHECK(host.closed_sessions().empty());
}
