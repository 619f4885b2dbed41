// XEP-0049: Private XML Storage 1.2 — the spec's examples, and the private module against the fake host.
#include "tests/xep/fake_host.hpp"
#include "xep/xep0049_private.hpp"

#include "server/api/xml.hpp"

#include <catch2/catch.hpp>

using cg::api::Element;
using cg::api::IqReply;
using cg::api::IqScope;
using cg::api::IqType;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
using cg::test::parse_xml;
namespace priv = cg::xep::priv;

namespace {

// XEP-0049 Example 1: Client Stores Private Data (with the 'from' the server stamps).
constexpr const char* kExample1 = R"(
<iq type="set" id="1001" from="hamlet@shakespeare.lit/denmark">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs">
      <defaultnick>Hamlet</defaultnick>
    </exodus>
  </query>
</iq>)";

// XEP-0049 Example 2: Client Retrieves Private Data, and the server's answer.
constexpr const char* kExample2 = R"(
<iq type="get" id="1002" from="hamlet@shakespeare.lit/denmark">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs"/>
  </query>
</iq>)";
constexpr const char* kExample2Answer = R"(
<iq type="result" to="hamlet@shakespeare.lit/denmark" id="1002">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs">
      <defaultnick>Hamlet</defaultnick>
    </exodus>
  </query>
</iq>)";

// XEP-0049 Example 3: User Attempts to Get or Set Data for Another User (macbeth, to hamlet's account).
constexpr const char* kExample3 = R"(
<iq type="set" to="hamlet@shakespeare.lit" id="1003" from="macbeth@shakespeare.lit/castle">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs">
      <defaultnick>Macbeth</defaultnick>
    </exodus>
  </query>
</iq>)";

// XEP-0049 Example 4: User Attempts to Get Data Without Specifying Child Element/Namespace.
constexpr const char* kExample4 = R"(
<iq type="set" id="1004" from="hamlet@shakespeare.lit/denmark">
  <query xmlns="jabber:iq:private"/>
</iq>)";

// XEP-0049 Example 5: User Attempts to Get or Set Data in a Reserved Namespace.
constexpr const char* kExample5 = R"(
<iq type="set" id="1005" from="hamlet@shakespeare.lit/denmark">
  <query xmlns="jabber:iq:private">
    <vCard xmlns="vcard-temp">
      <FN>Hamlet</FN>
    </vCard>
  </query>
</iq>)";

struct Loaded {
  explicit Loaded(cg::test::OptionOverrides options = {}) { host.load(*module, options); }
  FakeHost host{"shakespeare.lit"};
  std::unique_ptr<cg::api::Module> module = priv::make_module();

  IqReply iq(const std::string& type, const std::string& children, const std::string& from = "hamlet@shakespeare.lit/x",
             const std::string& to = "") {
    std::string xml = "<iq type='" + type + "' id='q' from='" + from + "'" + (to.empty() ? "" : " to='" + to + "'") +
                      "><query xmlns='jabber:iq:private'>" + children + "</query></iq>";
    return host.call_iq(IqScope::Account, xml);
  }
};

void check_error(const IqReply& reply, const std::string& condition) {
  REQUIRE(reply.is_error());
  CHECK(reply.error_value().condition == condition);
}

} // namespace

TEST_CASE("private: the module serves jabber:iq:private for accounts only", "[xep0049][module]") {
  Loaded l;
  CHECK(l.host.has_iq_handler(IqScope::Account, IqType::Get, priv::ns, "query"));
  CHECK(l.host.has_iq_handler(IqScope::Account, IqType::Set, priv::ns, "query"));
  CHECK_FALSE(l.host.has_iq_handler(IqScope::Host, IqType::Get, priv::ns, "query"));
  CHECK_FALSE(l.host.has_iq_handler(IqScope::Unauthenticated, IqType::Get, priv::ns, "query"));
  CHECK(l.host.features() == std::vector<std::string>{"jabber:iq:private"});
}

