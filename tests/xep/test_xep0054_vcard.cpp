// XEP-0054: vcard-temp 1.2 — the spec's examples, and the vcard module against the fake host.
#include "tests/xep/fake_host.hpp"
#include "xep/xep0054_vcard.hpp"

#include "server/api/xml.hpp"

#include <catch2/catch.hpp>

using cg::api::Element;
using cg::api::IqReply;
using cg::api::IqScope;
using cg::api::IqType;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
namespace vcard = cg::xep::vcard;

namespace {

// XEP-0054 Example 1: vCard Retrieval Request.
constexpr const char* kExample1 = R"(
<iq from='stpeter@jabber.org/roundabout' id='v1' type='get'>
  <vCard xmlns='vcard-temp'/>
</iq>)";

// XEP-0054 Example 2: Server Returns vCard.
constexpr const char* kExample2 = R"(
<iq id='v1' to='stpeter@jabber.org/roundabout' type='result'>
  <vCard xmlns='vcard-temp'>
    <FN>Peter Saint-Andre</FN>
    <N><FAMILY>Saint-Andre</FAMILY><GIVEN>Peter</GIVEN><MIDDLE/></N>
    <NICKNAME>stpeter</NICKNAME>
    <URL>http://www.xmpp.org/xsf/people/stpeter.shtml</URL>
    <BDAY>1966-08-06</BDAY>
    <ORG><ORGNAME>XMPP Standards Foundation</ORGNAME><ORGUNIT/></ORG>
    <TITLE>Executive Director</TITLE>
    <ROLE>Patron Saint</ROLE>
    <TEL><WORK/><VOICE/><NUMBER>303-308-3282</NUMBER></TEL>
    <TEL><WORK/><FAX/><NUMBER/></TEL>
    <TEL><WORK/><MSG/><NUMBER/></TEL>
    <ADR>
      <WORK/><EXTADD>Suite 600</EXTADD><STREET>1899 Wynkoop Street</STREET><LOCALITY>Denver</LOCALITY>
      <REGION>CO</REGION><PCODE>80202</PCODE><CTRY>USA</CTRY>
    </ADR>
    <TEL><HOME/><VOICE/><NUMBER>303-555-1212</NUMBER></TEL>
    <TEL><HOME/><FAX/><NUMBER/></TEL>
    <TEL><HOME/><MSG/><NUMBER/></TEL>
    <ADR>
      <HOME/><EXTADD/><STREET/><LOCALITY>Denver</LOCALITY><REGION>CO</REGION><PCODE>80209</PCODE><CTRY>USA</CTRY>
    </ADR>
    <EMAIL><INTERNET/><PREF/><USERID>stpeter@jabber.org</USERID></EMAIL>
    <JABBERID>stpeter@jabber.org</JABBERID>
    <DESC>
      More information about me is located on my
      personal website: http://www.saint-andre.com/
    </DESC>
  </vCard>
</iq>)";

// XEP-0054 Example 4: No vCard (empty element).
constexpr const char* kExample4 = R"(
<iq id='v1' to='stpeter@jabber.org/roundabout' type='result'>
  <vCard xmlns='vcard-temp'/>
</iq>)";

// XEP-0054 Example 5: vCard Update Request (abridged: the spec's example repeats example 2 with a new DESC), with
// the 'from' the server stamps.
constexpr const char* kExample5 = R"(
<iq id='v2' type='set' from='stpeter@jabber.org/roundabout'>
  <vCard xmlns='vcard-temp'>
    <FN>Peter Saint-Andre</FN>
    <N><FAMILY>Saint-Andre</FAMILY><GIVEN>Peter</GIVEN><MIDDLE/></N>
    <NICKNAME>stpeter</NICKNAME>
    <JABBERID>stpeter@jabber.org</JABBERID>
    <DESC>
      Check out my blog at https://stpeter.im/
    </DESC>
  </vCard>
</iq>)";

