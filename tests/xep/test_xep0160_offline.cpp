// XEP-0160: Best Practices for Handling Offline Messages 1.0.1 (RFC 6121 §8.5.2.2, XEP-0203 stamps) — the spec's
// flow and the offline module against the fake host.
#include "server/api/datetime.hpp"
#include "server/api/xml.hpp"
#include "tests/xep/fake_host.hpp"
#include "xep/xep0160_offline.hpp"

#include <catch2/catch.hpp>

using cg::api::Element;
using cg::api::Flow;
using cg::api::Jid;
using cg::api::Origin;
using cg::api::OriginKind;
using cg::api::Route;
using cg::api::SessionEvent;
using cg::api::SessionEventKind;
using cg::api::SessionInfo;
using cg::api::StanzaEvent;
using cg::api::StanzaKind;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
namespace offline = cg::xep::offline;
namespace storage = cg::storage;

namespace {

const Jid kRomeo = *Jid::parse("romeo@montague.net/orchard");
const Jid kJuliet = *Jid::parse("juliet@capulet.com");
const Jid kBalcony = *Jid::parse("juliet@capulet.com/balcony");
const Jid kChamber = *Jid::parse("juliet@capulet.com/chamber");

// XEP-0160 Example 1: "Sender Generates Message to Recipient" (with the 'from' the sender's server stamped).
constexpr const char* kExample1 = R"(<message from='romeo@montague.net/orchard' to='juliet@capulet.com'>
  <body>
    O blessed, blessed night! I am afeard.
    Being in night, all this is but a dream,
    Too flattering-sweet to be substantial.
  </body>
</message>)";

struct Fixture {
  FakeHost host{"capulet.com"};
  std::unique_ptr<cg::api::Module> module = offline::make_module();

  explicit Fixture(cg::test::OptionOverrides options = {}) { host.load(*module, options); }

  std::shared_ptr<storage::ArchiveStore> store() { return host.storage().archive(offline::store_name); }
  std::size_t stored() { return store()->count("capulet.com", "juliet"); }

  // The router's Route::Bare event for a message to juliet's bare JID, from a client.
  Flow deliver(Element stanza, const Jid& from = kRomeo, cg::api::AcceptToken accept = nullptr) {
    const Origin origin{OriginKind::Client, from};
    StanzaEvent ev{stanza, from, kJuliet, origin, StanzaKind::Message, Route::Bare, std::move(accept)};
    Flow f = host.run_stanza(ev);
    host.run();
    return f;
  }
  Flow deliver(std::string_view xml) { return deliver(parse_stanza(xml)); }

  // A session of juliet sends available presence (the registry already holds its availability and priority).
  void presence(const Jid& full, std::string_view xml = "<presence/>") {
    Element p = parse_stanza(xml);
    p.set_attr("from", full.str());
    const Origin origin{OriginKind::Client, full};
    const Jid none;
    StanzaEvent ev{p, full, none, origin, StanzaKind::Presence, Route::Self, nullptr};
    host.run_stanza(ev);
    host.run();
  }
};

SessionInfo session(const Jid& jid, bool available, int priority) {
  SessionInfo s;
  s.jid = jid;
  s.available = available;
  s.priority = priority;
  return s;
}

std::vector<Element> messages_to(const FakeHost& host, const Jid& to) {
  std::vector<Element> out;
  for (const auto& s : host.sent()) {
    if (s.name() == "message" && s.attr("to") == to.str() && s.attr("type") != "error") {
      out.push_back(s);
    }
  }
  return out;
}

} // namespace

