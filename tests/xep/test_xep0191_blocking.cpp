// XEP-0191: Blocking Command 1.1 — the spec's examples, JID matching, and the blocking module against the fake host.
#include "tests/xep/fake_host.hpp"
#include "xep/rfc6121_roster.hpp"
#include "xep/xep0077_register.hpp"
#include "xep/xep0191_blocking.hpp"

#include <catch2/catch.hpp>

using cg::api::Element;
using cg::api::Flow;
using cg::api::IqReply;
using cg::api::IqScope;
using cg::api::IqType;
using cg::api::Jid;
using cg::api::OriginKind;
using cg::api::Route;
using cg::api::SessionEvent;
using cg::api::SessionEventKind;
using cg::api::SessionInfo;
using cg::api::StanzaKind;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
using cg::test::parse_xml;
namespace blocking = cg::xep::blocking;
namespace roster = cg::xep::roster;

namespace {

// XEP-0191 Example 3: Client requests blocklist; examples 4 and 5: the server's answers.
constexpr const char* kExample3 = R"(
<iq type='get' id='blocklist1' from='juliet@capulet.com/chamber'>
  <blocklist xmlns='urn:xmpp:blocking'/>
</iq>)";
constexpr const char* kExample4 = R"(
<iq type='result' id='blocklist1' to='juliet@capulet.com/chamber'>
  <blocklist xmlns='urn:xmpp:blocking'>
    <item jid='iago@shakespeare.lit'/>
    <item jid='romeo@montague.net'/>
  </blocklist>
</iq>)";
constexpr const char* kExample5 = R"(
<iq type='result' id='blocklist1' to='juliet@capulet.com/chamber'>
  <blocklist xmlns='urn:xmpp:blocking'/>
</iq>)";

// XEP-0191 Example 6: Block command; example 7: success; example 8: block "push".
constexpr const char* kExample6 = R"(
<iq from='juliet@capulet.com/chamber' type='set' id='block1'>
  <block xmlns='urn:xmpp:blocking'>
    <item jid='romeo@montague.net'/>
  </block>
</iq>)";
constexpr const char* kExample7 = R"(<iq type='result' id='block1' to='juliet@capulet.com/chamber'/>)";
constexpr const char* kExample8Push = R"(
<iq to='juliet@capulet.com/chamber' type='set' id='push1'>
  <block xmlns='urn:xmpp:blocking'>
    <item jid='romeo@montague.net'/>
  </block>
</iq>)";

// XEP-0191 Example 9: Error: contact is blocked.
constexpr const char* kExample9 = R"(
<message type='error' from='romeo@montague.net' to='juliet@capulet.com'>
  <body>Can you hear me now?</body>
  <error type='cancel'>
    <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
    <blocked xmlns='urn:xmpp:blocking:errors'/>
  </error>
</message>)";

// XEP-0191 Example 10: Unblock contact command; example 12: unblock "push".
constexpr const char* kExample10 = R"(
<iq type='set' id='unblock1' from='juliet@capulet.com/chamber'>
  <unblock xmlns='urn:xmpp:blocking'>
    <item jid='romeo@montague.net'/>
  </unblock>
</iq>)";
constexpr const char* kExample12Push = R"(
<iq to='juliet@capulet.com/chamber' type='set' id='push3'>
  <unblock xmlns='urn:xmpp:blocking'>
    <item jid='romeo@montague.net'/>
  </unblock>
</iq>)";

// XEP-0191 Example 13: Unblock all command; example 15: unblock all "push".
constexpr const char* kExample13 = R"(
<iq type='set' id='unblock2' from='juliet@capulet.com/chamber'>
  <unblock xmlns='urn:xmpp:blocking'/>
</iq>)";
constexpr const char* kExample15Push = R"(
<iq to='juliet@capulet.com/chamber' type='set' id='push5'>
  <unblock xmlns='urn:xmpp:blocking'/>
</iq>)";

