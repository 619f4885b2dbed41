// XEP-0280: Message Carbons 1.0.1 — the spec's examples and the carbons module against the fake host.
#include "server/api/xml.hpp"
#include "tests/xep/fake_host.hpp"
#include "xep/xep0160_offline.hpp"
#include "xep/xep0280_carbons.hpp"
#include "xep/xep0313_mam.hpp"

#include <catch2/catch.hpp>

using cg::api::Element;
using cg::api::Flow;
using cg::api::IqReply;
using cg::api::IqScope;
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
namespace carbons = cg::xep::carbons;
using Direction = carbons::Direction;

namespace {

const Jid kRomeoBare = *Jid::parse("romeo@montague.example");
const Jid kGarden = *Jid::parse("romeo@montague.example/garden");
const Jid kHome = *Jid::parse("romeo@montague.example/home");
const Jid kPhone = *Jid::parse("romeo@montague.example/phone");
const Jid kBalcony = *Jid::parse("juliet@capulet.example/balcony");

SessionInfo session(const Jid& jid, bool available, int priority) {
  SessionInfo s;
  s.jid = jid;
  s.available = available;
  s.priority = priority;
  return s;
}

// Example 1: "Client enables Carbons"; 4: "Client disables Carbons".
std::string enable_iq(const Jid& from) {
  return "<iq xmlns='jabber:client' from='" + from.str() +
         "' id='enable1' type='set'>"
         "<enable xmlns='urn:xmpp:carbons:2'/></iq>";
}
std::string disable_iq(const Jid& from) {
  return "<iq xmlns='jabber:client' from='" + from.str() +
         "' id='disable1' type='set'>"
         "<disable xmlns='urn:xmpp:carbons:2'/></iq>";
}

// Example 7: "Juliet sends Romeo a directed message".
constexpr const char* kDirected = R"(<message xmlns='jabber:client'
         from='juliet@capulet.example/balcony'
         to='romeo@montague.example/garden'
         type='chat'>
  <body>What man art thou that, thus bescreen'd in night, so stumblest on my counsel?</body>
  <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
</message>)";

// Example 8: "Server sends carbon to Romeo's other clients".
constexpr const char* kReceivedCarbon = R"(<message xmlns='jabber:client'
         from='romeo@montague.example'
         to='romeo@montague.example/home'
         type='chat'>
  <received xmlns='urn:xmpp:carbons:2'>
    <forwarded xmlns='urn:xmpp:forward:0'>
      <message xmlns='jabber:client'
               from='juliet@capulet.example/balcony'
               to='romeo@montague.example/garden'
               type='chat'>
        <body>What man art thou that, thus bescreen'd in night, so stumblest on my counsel?</body>
        <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
      </message>
    </forwarded>
  </received>
</message>)";

// Example 9: "Romeo responds to Juliet".
constexpr const char* kResponse = R"(<message xmlns='jabber:client'
         from='romeo@montague.example/home'
         to='juliet@capulet.example/balcony'
         type='chat'>
  <body>Neither, fair saint, if either thee dislike.</body>
  <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
</message>)";

// Example 10: "Romeo's other Carbons-enabled clients receive a copy".
constexpr const char* kSentCarbon = R"(<message xmlns='jabber:client'
        from='romeo@montague.example'
        to='romeo@montague.example/garden'
        type='chat'>
  <sent xmlns='urn:xmpp:carbons:2'>
    <forwarded xmlns='urn:xmpp:forward:0'>
      <message xmlns='jabber:client'
               to='juliet@capulet.example/balcony'
               from='romeo@montague.example/home'
               type='chat'>
        <body>Neither, fair saint, if either thee dislike.</body>
        <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
      </message>
    </forwarded>
  </sent>
</message>)";

struct Fixture {
  FakeHost host{"montague.example"};
  std::unique_ptr<cg::api::Module> module = carbons::make_module();

  Fixture() { host.load(*module); }

