// XEP-0030: Service Discovery 2.5rc3 — the spec's examples as parse/serialise tests, and the disco module against
// the fake host.
#include "tests/xep/fake_host.hpp"
#include "xep/xep0030_disco.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

using cg::api::Element;
using cg::api::Identity;
using cg::api::IqReply;
using cg::api::IqScope;
using cg::api::IqType;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
using cg::test::parse_xml;
namespace disco = cg::xep::disco;

namespace {

// XEP-0030 Example 1: Querying for information.
constexpr const char* kExample1 = R"(
<iq type='get'
    from='romeo@montague.net/orchard'
    to='plays.shakespeare.lit'
    id='info1'>
  <query xmlns='http://jabber.org/protocol/disco#info'/>
</iq>)";

// XEP-0030 Example 2: Result-set for information request.
constexpr const char* kExample2 = R"(
<iq type='result'
    from='plays.shakespeare.lit'
    to='romeo@montague.net/orchard'
    id='info1'>
  <query xmlns='http://jabber.org/protocol/disco#info'>
    <identity
        category='conference'
        type='text'
        name='Play-Specific Chatrooms'/>
    <identity
        category='directory'
        type='chatroom'
        name='Play-Specific Chatrooms'/>
    <feature var='http://jabber.org/protocol/disco#info'/>
    <feature var='http://jabber.org/protocol/disco#items'/>
    <feature var='http://jabber.org/protocol/muc'/>
    <feature var='jabber:iq:register'/>
    <feature var='jabber:iq:search'/>
    <feature var='jabber:iq:time'/>
    <feature var='jabber:iq:version'/>
  </query>
</iq>)";

// XEP-0030 Example 3: Target entity does not exist.
constexpr const char* kExample3 = R"(
<iq type='error'
    from='plays.shakespeare.lit'
    to='romeo@montague.net/orchard'
    id='info1'>
  <query xmlns='http://jabber.org/protocol/disco#info'/>
  <error type='cancel'>
    <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
  </error>
</iq>)";

// XEP-0030 Example 4: Service unavailable.
constexpr const char* kExample4 = R"(
<iq type='error'
    from='plays.shakespeare.lit'
    to='romeo@montague.net/orchard'
    id='info1'>
  <query xmlns='http://jabber.org/protocol/disco#info'/>
  <error type='cancel'>
    <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
  </error>
</iq>)";

// XEP-0030 Example 6: Server replies on behalf of bare JID.
constexpr const char* kExample6 = R"(
<iq type='result'
    from='juliet@capulet.com'
    to='shakespeare.lit'
    id='info2'>
  <query xmlns='http://jabber.org/protocol/disco#info'>
    <identity category='account' type='registered'/>
  </query>
</iq>)";

// XEP-0030 Example 10: JID+node result.
constexpr const char* kExample10 = R"(
<iq type='result'
    from='mim.shakespeare.lit'
    to='romeo@montague.net/orchard'
    id='info3'>
  <query xmlns='http://jabber.org/protocol/disco#info'
         node='http://jabber.org/protocol/commands'>
    <identity
        category='automation'
        type='command-list'/>
  </query>
</iq>)";

// XEP-0030 Example 12: Result-set for all items.
constexpr const char* kExample12 = R"(
<iq type='result'
    from='shakespeare.lit'
    to='romeo@montague.net/orchard'
    id='items1'>
  <query xmlns='http://jabber.org/protocol/disco#items'>
    <item jid='people.shakespeare.lit'
          name='Directory of Characters'/>
    <item jid='plays.shakespeare.lit'
          name='Play-Specific Chatrooms'/>
    <item jid='mim.shakespeare.lit'
          name='Gateway to Marlowe IM'/>
    <item jid='words.shakespeare.lit'
          name='Shakespearean Lexicon'/>
    <item jid='globe.shakespeare.lit'
          name='Calendar of Performances'/>
    <item jid='headlines.shakespeare.lit'
          name='Latest Shakespearean News'/>
    <item jid='catalog.shakespeare.lit'
          name='Buy Shakespeare Stuff!'/>
    <item jid='en2fr.shakespeare.lit'
          name='French Translation Service'/>
  </query>
</iq>)";

// XEP-0030 Example 13: Empty result set.
constexpr const char* kExample13 = R"(
<iq type='result'
    from='shakespeare.lit'
    to='romeo@montague.net/orchard'
    id='items1'>
  <query xmlns='http://jabber.org/protocol/disco#items'/>