const Jid kChamber = *Jid::parse("juliet@capulet.com/chamber");
const Jid kBalcony = *Jid::parse("juliet@capulet.com/balcony");
const Jid kJuliet = *Jid::parse("juliet@capulet.com");
const Jid kRomeo = *Jid::parse("romeo@montague.net");
const Jid kRomeoOrchard = *Jid::parse("romeo@montague.net/orchard");

Jid jid(const char* s) {
  return *Jid::parse(s);
}

struct Loaded {
  explicit Loaded(cg::test::OptionOverrides options = {}, std::function<void(FakeHost&)> before = {}) {
    if (before) {
      before(host);
    }
    host.load(*module, options);
  }
  FakeHost host{"capulet.com"};
  std::unique_ptr<cg::api::Module> module = blocking::make_module();

  IqReply iq(const char* xml) { return host.call_iq(IqScope::Account, xml); }
  IqReply block(const std::string& items, const Jid& from = kChamber) {
    return host.call_iq(IqScope::Account, "<iq type='set' id='b' from='" + from.str() +
                                              "'><block xmlns='urn:xmpp:blocking'>" + items + "</block></iq>");
  }
  std::vector<std::string> list(const Jid& from = kChamber) {
    IqReply r = host.call_iq(IqScope::Account, "<iq type='get' id='l' from='" + from.str() +
                                                   "'><blocklist xmlns='urn:xmpp:blocking'/></iq>");
    REQUIRE_FALSE(r.is_error());
    std::vector<std::string> out;
    for (const auto* item : r.payload()->children("item")) {
      out.emplace_back(item->attr("jid"));
    }
    return out;
  }
  // Runs the stanza handlers for `xml` (with 'from' and 'to' set) on `route`.
  Flow stanza(Route route, const std::string& xml, OriginKind origin_kind = OriginKind::Client) {
    Element s = parse_stanza(xml);
    const Jid from = *Jid::parse(s.attr("from"));
    const Jid to = s.has_attr("to") ? *Jid::parse(s.attr("to")) : Jid();
    const cg::api::Origin origin{origin_kind, origin_kind == OriginKind::Local ? jid("capulet.com") : from};
    cg::api::StanzaEvent ev{s, from, to, origin, cg::api::kind_of(s), route};
    return host.run_stanza(ev);
  }
  void session(const Jid& j, bool available = true) {
    SessionInfo s;
    s.jid = j;
    s.available = available;
    host.add_session(s);
  }
};

void check_error(const IqReply& reply, const std::string& condition) {
  REQUIRE(reply.is_error());
  CHECK(reply.error_value().condition == condition);
}

// A sent stanza with its server-chosen id replaced, for comparison with an example.
Element with_id(Element el, const char* id) {
  el.set_attr("id", id);
  return el;
}

} // namespace