TEST_CASE("offline: XEP-0160 §3 — stored while the recipient is offline, delivered with a <delay/> at the next "
          "available presence, then gone",
          "[xep0160][spec]") {
  Fixture f;
  // §5: "it SHOULD return a "msgoffline" feature".
  CHECK(f.host.features() == std::vector<std::string>{"msgoffline"});

  const auto before = cg::api::now_micros();
  CHECK(f.deliver(kExample1) == Flow::Stop); // taken: the router neither delivers nor bounces it
  const auto after = cg::api::now_micros();
  CHECK(f.stored() == 1);
  CHECK(f.host.sent().empty()); // no error to the sender

  // Example 2: "Recipient Becomes Available" (priority 1).
  f.host.add_session(session(kBalcony, true, 1));
  f.presence(kBalcony, "<presence><priority>1</priority></presence>");

  // Example 3: "Recipient's Server Delivers Message": the original with a XEP-0203 <delay from='capulet.com'/>.
  auto delivered = messages_to(f.host, kBalcony);
  REQUIRE(delivered.size() == 1);
  const Element& m = delivered.front();
  const Element* delay = m.child("delay", offline::ns_delay);
  REQUIRE(delay != nullptr);
  CHECK(delay->attr("from") == "capulet.com");
  CHECK(delay->text() == "Offline Storage");
  auto stamp = cg::api::parse_datetime(delay->attr("stamp"));
  REQUIRE(stamp);
  CHECK(*stamp >= before / 1000 * 1000);
  CHECK(*stamp <= after);
  Element expected = parse_stanza(kExample1);
  expected.set_attr("to", kBalcony.str()); // addressed to the resource that sent the presence
  Element got = m;
  got.remove_children("delay", offline::ns_delay);
  CHECK(canonical(got) == canonical(expected));
  // Removed once delivered.
  CHECK(f.stored() == 0);
}

TEST_CASE("offline: XEP-0160 §4 — chat, normal and untyped messages are stored — groupchat, headline, error, chat "
          "states alone and <no-store/> are left to the router",
          "[xep0160][spec]") {
  Fixture f;
  CHECK(f.deliver("<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='chat'><body>1</body>"
                  "</message>") == Flow::Stop);
  CHECK(f.deliver("<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='normal'><body>2</body>"
                  "</message>") == Flow::Stop);
  CHECK(f.deliver("<message from='romeo@montague.net/orchard' to='juliet@capulet.com'><body>3</body></message>") ==
        Flow::Stop);
  // An unknown type is "normal" (RFC 6121 §5.2.2).
  CHECK(f.deliver("<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='x'><body>4</body>"
                  "</message>") == Flow::Stop);
  CHECK(f.stored() == 4);
  for (const char* type : {"groupchat", "headline", "error"}) {
    INFO(type);
    CHECK(f.deliver("<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='" + std::string(type) +
                    "'><body>x</body></message>") == Flow::Continue);
  }
  // XEP-0160 §4: chat messages "that contain only XEP-0085 content" are not stored (the router bounces them).
  CHECK(f.deliver("<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='chat'><thread>t</thread>"
                  "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>") == Flow::Continue);
  CHECK(f.deliver("<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='chat'><body>x</body>"
                  "<active xmlns='http://jabber.org/protocol/chatstates'/></message>") == Flow::Stop);
  CHECK(f.stored() == 5);
  // XEP-0334 <no-store/>: not even temporarily.
  CHECK(f.deliver("<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='chat'><body>x</body>"
                  "<no-store xmlns='urn:xmpp:hints'/></message>") == Flow::Continue);
  // Server-generated wrappers for a resource that has gone: a carbon copy, a MAM result.
  CHECK(f.deliver("<message from='juliet@capulet.com' to='juliet@capulet.com' type='chat'><received "
                  "xmlns='urn:xmpp:carbons:2'/></message>") == Flow::Continue);
  CHECK(f.deliver("<message from='juliet@capulet.com' to='juliet@capulet.com'><result xmlns='urn:xmpp:mam:2' "
                  "id='x'/></message>") == Flow::Continue);
  CHECK(f.stored() == 5);
}

