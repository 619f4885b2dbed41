// RFC 6121 §2 (Managing the Roster) and §2.6 (roster versioning, formerly XEP-0237): the spec's examples as
// parse/serialize tests, the storage format, and the roster module against the fake host.
#include "tests/xep/fake_host.hpp"
#include "xep/rfc6121_roster.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

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
using cg::test::parse_xml;
namespace roster = cg::xep::roster;
using roster::Item;
using roster::Subscription;

namespace {

// RFC 6121 §2.1.3, Example: roster get.
constexpr const char* kRosterGet = R"(
<iq from='juliet@example.com/balcony' id='bv1bs71f' type='get'>
  <query xmlns='jabber:iq:roster'/>
</iq>)";

// RFC 6121 §2.1.4, Example: roster result.
constexpr const char* kRosterResult = R"(
<iq id='bv1bs71f' to='juliet@example.com/chamber' type='result'>
  <query xmlns='jabber:iq:roster' ver='ver11'>
    <item jid='romeo@example.net' name='Romeo' subscription='both'>
      <group>Friends</group>
    </item>
    <item jid='mercutio@example.com' name='Mercutio' subscription='from'/>
    <item jid='benvolio@example.net' name='Benvolio' subscription='both'/>
  </query>
</iq>)";

// RFC 6121 §2.3.1, Example: roster set (adding an item).
constexpr const char* kRosterSet = R"(
<iq from='juliet@example.com/balcony' id='rs1' type='set'>
  <query xmlns='jabber:iq:roster'>
    <item jid='nurse@example.com'/>
  </query>
</iq>)";

// RFC 6121 §2.4.1, Example: updating the item (a name and a group).
constexpr const char* kRosterUpdate = R"(
<iq from='juliet@example.com/balcony' id='ph1xaz53' type='set'>
  <query xmlns='jabber:iq:roster'>
    <item jid='nurse@example.com' name='Nurse'>
      <group>Servants</group>
    </item>
  </query>
</iq>)";

// RFC 6121 §2.5.1, Example: deleting the item.
constexpr const char* kRosterRemove = R"(
<iq from='juliet@example.com/balcony' id='hm4hs97y' type='set'>
  <query xmlns='jabber:iq:roster'>
    <item jid='nurse@example.com' subscription='remove'/>
  </query>
</iq>)";

// RFC 6121 §2.5.2, Example: the push of a deleted item.
constexpr const char* kRemovePush = R"(
<iq id='zu2y3f571' to='juliet@example.com/balcony' type='set'>
  <query xmlns='jabber:iq:roster' ver='ver34'>
    <item jid='nurse@example.com' subscription='remove'/>
  </query>
</iq>)";

const Jid kJuliet = *Jid::parse("juliet@example.com");
const Jid kBalcony = *Jid::parse("juliet@example.com/balcony");
const Jid kChamber = *Jid::parse("juliet@example.com/chamber");
const Jid kNurse = *Jid::parse("nurse@example.com");

// The roster module on a fake host, with juliet's two resources.
struct RosterHost {
  FakeHost host{"example.com"};
  std::unique_ptr<cg::api::Module> module = roster::make_module();

  explicit RosterHost(const cg::test::OptionOverrides& options = {}) {
    host.load(*module, options);
    host.add_user("juliet");
    host.add_user("romeo");
    for (const Jid& j : {kBalcony, kChamber}) {
      SessionInfo s;
      s.jid = j;
      s.available = true;
      host.add_session(s);
      host.fire_session(SessionEvent{SessionEventKind::Bound, j, ""});
    }
  }

