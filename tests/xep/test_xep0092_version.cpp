// XEP-0092: Software Version 1.1 — the spec's examples, and the version module against the fake host.
#include "tests/xep/fake_host.hpp"
#include "xep/xep0092_version.hpp"

#include <catch2/catch.hpp>

#include <sys/utsname.h>

using cg::api::Element;
using cg::api::IqReply;
using cg::api::IqScope;
using cg::api::IqType;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
using cg::test::parse_xml;
namespace version = cg::xep::version;

namespace {

// XEP-0092 Example 1: Querying Another Entity for its Software Version.
constexpr const char* kExample1 = R"(
<iq
    type='get'
    from='romeo@montague.net/orchard'
    to='juliet@capulet.com/balcony'
    id='version_1'>
  <query xmlns='jabber:iq:version'/>
</iq>)";

// XEP-0092 Example 2: Receiving a Reply Regarding Software Version.
constexpr const char* kExample2 = R"(
<iq
    type='result'
    to='romeo@montague.net/orchard'
    from='juliet@capulet.com/balcony'
    id='version_1'>
  <query xmlns='jabber:iq:version'>
    <name>Exodus</name>
    <version>0.7.0.4</version>
    <os>Windows-XP 5.01.2600</os>
  </query>
</iq>)";

// The same exchange addressed to a server (the module answers for the host).
Element request_to(const std::string& host) {
  Element iq = parse_stanza(kExample1);
  iq.set_attr("to", host);
  return iq;
}

} // namespace

TEST_CASE("version: XEP-0092 example 2 parses and serialises back", "[xep0092][spec]") {
  const Element iq = parse_xml(kExample2);
  const Element* query = iq.first_child();
  REQUIRE(query != nullptr);
  auto v = version::Version::parse(*query);
  REQUIRE(v);
  CHECK(v->name == "Exodus");
  CHECK(v->version == "0.7.0.4");
  CHECK(v->os == "Windows-XP 5.01.2600");
  CHECK(canonical(v->to_element()) == canonical(*query));

  // <os/> is OPTIONAL in a result: absent stays absent.
  Element no_os = *query;
  no_os.remove_children("os");
  auto v2 = version::Version::parse(no_os);
  REQUIRE(v2);
  CHECK(v2->os.empty());
  CHECK(canonical(v2->to_element()) == canonical(no_os));
}

TEST_CASE("version: text is escaped on the way out and unescaped on the way in", "[xep0092]") {
  version::Version v{"Chat <&> Group", "1.0 'beta'", ""};
  auto back = version::Version::parse(v.to_element());
  REQUIRE(back);
  CHECK(back->name == v.name);
  CHECK(back->version == v.version);
}

TEST_CASE("version: parse rejects invalid payloads", "[xep0092]") {
  using version::Version;
  // XEP-0092 §2: <name/> and <version/> are REQUIRED in a result.
  CHECK_FALSE(Version::parse(parse_xml("<query xmlns='jabber:iq:version'><version>1</version></query>")));
  CHECK_FALSE(Version::parse(parse_xml("<query xmlns='jabber:iq:version'><name>X</name></query>")));
  CHECK_FALSE(
      Version::parse(parse_xml("<query xmlns='jabber:iq:version'><name/><version>1</version><os>L</os></query>")));
  // The request (an empty query) is not a result.
  CHECK_FALSE(Version::parse(parse_xml("<query xmlns='jabber:iq:version'/>")));
  // The wrong namespace, for the query or for its children.
  CHECK_FALSE(Version::parse(parse_xml("<query xmlns='jabber:iq:time'><name>X</name><version>1</version></query>")));
  CHECK_FALSE(Version::parse(parse_xml("<query xmlns='jabber:iq:version'><name xmlns='urn:x'>X</name>"
                                       "<version>1</version></query>")));
}

TEST_CASE("version: the module answers with the server's name and version, without the OS by default",
          "[xep0092][module]") {
  FakeHost host("capulet.com");
  host.mutable_server_info().name = "Exodus";
  host.mutable_server_info().version = "0.7.0.4";
  auto module = version::make_module();
  host.load(*module);
  CHECK(host.features() == std::vector<std::string>{"jabber:iq:version"});
  CHECK(host.has_iq_handler(IqScope::Host, IqType::Get, version::ns, "query"));
  CHECK_FALSE(host.has_iq_handler(IqScope::Host, IqType::Set, version::ns, "query"));

  const Element request = request_to("capulet.com");
  IqReply reply = host.call_iq(IqScope::Host, request);
  REQUIRE_FALSE(reply.is_error());
  REQUIRE(reply.payload());
  auto v = version::Version::parse(*reply.payload());
  REQUIRE(v);
  CHECK(v->name == "Exodus");
  CHECK(v->version == "0.7.0.4");
  // XEP-0092 §6: revealing the OS "may open the user or system to attacks"; off unless the administrator opts in.
  CHECK(reply.payload()->child("os") == nullptr);

  // The reply stanza is example 2 without <os/>, from the server.
  Element expected = parse_stanza(kExample2);
  expected.set_attr("from", "capulet.com");
  expected.child("query", version::ns)->remove_children("os");
  CHECK(canonical(FakeHost::reply_stanza(request, reply)) == canonical(expected));
}

TEST_CASE("version: show_os = true adds the operating system", "[xep0092][module]") {
  FakeHost host("capulet.com");
  auto module = version::make_module();
  host.load(*module, {{"show_os", true}});
  IqReply reply = host.call_iq(IqScope::Host, request_to("capulet.com"));
  REQUIRE_FALSE(reply.is_error());
  auto v = version::Version::parse(*reply.payload());
  REQUIRE(v);
  CHECK(v->name == "ChatGroup");
  CHECK(v->version == host.server_info().version);
  utsname u{};
  REQUIRE(uname(&u) == 0);
  CHECK(v->os == std::string(u.sysname) + " " + u.release);
}