TEST_CASE("blocking: JID matching (XEP-0191 §4)", "[xep0191][spec]") {
  // "<user@domain/resource> (only that resource matches)"
  CHECK(blocking::matches(jid("romeo@montague.net/orchard"), jid("romeo@montague.net/orchard")));
  CHECK_FALSE(blocking::matches(jid("romeo@montague.net/orchard"), jid("romeo@montague.net/garden")));
  CHECK_FALSE(blocking::matches(jid("romeo@montague.net/orchard"), jid("romeo@montague.net")));
  // "<user@domain> (any resource matches)"
  CHECK(blocking::matches(jid("romeo@montague.net"), jid("romeo@montague.net")));
  CHECK(blocking::matches(jid("romeo@montague.net"), jid("romeo@montague.net/garden")));
  CHECK_FALSE(blocking::matches(jid("romeo@montague.net"), jid("benvolio@montague.net")));
  // "<domain/resource> (only that resource matches)"
  CHECK(blocking::matches(jid("montague.net/bot"), jid("montague.net/bot")));
  CHECK_FALSE(blocking::matches(jid("montague.net/bot"), jid("romeo@montague.net/bot")));
  CHECK_FALSE(blocking::matches(jid("montague.net/bot"), jid("montague.net")));
  // "<domain> (the domain itself matches, as does any user@domain, domain/resource, or address containing a
  // subdomain)"
  for (const char* a : {"montague.net", "romeo@montague.net", "romeo@montague.net/x", "montague.net/x",
                        "chat.montague.net", "romeo@a.b.montague.net/x"}) {
    INFO(a);
    CHECK(blocking::matches(jid("montague.net"), jid(a)));
  }
  CHECK_FALSE(blocking::matches(jid("montague.net"), jid("notmontague.net")));
  CHECK_FALSE(blocking::matches(jid("montague.net"), jid("montague.network")));
  CHECK_FALSE(blocking::matches(jid("chat.montague.net"), jid("montague.net")));

  // covers(): the same rules over a whole list, by lookup.
  const std::set<std::string> list{"romeo@montague.net", "iago@shakespeare.lit/pda", "example.org", "x.lit/bot"};
  CHECK(blocking::covers(list, jid("romeo@montague.net/orchard")));
  CHECK(blocking::covers(list, jid("iago@shakespeare.lit/pda")));
  CHECK_FALSE(blocking::covers(list, jid("iago@shakespeare.lit/phone")));
  CHECK_FALSE(blocking::covers(list, jid("iago@shakespeare.lit")));
  CHECK(blocking::covers(list, jid("anyone@muc.example.org/nick")));
  CHECK(blocking::covers(list, jid("x.lit/bot")));
  CHECK_FALSE(blocking::covers(list, jid("x.lit")));
  CHECK_FALSE(blocking::covers({}, jid("romeo@montague.net")));
}

TEST_CASE("blocking: the server feature (XEP-0191 §5.1) and the IQ handlers", "[xep0191][module]") {
  Loaded l;
  // "If the server supports the protocol defined herein, it MUST return a feature of "urn:xmpp:blocking""
  CHECK(l.host.features() == std::vector<std::string>{"urn:xmpp:blocking"});
  CHECK(l.host.has_iq_handler(IqScope::Account, IqType::Get, blocking::ns, "blocklist"));
  CHECK(l.host.has_iq_handler(IqScope::Account, IqType::Set, blocking::ns, "block"));
  CHECK(l.host.has_iq_handler(IqScope::Account, IqType::Set, blocking::ns, "unblock"));
}

TEST_CASE("blocking: an empty blocklist, a block, the list with items (XEP-0191 examples 3-7)", "[xep0191][spec]") {
  Loaded l;
  const Element request = parse_stanza(kExample3);
  IqReply empty = l.host.call_iq(IqScope::Account, request);
  REQUIRE_FALSE(empty.is_error());
  CHECK(canonical(FakeHost::reply_stanza(request, empty)) == canonical(parse_stanza(kExample5)));

  const Element block = parse_stanza(kExample6);
  IqReply done = l.host.call_iq(IqScope::Account, block);
  REQUIRE_FALSE(done.is_error());
  CHECK(canonical(FakeHost::reply_stanza(block, done)) == canonical(parse_stanza(kExample7)));
  REQUIRE_FALSE(l.block("<item jid='iago@shakespeare.lit'/>").is_error());

  IqReply listed = l.host.call_iq(IqScope::Account, request);
  CHECK(canonical(FakeHost::reply_stanza(request, listed)) == canonical(parse_stanza(kExample4)));

  // Stored: map store "blocklist" keyed by JID, and the user marked in keyval store "blocklist_users".
  auto stored = l.host.storage().map("blocklist")->all("capulet.com", "juliet");
  REQUIRE(stored.size() == 2);
  CHECK(stored[0].first == "iago@shakespeare.lit");
  CHECK(stored[1].first == "romeo@montague.net");
  CHECK(l.host.storage().keyval("blocklist_users")->users("capulet.com") == std::vector<std::string>{"juliet"});
}

TEST_CASE("blocking: items are normalised and kept as given (full, bare, domain/resource, domain)",
          "[xep0191][module]") {
  Loaded l;
  REQUIRE_FALSE(l.block("<item jid='Romeo@Montague.NET/Orchard'/><item jid='IAGO@shakespeare.lit'/>"
                        "<item jid='example.org/bot'/><item jid='Example.COM'/>")
                    .is_error());
  CHECK(l.list() == std::vector<std::string>{"example.com", "example.org/bot", "iago@shakespeare.lit",
                                             "romeo@montague.net/Orchard"});
}