  IqReply iq(const std::string& xml) { return host.call_iq(IqScope::Account, xml); }
  IqReply get(const Jid& from, const std::string& ver_attr = "") {
    return iq("<iq from='" + from.str() + "' id='g' type='get'><query xmlns='jabber:iq:roster'" + ver_attr + "/></iq>");
  }
  IqReply set(const Jid& from, const std::string& item_xml) {
    return iq("<iq from='" + from.str() + "' id='s' type='set'><query xmlns='jabber:iq:roster'>" + item_xml +
              "</query></iq>");
  }
  // The roster pushes sent so far to `to`.
  std::vector<Element> pushes(const Jid& to) const {
    std::vector<Element> out;
    for (const auto& s : host.sent()) {
      if (s.name() == "iq" && s.attr("type") == "set" && s.attr("to") == to.str() &&
          s.child("query", roster::ns) != nullptr) {
        out.push_back(s);
      }
    }
    return out;
  }
  std::vector<Element> presences() const {
    std::vector<Element> out;
    for (const auto& s : host.sent()) {
      if (s.name() == "presence") {
        out.push_back(s);
      }
    }
    return out;
  }
  roster::Store store() { return roster::Store(host.storage()); }
};

std::string error_of(const IqReply& r) {
  return r.is_error() ? r.error_value().condition : std::string();
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// The spec's examples

TEST_CASE("roster: RFC 6121 §2 examples parse into items and items serialise back to them", "[rfc6121][roster][spec]") {
  const Element result = parse_stanza(kRosterResult);
  const Element* query = result.child("query", roster::ns);
  REQUIRE(query != nullptr);
  CHECK(query->attr("ver") == "ver11");
  std::vector<Item> items;
  for (const auto* el : query->children("item", roster::ns)) {
    // A result item read as a client's set: only jid, name and groups are taken (§2.1.2.5).
    auto item = Item::parse(*el);
    REQUIRE(item);
    items.push_back(*item);
  }
  REQUIRE(items.size() == 3);
  CHECK(items[0].jid == *Jid::parse("romeo@example.net"));
  CHECK(items[0].name == "Romeo");
  CHECK(items[0].groups == std::vector<std::string>{"Friends"});
  CHECK(items[0].subscription == Subscription::None);
  CHECK(items[1].name == "Mercutio");
  CHECK(items[1].groups.empty());

  // The server's side: items with their subscription serialise to exactly the example's <item/> elements.
  items[0].subscription = Subscription::Both;
  items[1].subscription = Subscription::From;
  items[2].subscription = Subscription::Both;
  auto expected = query->children("item", roster::ns);
  for (std::size_t i = 0; i < items.size(); ++i) {
    CHECK(canonical(items[i].to_element()) == canonical(*expected[i]));
  }

  // §2.1.2.2 / §2.1.2.1: ask='subscribe' for pending out; approved only when true; pending_in never shown.
  Item pending;
  pending.jid = kNurse;
  pending.ask = true;
  pending.pending_in = true;
  CHECK(canonical(pending.to_element()) ==
        canonical(parse_xml("<item xmlns='jabber:iq:roster' jid='nurse@example.com' subscription='none' "
                            "ask='subscribe'/>")));
  pending.approved = true;
  CHECK(pending.to_element().attr("approved") == "true");

  // Removal (§2.5.1) and the set's other subscription values (ignored, §2.1.2.5).
  auto remove = Item::parse(*parse_stanza(kRosterRemove).child("query", roster::ns)->first_child());
  REQUIRE(remove);
  CHECK(remove->subscription == Subscription::Remove);
  auto both = Item::parse(parse_xml("<item xmlns='jabber:iq:roster' jid='a@b' subscription='both' ask='subscribe' "
                                    "approved='true'/>"));
  REQUIRE(both);
  CHECK(both->subscription == Subscription::None);
  CHECK_FALSE(both->ask);
  CHECK_FALSE(both->approved);
  // No 'jid', or an invalid one: not an item.
  CHECK_FALSE(Item::parse(parse_xml("<item xmlns='jabber:iq:roster' name='x'/>")));
  CHECK_FALSE(Item::parse(parse_xml("<item xmlns='jabber:iq:roster' jid='a@b@c'/>")));
  CHECK_FALSE(Item::parse(parse_xml("<item jid='a@b'/>"))); // wrong namespace

  for (auto s : {Subscription::None, Subscription::To, Subscription::From, Subscription::Both, Subscription::Remove}) {
    CHECK(roster::subscription_from_string(roster::to_string(s)) == s);
  }
  CHECK_FALSE(roster::subscription_from_string("bogus"));
}

TEST_CASE("roster: items and kept requests are stored as XML text and read back exactly", "[rfc6121][roster]") {
  Item item;
  item.jid = kNurse;
  item.name = "Nurse <'&\">";
  item.subscription = Subscription::To;
  item.pending_in = true;
  item.approved = true;
  item.groups = {"Servants", "Capulets & co"};
  const std::string text = item.serialize();
  CHECK(text.find("pending_in='true'") != std::string::npos);
  auto stored = Item::deserialize(text);
  REQUIRE(stored);
  CHECK(*stored == item);
  for (auto s : {Subscription::None, Subscription::From, Subscription::Both}) {
    item.subscription = s;
    item.ask = s != Subscription::Both;
    item.pending_in = false;
    CHECK(Item::deserialize(item.serialize()) == item);
  }
  CHECK_FALSE(Item::deserialize("garbage"));
  CHECK_FALSE(Item::deserialize("<item xmlns='jabber:iq:roster' jid='a@b' subscription='remove'/>"));
  CHECK_FALSE(Item::deserialize("<item xmlns='jabber:iq:roster' jid='a@b' subscription='sideways'/>"));
  CHECK_FALSE(Item::deserialize("<other xmlns='jabber:iq:roster' jid='a@b' subscription='none'/>"));

  // A kept subscription request comes back with all its content (RFC 6121 §3.1.3 "the complete presence stanza").
  auto driver = cg::storage::make_memory_driver();
  roster::Store store(*driver);
  Element request = parse_stanza("<presence from='romeo@example.net' to='juliet@example.com' type='subscribe' "
                                 "id='s1' xml:lang='en'><status>Wherefore &amp; why</status>"
                                 "<nick xmlns='http://jabber.org/protocol/nick'>Rom\xC3\xA9o</nick></presence>");
  const Jid romeo = *Jid::parse("romeo@example.net");
  store.set_pending("example.com", "juliet", romeo, request);
  auto back = store.pending("example.com", "juliet", romeo);
  REQUIRE(back);
  CHECK(*back == request);
}

TEST_CASE("roster: the store keeps items, pending requests and a version that changes with every write",
          "[rfc6121][roster][storage]") {
  auto driver = cg::storage::make_memory_driver();
  roster::Store store(*driver);
  CHECK(store.version("example.com", "juliet") == "0");
  CHECK(store.items("example.com", "juliet").empty());

  Item nurse;
  nurse.jid = kNurse;
  const std::string v1 = store.put("example.com", "juliet", nurse);
  CHECK(v1 != "0");
  CHECK(store.version("example.com", "juliet") == v1);
  nurse.name = "Nurse";
  const std::string v2 = store.put("example.com", "juliet", nurse);
  CHECK(v2 != v1);
  CHECK(std::stoull(v2) == std::stoull(v1) + 1);
  CHECK(store.get("example.com", "juliet", kNurse) == nurse);
  CHECK(store.items("example.com", "romeo").empty()); // per user

  Element request = parse_stanza("<presence from='romeo@example.net' type='subscribe'><status>hi</status></presence>");
  const Jid romeo = *Jid::parse("romeo@example.net");
  store.set_pending("example.com", "juliet", romeo, request);
  CHECK(store.pending("example.com", "juliet", romeo) == request);
  auto all = store.load("example.com", "juliet");
  CHECK(all.version == v2);
  REQUIRE(all.items.size() == 1);
  CHECK(all.find(kNurse)->name == "Nurse");
  REQUIRE(all.pending_in.size() == 1);
  CHECK(all.pending_in.at(romeo) == request);
  CHECK(store.remove_pending("example.com", "juliet", romeo));
  CHECK_FALSE(store.pending("example.com", "juliet", romeo));

  const std::string v3 = store.remove("example.com", "juliet", kNurse);
  CHECK(v3 != v2);
  CHECK_FALSE(store.get("example.com", "juliet", kNurse));
}

// ---------------------------------------------------------------------------------------------------------------
// The module

TEST_CASE("roster: the module serves roster gets and sets for accounts and advertises versioning",
          "[rfc6121][roster][module]") {
  RosterHost r;
  CHECK(r.host.has_iq_handler(IqScope::Account, IqType::Get, roster::ns, "query"));
  CHECK(r.host.has_iq_handler(IqScope::Account, IqType::Set, roster::ns, "query"));
  // RFC 6121 §2.6.1: the stream feature <ver xmlns='urn:xmpp:features:rosterver'/>.
  auto features = r.host.registered_stream_features(cg::api::StreamStage::AfterAuth);
  REQUIRE(features.size() == 1);
  CHECK(features[0].is("ver", roster::ns_ver_feature));
  CHECK(roster::find_service(r.host) != nullptr);
}

TEST_CASE("roster: get, set (add, update) and remove with pushes to every interested resource (RFC 6121 §2.1-2.5)",
          "[rfc6121][roster][module]") {
  RosterHost r;
  // An empty roster (§2.1.4: the result carries the query, with the version).
  IqReply empty = r.iq(kRosterGet);
  REQUIRE_FALSE(empty.is_error());
  REQUIRE(empty.payload());
  CHECK(empty.payload()->is("query", roster::ns));
  CHECK(empty.payload()->element_count() == 0);
  CHECK(empty.payload()->attr("ver") == "0");
  // Only the balcony asked for the roster: it is the one interested resource so far.

  // §2.3: add (example), then the push — to the balcony, which made the change, and not to the chamber.
  IqReply added = r.iq(kRosterSet);
  REQUIRE_FALSE(added.is_error());
  CHECK_FALSE(added.payload());
  auto pushes = r.pushes(kBalcony);
  REQUIRE(pushes.size() == 1);
  CHECK(r.pushes(kChamber).empty());
  const Element& push = pushes[0];
  CHECK(push.attr("from") == "juliet@example.com"); // §2.1.6: no 'from' or the user's bare JID
  const Element* q = push.child("query", roster::ns);
  REQUIRE(q != nullptr);
  const std::string v1(q->attr("ver"));
  CHECK_FALSE(v1.empty());
  CHECK(v1 != "0");
  CHECK(canonical(*q->first_child()) ==
        canonical(parse_xml("<item xmlns='jabber:iq:roster' jid='nurse@example.com' subscription='none'/>")));

  // The chamber asks too (with an old version: it gets the whole roster), and is interested from then on.
  IqReply chamber = r.get(kChamber, " ver='0'");
  REQUIRE(chamber.payload());
  CHECK(chamber.payload()->attr("ver") == v1);
  REQUIRE(chamber.payload()->element_count() == 1);
  r.host.clear_records();

  // §2.4: update (example): both interested resources get the push, with a new version.
  REQUIRE_FALSE(r.iq(kRosterUpdate).is_error());
  auto b = r.pushes(kBalcony);
  auto c = r.pushes(kChamber);
  REQUIRE(b.size() == 1);
  REQUIRE(c.size() == 1);
  const Element* item = c[0].child("query", roster::ns)->first_child();
  CHECK(item->attr("name") == "Nurse");
  CHECK(item->child_text("group") == "Servants");
  const std::string v2(c[0].child("query", roster::ns)->attr("ver"));
  CHECK(v2 != v1);
  CHECK(b[0].attr("id") != c[0].attr("id"));
  auto stored = r.store().get("example.com", "juliet", kNurse);
  REQUIRE(stored);
  CHECK(stored->name == "Nurse");
  CHECK(stored->groups == std::vector<std::string>{"Servants"});

  // An update replaces name and groups (no groups: none), and keeps the subscription state.
  Item to = *stored;
  to.subscription = Subscription::To;
  r.store().put("example.com", "juliet", to);
  roster::ItemChanged ev{kJuliet, to, r.store().version("example.com", "juliet"), false};
  r.host.fire(ev);
  REQUIRE_FALSE(r.set(kBalcony, "<item jid='nurse@example.com' name='N' subscription='none'/>").is_error());
  stored = r.store().get("example.com", "juliet", kNurse);
  CHECK(stored->subscription == Subscription::To);
  CHECK(stored->groups.empty());
  CHECK(stored->name == "N");
  r.host.clear_records();

  // §2.5: remove (example): the push of subscription='remove' (as in the example) to both, and the item is gone.
  REQUIRE_FALSE(r.iq(kRosterRemove).is_error());
  b = r.pushes(kBalcony);
  REQUIRE(b.size() == 1);
  REQUIRE(r.pushes(kChamber).size() == 1);
  Element expected = parse_stanza(kRemovePush);
  Element got = b[0];
  // Ids and versions are the server's own.
  got.set_attr("id", "zu2y3f571");
  got.remove_attr("from");
  got.child("query", roster::ns)->set_attr("ver", "ver34");
  CHECK(canonical(got) == canonical(expected));
  CHECK_FALSE(r.store().get("example.com", "juliet", kNurse));
  IqReply after = r.get(kBalcony);
  CHECK(after.payload()->element_count() == 0);
}

TEST_CASE("roster: a client with the current version gets an empty result, then pushes (RFC 6121 §2.6.3)",
          "[rfc6121][roster][module]") {
  RosterHost r;
  REQUIRE_FALSE(r.set(kBalcony, "<item jid='nurse@example.com'/>").is_error());
  IqReply full = r.get(kBalcony, " ver=''");
  REQUIRE(full.payload());
  const std::string ver(full.payload()->attr("ver"));
  CHECK(full.payload()->element_count() == 1);
  // The current version: an empty result (no <query/>).
  IqReply current = r.get(kChamber, " ver='" + ver + "'");
  REQUIRE_FALSE(current.is_error());
  CHECK_FALSE(current.payload());
  // ... and the chamber is interested all the same: the next change is pushed to it, with the next version.
  r.host.clear_records();
  REQUIRE_FALSE(r.set(kBalcony, "<item jid='romeo@example.net'/>").is_error());
  auto c = r.pushes(kChamber);
  REQUIRE(c.size() == 1);
  const std::string next(c[0].child("query", roster::ns)->attr("ver"));
  CHECK(next != ver);
  CHECK(r.get(kChamber, " ver='" + next + "'").payload() == std::nullopt);
  // A version it does not know: everything.
  IqReply stale = r.get(kChamber, " ver='" + ver + "'");
  REQUIRE(stale.payload());
  CHECK(stale.payload()->element_count() == 2);
  CHECK(stale.payload()->attr("ver") == next);
  // No 'ver': the whole roster too.
  CHECK(r.get(kChamber).payload()->element_count() == 2);
}

TEST_CASE("roster: error cases of a roster set (RFC 6121 §2.3.3, §2.5.3)", "[rfc6121][roster][module]") {
  RosterHost r;
  // More than one item.
  CHECK(error_of(r.set(kBalcony, "<item jid='a@example.com'/><item jid='b@example.com'/>")) == "bad-request");
  // No item at all.
  CHECK(error_of(r.set(kBalcony, "")) == "bad-request");
  // Duplicate groups.
  CHECK(error_of(r.set(kBalcony, "<item jid='a@example.com'><group>G</group><group>G</group></item>")) ==
        "bad-request");
  // An empty group, a group or a name over the limit.
  CHECK(error_of(r.set(kBalcony, "<item jid='a@example.com'><group></group></item>")) == "not-acceptable");
  CHECK(error_of(r.set(kBalcony, "<item jid='a@example.com'><group>" + std::string(1025, 'g') + "</group></item>")) ==
        "not-acceptable");
  CHECK(error_of(r.set(kBalcony, "<item jid='a@example.com' name='" + std::string(1025, 'n') + "'/>")) ==
        "not-acceptable");
  // No 'jid', an invalid one.
  CHECK(error_of(r.set(kBalcony, "<item name='x'/>")) == "bad-request");
  CHECK(error_of(r.set(kBalcony, "<item jid='a@@b'/>")) == "jid-malformed");
  // The user's own JID.
  CHECK(error_of(r.set(kBalcony, "<item jid='juliet@example.com'/>")) == "not-allowed");
  // Removing an item that is not there.
  CHECK(error_of(r.set(kBalcony, "<item jid='nobody@example.com' subscription='remove'/>")) == "item-not-found");
  // Another account's roster: neither set nor read.
  CHECK(error_of(r.iq("<iq from='romeo@example.com/home' to='juliet@example.com' id='x' type='set'>"
                      "<query xmlns='jabber:iq:roster'><item jid='evil@example.com'/></query></iq>")) == "forbidden");
  CHECK(error_of(r.iq("<iq from='romeo@example.com/home' to='juliet@example.com' id='x' type='get'>"
                      "<query xmlns='jabber:iq:roster'/></iq>")) == "forbidden");
  // Nothing was stored or pushed by any of them.
  CHECK(r.store().items("example.com", "juliet").empty());
  CHECK(r.store().version("example.com", "juliet") == "0");
  CHECK(r.host.sent().empty());
  // The same JID addressed explicitly is the account itself.
  CHECK_FALSE(r.iq("<iq from='juliet@example.com/balcony' to='juliet@example.com' id='x' type='set'>"
                   "<query xmlns='jabber:iq:roster'><item jid='a@example.com'/></query></iq>")
                  .is_error());
}

TEST_CASE("roster: max_items limits a user's roster, a new item beyond it gets resource-constraint",
          "[rfc6121][roster][module]") {
  RosterHost r({{"max_items", std::int64_t{2}}});
  REQUIRE_FALSE(r.set(kBalcony, "<item jid='a@example.com'/>").is_error());
  REQUIRE_FALSE(r.set(kBalcony, "<item jid='b@example.com'/>").is_error());
  IqReply full = r.set(kBalcony, "<item jid='c@example.com'/>");
  CHECK(error_of(full) == "resource-constraint");
  CHECK(full.error_value().text.find("2") != std::string::npos);
  // Updating an existing item is still allowed, and after a removal there is room again.
  CHECK_FALSE(r.set(kBalcony, "<item jid='a@example.com' name='A'/>").is_error());
  REQUIRE_FALSE(r.set(kBalcony, "<item jid='b@example.com' subscription='remove'/>").is_error());
  CHECK_FALSE(r.set(kBalcony, "<item jid='c@example.com'/>").is_error());
  CHECK(r.store().items("example.com", "juliet").size() == 2);
  // Another user has a roster of its own.
  CHECK_FALSE(r.set(*Jid::parse("romeo@example.com/home"), "<item jid='x@example.com'/>").is_error());
}

TEST_CASE("roster: removing an item ends the subscriptions in both directions (RFC 6121 §2.5.2)",
          "[rfc6121][roster][module]") {
  RosterHost r;
  auto store = r.store();
  // Items as the presence module would have left them (stored, then announced with ItemChanged).
  auto put = [&](const Item& item) {
    roster::ItemChanged ev{kJuliet, item, store.put("example.com", "juliet", item), false};
    r.host.fire(ev);
  };
  const Jid romeo = *Jid::parse("romeo@example.net");
  const Jid mercutio = *Jid::parse("mercutio@example.com");
  const Jid benvolio = *Jid::parse("benvolio@example.net");
  Item both;
  both.jid = romeo;
  both.subscription = Subscription::Both;
  put(both);
  Item to_pending_in;
  to_pending_in.jid = mercutio;
  to_pending_in.subscription = Subscription::To;
  to_pending_in.pending_in = true;
  put(to_pending_in);
  store.set_pending("example.com", "juliet", mercutio, parse_stanza("<presence type='subscribe'/>"));
  Item ask;
  ask.jid = benvolio;
  ask.ask = true;
  put(ask);
  REQUIRE(r.get(kBalcony).payload()->element_count() == 3);
  r.host.clear_records();

  auto sent_to = [&](const Jid& contact) {
    std::vector<std::string> out;
    for (const auto& p : r.presences()) {
      if (p.attr("to") == contact.str()) {
        out.push_back(std::string(p.attr("type")) + " from " + std::string(p.attr("from")));
      }
    }
    return out;
  };

  // Both: the contact gets unavailable from each available resource, unsubscribed and unsubscribe.
  REQUIRE_FALSE(r.set(kBalcony, "<item jid='romeo@example.net' subscription='remove'/>").is_error());
  CHECK(sent_to(romeo) == std::vector<std::string>{"unavailable from juliet@example.com/balcony",
                                                   "unavailable from juliet@example.com/chamber",
                                                   "unsubscribed from juliet@example.com",
                                                   "unsubscribe from juliet@example.com"});
  // To + Pending In: the request is denied (unsubscribed), the subscription cancelled (unsubscribe), and the stored
  // request forgotten.
  REQUIRE_FALSE(r.set(kBalcony, "<item jid='mercutio@example.com' subscription='remove'/>").is_error());
  CHECK(sent_to(mercutio) ==
        std::vector<std::string>{"unsubscribed from juliet@example.com", "unsubscribe from juliet@example.com"});
  CHECK_FALSE(store.pending("example.com", "juliet", mercutio));
  // None + Pending Out: the request is withdrawn.
  REQUIRE_FALSE(r.set(kBalcony, "<item jid='benvolio@example.net' subscription='remove'/>").is_error());
  CHECK(sent_to(benvolio) == std::vector<std::string>{"unsubscribe from juliet@example.com"});
  CHECK(store.items("example.com", "juliet").empty());
  // Removal pushes to the interested resource.
  CHECK(r.pushes(kBalcony).size() == 3);
}

TEST_CASE("roster: changes made by other modules (ItemChanged) are pushed and seen by the next get",
          "[rfc6121][roster][module]") {
  RosterHost r;
  REQUIRE(r.get(kBalcony).payload());
  REQUIRE(r.get(kChamber).payload());
  r.host.clear_records();
  Item item;
  item.jid = *Jid::parse("romeo@example.net");
  item.subscription = Subscription::From;
  const std::string ver = r.store().put("example.com", "juliet", item);
  roster::ItemChanged ev{kJuliet, item, ver, false};
  CHECK(r.host.fire(ev) == Flow::Continue); // others may listen too
  REQUIRE(r.pushes(kBalcony).size() == 1);
  REQUIRE(r.pushes(kChamber).size() == 1);
  CHECK(r.pushes(kChamber)[0].child("query", roster::ns)->attr("ver") == ver);
  // The in-memory roster followed: the current version gets an empty result.
  CHECK_FALSE(r.get(kBalcony, " ver='" + ver + "'").payload());

  // A closed session is no longer interested.
  r.host.fire_session(SessionEvent{SessionEventKind::Closed, kChamber, ""});
  r.host.clear_records();
  item.name = "Romeo";
  roster::ItemChanged again{kJuliet, item, r.store().put("example.com", "juliet", item), false};
  r.host.fire(again);
  CHECK(r.pushes(kBalcony).size() == 1);
  CHECK(r.pushes(kChamber).empty());
}

TEST_CASE("roster: the service runs one user's jobs in order, one at a time, and reports their failures",
          "[rfc6121][roster][module]") {
  RosterHost r;
  auto svc = roster::find_service(r.host);
  REQUIRE(svc);
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    roster::Service::Job job = [&order, i]() -> boost::asio::awaitable<void> {
      order.push_back(i);
      co_return;
    };
    svc->post(kJuliet, std::move(job));
  }
  roster::Service::Job failing = []() -> boost::asio::awaitable<void> {
    throw std::runtime_error("boom");
    co_return;
  };
  svc->post(kJuliet, std::move(failing));
  roster::Service::Job last = [&order]() -> boost::asio::awaitable<void> {
    order.push_back(99);
    co_return;
  };
  svc->post(kJuliet, std::move(last));
  r.host.run();
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 99});
  CHECK(std::any_of(r.host.logged().begin(), r.host.logged().end(),
                    [](const std::string& l) { return l.find("boom") != std::string::npos; }));
}
