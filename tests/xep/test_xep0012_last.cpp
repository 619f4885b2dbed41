// XEP-0012: Last Activity 1.2 — the spec's examples, and the last module against the fake host.
#include "tests/xep/fake_host.hpp"
#include "xep/rfc6121_roster.hpp"
#include "xep/xep0012_last.hpp"

#include "server/api/datetime.hpp"

#include <catch2/catch.hpp>

#include <charconv>

using cg::api::Element;
using cg::api::Flow;
using cg::api::IqReply;
using cg::api::IqScope;
using cg::api::IqType;
using cg::api::Jid;
using cg::api::SessionEvent;
using cg::api::SessionEventKind;
using cg::api::SessionInfo;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
namespace last = cg::xep::last;
namespace roster = cg::xep::roster;

namespace {

// XEP-0012 Example 1 / 3: Last Activity Query (to a bare JID).
constexpr const char* kExample1 = R"(
<iq from='romeo@montague.net/orchard' to='juliet@capulet.com' type='get' id='last1'>
  <query xmlns='jabber:iq:last'/>
</iq>)";

// XEP-0012 Example 3's answer: the user logged out 903 seconds ago, saying "Heading Home".
constexpr const char* kExample3Answer = R"(
<iq from='juliet@capulet.com' to='romeo@montague.net/orchard' type='result' id='last1'>
  <query xmlns='jabber:iq:last' seconds='903'>Heading Home</query>
</iq>)";

// XEP-0012 Example 6: Server/Component Last Query.
constexpr const char* kExample6 = R"(
<iq from='romeo@montague.net/orchard' to='capulet.com' type='get' id='last3'>
  <query xmlns='jabber:iq:last'/>
</iq>)";

const Jid kJuliet = *Jid::parse("juliet@capulet.com");
const Jid kBalcony = *Jid::parse("juliet@capulet.com/balcony");
const Jid kRomeo = *Jid::parse("romeo@montague.net");

struct Loaded {
  Loaded() { host.load(*module); }
  FakeHost host{"capulet.com"};
  std::unique_ptr<cg::api::Module> module = last::make_module();

  // Juliet's roster: romeo with this subscription.
  void romeo_in_roster(roster::Subscription s) {
    roster::Item item;
    item.jid = kRomeo;
    item.subscription = s;
    roster::Store(host.storage()).put("capulet.com", "juliet", item);
  }
  void session(const Jid& jid, bool available) {
    SessionInfo s;
    s.jid = jid;
    s.available = available;
    host.add_session(s);
  }
  // Juliet's client sends presence with no 'to' (Route::Self).
  Flow self_presence(const Jid& from, const std::string& xml) {
    Element p = parse_stanza(xml);
    p.set_attr("from", from.str());
    const Jid none;
    const cg::api::Origin origin{cg::api::OriginKind::Client, from};
    cg::api::StanzaEvent ev{p, from, none, origin, cg::api::StanzaKind::Presence, cg::api::Route::Self};
    return host.run_stanza(ev);
  }
  void closed(const Jid& jid) { host.fire_session(SessionEvent{SessionEventKind::Closed, jid, ""}); }
};

std::int64_t seconds_of(const IqReply& reply) {
  REQUIRE_FALSE(reply.is_error());
  REQUIRE(reply.payload());
  const auto text = reply.payload()->attr("seconds");
  std::int64_t n = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  REQUIRE(ec == std::errc());
  REQUIRE(ptr == text.data() + text.size());
  return n;
}

void check_error(const IqReply& reply, const std::string& condition) {
  REQUIRE(reply.is_error());
  CHECK(reply.error_value().condition == condition);
}

} // namespace

TEST_CASE("last: Record's stored form round-trips", "[xep0012][module]") {
  last::Record r{1234567890123456, "Heading\nHome"};
  CHECK(last::Record::decode(r.encode()) == r);
  CHECK(last::Record::decode("12") == std::nullopt);
  CHECK(last::Record::decode("x\nstatus") == std::nullopt);
  CHECK(last::Record::decode("5\n") == last::Record{5, ""});
}

TEST_CASE("last: the module answers for the server and for accounts, with the feature (XEP-0012 §5)",
          "[xep0012][module]") {
  Loaded l;
  CHECK(l.host.features() == std::vector<std::string>{"jabber:iq:last"});
  CHECK(l.host.has_iq_handler(IqScope::Host, IqType::Get, last::ns, "query"));
  CHECK(l.host.has_iq_handler(IqScope::Account, IqType::Get, last::ns, "query"));
  CHECK_FALSE(l.host.has_iq_handler(IqScope::Account, IqType::Set, last::ns, "query"));
}

TEST_CASE("last: the server answers with its uptime and no text (XEP-0012 example 6, §4)", "[xep0012][spec]") {
  Loaded l;
  const Element request = parse_stanza(kExample6);
  IqReply reply = l.host.call_iq(IqScope::Host, request);
  const auto seconds = seconds_of(reply);
  CHECK(seconds >= 0);
  CHECK(seconds < 60); // it has just started
  // "The <query/> element SHOULD NOT contain XML character data."
  CHECK(reply.payload()->nodes().empty());
  Element answer = FakeHost::reply_stanza(request, reply);
  answer.child("query", last::ns)->set_attr("seconds", "123456");
  CHECK(canonical(answer) == canonical(parse_stanza("<iq from='capulet.com' to='romeo@montague.net/orchard' "
                                                    "type='result' id='last3'><query xmlns='jabber:iq:last' "
                                                    "seconds='123456'/></iq>")));
}