TEST_CASE("blocking: malformed commands (XEP-0191 §5.3)", "[xep0191][spec]") {
  Loaded l;
  // "If the <block/> element does not contain at least one <item/> child element, the server MUST return a
  // <bad-request/> error."
  check_error(l.block(""), "bad-request");
  check_error(l.block("<item/>"), "bad-request");
  check_error(l.block("<item jid='a@b@c'/>"), "jid-malformed");
  check_error(l.block("<item jid='romeo@montague.net'/><item jid=''/>"), "jid-malformed");
  CHECK(l.list().empty()); // nothing of a refused command is kept
  // Another user's blocklist is theirs only.
  check_error(l.host.call_iq(IqScope::Account, "<iq type='get' id='x' from='nurse@capulet.com/n' "
                                               "to='juliet@capulet.com'><blocklist xmlns='urn:xmpp:blocking'/></iq>"),
              "forbidden");
  check_error(l.host.call_iq(IqScope::Account, "<iq type='set' id='x' from='nurse@capulet.com/n' "
                                               "to='juliet@capulet.com'><block xmlns='urn:xmpp:blocking'>"
                                               "<item jid='romeo@montague.net'/></block></iq>"),
              "forbidden");
  CHECK(l.list().empty());
}

TEST_CASE("blocking: modules.blocking.max_items", "[xep0191][module]") {
  Loaded l({{"max_items", std::int64_t{2}}});
  REQUIRE_FALSE(l.block("<item jid='a@x.lit'/><item jid='b@x.lit'/>").is_error());
  IqReply third = l.block("<item jid='c@x.lit'/>");
  check_error(third, "not-acceptable");
  CHECK(l.list() == std::vector<std::string>{"a@x.lit", "b@x.lit"});
  CHECK_FALSE(l.block("<item jid='a@x.lit'/>").is_error()); // already there: no growth
}

TEST_CASE("blocking: pushes go to the resources that requested the blocklist (XEP-0191 examples 8, 12, 15)",
          "[xep0191][spec]") {
  Loaded l;
  // The chamber resource asks for the list; the balcony resource does not.
  l.list(kChamber);
  l.host.clear_records();
  REQUIRE_FALSE(l.host
                    .call_iq(IqScope::Account, "<iq from='juliet@capulet.com/balcony' type='set' id='block1'>"
                                               "<block xmlns='urn:xmpp:blocking'><item jid='romeo@montague.net'/>"
                                               "</block></iq>")
                    .is_error());
  REQUIRE(l.host.sent().size() == 1);
  Element push = l.host.sent()[0];
  CHECK(push.attr("from") == "juliet@capulet.com"); // from the account, as roster pushes
  push.remove_attr("from");
  CHECK_FALSE(push.attr("id").empty());
  CHECK(canonical(with_id(push, "push1")) == canonical(parse_stanza(kExample8Push)));

  l.host.clear_records();
  REQUIRE_FALSE(l.iq(kExample10).is_error());
  REQUIRE(l.host.sent().size() == 1);
  push = l.host.sent()[0];
  push.remove_attr("from");
  CHECK(canonical(with_id(push, "push3")) == canonical(parse_stanza(kExample12Push)));

  REQUIRE_FALSE(l.block("<item jid='a@x.lit'/><item jid='b@x.lit'/>").is_error());
  l.host.clear_records();
  REQUIRE_FALSE(l.iq(kExample13).is_error());
  REQUIRE(l.host.sent().size() == 1);
  push = l.host.sent()[0];
  push.remove_attr("from");
  CHECK(canonical(with_id(push, "push5")) == canonical(parse_stanza(kExample15Push)));
  CHECK(l.list().empty());
  // "Unblock all" leaves nothing stored, not even the mark.
  CHECK(l.host.storage().map("blocklist")->all("capulet.com", "juliet").empty());
  CHECK(l.host.storage().keyval("blocklist_users")->users("capulet.com").empty());

  // A resource that went away gets no more pushes.
  l.host.fire_session(SessionEvent{SessionEventKind::Closed, kChamber, ""});
  l.host.clear_records();
  REQUIRE_FALSE(l.block("<item jid='c@x.lit'/>").is_error());
  CHECK(l.host.sent().empty());
}