// XEP-0054 Example 6: Server Returns Success.
constexpr const char* kExample6 = R"(<iq id='v2' to='stpeter@jabber.org/roundabout' type='result'/>)";

// XEP-0054 Example 7: Entity Attempts to Modify Another Entity's vCard.
constexpr const char* kExample7 = R"(
<iq id='v2' to='stpeter@jabber.org/roundabout' type='error'>
  <error type='auth'>
    <forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
  </error>
</iq>)";

// XEP-0054 Example 8: Requesting Another User's vCard.
constexpr const char* kExample8 = R"(
<iq from='stpeter@jabber.org/roundabout' id='v3' to='jer@jabber.org' type='get'>
  <vCard xmlns='vcard-temp'/>
</iq>)";

// XEP-0054 Example 9: Receiving Another User's vCard.
constexpr const char* kExample9 = R"(
<iq from='jer@jabber.org' to='stpeter@jabber.org/roundabout' type='result' id='v3'>
  <vCard xmlns='vcard-temp'>
    <FN>JeremieMiller</FN>
    <N><GIVEN>Jeremie</GIVEN><FAMILY>Miller</FAMILY><MIDDLE/></N>
    <NICKNAME>jer</NICKNAME>
    <EMAIL><INTERNET/><PREF/><USERID>jeremie@jabber.org</USERID></EMAIL>
    <JABBERID>jer@jabber.org</JABBERID>
  </vCard>
</iq>)";

// A set of `card` (a <vCard/> element) by `from`, to `to` ("" = no 'to').
Element set_iq(const Element& card, const std::string& from, const std::string& to = "") {
  Element iq = parse_stanza("<iq type='set' id='s'/>");
  iq.set_attr("from", from);
  if (!to.empty()) {
    iq.set_attr("to", to);
  }
  iq.add(card);
  return iq;
}

Element card_of(const char* example) {
  return *parse_stanza(example).child("vCard", vcard::ns);
}

struct Loaded {
  explicit Loaded(cg::test::OptionOverrides options = {}) { host.load(*module, options); }
  FakeHost host{"jabber.org"};
  std::unique_ptr<cg::api::Module> module = vcard::make_module();
};

} // namespace

TEST_CASE("vcard: the module advertises vcard-temp on the server and on accounts (XEP-0054 §4)", "[xep0054][module]") {
  Loaded l;
  // XEP-0054 §4: "If an entity supports the vcard-temp protocol, it MUST report that by including a service
  // discovery feature of "vcard-temp"".
  CHECK(l.host.features() == std::vector<std::string>{"vcard-temp"});
  CHECK(l.host.account_features() == std::vector<std::string>{"vcard-temp"});
  CHECK(l.host.has_iq_handler(IqScope::Account, IqType::Get, vcard::ns, "vCard"));
  CHECK(l.host.has_iq_handler(IqScope::Account, IqType::Set, vcard::ns, "vCard"));
  // Not offered before authentication, nor by the server for itself.
  CHECK_FALSE(l.host.has_iq_handler(IqScope::Unauthenticated, IqType::Get, vcard::ns, "vCard"));
  CHECK_FALSE(l.host.has_iq_handler(IqScope::Host, IqType::Get, vcard::ns, "vCard"));
}

TEST_CASE("vcard: a user without a vCard gets an empty one (XEP-0054 examples 1, 4)", "[xep0054][spec]") {
  Loaded l;
  const Element request = parse_stanza(kExample1);
  IqReply reply = l.host.call_iq(IqScope::Account, request);
  REQUIRE_FALSE(reply.is_error());
  CHECK(canonical(FakeHost::reply_stanza(request, reply)) == canonical(parse_stanza(kExample4)));
}