  void enable(const Jid& jid) {
    IqReply r = host.call_iq(IqScope::Account, enable_iq(jid));
    REQUIRE_FALSE(r.is_error());
  }
  // Runs the handlers of `route` for a message (to romeo), as the router would.
  Element route(std::string_view xml, Route r, OriginKind kind = OriginKind::Client) {
    Element stanza = parse_stanza(xml);
    const Jid from = *Jid::parse(stanza.attr("from"));
    const Jid to = stanza.has_attr("to") ? *Jid::parse(stanza.attr("to")) : Jid();
    const Origin origin{kind, kind == OriginKind::Local ? *Jid::parse("montague.example") : from};
    StanzaEvent ev{stanza, from, to, origin, StanzaKind::Message, r, nullptr};
    host.run_stanza(ev);
    host.run();
    return stanza;
  }
  std::vector<std::string> copies_to() const {
    std::vector<std::string> out;
    for (const auto& s : host.sent()) {
      out.emplace_back(s.attr("to"));
    }
    return out;
  }
};

} // namespace

TEST_CASE("carbons: XEP-0280 §3-5 — the feature, enabling and disabling (examples 1-6)", "[xep0280][spec]") {
  Fixture f;
  // §3: "An entity advertises support for this protocol by including the "urn:xmpp:carbons:2" feature".
  CHECK(f.host.features() == std::vector<std::string>{"urn:xmpp:carbons:2"});
  // Example 2: "Server acknowledges enabling Carbons" — an empty result.
  const Element enable = parse_stanza(enable_iq(kGarden));
  IqReply r = f.host.call_iq(IqScope::Account, enable);
  REQUIRE_FALSE(r.is_error());
  Element reply = FakeHost::reply_stanza(enable, r);
  reply.set_attr("from", "romeo@montague.example"); // the router answers from the account
  CHECK(canonical(reply) == canonical(parse_stanza(R"(<iq xmlns='jabber:client'
      from='romeo@montague.example'
      id='enable1'
      to='romeo@montague.example/garden'
      type='result'/>)")));
  // §10.1: enabling twice is no error; neither is disabling twice.
  CHECK_FALSE(f.host.call_iq(IqScope::Account, enable_iq(kGarden)).is_error());
  CHECK_FALSE(f.host.call_iq(IqScope::Account, disable_iq(kGarden)).is_error());
  CHECK_FALSE(f.host.call_iq(IqScope::Account, disable_iq(kGarden)).is_error());
  // Example 6: "Server informs client cannot disable Carbons" — another account's carbons: not-allowed.
  IqReply other = f.host.call_iq(IqScope::Account, "<iq xmlns='jabber:client' from='juliet@capulet.example/balcony' "
                                                   "to='romeo@montague.example' id='disable1' type='set'>"
                                                   "<disable xmlns='urn:xmpp:carbons:2'/></iq>");
  REQUIRE(other.is_error());
  CHECK(other.error_value().condition == "not-allowed");
  CHECK(other.error_value().effective_type() == cg::api::ErrorType::Cancel);
}

TEST_CASE("carbons: XEP-0280 §8 examples 7-8 — a message to one resource is copied to the other enabled ones",
          "[xep0280][spec]") {
  Fixture f;
  f.host.add_session(session(kGarden, true, 0));
  f.host.add_session(session(kHome, true, 0));
  f.host.add_session(session(kPhone, true, 0)); // carbons not enabled
  f.enable(kGarden);
  f.enable(kHome);
  f.route(kDirected, Route::Full);
  // "The receiving server MUST NOT send a forwarded copy to the client(s) the original <message/> stanza was
  // addressed to"; phone did not enable carbons.
  REQUIRE(f.host.sent().size() == 1);
  CHECK(canonical(f.host.sent().front()) == canonical(parse_stanza(kReceivedCarbon)));
}

TEST_CASE("carbons: XEP-0280 §9 examples 9-10 — a sent message is copied to the sender's other enabled resources",
          "[xep0280][spec]") {
  Fixture f;
  f.host.add_session(session(kGarden, true, 0));
  f.host.add_session(session(kHome, true, 0));
  f.host.add_session(session(kPhone, true, 0));
  f.enable(kGarden);
  f.enable(kHome); // the sender's own carbons: "SHOULD NOT send a forwarded copy to the sending full JID"
  f.route(kResponse, Route::Pre);
  REQUIRE(f.host.sent().size() == 1);
  CHECK(canonical(f.host.sent().front()) == canonical(parse_stanza(kSentCarbon)));
  // "Note that this happens irrespective of whether the sending client has carbons enabled."
  f.host.clear_records();
  f.route("<message xmlns='jabber:client' from='romeo@montague.example/phone' to='juliet@capulet.example' "
          "type='chat'><body>hi</body></message>",
          Route::Pre);
  CHECK(f.copies_to() == std::vector<std::string>{"romeo@montague.example/garden", "romeo@montague.example/home"});
}

TEST_CASE("carbons: a message to the bare JID is copied only to enabled resources that RFC 6121 did not give it "
          "(negative priority, no presence)",
          "[xep0280]") {
  Fixture f;
  f.host.add_session(session(kGarden, true, 0)); // gets the original
  f.host.add_session(session(kHome, true, -1));  // negative priority: a copy
  f.host.add_session(session(kPhone, false, 0)); // bound, no presence: a copy
  f.enable(kGarden);
  f.enable(kHome);
  f.enable(kPhone);
  f.route("<message from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat'><body>hi</body>"
          "</message>",
          Route::Bare);
  CHECK(f.copies_to() == std::vector<std::string>{"romeo@montague.example/home", "romeo@montague.example/phone"});
  for (const auto& c : f.host.sent()) {
    CHECK(c.child("received", carbons::ns) != nullptr);
    CHECK(c.attr("from") == "romeo@montague.example");
  }
}

TEST_CASE("carbons: XEP-0280 §7 — <private/> and XEP-0334 <no-copy/> prevent copies — the receiving server removes "
          "<private/>",
          "[xep0280][spec]") {
  Fixture f;
  f.host.add_session(session(kGarden, true, 0));
  f.host.add_session(session(kHome, true, 0));
  f.enable(kGarden);
  f.enable(kHome);
  // Example 11: "Romeo sends to Juliet, excluding Carbons" — the sending server makes no copies (and keeps
  // <private/>, example 12).
  Element sent = f.route(R"(<message xmlns='jabber:client'
         from='romeo@montague.example/home'
         to='juliet@capulet.example/home'
         type='chat'>
  <body>Neither, fair saint, if either thee dislike.</body>
  <thread>0e3141cd80894871a68e6fe6b1ec56fa</thread>
  <private xmlns='urn:xmpp:carbons:2'/>
</message>)",
                         Route::Pre);
  CHECK(f.host.sent().empty());
  CHECK(sent.child("private", carbons::ns) != nullptr);
  // Received: no copies, and the recipient does not see <private/>.
  Element received = f.route("<message from='juliet@capulet.example/balcony' to='romeo@montague.example/garden' "
                             "type='chat'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>",
                             Route::Full);
  CHECK(f.host.sent().empty());
  CHECK(received.child("private", carbons::ns) == nullptr);
  f.route("<message from='juliet@capulet.example/balcony' to='romeo@montague.example/garden' type='chat'>"
          "<body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>",
          Route::Full);
  f.route("<message from='romeo@montague.example/home' to='juliet@capulet.example' type='chat'>"
          "<body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>",
          Route::Pre);
  CHECK(f.host.sent().empty());
}

TEST_CASE("carbons: XEP-0280 §6 — which messages are copied", "[xep0280][spec]") {
  using D = Direction;
  auto el = [](std::string_view xml) { return parse_stanza(xml); };
  CHECK(carbons::eligible(el("<message type='chat'><body>x</body></message>"), D::Received));
  CHECK(carbons::eligible(el("<message type='normal'><body>x</body></message>"), D::Sent));
  CHECK(carbons::eligible(el("<message><body>x</body></message>"), D::Received));
  // Chat states, receipts and markers are IM payloads.
  CHECK(carbons::eligible(el("<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/>"
                             "</message>"),
                          D::Received));
  CHECK(carbons::eligible(el("<message><received xmlns='urn:xmpp:receipts' id='x'/></message>"), D::Sent));
  CHECK(carbons::eligible(el("<message><displayed xmlns='urn:xmpp:chat-markers:0' id='x'/></message>"), D::Sent));
  CHECK_FALSE(carbons::eligible(el("<message><subject>no body</subject></message>"), D::Received));
  CHECK_FALSE(carbons::eligible(el("<message type='headline'><body>x</body></message>"), D::Received));
  // "A <message/> of type "groupchat" SHOULD NOT be carbon-copied."
  CHECK_FALSE(carbons::eligible(el("<message type='groupchat'><body>x</body></message>"), D::Received));
  // Errors would need tracking of the message they answer.
  CHECK_FALSE(carbons::eligible(el("<message type='error'><body>x</body></message>"), D::Received));
  // MUC private messages: received ones not (the MUC sends them to every joined client), sent ones yes.
  const char* pm = "<message type='chat'><body>x</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>";
  CHECK_FALSE(carbons::eligible(el(pm), D::Received));
  CHECK(carbons::eligible(el(pm), D::Sent));
  // Invitations (mediated and direct) are copied.
  CHECK(carbons::eligible(el("<message><x xmlns='http://jabber.org/protocol/muc#user'><invite "
                             "from='a@b/c'/></x></message>"),
                          D::Received));
  CHECK(
      carbons::eligible(el("<message><x xmlns='jabber:x:conference' jid='room@muc.example'/></message>"), D::Received));
  // A carbon is never copied again.
  CHECK_FALSE(carbons::eligible(parse_stanza(kReceivedCarbon), D::Received));
  CHECK_FALSE(carbons::eligible(parse_stanza(kSentCarbon), D::Sent));
  CHECK(carbons::is_carbon(parse_stanza(kSentCarbon)));
  CHECK_FALSE(carbons::is_carbon(parse_stanza(kDirected)));
}

TEST_CASE("carbons: no copies of what the server re-sends (offline delivery), of messages to the own account as "
          "sent, nor after the session ended",
          "[xep0280]") {
  Fixture f;
  f.host.add_session(session(kGarden, true, 0));
  f.host.add_session(session(kHome, true, -1));
  f.enable(kGarden);
  f.enable(kHome);
  // Offline delivery to garden: a server-generated message with this host's delay.
  Element offline = cg::xep::offline::stored_form(parse_stanza(kDirected), "montague.example", 0);
  f.route(cg::api::to_xml(offline), Route::Full, OriginKind::Local);
  CHECK(f.host.sent().empty());
  // A message to the own bare JID is copied once, as received, to those that do not get it (home, priority -1) —
  // not also as sent.
  f.route("<message from='romeo@montague.example/garden' to='romeo@montague.example' type='chat'><body>note</body>"
          "</message>",
          Route::Pre);
  CHECK(f.host.sent().empty());
  f.route("<message from='romeo@montague.example/garden' to='romeo@montague.example' type='chat'><body>note</body>"
          "</message>",
          Route::Bare);
  CHECK(f.copies_to() == std::vector<std::string>{"romeo@montague.example/home"});
  // The session of home ends: its carbons are off; a new session with that resource starts without them.
  f.host.clear_records();
  f.host.fire_session(SessionEvent{SessionEventKind::Closed, kHome, ""});
  f.route(kDirected, Route::Full);
  CHECK(f.host.sent().empty());
}

TEST_CASE("carbons: copies carry the archive's <stanza-id/> (XEP-0313 §3.5: \"servers SHOULD include the element as "
          "a child of the forwarded message when using XEP-0280\")",
          "[xep0280][xep0313]") {
  Fixture f;
  auto mam_module = cg::xep::mam::make_module();
  f.host.sibling().load(*mam_module);
  f.host.run();
  f.host.add_session(session(kGarden, true, 0));
  f.host.add_session(session(kHome, true, 0));
  f.enable(kGarden);
  f.enable(kHome);
  // Received: the copy's forwarded message has romeo's stanza-id, as the delivered original does.
  Element delivered = f.route(kDirected, Route::Full);
  const Element* sid = delivered.child("stanza-id", cg::xep::mam::ns_sid);
  REQUIRE(sid != nullptr);
  REQUIRE(f.host.sent().size() == 1);
  const Element* fwd = f.host.sent()[0].child("received", carbons::ns)->child("forwarded", carbons::ns_forward);
  const Element* inner = fwd->child("message", "jabber:client");
  REQUIRE(inner->child("stanza-id", cg::xep::mam::ns_sid) != nullptr);
  CHECK(inner->child("stanza-id", cg::xep::mam::ns_sid)->attr("id") == sid->attr("id"));
  // Sent: the copy has the sender's archive id; the message that leaves has none.
  f.host.clear_records();
  Element out = f.route(kResponse, Route::Pre);
  CHECK(out.child("stanza-id", cg::xep::mam::ns_sid) == nullptr);
  REQUIRE(f.host.sent().size() == 1);
  const Element* sent_inner = f.host.sent()[0]
                                  .child("sent", carbons::ns)
                                  ->child("forwarded", carbons::ns_forward)
                                  ->child("message", "jabber:client");
  const Element* sent_sid = sent_inner->child("stanza-id", cg::xep::mam::ns_sid);
  REQUIRE(sent_sid != nullptr);
  CHECK(sent_sid->attr("by") == "romeo@montague.example");
}