TEST_CASE("blocking: inbound stanzas from a blocked JID are not delivered (XEP-0191 §5.3)", "[xep0191][spec]") {
  Loaded l;
  REQUIRE_FALSE(l.iq(kExample6).is_error());
  l.host.clear_records();
  for (auto route : {Route::Bare, Route::Full}) {
    const std::string to = route == Route::Bare ? "juliet@capulet.com" : "juliet@capulet.com/chamber";
    INFO(to);
    // "For presence stanzas (including notifications, subscriptions, and probes), the server MUST NOT respond and
    // MUST NOT return an error."
    for (const char* type : {"", "unavailable", "subscribe", "probe"}) {
      CHECK(l.stanza(route, "<presence from='romeo@montague.net/orchard' to='" + to + "'" +
                                (*type ? std::string(" type='") + type + "'" : std::string()) + "/>") == Flow::Stop);
    }
    CHECK(l.host.sent().empty());
    // "For message stanzas, the server SHOULD return an error, which SHOULD be <service-unavailable/>."
    CHECK(l.stanza(route, "<message from='romeo@montague.net/orchard' to='" + to +
                              "' id='m1' type='chat'><body>hi</body></message>") == Flow::Stop);
    REQUIRE(l.host.sent().size() == 1);
    CHECK(l.host.sent()[0].name() == "message");
    CHECK(l.host.sent()[0].attr("type") == "error");
    CHECK(l.host.sent()[0].attr("to") == "romeo@montague.net/orchard");
    CHECK(l.host.sent()[0].attr("from") == to);
    CHECK(cg::api::parse_error(l.host.sent()[0]).condition == "service-unavailable");
    l.host.clear_records();
    // An error message is dropped, never answered.
    CHECK(l.stanza(route, "<message from='romeo@montague.net/orchard' to='" + to + "' type='error'/>") == Flow::Stop);
    CHECK(l.host.sent().empty());
    // "For IQ stanzas of type "get" or "set", the server MUST return an error, which SHOULD be
    // <service-unavailable/>. IQ stanzas of other types MUST be silently dropped by the server."
    CHECK(l.stanza(route, "<iq from='romeo@montague.net/orchard' to='" + to +
                              "' id='q' type='get'><vCard xmlns='vcard-temp'/></iq>") == Flow::Stop);
    REQUIRE(l.host.sent().size() == 1);
    CHECK(l.host.sent()[0].attr("type") == "error");
    CHECK(cg::api::parse_error(l.host.sent()[0]).condition == "service-unavailable");
    l.host.clear_records();
    for (const char* type : {"result", "error"}) {
      CHECK(l.stanza(route, "<iq from='romeo@montague.net/orchard' to='" + to + "' id='r' type='" + type + "'/>") ==
            Flow::Stop);
    }
    CHECK(l.host.sent().empty());
  }
  // Others still get through, and so does the server itself.
  CHECK(l.stanza(Route::Bare, "<message from='benvolio@montague.net/x' to='juliet@capulet.com'/>") == Flow::Continue);
  CHECK(l.stanza(Route::Full, "<iq from='capulet.com' to='juliet@capulet.com/chamber' id='p' type='get'>"
                              "<ping xmlns='urn:xmpp:ping'/></iq>") == Flow::Continue);
  // Another user of the host is not affected by Juliet's list.
  CHECK(l.stanza(Route::Bare, "<message from='romeo@montague.net/orchard' to='nurse@capulet.com'/>") == Flow::Continue);
  CHECK(l.host.sent().empty());
}

