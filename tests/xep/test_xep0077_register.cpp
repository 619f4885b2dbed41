// XEP-0077: In-Band Registration 2.5 — the spec's examples, and the register module against the fake host.
#include "tests/xep/fake_host.hpp"
#include "xep/xep0077_register.hpp"

#include <boost/asio/co_spawn.hpp>
#include <catch2/catch.hpp>

using cg::api::Element;
using cg::api::IqReply;
using cg::api::IqRequest;
using cg::api::IqScope;
using cg::api::IqType;
using cg::api::Jid;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
using cg::test::parse_xml;
namespace reg = cg::xep::reg;

namespace {

// XEP-0077 Example 1: Entity Requests Registration Fields from Host.
constexpr const char* kExample1 = R"(
<iq type='get' id='reg1' to='shakespeare.lit'>
  <query xmlns='jabber:iq:register'/>
</iq>)";

// XEP-0077 Example 4: Entity Provides Required Information (this server asks for no email; an extra field is
// ignored).
constexpr const char* kExample4 = R"(
<iq type='set' id='reg2'>
  <query xmlns='jabber:iq:register'>
    <username>bill</username>
    <password>Calliope</password>
    <email>bard@shakespeare.lit</email>
  </query>
</iq>)";

// XEP-0077 Example 5: Host Informs Entity of Successful Registration.
constexpr const char* kExample5 = R"(<iq type='result' id='reg2'/>)";

// XEP-0077 Example 6: Host Informs Entity of Failed Registration (Username Conflict) — the error part.
constexpr const char* kExample6Error = R"(
<error code='409' type='cancel'>
  <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
</error>)";

// XEP-0077 Example 13: Entity Requests Cancellation of Existing Registration.
constexpr const char* kExample13 = R"(
<iq type='set' from='bill@shakespeare.lit/globe' id='unreg1'>
  <query xmlns='jabber:iq:register'>
    <remove/>
  </query>
</iq>)";

// XEP-0077 Example 14: Host Informs Entity of Successful Cancellation.
constexpr const char* kExample14 = R"(<iq type='result' to='bill@shakespeare.lit/globe' id='unreg1'/>)";

// XEP-0077 Example 18: Password Change (with the 'from' the server stamps).
constexpr const char* kExample18 = R"(
<iq type='set' to='shakespeare.lit' id='change1' from='bill@shakespeare.lit/globe'>
  <query xmlns='jabber:iq:register'>
    <username>bill</username>
    <password>newpass</password>
  </query>
</iq>)";

const Jid kHost = *Jid::parse("shakespeare.lit");
const Jid kBill = *Jid::parse("bill@shakespeare.lit/globe");

struct Loaded {
  explicit Loaded(cg::test::OptionOverrides options = {}) { host.load(*module, options); }
  FakeHost host{"shakespeare.lit"};
  std::unique_ptr<cg::api::Module> module = reg::make_module();

  // An IQ on a connection that has not authenticated, from `peer` (as the c2s session hands it over).
  IqReply preauth(const Element& iq, const std::string& peer = "192.0.2.1") {
    const Element* payload = iq.first_child();
    REQUIRE(payload != nullptr);
    const IqType type = iq.attr("type") == "get" ? IqType::Get : IqType::Set;
    const cg::api::IqHandler* handler =
        host.find_iq_handler(IqScope::Unauthenticated, type, payload->ns(), payload->name());
    if (handler == nullptr) {
      return IqReply::error("service-unavailable");
    }
    const Jid none;
    const cg::api::Origin origin{cg::api::OriginKind::Client, none};
    const IqRequest req{iq, *payload, none, kHost, type, origin, peer};
    std::optional<IqReply> reply;
    boost::asio::co_spawn(host.executor(), (*handler)(req), [&](std::exception_ptr e, IqReply r) {
      REQUIRE_FALSE(e);
      reply = std::move(r);
    });
    host.run();
    REQUIRE(reply);
    return std::move(*reply);
  }
  IqReply preauth(std::string_view xml, const std::string& peer = "192.0.2.1") {
    return preauth(parse_stanza(xml), peer);
  }
  IqReply create(const std::string& user, const std::string& password, const std::string& peer = "192.0.2.1") {
    return preauth("<iq type='set' id='c'><query xmlns='jabber:iq:register'><username>" + user +
                       "</username><password>" + password + "</password></query></iq>",
                   peer);
  }
  // bill logged in (over TLS unless `secure` is false).
  void bill_online(bool secure = true) {
    host.add_user("bill");
    cg::api::SessionInfo s;
    s.jid = kBill;
    s.secure = secure;
    host.add_session(s);
  }
};