TEST_CASE("last: a contact subscribed to the user's presence learns when they logged out, with their status "
          "(XEP-0012 examples 1, 3)",
          "[xep0012][spec]") {
  Loaded l;
  l.romeo_in_roster(roster::Subscription::Both);
  // Juliet says goodbye ("Heading Home"), then her session ends.
  l.session(*Jid::parse("juliet@capulet.com/other"), false); // a session without presence does not count
  CHECK(l.self_presence(kBalcony, "<presence type='unavailable'><status>Heading Home</status></presence>") ==
        Flow::Continue);
  l.closed(kBalcony);
  const Element request = parse_stanza(kExample1);
  IqReply reply = l.host.call_iq(IqScope::Account, request);
  CHECK(seconds_of(reply) <= 2);
  CHECK(reply.payload()->text() == "Heading Home");

  // Stored in keyval "last": a restarted server still knows. Example 3's answer, 903 seconds later.
  auto store = l.host.storage().keyval("last");
  auto stored = store->get("capulet.com", "juliet");
  REQUIRE(stored);
  auto record = last::Record::decode(*stored);
  REQUIRE(record);
  CHECK(record->status == "Heading Home");
  record->when = cg::api::now_micros() - 903 * 1000000LL;
  store->set("capulet.com", "juliet", record->encode());
  IqReply later = l.host.call_iq(IqScope::Account, request);
  const auto seconds = seconds_of(later);
  CHECK(seconds >= 903);
  CHECK(seconds <= 905);
  Element answer = FakeHost::reply_stanza(request, later);
  answer.child("query", last::ns)->set_attr("seconds", "903");
  CHECK(canonical(answer) == canonical(parse_stanza(kExample3Answer)));
}

TEST_CASE("last: 0 seconds while the user has an available resource (XEP-0012 §2)", "[xep0012][spec]") {
  Loaded l;
  l.romeo_in_roster(roster::Subscription::From);
  l.session(kBalcony, true);
  IqReply reply = l.host.call_iq(IqScope::Account, kExample1);
  CHECK(seconds_of(reply) == 0);
  // "the response SHOULD contain an empty <query/> element whose 'seconds' attribute is set to a value of '0'".
  CHECK(reply.payload()->nodes().empty());
  // The user asking about their own account.
  IqReply own = l.host.call_iq(IqScope::Account, "<iq from='juliet@capulet.com/balcony' type='get' id='o'>"
                                                 "<query xmlns='jabber:iq:last'/></iq>");
  CHECK(seconds_of(own) == 0);
}

TEST_CASE("last: anyone not subscribed to the user's presence is forbidden (XEP-0012 §2, §7)", "[xep0012][spec]") {
  // XEP-0012 §2: "a server MUST NOT return last activity information to an entity that is not authorized to view
  // the user's presence information (normally via presence subscription), and MUST return a "Forbidden" error".
  for (auto sub : {roster::Subscription::None, roster::Subscription::To}) {
    Loaded l;
    l.romeo_in_roster(sub);
    l.session(kBalcony, true); // even while she is online: the answer would tell that
    check_error(l.host.call_iq(IqScope::Account, kExample1), "forbidden");
  }
  Loaded l;
  l.session(kBalcony, true);
  check_error(l.host.call_iq(IqScope::Account, kExample1), "forbidden"); // not in the roster at all
  check_error(l.host.call_iq(IqScope::Account, "<iq from='nurse@capulet.com/x' to='juliet@capulet.com' "
                                               "type='get' id='n'><query xmlns='jabber:iq:last'/></iq>"),
              "forbidden");
}

TEST_CASE("last: a user never seen logging out: service-unavailable", "[xep0012][module]") {
  Loaded l;
  l.romeo_in_roster(roster::Subscription::Both);
  check_error(l.host.call_iq(IqScope::Account, kExample1), "service-unavailable");
}

TEST_CASE("last: the time is taken when the last available resource goes, not before", "[xep0012][module]") {
  Loaded l;
  l.romeo_in_roster(roster::Subscription::Both);
  // Another resource is still available: no record yet.
  l.session(*Jid::parse("juliet@capulet.com/chamber"), true);
  l.self_presence(kBalcony, "<presence type='unavailable'><status>bye</status></presence>");
  l.closed(kBalcony);
  CHECK_FALSE(l.host.storage().keyval("last")->get("capulet.com", "juliet"));
  CHECK(seconds_of(l.host.call_iq(IqScope::Account, kExample1)) == 0);

  // Unavailable presence without closing the stream counts as going offline; the status of the presence is kept
  // until the session closes, and an available presence in between forgets it.
  Loaded m;
  m.romeo_in_roster(roster::Subscription::Both);
  m.self_presence(kBalcony, "<presence type='unavailable'><status>away for now</status></presence>");
  m.host.run(); // the write is queued on the executor
  auto first = m.host.storage().keyval("last")->get("capulet.com", "juliet");
  REQUIRE(first);
  CHECK(last::Record::decode(*first)->status == "away for now");
  m.self_presence(kBalcony, "<presence/>");
  m.closed(kBalcony);
  IqReply reply = m.host.call_iq(IqScope::Account, kExample1);
  CHECK(reply.payload()->text().empty());
}