</iq>)";

// XEP-0030 Example 15: Server replies on behalf of bare JID (items).
constexpr const char* kExample15 = R"(
<iq type='result'
    from='juliet@capulet.com'
    to='shakespeare.lit'
    id='items2'>
  <query xmlns='http://jabber.org/protocol/disco#items'>
    <item jid='juliet@capulet.com/balcony'/>
    <item jid='juliet@capulet.com/chamber'/>
  </query>
</iq>)";

// XEP-0030 Example 17: Service returns nodes.
constexpr const char* kExample17 = R"(
<iq type='result'
    from='catalog.shakespeare.lit'
    to='romeo@montague.net/orchard'
    id='items2'>
  <query xmlns='http://jabber.org/protocol/disco#items'>
    <item jid='catalog.shakespeare.lit'
          node='books'
          name='Books by and about Shakespeare'/>
    <item jid='catalog.shakespeare.lit'
          node='clothing'
          name='Wear your literary taste with pride'/>
    <item jid='catalog.shakespeare.lit'
          node='music'
          name='Music from the time of Shakespeare'/>
  </query>
</iq>)";

// XEP-0030 Example 22: Entity returns multiple items (attributes in another order, an escaped apostrophe).
constexpr const char* kExample22 = R"(
<iq from='romeo@montague.net'
    id='items4'
    to='juliet@capulet.com/chamber'
    type='result'>
  <query xmlns='http://jabber.org/protocol/disco#items'
         node='http://jabber.org/protocol/tune'>
    <item jid='pubsub.shakespeare.lit'
          name='Romeo&apos;s CD player'
          node='s623nms9s3bfh8js'/>
    <item jid='pubsub.montague.net'
          node='music/R/Romeo/iPod'/>
    <item jid='tunes.characters.lit'
          node='g8k4kds9sd89djf3'/>
  </query>
</iq>)";

const Element& query_of(const Element& iq) {
  const Element* q = iq.first_child();
  REQUIRE(q != nullptr);
  return *q;
}

// A second module on the host: disco must report what it registers without being told.
class FeatureModule final : public cg::api::Module {
public:
  cg::api::ModuleInfo info() const override { return {"features", "registers disco data", {}, {}, {}, true}; }
  void load(cg::api::ModuleContext& ctx) override {
    ctx.add_identity({"conference", "text", "Play-Specific Chatrooms", ""});
    ctx.add_identity({"directory", "chatroom", "Play-Specific Chatrooms", ""});
    for (const char* f : {"jabber:iq:version", "http://jabber.org/protocol/muc", "jabber:iq:time", "jabber:iq:search",
                          "jabber:iq:register"}) {
      ctx.add_feature(f);
    }
    ctx.add_feature("jabber:iq:version"); // twice: reported once
    ctx.add_account_feature("urn:xmpp:mam:2");
  }
};

} // namespace

TEST_CASE("disco: XEP-0030 example 2 parses and serialises back", "[xep0030][spec]") {
  const Element iq = parse_xml(kExample2);
  auto info = disco::Info::parse(query_of(iq));
  REQUIRE(info);
  CHECK(info->node.empty());
  REQUIRE(info->identities.size() == 2);
  CHECK(info->identities[0] == Identity{"conference", "text", "Play-Specific Chatrooms", ""});
  CHECK(info->identities[1] == Identity{"directory", "chatroom", "Play-Specific Chatrooms", ""});
  CHECK(info->features == std::vector<std::string>{"http://jabber.org/protocol/disco#info",
                                                   "http://jabber.org/protocol/disco#items",
                                                   "http://jabber.org/protocol/muc", "jabber:iq:register",
                                                   "jabber:iq:search", "jabber:iq:time", "jabber:iq:version"});
  CHECK(canonical(info->to_element()) == canonical(query_of(iq)));
}

TEST_CASE("disco: XEP-0030 examples 6 and 10 (account identity, node) round-trip", "[xep0030][spec]") {
  for (const char* example : {kExample6, kExample10}) {
    const Element iq = parse_xml(example);
    auto info = disco::Info::parse(query_of(iq));
    REQUIRE(info);
    CHECK(canonical(info->to_element()) == canonical(query_of(iq)));
  }
  auto node_info = disco::Info::parse(query_of(parse_xml(kExample10)));
  REQUIRE(node_info);
  CHECK(node_info->node == "http://jabber.org/protocol/commands");
  REQUIRE(node_info->identities.size() == 1);
  CHECK(node_info->identities[0] == Identity{"automation", "command-list", "", ""});
  CHECK(node_info->features.empty());
}