void check_error(const IqReply& reply, const std::string& condition) {
  REQUIRE(reply.is_error());
  CHECK(reply.error_value().condition == condition);
}

} // namespace

TEST_CASE("register: off by default — the stream feature, the disco feature and the handlers when loaded",
          "[xep0077][module]") {
  auto module = reg::make_module();
  // Registration is a policy decision (XEP-0077 §11: "a given deployment MAY choose to disable in-band
  // registration"): the module is not in modules.enabled unless listed.
  CHECK_FALSE(module->info().default_enabled);
  Loaded l;
  // XEP-0077 §8: the stream feature, before authentication.
  auto features = l.host.registered_stream_features(cg::api::StreamStage::BeforeAuth);
  REQUIRE(features.size() == 1);
  CHECK(canonical(features.front()) ==
        canonical(parse_xml("<register xmlns='http://jabber.org/features/iq-register'/>")));
  CHECK(l.host.registered_stream_features(cg::api::StreamStage::AfterAuth).empty());
  // XEP-0077 §9: "it SHOULD report that by including a Service Discovery feature of "jabber:iq:register"".
  CHECK(l.host.features() == std::vector<std::string>{"jabber:iq:register"});
  for (auto scope : {IqScope::Unauthenticated, IqScope::Account, IqScope::Host}) {
    CHECK(l.host.has_iq_handler(scope, IqType::Get, reg::ns, "query"));
    CHECK(l.host.has_iq_handler(scope, IqType::Set, reg::ns, "query"));
  }
}

TEST_CASE("register: the registration fields (XEP-0077 examples 1, 2)", "[xep0077][spec]") {
  Loaded l({{"instructions", std::string("Pick a name.")}});
  IqReply reply = l.preauth(kExample1);
  REQUIRE_FALSE(reply.is_error());
  REQUIRE(reply.payload());
  CHECK(canonical(*reply.payload()) == canonical(parse_xml("<query xmlns='jabber:iq:register'>"
                                                           "<instructions>Pick a name.</instructions>"
                                                           "<username/><password/></query>")));
}

TEST_CASE("register: an account is created — the same name again is a conflict (XEP-0077 examples 4, 5, 6)",
          "[xep0077][spec]") {
  Loaded l;
  const Element request = parse_stanza(kExample4);
  IqReply reply = l.preauth(request);
  REQUIRE_FALSE(reply.is_error());
  Element answer = FakeHost::reply_stanza(request, reply);
  CHECK(canonical(answer) == canonical(parse_stanza(kExample5)));
  CHECK(l.host.password_of("bill") == "Calliope");

  IqReply again = l.preauth("<iq type='set' id='reg2'><query xmlns='jabber:iq:register'><username>bill</username>"
                            "<password>m1cro$oft</password></query></iq>");
  check_error(again, "conflict");
  Element error = again.error_value().to_element();
  error.remove_children("text", cg::api::ns::stanza_errors);
  Element expected = parse_stanza(kExample6Error);
  expected.remove_attr("code"); // the legacy code of XEP-0086, which RFC 6120 no longer has
  CHECK(canonical(error) == canonical(expected));
  CHECK(l.host.password_of("bill") == "Calliope");
}

TEST_CASE("register: missing or empty fields are not-acceptable (XEP-0077 example 7)", "[xep0077][spec]") {
  Loaded l;
  // §3.1: "If the requesting entity does not provide all of the requested information during registration (This
  // includes providing an empty password element ...) then the server or service MUST return a <not-acceptable/>".
  for (const char* fields : {"<username>bill</username>", "<password>Calliope</password>",
                             "<username>bill</username><password/>", "<username/><password>x</password>", ""}) {
    INFO(fields);
    IqReply reply =
        l.preauth(std::string("<iq type='set' id='r'><query xmlns='jabber:iq:register'>") + fields + "</query></iq>");
    check_error(reply, "not-acceptable");
    CHECK(reply.error_value().effective_type() == cg::api::ErrorType::Modify);
  }
  // An invalid username (nodeprep fails in the real core; the fake refuses an empty one) is not-acceptable too.
  check_error(l.create("", "pw"), "not-acceptable");
  CHECK_FALSE(l.host.password_of("bill") == "Calliope");
}