TEST_CASE("vcard: set, then get returns the stored vCard (XEP-0054 examples 5, 6, 1, 2)", "[xep0054][spec]") {
  Loaded l;
  // Example 5 → example 6.
  const Element update = parse_stanza(kExample5);
  IqReply stored = l.host.call_iq(IqScope::Account, update);
  REQUIRE_FALSE(stored.is_error());
  CHECK(canonical(FakeHost::reply_stanza(update, stored)) == canonical(parse_stanza(kExample6)));
  IqReply got = l.host.call_iq(IqScope::Account, kExample1);
  REQUIRE_FALSE(got.is_error());
  REQUIRE(got.payload());
  CHECK(canonical(*got.payload()) == canonical(card_of(kExample5)));

  // "the entire vCard must be sent to the server in order to update any part of the vCard": a second set replaces
  // the first; the answer is example 2 exactly.
  REQUIRE_FALSE(
      l.host.call_iq(IqScope::Account, set_iq(card_of(kExample2), "stpeter@jabber.org/roundabout")).is_error());
  const Element request = parse_stanza(kExample1);
  IqReply again = l.host.call_iq(IqScope::Account, request);
  CHECK(canonical(FakeHost::reply_stanza(request, again)) == canonical(parse_stanza(kExample2)));

  // Also addressed to the own bare JID (the same as no 'to').
  IqReply own = l.host.call_iq(IqScope::Account, "<iq from='stpeter@jabber.org/other' to='stpeter@jabber.org' "
                                                 "id='o' type='get'><vCard xmlns='vcard-temp'/></iq>");
  REQUIRE(own.payload());
  CHECK(canonical(*own.payload()) == canonical(card_of(kExample2)));
}

TEST_CASE("vcard: the whole element is kept in keyval store 'vcard' as XML", "[xep0054][module]") {
  Loaded l;
  REQUIRE_FALSE(l.host.call_iq(IqScope::Account, kExample5).is_error());
  auto value = l.host.storage().keyval("vcard")->get("jabber.org", "stpeter");
  REQUIRE(value);
  auto parsed = cg::api::parse_xml(*value);
  REQUIRE(parsed);
  CHECK(canonical(*parsed) == canonical(card_of(kExample5)));
  CHECK(l.host.blocking_runs() >= 1); // storage went through run_blocking
}

TEST_CASE("vcard: anyone reads another user's vCard (XEP-0054 examples 8, 9)", "[xep0054][spec]") {
  Loaded l;
  REQUIRE_FALSE(l.host.call_iq(IqScope::Account, set_iq(card_of(kExample9), "jer@jabber.org/home")).is_error());
  const Element request = parse_stanza(kExample8);
  IqReply reply = l.host.call_iq(IqScope::Account, request);
  REQUIRE_FALSE(reply.is_error());
  CHECK(canonical(FakeHost::reply_stanza(request, reply)) == canonical(parse_stanza(kExample9)));
  // From another server as well.
  IqReply remote = l.host.call_iq(IqScope::Account, "<iq from='romeo@montague.lit/x' to='jer@jabber.org' id='r' "
                                                    "type='get'><vCard xmlns='vcard-temp'/></iq>");
  REQUIRE(remote.payload());
  CHECK(canonical(*remote.payload()) == canonical(card_of(kExample9)));
}

TEST_CASE("vcard: another user's missing vCard is item-not-found (XEP-0054 §3.3)", "[xep0054][spec]") {
  Loaded l;
  // XEP-0054 §3.3: "If no vCard exists or the user does not exist, the server MUST return a stanza error, which
  // SHOULD [be] <service-unavailable/> or <item-not-found/>." (An account that does not exist is answered by the
  // router, with service-unavailable.)
  IqReply reply = l.host.call_iq(IqScope::Account, kExample8);
  REQUIRE(reply.is_error());
  CHECK(reply.error_value().condition == "item-not-found");
  CHECK(reply.error_value().effective_type() == cg::api::ErrorType::Cancel);
}