TEST_CASE("disco: identity with xml:lang round-trips", "[xep0030]") {
  const Element q = parse_xml("<query xmlns='http://jabber.org/protocol/disco#info'>"
                              "<identity category='server' type='im' name='Serveur' xml:lang='fr'/>"
                              "<feature var='urn:xmpp:ping'/></query>");
  auto info = disco::Info::parse(q);
  REQUIRE(info);
  REQUIRE(info->identities.size() == 1);
  CHECK(info->identities[0] == Identity{"server", "im", "Serveur", "fr"});
  CHECK(canonical(info->to_element()) == canonical(q));
}

TEST_CASE("disco: XEP-0030 items examples 12, 13, 15, 17 and 22 parse and serialise back", "[xep0030][spec]") {
  for (const char* example : {kExample12, kExample13, kExample15, kExample17, kExample22}) {
    const Element iq = parse_xml(example);
    auto items = disco::Items::parse(query_of(iq));
    REQUIRE(items);
    CHECK(canonical(items->to_element()) == canonical(query_of(iq)));
  }
  auto all = disco::Items::parse(query_of(parse_xml(kExample12)));
  REQUIRE(all);
  REQUIRE(all->items.size() == 8);
  CHECK(all->items.front() == disco::Item{"people.shakespeare.lit", "", "Directory of Characters"});
  CHECK(all->items.back() == disco::Item{"en2fr.shakespeare.lit", "", "French Translation Service"});

  CHECK(disco::Items::parse(query_of(parse_xml(kExample13)))->items.empty());

  auto tunes = disco::Items::parse(query_of(parse_xml(kExample22)));
  REQUIRE(tunes);
  CHECK(tunes->node == "http://jabber.org/protocol/tune");
  REQUIRE(tunes->items.size() == 3);
  CHECK(tunes->items[0] == disco::Item{"pubsub.shakespeare.lit", "s623nms9s3bfh8js", "Romeo's CD player"});
  CHECK(tunes->items[1] == disco::Item{"pubsub.montague.net", "music/R/Romeo/iPod", ""});
}

TEST_CASE("disco: parse rejects invalid payloads", "[xep0030]") {
  using disco::Info;
  using disco::Items;
  // XEP-0030 §3.1: "Each <identity/> element MUST possess 'category' and 'type' attributes".
  CHECK_FALSE(Info::parse(parse_xml("<query xmlns='http://jabber.org/protocol/disco#info'>"
                                    "<identity type='im' name='x'/></query>")));
  CHECK_FALSE(Info::parse(parse_xml("<query xmlns='http://jabber.org/protocol/disco#info'>"
                                    "<identity category='server' name='x'/></query>")));
  CHECK_FALSE(Info::parse(parse_xml("<query xmlns='http://jabber.org/protocol/disco#info'>"
                                    "<identity category='' type='im'/></query>")));
  // "Each <feature/> element MUST possess a 'var' attribute".
  CHECK_FALSE(Info::parse(parse_xml("<query xmlns='http://jabber.org/protocol/disco#info'><feature/></query>")));
  // The wrong element or namespace.
  CHECK_FALSE(Info::parse(parse_xml("<query xmlns='http://jabber.org/protocol/disco#items'/>")));
  CHECK_FALSE(Info::parse(parse_xml("<info xmlns='http://jabber.org/protocol/disco#info'/>")));
  // XEP-0030 §4.1: "the <item/> child MUST possess a 'jid' attribute".
  CHECK_FALSE(Items::parse(parse_xml("<query xmlns='http://jabber.org/protocol/disco#items'>"
                                     "<item name='no jid'/></query>")));
  CHECK_FALSE(Items::parse(parse_xml("<query xmlns='http://jabber.org/protocol/disco#items'>"
                                     "<item jid='a.example'/><item node='n'/></query>")));
  CHECK_FALSE(Items::parse(parse_xml("<query xmlns='http://jabber.org/protocol/disco#info'/>")));
  // Elements of other namespaces are extensions (e.g. XEP-0128 data forms), not errors.
  auto info = Info::parse(parse_xml("<query xmlns='http://jabber.org/protocol/disco#info'>"
                                    "<identity category='server' type='im'/>"
                                    "<x xmlns='jabber:x:data' type='result'/></query>"));
  REQUIRE(info);
  CHECK(info->identities.size() == 1);
}