TEST_CASE("register: max_per_hour registrations per source address, then policy-violation (wait)",
          "[xep0077][module]") {
  Loaded l({{"max_per_hour", std::int64_t{2}}});
  CHECK_FALSE(l.create("one", "pw", "198.51.100.7").is_error());
  // A failed attempt counts as well (it tells whether a name is taken).
  check_error(l.create("one", "pw", "198.51.100.7"), "conflict");
  IqReply third = l.create("three", "pw", "198.51.100.7");
  check_error(third, "policy-violation");
  CHECK(third.error_value().effective_type() == cg::api::ErrorType::Wait);
  CHECK(l.host.password_of("three").empty());
  // Another address has its own allowance.
  CHECK_FALSE(l.create("three", "pw", "198.51.100.8").is_error());
  // The form and malformed requests do not count (nothing was tried).
  Loaded m({{"max_per_hour", std::int64_t{1}}});
  CHECK_FALSE(m.preauth(kExample1, "203.0.113.1").is_error());
  check_error(m.preauth("<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>u</username></query>"
                        "</iq>",
                        "203.0.113.1"),
              "not-acceptable");
  CHECK_FALSE(m.create("u", "pw", "203.0.113.1").is_error());
  check_error(m.create("v", "pw", "203.0.113.1"), "policy-violation");
  // 0 = no limit.
  Loaded n({{"max_per_hour", std::int64_t{0}}});
  for (int i = 0; i < 20; ++i) {
    CHECK_FALSE(n.create("user" + std::to_string(i), "pw").is_error());
  }
}

TEST_CASE("register: <remove/> before authentication is unexpected-request (XEP-0077 §3.2)", "[xep0077][spec]") {
  Loaded l;
  l.host.add_user("bill");
  check_error(l.preauth("<iq type='set' id='u'><query xmlns='jabber:iq:register'><remove/></query></iq>"),
              "unexpected-request");
  CHECK(l.host.closed_sessions().empty());
}

TEST_CASE("register: after authentication the account is <registered/> (XEP-0077 §3.1)", "[xep0077][spec]") {
  Loaded l;
  l.bill_online();
  for (const char* to : {"", " to='shakespeare.lit'", " to='bill@shakespeare.lit'"}) {
    INFO("to:" << to);
    auto scope = std::string(to) == " to='shakespeare.lit'" ? IqScope::Host : IqScope::Account;
    IqReply reply = l.host.call_iq(scope, std::string("<iq type='get' id='g' from='bill@shakespeare.lit/globe'") + to +
                                              "><query xmlns='jabber:iq:register'/></iq>");
    REQUIRE_FALSE(reply.is_error());
    REQUIRE(reply.payload());
    // "MUST contain an empty <registered/> element", "SHOULD contain the registration information currently on
    // file" (the password is not on file: only SCRAM data).
    CHECK(reply.payload()->child("registered") != nullptr);
    CHECK(reply.payload()->child_text("username") == "bill");
    CHECK(reply.payload()->child_text("password").empty());
  }
  // Someone else's account, or a user of another server asking this one: not served.
  check_error(l.host.call_iq(IqScope::Account, "<iq type='get' id='x' from='romeo@shakespeare.lit/r' "
                                               "to='bill@shakespeare.lit'><query xmlns='jabber:iq:register'/></iq>"),
              "service-unavailable");
  check_error(l.host.call_iq(IqScope::Host, "<iq type='get' id='x' from='romeo@montague.lit/r' "
                                            "to='shakespeare.lit'><query xmlns='jabber:iq:register'/></iq>"),
              "service-unavailable");
}