TEST_CASE("offline: an account with an available resource of priority >= 0 gets its messages now — one with only "
          "negative priorities stores them",
          "[xep0160]") {
  SECTION("priority 0: delivered by the router") {
    Fixture f;
    f.host.add_session(session(kBalcony, true, 0));
    CHECK(f.deliver(kExample1) == Flow::Continue);
    CHECK(f.stored() == 0);
  }
  SECTION("negative priority, or bound without presence: stored (RFC 6121 §8.5.2.1.1)") {
    Fixture f;
    f.host.add_session(session(kBalcony, true, -1));
    f.host.add_session(session(kChamber, false, 0));
    CHECK(f.deliver(kExample1) == Flow::Stop);
    CHECK(f.stored() == 1);
    // Presence with a negative priority delivers nothing.
    f.presence(kBalcony, "<presence><priority>-1</priority></presence>");
    CHECK(messages_to(f.host, kBalcony).empty());
    CHECK(f.stored() == 1);
  }
}

TEST_CASE("offline: messages are delivered in the order they arrived, once, to the first resource available with "
          "priority >= 0",
          "[xep0160]") {
  Fixture f;
  for (int i = 0; i < 20; ++i) {
    CHECK(f.deliver("<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='chat' id='m" +
                    std::to_string(i) + "'><body>" + std::to_string(i) + "</body></message>") == Flow::Stop);
  }
  CHECK(f.stored() == 20);
  f.host.add_session(session(kBalcony, true, 0));
  f.presence(kBalcony);
  auto delivered = messages_to(f.host, kBalcony);
  REQUIRE(delivered.size() == 20);
  for (int i = 0; i < 20; ++i) {
    CHECK(delivered[static_cast<std::size_t>(i)].attr("id") == "m" + std::to_string(i));
  }
  CHECK(f.stored() == 0);

  // Further presence from the same session (a status change) delivers nothing again; another session that comes
  // online finds nothing left.
  f.host.clear_records();
  f.presence(kBalcony, "<presence><show>away</show></presence>");
  f.host.add_session(session(kChamber, true, 0));
  f.presence(kChamber);
  CHECK(f.host.sent().empty());
}

TEST_CASE("offline: only a session's first available presence delivers — a session that ends starts over",
          "[xep0160]") {
  Fixture f;
  f.host.add_session(session(kBalcony, true, 0));
  f.presence(kBalcony);
  CHECK(f.host.sent().empty());
  // Something is in the queue (put there directly: the fake's session list cannot change).
  storage::ArchiveItem item;
  item.payload = cg::api::to_xml(offline::stored_form(parse_stanza(kExample1), "capulet.com", 0));
  f.store()->append("capulet.com", "juliet", item);
  // A later presence of the same session (a status change) is not a login.
  f.presence(kBalcony, "<presence><show>away</show></presence>");
  CHECK(f.host.sent().empty());
  CHECK(f.stored() == 1);
  // The session ends; the next one with the same full JID is a new session.
  f.host.fire_session(SessionEvent{SessionEventKind::Closed, kBalcony, ""});
  f.presence(kBalcony);
  CHECK(messages_to(f.host, kBalcony).size() == 1);
  CHECK(f.stored() == 0);
}

TEST_CASE("offline: the client's accept token is held until the message is on disk (XEP-0198 acknowledgements)",
          "[xep0160]") {
  Fixture f;
  auto token = std::make_shared<int>(0);
  std::weak_ptr<void> watch = token;
  Element stanza = parse_stanza(kExample1);
  const Origin origin{OriginKind::Client, kRomeo};
  StanzaEvent ev{stanza, kRomeo, kJuliet, origin, StanzaKind::Message, Route::Bare, token};
  token.reset();
  CHECK(f.host.run_stanza(ev) == Flow::Stop);
  ev.accept.reset(); // the router's copy is gone once the handler returns
  // Not yet written (the store runs only when the host's executor does): the token is still held.
  CHECK_FALSE(watch.expired());
  CHECK(f.stored() == 0);
  f.host.run();
  CHECK(f.stored() == 1);
  CHECK(watch.expired());
}