TEST_CASE("disco: the module registers its features, identity and handlers", "[xep0030][module]") {
  FakeHost host("plays.shakespeare.lit");
  auto module = disco::make_module();
  host.load(*module);
  CHECK(host.features() ==
        std::vector<std::string>{"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items"});
  CHECK(host.account_features() == host.features());
  CHECK(host.identities() == std::vector<Identity>{{"server", "im", "ChatGroup", ""}});
  for (auto scope : {IqScope::Host, IqScope::Account}) {
    CHECK(host.has_iq_handler(scope, IqType::Get, disco::ns_info, "query"));
    CHECK(host.has_iq_handler(scope, IqType::Get, disco::ns_items, "query"));
    CHECK_FALSE(host.has_iq_handler(scope, IqType::Set, disco::ns_info, "query"));
  }
}

TEST_CASE("disco: host disco#info collects every module's features and identities (XEP-0030 examples 1, 2)",
          "[xep0030][module]") {
  FakeHost host("plays.shakespeare.lit");
  FeatureModule features;
  host.sibling().load(features);
  auto module = disco::make_module();
  host.load(*module, {{"name", std::string("Shakespeare IM")}});

  const Element request = parse_stanza(kExample1);
  IqReply reply = host.call_iq(IqScope::Host, request);
  REQUIRE_FALSE(reply.is_error());
  REQUIRE(reply.payload());
  auto info = disco::Info::parse(*reply.payload());
  REQUIRE(info);
  // The features of both modules, sorted, each once.
  CHECK(info->features == std::vector<std::string>{"http://jabber.org/protocol/disco#info",
                                                   "http://jabber.org/protocol/disco#items",
                                                   "http://jabber.org/protocol/muc", "jabber:iq:register",
                                                   "jabber:iq:search", "jabber:iq:time", "jabber:iq:version"});
  // The server identity (named by the option) and the other module's identities.
  REQUIRE(info->identities.size() == 3);
  CHECK(std::count(info->identities.begin(), info->identities.end(), Identity{"server", "im", "Shakespeare IM", ""}) ==
        1);

  // The reply stanza is example 2 plus the server's own identity.
  Element stanza = FakeHost::reply_stanza(request, reply);
  Element expected = parse_stanza(kExample2);
  Element* q = expected.child("query", disco::ns_info);
  REQUIRE(q != nullptr);
  Element server_identity("identity", std::string(disco::ns_info));
  server_identity.set_attr("category", "server");
  server_identity.set_attr("type", "im");
  server_identity.set_attr("name", "Shakespeare IM");
  // The disco module loaded after the features module, so its identity comes after theirs, before the features.
  auto& nodes = q->nodes();
  auto first_feature = std::find_if(nodes.begin(), nodes.end(), [](const cg::xml::Node& n) {
    return std::holds_alternative<Element>(n) && std::get<Element>(n).name() == "feature";
  });
  nodes.insert(first_feature, server_identity);
  CHECK(canonical(stanza) == canonical(expected));
}

TEST_CASE("disco: disco#info and #items to a node of the host → item-not-found (XEP-0030 example 3)",
          "[xep0030][module]") {
  FakeHost host("plays.shakespeare.lit");
  auto module = disco::make_module();
  host.load(*module);
  const Element request = parse_stanza("<iq type='get' from='romeo@montague.net/orchard' to='plays.shakespeare.lit'"
                                       " id='info1'><query xmlns='http://jabber.org/protocol/disco#info' "
                                       "node='http://jabber.org/protocol/commands'/></iq>");
  IqReply reply = host.call_iq(IqScope::Host, request);
  REQUIRE(reply.is_error());
  CHECK(reply.error_value().condition == "item-not-found");
  // The error stanza has the shape of example 3 (which also echoes the query; ours does not, RFC 6120 §8.3.1
  // makes that optional).
  Element stanza = FakeHost::reply_stanza(request, reply);
  Element expected = parse_stanza(kExample3);
  expected.remove_children("query", disco::ns_info);
  Element* error = stanza.child("error");
  REQUIRE(error != nullptr);
  error->remove_children("text", cg::xml::ns::stanza_errors);
  CHECK(canonical(stanza) == canonical(expected));

  IqReply items = host.call_iq(IqScope::Host, "<iq type='get' from='romeo@montague.net/orchard' "
                                              "to='plays.shakespeare.lit' id='i'><query "
                                              "xmlns='http://jabber.org/protocol/disco#items' node='music'/></iq>");
  REQUIRE(items.is_error());
  CHECK(items.error_value().condition == "item-not-found");
}