TEST_CASE("private: store, then retrieve (XEP-0049 examples 1, 2)", "[xep0049][spec]") {
  Loaded l;
  const Element store = parse_stanza(kExample1);
  IqReply stored = l.host.call_iq(IqScope::Account, store);
  REQUIRE_FALSE(stored.is_error());
  CHECK_FALSE(stored.payload()); // an empty result
  const Element get = parse_stanza(kExample2);
  IqReply got = l.host.call_iq(IqScope::Account, get);
  REQUIRE_FALSE(got.is_error());
  CHECK(canonical(FakeHost::reply_stanza(get, got)) == canonical(parse_stanza(kExample2Answer)));
  // Another resource of the same account, and an IQ to the own bare JID, see it too.
  IqReply other =
      l.iq("get", "<exodus xmlns='exodus:prefs'/>", "hamlet@shakespeare.lit/elsinore", "hamlet@shakespeare.lit");
  REQUIRE(other.payload());
  CHECK(canonical(*other.payload()) == canonical(*parse_stanza(kExample2Answer).child("query", priv::ns)));
}

TEST_CASE("private: each element is kept in map store 'private' under '{namespace}name'", "[xep0049][module]") {
  Loaded l;
  REQUIRE_FALSE(l.host.call_iq(IqScope::Account, kExample1).is_error());
  auto value = l.host.storage().map("private")->get("shakespeare.lit", "hamlet", "{exodus:prefs}exodus");
  REQUIRE(value);
  auto parsed = cg::api::parse_xml(*value);
  REQUIRE(parsed);
  CHECK(canonical(*parsed) == canonical(parse_xml("<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick>"
                                                  "</exodus>")));
  CHECK(priv::key_of(*parsed) == "{exodus:prefs}exodus");
}

TEST_CASE("private: nothing stored → the requested element, empty", "[xep0049][module]") {
  Loaded l;
  IqReply got = l.iq("get", "<storage xmlns='storage:bookmarks'/>");
  REQUIRE_FALSE(got.is_error());
  REQUIRE(got.payload());
  CHECK(canonical(*got.payload()) ==
        canonical(parse_xml("<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")));
}

TEST_CASE("private: a set with several elements stores each — the same name in another namespace is another entry",
          "[xep0049][module]") {
  Loaded l;
  // XEP-0049 §2.3: "an IQ set or result MAY contain multiple elements qualified by the same namespace".
  REQUIRE_FALSE(
      l.iq("set", "<a xmlns='urn:x:one'>1</a><b xmlns='urn:x:one'>2</b><a xmlns='urn:x:two'>3</a>").is_error());
  IqReply one = l.iq("get", "<a xmlns='urn:x:one'/><b xmlns='urn:x:one'/>");
  REQUIRE(one.payload());
  CHECK(canonical(*one.payload()) == canonical(parse_xml("<query xmlns='jabber:iq:private'><a xmlns='urn:x:one'>1</a>"
                                                         "<b xmlns='urn:x:one'>2</b></query>")));
  IqReply two = l.iq("get", "<a xmlns='urn:x:two'/>");
  REQUIRE(two.payload());
  CHECK(two.payload()->first_child()->text() == "3");
  CHECK(l.host.storage().map("private")->all("shakespeare.lit", "hamlet").size() == 3);

  // Replacing one leaves the others; an empty element removes its entry.
  REQUIRE_FALSE(l.iq("set", "<a xmlns='urn:x:one'>new</a><b xmlns='urn:x:one'/>").is_error());
  IqReply after = l.iq("get", "<a xmlns='urn:x:one'/><b xmlns='urn:x:one'/>");
  REQUIRE(after.payload());
  CHECK(canonical(*after.payload()) == canonical(parse_xml("<query xmlns='jabber:iq:private'>"
                                                           "<a xmlns='urn:x:one'>new</a><b xmlns='urn:x:one'/>"
                                                           "</query>")));
  CHECK(l.host.storage().map("private")->all("shakespeare.lit", "hamlet").size() == 2);
}