TEST_CASE("vcard: setting another user's vCard is forbidden (XEP-0054 example 7)", "[xep0054][spec]") {
  Loaded l;
  REQUIRE_FALSE(l.host.call_iq(IqScope::Account, set_iq(card_of(kExample9), "jer@jabber.org/home")).is_error());
  // stpeter tries to overwrite jer's vCard.
  const Element attempt = set_iq(card_of(kExample5), "stpeter@jabber.org/roundabout", "jer@jabber.org");
  IqReply reply = l.host.call_iq(IqScope::Account, attempt);
  REQUIRE(reply.is_error());
  Element expected = parse_stanza(kExample7);
  expected.set_attr("from", "jer@jabber.org");
  expected.set_attr("id", "s");
  Element answer = FakeHost::reply_stanza(attempt, reply);
  answer.child("error")->remove_children("text", cg::api::ns::stanza_errors); // the explanation, optional
  CHECK(canonical(answer) == canonical(expected));
  // jer's vCard is unchanged.
  IqReply jer = l.host.call_iq(IqScope::Account, kExample8);
  REQUIRE(jer.payload());
  CHECK(canonical(*jer.payload()) == canonical(card_of(kExample9)));
}

TEST_CASE("vcard: a vCard over modules.vcard.max_size is refused with not-acceptable and nothing changes",
          "[xep0054][module]") {
  Loaded l({{"max_size", std::int64_t{2048}}});
  REQUIRE_FALSE(l.host.call_iq(IqScope::Account, kExample5).is_error());

  Element big = card_of(kExample5);
  big.add_child("PHOTO").add_text_child("BINVAL", std::string(4096, 'A'));
  IqReply reply = l.host.call_iq(IqScope::Account, set_iq(big, "stpeter@jabber.org/roundabout"));
  REQUIRE(reply.is_error());
  CHECK(reply.error_value().condition == "not-acceptable");
  CHECK(reply.error_value().effective_type() == cg::api::ErrorType::Modify);
  CHECK(reply.error_value().text.find("2048") != std::string::npos);
  IqReply got = l.host.call_iq(IqScope::Account, kExample1);
  REQUIRE(got.payload());
  CHECK(canonical(*got.payload()) == canonical(card_of(kExample5)));

  // Just under the limit is fine.
  Element fits = card_of(kExample5);
  fits.add_child("PHOTO").add_text_child("BINVAL", std::string(512, 'A'));
  CHECK_FALSE(l.host.call_iq(IqScope::Account, set_iq(fits, "stpeter@jabber.org/roundabout")).is_error());
}

TEST_CASE("vcard: the default limit is 128 KiB", "[xep0054][module]") {
  Loaded l;
  CHECK(l.host.option<std::int64_t>("max_size") == 131072);
  Element big = card_of(kExample5);
  big.add_child("PHOTO").add_text_child("BINVAL", std::string(131072, 'A'));
  IqReply reply = l.host.call_iq(IqScope::Account, set_iq(big, "stpeter@jabber.org/roundabout"));
  REQUIRE(reply.is_error());
  CHECK(reply.error_value().condition == "not-acceptable");
}

TEST_CASE("vcard: an empty vCard removes the stored one", "[xep0054][module]") {
  Loaded l;
  REQUIRE_FALSE(l.host.call_iq(IqScope::Account, kExample5).is_error());
  REQUIRE_FALSE(l.host
                    .call_iq(IqScope::Account, "<iq from='stpeter@jabber.org/roundabout' id='e' type='set'>"
                                               "<vCard xmlns='vcard-temp'>\n  </vCard></iq>")
                    .is_error());
  CHECK_FALSE(l.host.storage().keyval("vcard")->get("jabber.org", "stpeter"));
  IqReply other = l.host.call_iq(IqScope::Account, "<iq from='jer@jabber.org/x' to='stpeter@jabber.org' id='g' "
                                                   "type='get'><vCard xmlns='vcard-temp'/></iq>");
  REQUIRE(other.is_error());
  CHECK(other.error_value().condition == "item-not-found");
}