TEST_CASE("register: password change (XEP-0077 example 18, §3.3)", "[xep0077][spec]") {
  Loaded l;
  l.bill_online();
  // Example 18 is addressed to the server; example 19, the answer, is an empty result.
  IqReply reply = l.host.call_iq(IqScope::Host, kExample18);
  REQUIRE_FALSE(reply.is_error());
  CHECK_FALSE(reply.payload());
  CHECK(l.host.password_of("bill") == "newpass");
  // Without 'to' (handled for the account) and without <username/>.
  REQUIRE_FALSE(l.host
                    .call_iq(IqScope::Account, "<iq type='set' id='c2' from='bill@shakespeare.lit/globe'>"
                                               "<query xmlns='jabber:iq:register'><password>second</password>"
                                               "</query></iq>")
                    .is_error());
  CHECK(l.host.password_of("bill") == "second");

  // §3.3: "If the user provides an empty password element ..., the server or service MUST NOT change the password
  // to a null value, but instead MUST maintain the existing password" (bad-request: "does not contain complete
  // information").
  for (const char* q : {"<username>bill</username><password/>", "<username>bill</username>", ""}) {
    INFO(q);
    check_error(l.host.call_iq(IqScope::Account, std::string("<iq type='set' id='c3' "
                                                             "from='bill@shakespeare.lit/globe'>"
                                                             "<query xmlns='jabber:iq:register'>") +
                                                     q + "</query></iq>"),
                "bad-request");
    CHECK(l.host.password_of("bill") == "second");
  }
  // Another user's name: forbidden.
  check_error(l.host.call_iq(IqScope::Account, "<iq type='set' id='c4' from='bill@shakespeare.lit/globe'>"
                                               "<query xmlns='jabber:iq:register'><username>romeo</username>"
                                               "<password>x</password></query></iq>"),
              "forbidden");
  CHECK(l.host.password_of("bill") == "second");
}

TEST_CASE("register: no password change over a stream without TLS (XEP-0077 §3.3 not-authorized)", "[xep0077][spec]") {
  Loaded l;
  l.bill_online(false);
  IqReply reply = l.host.call_iq(IqScope::Host, kExample18);
  check_error(reply, "not-authorized");
  CHECK(l.host.password_of("bill").empty());
}

TEST_CASE("register: <remove/> deletes the account — the result is sent before the sessions close "
          "(XEP-0077 examples 13, 14)",
          "[xep0077][spec]") {
  Loaded l;
  l.bill_online();
  std::vector<Jid> deleted;
  l.host.on<reg::AccountDeleted>([&](reg::AccountDeleted& ev) {
    deleted.push_back(ev.user);
    return cg::api::Flow::Continue;
  });
  const Element request = parse_stanza(kExample13);
  IqReply reply = l.host.call_iq(IqScope::Account, request);
  REQUIRE_FALSE(reply.is_error());
  // The account is gone.
  check_error(l.host.call_iq(IqScope::Account, "<iq type='set' id='x' from='bill@shakespeare.lit/globe'>"
                                               "<query xmlns='jabber:iq:register'><password>p</password>"
                                               "</query></iq>"),
              "item-not-found");
  CHECK(deleted == std::vector<Jid>{*Jid::parse("bill@shakespeare.lit")});
  // The result (example 14) went out through the router before the account was deleted: the core closes the
  // account's sessions in delete_account, and a reply routed after that would not reach the client.
  REQUIRE(l.host.sent().size() == 1);
  Element sent = l.host.sent().front();
  CHECK(sent.attr("from") == "bill@shakespeare.lit");
  sent.remove_attr("from");
  CHECK(canonical(sent) == canonical(parse_stanza(kExample14)));
}

TEST_CASE("register: <remove/> with other elements is bad-request (XEP-0077 §3.2)", "[xep0077][spec]") {
  Loaded l;
  l.bill_online();
  check_error(l.host.call_iq(IqScope::Account, "<iq type='set' id='u' from='bill@shakespeare.lit/globe'>"
                                               "<query xmlns='jabber:iq:register'><remove/><username>bill</username>"
                                               "</query></iq>"),
              "bad-request");
  CHECK(l.host.sent().empty());
  // The account is still there: its password can be changed.
  CHECK_FALSE(l.host
                  .call_iq(IqScope::Account, "<iq type='set' id='p' from='bill@shakespeare.lit/globe'>"
                                             "<query xmlns='jabber:iq:register'><password>still</password>"
                                             "</query></iq>")
                  .is_error());
  CHECK(l.host.password_of("bill") == "still");
}