TEST_CASE("private: another user's data is forbidden, to get and to set (XEP-0049 example 3, §5)", "[xep0049][spec]") {
  Loaded l;
  REQUIRE_FALSE(l.host.call_iq(IqScope::Account, kExample1).is_error());
  // XEP-0049 §2.3: "the server MUST return a "Forbidden" or "Service Unavailable" error to the sender (... the
  // former is preferable)".
  check_error(l.host.call_iq(IqScope::Account, kExample3), "forbidden");
  check_error(l.iq("get", "<exodus xmlns='exodus:prefs'/>", "macbeth@shakespeare.lit/castle", "hamlet@shakespeare.lit"),
              "forbidden");
  check_error(l.iq("get", "<exodus xmlns='exodus:prefs'/>", "macbeth@elsewhere.lit/castle", "hamlet@shakespeare.lit"),
              "forbidden");
  // Hamlet's data is unchanged.
  IqReply got = l.host.call_iq(IqScope::Account, kExample2);
  REQUIRE(got.payload());
  CHECK(got.payload()->first_child()->child_text("defaultnick", "exodus:prefs") == "Hamlet");
}

TEST_CASE("private: a query without a child is not-acceptable (XEP-0049 example 4)", "[xep0049][spec]") {
  Loaded l;
  // XEP-0049 §2.3: "At least one child element with a proper namespace MUST be included; otherwise the server MUST
  // respond with a "Not Acceptable" error".
  IqReply reply = l.host.call_iq(IqScope::Account, kExample4);
  check_error(reply, "not-acceptable");
  CHECK(reply.error_value().effective_type() == cg::api::ErrorType::Modify); // example 4: type='modify'
  check_error(l.iq("get", ""), "not-acceptable");
}

TEST_CASE("private: reserved namespaces are not-acceptable (XEP-0049 example 5)", "[xep0049][spec]") {
  Loaded l;
  check_error(l.host.call_iq(IqScope::Account, kExample5), "not-acceptable");
  for (const char* child : {"<x xmlns='jabber:client'/>", "<x xmlns='jabber:server'/>", "<x/>",
                            "<query xmlns='jabber:iq:roster'/>", "<x xmlns='http://jabber.org/protocol/muc'/>"}) {
    INFO(child);
    check_error(l.iq("set", child), "not-acceptable");
    check_error(l.iq("get", child), "not-acceptable");
  }
  // One reserved element spoils the whole set: nothing is stored.
  check_error(l.iq("set", "<ok xmlns='urn:x:ok'/><vCard xmlns='vcard-temp'><FN>H</FN></vCard>"), "not-acceptable");
  CHECK(l.host.storage().map("private")->all("shakespeare.lit", "hamlet").empty());
  CHECK(priv::is_reserved_namespace("jabber:iq:private"));
  CHECK_FALSE(priv::is_reserved_namespace("storage:bookmarks"));
  CHECK_FALSE(priv::is_reserved_namespace("urn:xmpp:jabber:x"));
}

TEST_CASE("private: a get names one namespace (XEP-0049 §2.3)", "[xep0049][spec]") {
  Loaded l;
  // "A client MUST NOT query for more than [one] namespace in a single IQ get request."
  check_error(l.iq("get", "<a xmlns='urn:x:one'/><a xmlns='urn:x:two'/>"), "bad-request");
}

TEST_CASE("private: modules.private.max_size and max_items", "[xep0049][module]") {
  Loaded l({{"max_size", std::int64_t{300}}, {"max_items", std::int64_t{2}}});
  IqReply big = l.iq("set", "<a xmlns='urn:x:one'>" + std::string(400, 'x') + "</a>");
  check_error(big, "not-acceptable");
  CHECK(big.error_value().text.find("300") != std::string::npos);
  CHECK(l.host.storage().map("private")->all("shakespeare.lit", "hamlet").empty());

  REQUIRE_FALSE(l.iq("set", "<a xmlns='urn:x:one'>1</a><b xmlns='urn:x:one'>2</b>").is_error());
  // A third entry is one too many; replacing or removing existing ones is fine.
  check_error(l.iq("set", "<c xmlns='urn:x:one'>3</c>"), "not-acceptable");
  CHECK_FALSE(l.iq("set", "<a xmlns='urn:x:one'>again</a>").is_error());
  CHECK_FALSE(l.iq("set", "<b xmlns='urn:x:one'/>").is_error());
  CHECK_FALSE(l.iq("set", "<c xmlns='urn:x:one'>3</c>").is_error());
  CHECK(l.host.storage().map("private")->all("shakespeare.lit", "hamlet").size() == 2);
}