TEST_CASE("blocking: outbound stanzas to a blocked JID get not-acceptable with <blocked/> (XEP-0191 example 9)",
          "[xep0191][spec]") {
  Loaded l;
  REQUIRE_FALSE(l.iq(kExample6).is_error());
  l.host.clear_records();
  CHECK(l.stanza(Route::Pre, "<message from='juliet@capulet.com/chamber' to='romeo@montague.net'>"
                             "<body>Can you hear me now?</body></message>") == Flow::Stop);
  REQUIRE(l.host.sent().size() == 1);
  Element error = l.host.sent()[0];
  // "the user's server MUST NOT route the stanza to the contact but instead MUST return a <not-acceptable/> error
  // containing an application-specific error condition of <blocked/>": example 9 (addressed to the full JID that
  // sent it; the error carries an explanation).
  CHECK(error.attr("to") == "juliet@capulet.com/chamber");
  error.set_attr("to", "juliet@capulet.com");
  error.child("error")->remove_children("text", cg::api::ns::stanza_errors);
  CHECK(canonical(error) == canonical(parse_stanza(kExample9)));
  l.host.clear_records();

  // Also to any resource of the contact, and for presence and IQs.
  CHECK(l.stanza(Route::Pre, "<presence from='juliet@capulet.com/chamber' to='romeo@montague.net/orchard'/>") ==
        Flow::Stop);
  CHECK(l.stanza(Route::Pre, "<iq from='juliet@capulet.com/chamber' to='romeo@montague.net/orchard' id='v' "
                             "type='get'><query xmlns='jabber:iq:version'/></iq>") == Flow::Stop);
  REQUIRE(l.host.sent().size() == 2);
  for (const auto& e : l.host.sent()) {
    CHECK(cg::api::parse_error(e).condition == "not-acceptable");
    CHECK(e.child("error")->child("blocked", blocking::ns_errors) != nullptr);
  }
  l.host.clear_records();
  // Errors and IQ results are dropped without an answer.
  CHECK(l.stanza(Route::Pre, "<iq from='juliet@capulet.com/chamber' to='romeo@montague.net/orchard' id='r' "
                             "type='result'/>") == Flow::Stop);
  CHECK(l.stanza(Route::Pre, "<message from='juliet@capulet.com/chamber' to='romeo@montague.net' type='error'/>") ==
        Flow::Stop);
  CHECK(l.host.sent().empty());
  // Others, the server, the user's own account and stanzas without 'to' pass.
  CHECK(l.stanza(Route::Pre, "<message from='juliet@capulet.com/chamber' to='benvolio@montague.net'/>") ==
        Flow::Continue);
  CHECK(l.stanza(Route::Pre, "<iq from='juliet@capulet.com/chamber' to='capulet.com' id='p' type='get'>"
                             "<ping xmlns='urn:xmpp:ping'/></iq>") == Flow::Continue);
  CHECK(l.stanza(Route::Pre, "<presence from='juliet@capulet.com/chamber'/>") == Flow::Continue);
  CHECK(l.stanza(Route::Pre, "<message from='juliet@capulet.com/chamber' to='juliet@capulet.com/balcony'/>") ==
        Flow::Continue);
  CHECK(l.host.sent().empty());

  // The error the server generated, whose 'from' is the blocked JID, reaches the user (it is not the contact's).
  CHECK(l.stanza(Route::Full, "<message from='romeo@montague.net' to='juliet@capulet.com/chamber' type='error'/>",
                 OriginKind::Local) == Flow::Continue);
}

TEST_CASE("blocking: a domain item blocks the whole domain but never the user's own server", "[xep0191][module]") {
  Loaded l;
  REQUIRE_FALSE(l.block("<item jid='capulet.com'/><item jid='montague.net'/>").is_error());
  CHECK(l.stanza(Route::Bare, "<message from='nurse@capulet.com/n' to='juliet@capulet.com'/>") == Flow::Stop);
  CHECK(l.stanza(Route::Bare, "<message from='romeo@chat.montague.net/n' to='juliet@capulet.com'/>") == Flow::Stop);
  CHECK(l.stanza(Route::Full, "<iq from='capulet.com' to='juliet@capulet.com/chamber' id='p' type='get'>"
                              "<ping xmlns='urn:xmpp:ping'/></iq>") == Flow::Continue);
  CHECK(l.stanza(Route::Pre, "<iq from='juliet@capulet.com/chamber' to='capulet.com' id='p' type='get'>"
                             "<ping xmlns='urn:xmpp:ping'/></iq>") == Flow::Continue);
  CHECK(l.stanza(Route::Bare, "<message from='juliet@capulet.com/balcony' to='juliet@capulet.com'/>") ==
        Flow::Continue);
}