TEST_CASE("disco: host disco#items is an empty result (XEP-0030 example 13)", "[xep0030][module]") {
  FakeHost host("shakespeare.lit");
  auto module = disco::make_module();
  host.load(*module);
  const Element request = parse_stanza("<iq type='get' from='romeo@montague.net/orchard' to='shakespeare.lit' "
                                       "id='items1'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
  IqReply reply = host.call_iq(IqScope::Host, request);
  REQUIRE_FALSE(reply.is_error());
  CHECK(canonical(FakeHost::reply_stanza(request, reply)) == canonical(parse_stanza(kExample13)));
}

TEST_CASE("disco: account disco#info answers the account's owner only", "[xep0030][module]") {
  FakeHost host("capulet.com");
  FeatureModule features;
  host.sibling().load(features);
  auto module = disco::make_module();
  host.load(*module);

  SECTION("the owner (from a full JID) gets the account identity and the account features") {
    IqReply reply = host.call_iq(IqScope::Account, "<iq type='get' from='juliet@capulet.com/balcony' "
                                                   "to='juliet@capulet.com' id='info2'><query "
                                                   "xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    REQUIRE_FALSE(reply.is_error());
    auto info = disco::Info::parse(*reply.payload());
    REQUIRE(info);
    // XEP-0030 example 6: "the primary identity SHOULD have a category of "account"".
    CHECK(info->identities == std::vector<Identity>{{"account", "registered", "", ""}});
    CHECK(info->features == std::vector<std::string>{"http://jabber.org/protocol/disco#info",
                                                     "http://jabber.org/protocol/disco#items", "urn:xmpp:mam:2"});
  }
  SECTION("no 'to' means the sender's own account (RFC 6120 §10.3.3)") {
    IqReply reply = host.call_iq(IqScope::Account, "<iq type='get' from='juliet@capulet.com/balcony' id='a'>"
                                                   "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    REQUIRE_FALSE(reply.is_error());
    CHECK(disco::Info::parse(*reply.payload())->identities.front().category == "account");
  }
  SECTION("anyone else gets service-unavailable, which reveals nothing (XEP-0030 example 4, §8)") {
    for (const char* from : {"romeo@montague.net/orchard", "shakespeare.lit", "capulet.com", "nurse@capulet.com/x"}) {
      Element request = parse_stanza("<iq type='get' to='juliet@capulet.com' id='info2'>"
                                     "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
      request.set_attr("from", from);
      IqReply reply = host.call_iq(IqScope::Account, request);
      REQUIRE(reply.is_error());
      CHECK(reply.error_value().condition == "service-unavailable");
      CHECK(reply.error_value().effective_type() == cg::api::ErrorType::Cancel);
    }
    // The stanza is example 4's, addressed back.
    const Element request = parse_stanza("<iq type='get' from='romeo@montague.net/orchard' "
                                         "to='plays.shakespeare.lit' id='info1'>"
                                         "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    Element stanza = FakeHost::reply_stanza(request, IqReply::error("service-unavailable"));
    Element expected = parse_stanza(kExample4);
    expected.remove_children("query", disco::ns_info);
    CHECK(canonical(stanza) == canonical(expected));
  }
  SECTION("a node of the account → item-not-found") {
    IqReply reply = host.call_iq(IqScope::Account, "<iq type='get' from='juliet@capulet.com/balcony' "
                                                   "to='juliet@capulet.com' id='n'><query "
                                                   "xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>");
    REQUIRE(reply.is_error());
    CHECK(reply.error_value().condition == "item-not-found");
  }
}

TEST_CASE("disco: account disco#items answers the owner only, and no unknown node", "[xep0030][module]") {
  FakeHost host("capulet.com");
  auto module = disco::make_module();
  host.load(*module);

  IqReply own = host.call_iq(IqScope::Account, "<iq type='get' from='juliet@capulet.com/balcony' "
                                               "to='juliet@capulet.com' id='items2'><query "
                                               "xmlns='http://jabber.org/protocol/disco#items'/></iq>");
  REQUIRE_FALSE(own.is_error());
  auto items = disco::Items::parse(*own.payload());
  REQUIRE(items);
  CHECK(items->items.empty());
  CHECK(items->node.empty());

  IqReply other = host.call_iq(IqScope::Account, "<iq type='get' from='romeo@montague.net/orchard' "
                                                 "to='juliet@capulet.com' id='items2'><query "
                                                 "xmlns='http://jabber.org/protocol/disco#items'/></iq>");
  REQUIRE(other.is_error());
  CHECK(other.error_value().condition == "service-unavailable");

  // The account has no nodes: like the host's items and the account's info, an unknown node is item-not-found
  // (XEP-0030 §4.2), not an empty list that pretends the node exists.
  IqReply node = host.call_iq(IqScope::Account, "<iq type='get' from='juliet@capulet.com/balcony' "
                                                "to='juliet@capulet.com' id='n'><query "
                                                "xmlns='http://jabber.org/protocol/disco#items' node='music'/></iq>");
  REQUIRE(node.is_error());
  CHECK(node.error_value().condition == "item-not-found");
}

TEST_CASE("disco: a node of the host is answered by the module that owns it (api::disco::NodeQuery, XEP-0030 "
          "example 10)",
          "[xep0030][module]") {
  FakeHost host("mim.shakespeare.lit");
  auto module = disco::make_module();
  host.load(*module);
  // Another module owns two nodes: the commands node (info and items) and a private one.
  std::vector<std::string> asked;
  host.sibling().on<cg::api::disco::NodeQuery>([&asked](cg::api::disco::NodeQuery& q) {
    asked.push_back(std::string(q.node) + " from " + q.from.str() + " to " + q.to.str());
    if (q.node == "http://jabber.org/protocol/commands") {
      if (q.kind == cg::api::disco::NodeQuery::Kind::Info) {
        q.identities.push_back({"automation", "command-list", "", ""});
      } else {
        q.items.push_back({"mim.shakespeare.lit", "config", "Configure Service"});
      }
      return cg::api::Flow::Stop;
    }
    if (q.node == "private") {
      q.error = cg::api::StanzaError::make("forbidden");
      return cg::api::Flow::Stop;
    }
    return cg::api::Flow::Continue;
  });

  const Element request = parse_stanza("<iq type='get' from='romeo@montague.net/orchard' to='mim.shakespeare.lit' "
                                       "id='info3'><query xmlns='http://jabber.org/protocol/disco#info' "
                                       "node='http://jabber.org/protocol/commands'/></iq>");
  IqReply info = host.call_iq(IqScope::Host, request);
  REQUIRE_FALSE(info.is_error());
  CHECK(canonical(FakeHost::reply_stanza(request, info)) == canonical(parse_stanza(kExample10)));
  CHECK(asked == std::vector<std::string>{
                     "http://jabber.org/protocol/commands from romeo@montague.net/orchard to mim.shakespeare.lit"});

  IqReply items = host.call_iq(IqScope::Host, "<iq type='get' from='romeo@montague.net/orchard' "
                                              "to='mim.shakespeare.lit' id='i'><query "
                                              "xmlns='http://jabber.org/protocol/disco#items' "
                                              "node='http://jabber.org/protocol/commands'/></iq>");
  REQUIRE_FALSE(items.is_error());
  auto parsed = disco::Items::parse(*items.payload());
  REQUIRE(parsed);
  CHECK(parsed->node == "http://jabber.org/protocol/commands");
  CHECK(parsed->items == std::vector<disco::Item>{{"mim.shakespeare.lit", "config", "Configure Service"}});

  // The owner's error is the answer; a node nobody claims stays item-not-found.
  IqReply forbidden =
      host.call_iq(IqScope::Host, "<iq type='get' from='romeo@montague.net/orchard' "
                                  "to='mim.shakespeare.lit' id='p'><query "
                                  "xmlns='http://jabber.org/protocol/disco#info' node='private'/></iq>");
  REQUIRE(forbidden.is_error());
  CHECK(forbidden.error_value().condition == "forbidden");
  IqReply unknown = host.call_iq(IqScope::Host, "<iq type='get' from='romeo@montague.net/orchard' "
                                                "to='mim.shakespeare.lit' id='u'><query "
                                                "xmlns='http://jabber.org/protocol/disco#items' node='music'/></iq>");
  REQUIRE(unknown.is_error());
  CHECK(unknown.error_value().condition == "item-not-found");
}