TEST_CASE("offline: a full queue (max_messages) answers <resource-constraint/> of type wait and stores nothing",
          "[xep0160]") {
  Fixture f({{"max_messages", std::int64_t{3}}});
  for (int i = 0; i < 3; ++i) {
    CHECK(f.deliver(kExample1) == Flow::Stop);
  }
  CHECK(f.host.sent().empty());
  Element over = parse_stanza("<message from='romeo@montague.net/orchard' to='juliet@capulet.com' type='chat' "
                              "id='over'><body>one too many</body></message>");
  CHECK(f.deliver(over) == Flow::Stop);
  CHECK(f.stored() == 3);
  REQUIRE(f.host.sent().size() == 1);
  const Element& err = f.host.sent().front();
  CHECK(err.attr("type") == "error");
  CHECK(err.attr("id") == "over");
  CHECK(err.attr("to") == kRomeo.str());
  CHECK(err.attr("from") == "juliet@capulet.com");
  auto e = cg::api::parse_error(err);
  CHECK(e.condition == "resource-constraint");
  CHECK(e.type == cg::api::ErrorType::Wait);

  // Once delivered, the queue has room again.
  f.host.add_session(session(kBalcony, true, 0));
  f.presence(kBalcony);
  CHECK(messages_to(f.host, kBalcony).size() == 3);
  CHECK(f.stored() == 0);
}

TEST_CASE("offline: a message sent after the delivery took its snapshot is not lost (stored again on fallback)",
          "[xep0160]") {
  // A delivered message whose resource has gone comes back through the bare JID (RFC 6121 §8.5.3.2.1) as a
  // server-generated stanza: it is stored again with its original delay.
  Fixture f;
  Element restored = offline::stored_form(parse_stanza(kExample1), "capulet.com", 1'000'000);
  restored.set_attr("to", kBalcony.str());
  const Jid host = *Jid::parse("capulet.com");
  const Origin local{OriginKind::Local, host};
  StanzaEvent ev{restored, kRomeo, kJuliet, local, StanzaKind::Message, Route::Bare, nullptr};
  CHECK(f.host.run_stanza(ev) == Flow::Stop);
  f.host.run();
  f.host.add_session(session(kChamber, true, 0));
  f.presence(kChamber);
  auto delivered = messages_to(f.host, kChamber);
  REQUIRE(delivered.size() == 1);
  auto delays = delivered.front().children("delay", offline::ns_delay);
  REQUIRE(delays.size() == 1); // one stamp, the original one
  CHECK(delays.front()->attr("stamp") == "1970-01-01T00:00:01.000Z");
}

TEST_CASE("offline: stored_form and is_offline_delivery", "[xep0160]") {
  Element m = cg::test::parse_xml("<message xmlns='jabber:server' from='a@b/c' to='juliet@capulet.com'>"
                                  "<body>hi</body></message>");
  Element s = offline::stored_form(m, "capulet.com", 0);
  CHECK(s.ns() == "jabber:client");
  CHECK(s.child("body", "jabber:client") != nullptr);
  CHECK(cg::api::to_xml(s) == "<message xmlns='jabber:client' from='a@b/c' to='juliet@capulet.com'><body>hi</body>"
                              "<delay xmlns='urn:xmpp:delay' from='capulet.com' stamp='1970-01-01T00:00:00.000Z'>"
                              "Offline Storage</delay></message>");
  const Origin local{OriginKind::Local, *Jid::parse("capulet.com")};
  const Origin client{OriginKind::Client, kRomeo};
  CHECK(offline::is_offline_delivery(s, local, "capulet.com"));
  CHECK_FALSE(offline::is_offline_delivery(s, client, "capulet.com"));
  CHECK_FALSE(offline::is_offline_delivery(m, local, "capulet.com"));
  // A delay stamped by another entity is not ours.
  CHECK_FALSE(offline::is_offline_delivery(offline::stored_form(m, "montague.net", 0), local, "capulet.com"));
}