TEST_CASE("blocking: presence the server sends for the user to a blocked local contact is not routed",
          "[xep0191][spec]") {
  Loaded l;
  REQUIRE_FALSE(l.block("<item jid='nurse@capulet.com'/>").is_error());
  // The presence module broadcasting Juliet's presence to the nurse (a subscriber), or probing her.
  CHECK(l.stanza(Route::Bare, "<presence from='juliet@capulet.com/chamber' to='nurse@capulet.com'/>",
                 OriginKind::Local) == Flow::Stop);
  CHECK(l.stanza(Route::Full, "<presence from='juliet@capulet.com' to='nurse@capulet.com/n' type='probe'/>",
                 OriginKind::Local) == Flow::Stop);
  // Unavailable presence is what a block sends (§5.3), and passes.
  CHECK(l.stanza(Route::Bare,
                 "<presence from='juliet@capulet.com/chamber' to='nurse@capulet.com' "
                 "type='unavailable'/>",
                 OriginKind::Local) == Flow::Continue);
}

TEST_CASE("blocking: unblocking restores delivery (XEP-0191 §5.4, §5.5)", "[xep0191][spec]") {
  Loaded l;
  REQUIRE_FALSE(l.block("<item jid='romeo@montague.net'/><item jid='iago@shakespeare.lit'/>").is_error());
  REQUIRE_FALSE(l.iq(kExample10).is_error());
  // "After the user has unblocked communications with the contact, the user's server MUST deliver any subsequent
  // XML stanzas from the contact to the user."
  CHECK(l.stanza(Route::Bare, "<message from='romeo@montague.net/orchard' to='juliet@capulet.com'/>") ==
        Flow::Continue);
  CHECK(l.stanza(Route::Bare, "<message from='iago@shakespeare.lit/x' to='juliet@capulet.com'/>") == Flow::Stop);
  CHECK(l.list() == std::vector<std::string>{"iago@shakespeare.lit"});
  REQUIRE_FALSE(l.iq(kExample13).is_error());
  // "Once the user has unblocked communications with all contacts, the user's server MUST deliver any XML stanzas
  // from those contacts to the user."
  CHECK(l.stanza(Route::Bare, "<message from='iago@shakespeare.lit/x' to='juliet@capulet.com'/>") == Flow::Continue);
  CHECK(l.stanza(Route::Pre, "<message from='juliet@capulet.com/chamber' to='iago@shakespeare.lit'/>") ==
        Flow::Continue);
}

TEST_CASE("blocking: blocklists are loaded at start and enforced while the user is offline", "[xep0191][module]") {
  // A blocklist stored earlier (before a restart): no IQ, no session.
  Loaded l({}, [](FakeHost& host) {
    host.storage().map("blocklist")->set("capulet.com", "juliet", "romeo@montague.net", "");
    host.storage().keyval("blocklist_users")->set("capulet.com", "juliet", "1");
  });
  // "The block remains in force until the user subsequently unblocks commmunications with the contact (i.e., the
  // duration of the block is potentially unlimited and applies across sessions)": a message to the offline user is
  // refused before any module could keep it for later.
  CHECK(l.stanza(Route::Bare, "<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='chat'/>") ==
        Flow::Stop);
  CHECK(l.list() == std::vector<std::string>{"romeo@montague.net"});
  // Checking a stanza reads no storage.
  const int runs = l.host.blocking_runs();
  for (int i = 0; i < 10; ++i) {
    l.stanza(Route::Bare, "<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='chat'/>");
    l.stanza(Route::Bare, "<message from='benvolio@montague.net/x' to='juliet@capulet.com' type='chat'/>");
  }
  CHECK(l.host.blocking_runs() == runs);
}

TEST_CASE("blocking: the stanza handlers run before the modules that deliver or store", "[xep0191][module]") {
  Loaded l;
  for (const auto& h : l.host.stanza_handlers()) {
    if (h.route != Route::Self) {
      CHECK(h.priority == blocking::priority);
    }
  }
}

TEST_CASE("blocking: a block sends unavailable presence to contacts who may see the user's presence "
          "(XEP-0191 §5.3)",
          "[xep0191][spec]") {
  Loaded l;
  roster::Store store(l.host.storage());
  auto put = [&](const char* j, roster::Subscription s) {
    roster::Item item;
    item.jid = jid(j);
    item.subscription = s;
    store.put("capulet.com", "juliet", item);
  };
  put("romeo@montague.net", roster::Subscription::Both);
  put("benvolio@montague.net", roster::Subscription::From);
  put("mercutio@montague.net", roster::Subscription::To); // does not see her presence
  put("nurse@capulet.com", roster::Subscription::Both);   // not blocked
  l.session(kChamber, true);
  l.session(kBalcony, true);
  l.session(*Jid::parse("juliet@capulet.com/hidden"), false); // no presence sent: nothing to withdraw
  l.host.clear_records();
  REQUIRE_FALSE(l.block("<item jid='montague.net'/>").is_error());
  // "When the user blocks communications with the contact, the user's server MUST send unavailable presence
  // information to the contact (but only if the contact is allowed to receive presence notifications from the
  // user ...)"
  std::set<std::pair<std::string, std::string>> unavailable;
  for (const auto& s : l.host.sent()) {
    if (s.name() == "presence") {
      CHECK(s.attr("type") == "unavailable");
      unavailable.emplace(s.attr("from"), s.attr("to"));
    }
  }
  CHECK(unavailable == std::set<std::pair<std::string, std::string>>{
                           {"juliet@capulet.com/chamber", "romeo@montague.net"},
                           {"juliet@capulet.com/balcony", "romeo@montague.net"},
                           {"juliet@capulet.com/chamber", "benvolio@montague.net"},
                           {"juliet@capulet.com/balcony", "benvolio@montague.net"},
                       });

  // §5.4: "When the user unblocks communications with the contact, the user's server MUST send the user's current
  // presence information to the contact (but only if the contact is allowed to receive presence notifications from
  // the user ...)".
  l.stanza(Route::Self, "<presence from='juliet@capulet.com/chamber'><show>away</show><status>out</status>"
                        "</presence>");
  l.host.clear_records();
  REQUIRE_FALSE(l.iq("<iq type='set' id='u' from='juliet@capulet.com/chamber'><unblock xmlns='urn:xmpp:blocking'>"
                     "<item jid='montague.net'/></unblock></iq>")
                    .is_error());
  std::vector<Element> presences;
  for (const auto& s : l.host.sent()) {
    if (s.name() == "presence") {
      presences.push_back(s);
    }
  }
  // Only the chamber resource's presence is known (the balcony sent none since the module loaded).
  REQUIRE(presences.size() == 2);
  std::set<std::string> to;
  for (const auto& p : presences) {
    CHECK(p.attr("from") == "juliet@capulet.com/chamber");
    CHECK(p.child_text("status") == "out");
    CHECK(p.attr("type").empty());
    to.insert(std::string(p.attr("to")));
  }
  CHECK(to == std::set<std::string>{"romeo@montague.net", "benvolio@montague.net"});
}

TEST_CASE("blocking: an account removed in-band leaves no blocklist behind in memory", "[xep0191][module]") {
  Loaded l;
  REQUIRE_FALSE(l.block("<item jid='romeo@montague.net'/>").is_error());
  cg::xep::reg::AccountDeleted ev{kJuliet};
  l.host.fire(ev);
  CHECK(l.stanza(Route::Bare, "<message from='romeo@montague.net/orchard' to='juliet@capulet.com'/>") ==
        Flow::Continue);
}
