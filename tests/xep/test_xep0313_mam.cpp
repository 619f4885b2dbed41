// XEP-0313: Message Archive Management 1.1.1, XEP-0441 preferences, XEP-0359 stanza-ids — the specs' examples and
// the mam module against the fake host.
#include "server/api/datetime.hpp"
#include "server/api/xml.hpp"
#include "tests/xep/fake_host.hpp"
#include "xep/rfc6121_roster.hpp"
#include "xep/xep0160_offline.hpp"
#include "xep/xep0313_mam.hpp"

#include <catch2/catch.hpp>

using cg::api::Element;
using cg::api::Flow;
using cg::api::IqReply;
using cg::api::IqScope;
using cg::api::IqType;
using cg::api::Jid;
using cg::api::Origin;
using cg::api::OriginKind;
using cg::api::Route;
using cg::api::StanzaError;
using cg::api::StanzaEvent;
using cg::api::StanzaKind;
using cg::test::canonical;
using cg::test::FakeHost;
using cg::test::parse_stanza;
using cg::test::parse_xml;
namespace mam = cg::xep::mam;
namespace storage = cg::storage;

namespace {

const Jid kJulietBare = *Jid::parse("juliet@capulet.lit");
const Jid kJuliet = *Jid::parse("juliet@capulet.lit/chamber");
const Jid kRomeo = *Jid::parse("romeo@montague.lit/orchard");

struct Fixture {
  FakeHost host{"capulet.lit"};
  std::unique_ptr<cg::api::Module> module = mam::make_module();

  explicit Fixture(cg::test::OptionOverrides options = {}) {
    host.load(*module, options);
    host.run(); // the preferences are read at load
  }

  std::shared_ptr<storage::ArchiveStore> store() { return host.storage().archive(mam::store_name); }
  storage::ArchivePage all(const std::string& user = "juliet") {
    storage::ArchiveQuery q;
    q.limit = 100'000;
    return store()->query("capulet.lit", user, q);
  }

  // A message arriving for juliet (Route::Bare, or Route::Full to a bound resource).
  Element incoming(std::string_view xml, Route route = Route::Bare, OriginKind kind = OriginKind::Client) {
    Element stanza = parse_stanza(xml);
    const Jid from = *Jid::parse(stanza.attr("from"));
    const Jid to = *Jid::parse(stanza.attr("to"));
    const Origin origin{kind, kind == OriginKind::Local ? *Jid::parse("capulet.lit") : from};
    StanzaEvent ev{stanza, from, to, origin, StanzaKind::Message, route, nullptr};
    host.run_stanza(ev);
    host.run();
    return stanza;
  }
  // A message juliet's client sends (Route::Pre: every Pre handler, as the router runs them).
  Element outgoing(std::string_view xml) {
    Element stanza = parse_stanza(xml);
    stanza.set_attr("from", kJuliet.str());
    const Origin origin{OriginKind::Client, kJuliet};
    const Jid to = stanza.has_attr("to") ? *Jid::parse(stanza.attr("to")) : Jid();
    StanzaEvent ev{stanza, kJuliet, to, origin, StanzaKind::Message, Route::Pre, nullptr};
    host.run_stanza(ev);
    host.run();
    return stanza;
  }

  // Appends an archived item directly (known ids and times, as in the spec's examples).
  void seed(const std::string& id, std::string_view stamp, std::string_view message_xml, std::string with) {
    storage::ArchiveItem item;
    item.id = id;
    item.when = *cg::api::parse_datetime(stamp);
    item.with = std::move(with);
    item.kind = "chat";
    item.payload = cg::api::to_xml(parse_stanza(message_xml));
    store()->append("capulet.lit", "juliet", item);
  }

  IqReply iq(std::string_view xml) {
    Element stanza = parse_stanza(xml);
    if (!stanza.has_attr("from")) {
      stanza.set_attr("from", kJuliet.str());
    }
    return host.call_iq(IqScope::Account, stanza);
  }
  // The result messages sent for a query, in order, and the <fin/>.
  struct Answer {
    std::vector<Element> results;
    Element fin;
  };
  Answer query(std::string_view xml) {
    host.clear_records();
    IqReply reply = iq(xml);
    if (reply.is_error()) {
      FAIL("the query failed: " << reply.error_value().condition << " " << reply.error_value().text);
    }
    REQUIRE(reply.payload());
    Answer a;
    a.fin = *reply.payload();
    for (const auto& s : host.sent()) {
      if (s.name() == "message" && s.child("result", mam::ns) != nullptr) {
        a.results.push_back(s);
      }
    }
    return a;
  }
  std::string error(std::string_view xml) {
    IqReply reply = iq(xml);
    REQUIRE(reply.is_error());
    return reply.error_value().condition;
  }
};

std::string result_id(const Element& m) {
  return std::string(m.child("result", mam::ns)->attr("id"));
}

std::vector<std::string> result_ids(const std::vector<Element>& results) {
  std::vector<std::string> out;
  for (const auto& r : results) {
    out.push_back(result_id(r));
  }
  return out;
}

const Element* stanza_id(const Element& m, std::string_view by) {
  for (const Element* s : m.children("stanza-id", mam::ns_sid)) {
    if (s->attr("by") == by) {
      return s;
    }
  }
  return nullptr;
}

std::string set_text(const Element& fin, std::string_view name) {
  const Element* set = fin.child("set", "http://jabber.org/protocol/rsm");
  REQUIRE(set != nullptr);
  return set->child_text(name, "http://jabber.org/protocol/rsm");
}

std::string form(std::string fields) {
  return "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value>"
         "</field>" +
         fields + "</x>";
}

std::string field(std::string var, std::string value) {
  return "<field var='" + var + "'><value>" + value + "</value></field>";
}

// n chat messages from romeo (even) and benvolio (odd), one second apart from 2010-07-10T00:00:00Z; ids m000...
void seed_conversation(Fixture& f, int n) {
  const auto t0 = *cg::api::parse_datetime("2010-07-10T00:00:00Z");
  for (int i = 0; i < n; ++i) {
    char id[8];
    std::snprintf(id, sizeof id, "m%03d", i);
    const std::string from = i % 2 == 0 ? "romeo@montague.lit/orchard" : "benvolio@montague.lit/street";
    f.seed(id, cg::api::format_datetime(t0 + i * 1'000'000LL, 0),
           "<message from='" + from + "' to='juliet@capulet.lit/balcony' type='chat'><body>" + std::to_string(i) +
               "</body></message>",
           i % 2 == 0 ? "romeo@montague.lit" : "benvolio@montague.lit");
  }
}

} // namespace

TEST_CASE("mam: the account advertises urn:xmpp:mam:2, #extended and urn:xmpp:sid:0 (XEP-0313 §6)", "[xep0313]") {
  Fixture f;
  CHECK(f.host.account_features() ==
        std::vector<std::string>{"urn:xmpp:mam:2", "urn:xmpp:mam:2#extended", "urn:xmpp:sid:0"});
}

TEST_CASE("mam: XEP-0313 §3.5 — an archived message is delivered with <stanza-id by='user@host'/> naming its "
          "archive id",
          "[xep0313][spec]") {
  Fixture f;
  // Example 1: "Client receives a message that has been archived".
  Element m = f.incoming("<message to='juliet@capulet.lit/balcony' from='romeo@montague.lit/orchard' type='chat'>"
                         "<body>Call me but love, and I'll be new baptized; Henceforth I never will be Romeo.</body>"
                         "</message>",
                         Route::Full);
  const Element* sid = stanza_id(m, "juliet@capulet.lit");
  REQUIRE(sid != nullptr);
  CHECK(sid->attr("id").size() == 20);
  auto page = f.all();
  REQUIRE(page.items.size() == 1);
  CHECK(page.items[0].id == sid->attr("id"));
  CHECK(page.items[0].with == "romeo@montague.lit");
  // Stored as it arrived, without this archive's own id.
  auto stored = cg::api::parse_xml(page.items[0].payload);
  REQUIRE(stored);
  CHECK(stanza_id(*stored, "juliet@capulet.lit") == nullptr);
  CHECK(stored->child_text("body") == "Call me but love, and I'll be new baptized; Henceforth I never will be Romeo.");
}

TEST_CASE("mam: XEP-0359 — a <stanza-id/> claiming this archive is replaced — others' are kept", "[xep0313][xep0359]") {
  Fixture f;
  Element m = f.incoming("<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat'>"
                         "<body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='juliet@capulet.lit' id='forged'/>"
                         "<stanza-id xmlns='urn:xmpp:sid:0' by='montague.lit' id='theirs'/></message>");
  auto ids = m.children("stanza-id", mam::ns_sid);
  REQUIRE(ids.size() == 2);
  const Element* ours = stanza_id(m, "juliet@capulet.lit");
  REQUIRE(ours != nullptr);
  CHECK(ours->attr("id") != "forged");
  CHECK(stanza_id(m, "montague.lit")->attr("id") == "theirs");
  REQUIRE(f.all().items.size() == 1);
  CHECK(f.all().items[0].id == ours->attr("id"));
}

TEST_CASE("mam: outgoing messages go to the sender's archive — the <stanza-id/> does not leave with them "
          "(XEP-0313 §3.5)",
          "[xep0313]") {
  Fixture f;
  Element m = f.outgoing("<message to='romeo@montague.lit/orchard' type='chat' id='8a54s'><body>What man art thou"
                         "</body><stanza-id xmlns='urn:xmpp:sid:0' by='juliet@capulet.lit' id='forged'/></message>");
  CHECK(m.children("stanza-id", mam::ns_sid).empty());
  auto page = f.all();
  REQUIRE(page.items.size() == 1);
  CHECK(page.items[0].with == "romeo@montague.lit");
  auto stored = cg::api::parse_xml(page.items[0].payload);
  CHECK(stored->attr("from") == "juliet@capulet.lit/chamber");
  CHECK(stored->attr("id") == "8a54s");
  CHECK(stored->children("stanza-id", mam::ns_sid).empty());

  // A message to the own account is archived once, when it arrives (§5.1.1 "only once").
  Element self = f.outgoing("<message to='juliet@capulet.lit' type='chat'><body>note to self</body></message>");
  CHECK(f.all().items.size() == 1);
  const Jid from = kJuliet;
  const Origin origin{OriginKind::Client, kJuliet};
  StanzaEvent ev{self, from, kJulietBare, origin, StanzaKind::Message, Route::Bare, nullptr};
  f.host.run_stanza(ev);
  f.host.run();
  CHECK(f.all().items.size() == 2);
  CHECK(f.all().items[1].with == "juliet@capulet.lit");
}

TEST_CASE("mam: what is archived — chat and normal with a body or encrypted content — never headline, groupchat, "
          "error, state-only or <no-store/> messages, nor the server's own re-sends",
          "[xep0313]") {
  Fixture f;
  auto count = [&] { return f.all().items.size(); };
  f.incoming("<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard'><body>normal</body></message>");
  f.incoming("<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat'>"
             "<encrypted xmlns='eu.siacs.conversations.axolotl'/></message>");
  f.incoming("<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat'>"
             "<store xmlns='urn:xmpp:hints'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>");
  CHECK(count() == 3);
  for (const char* xml : {
           "<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' "
           "type='headline'><body>x</body></message>",
           "<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='groupchat'><body>x</body>"
           "</message>",
           "<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='error'><body>x</body></message>",
           "<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat'>"
           "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
           "<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard'><subject>no body</subject></message>",
           "<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat'><body>x</body>"
           "<no-store xmlns='urn:xmpp:hints'/></message>",
           "<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat'><body>x</body>"
           "<no-permanent-store xmlns='urn:xmpp:hints'/></message>",
       }) {
    INFO(xml);
    Element m = f.incoming(xml);
    CHECK(m.children("stanza-id", mam::ns_sid).empty());
    CHECK(count() == 3);
  }
  // Offline delivery re-sends a message that was archived when it arrived: not again.
  Element archived = f.incoming("<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat'>"
                                "<body>while you were away</body></message>");
  CHECK(count() == 4);
  Element resend = cg::xep::offline::stored_form(archived, "capulet.lit", 0);
  resend.set_attr("to", "juliet@capulet.lit/balcony");
  f.incoming(cg::api::to_xml(resend), Route::Full, OriginKind::Local);
  CHECK(count() == 4);
  // Nor a server-generated message that already carries this archive's id.
  archived.set_attr("to", "juliet@capulet.lit/balcony");
  Element again = f.incoming(cg::api::to_xml(archived), Route::Full, OriginKind::Local);
  CHECK(count() == 4);
  CHECK(again.children("stanza-id", mam::ns_sid).size() == 1);
}

TEST_CASE("mam: XEP-0313 §4 examples 2-4 — a query, its results and the <fin/>", "[xep0313][spec]") {
  Fixture f;
  f.seed("28482-98726-73623", "2010-07-10T23:08:25Z",
         "<message to='juliet@capulet.lit/balcony' from='romeo@montague.lit/orchard' type='chat'><body>Call me but "
         "love, and I'll be new baptized; Henceforth I never will be Romeo.</body></message>",
         "romeo@montague.lit");
  f.seed("09af3-cc343-b409f", "2010-07-10T23:09:32Z",
         "<message to='romeo@montague.lit/orchard' from='juliet@capulet.lit/balcony' type='chat' id='8a54s'><body>What "
         "man art thou that thus bescreen'd in night so stumblest on my counsel?</body></message>",
         "romeo@montague.lit");

  // Example 2: "A user queries their archive for messages".
  auto a = f.query("<iq type='set' id='juliet1'><query xmlns='urn:xmpp:mam:2' queryid='f27'/></iq>");
  REQUIRE(a.results.size() == 2);
  // Example 3 / §4.2 "Server returns two matching messages": the result of the first, 'id' aside.
  Element first = a.results[0];
  CHECK_FALSE(first.attr("id").empty());
  first.remove_attr("id");
  CHECK(first.attr("from") == "juliet@capulet.lit");
  first.remove_attr("from");
  CHECK(canonical(first) == canonical(parse_stanza(R"(<message to='juliet@capulet.lit/chamber'>
  <result xmlns='urn:xmpp:mam:2' queryid='f27' id='28482-98726-73623'>
    <forwarded xmlns='urn:xmpp:forward:0'>
      <delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/>
      <message xmlns='jabber:client'
        to='juliet@capulet.lit/balcony'
        from='romeo@montague.lit/orchard'
        type='chat'>
        <body>Call me but love, and I'll be new baptized; Henceforth I never will be Romeo.</body>
      </message>
    </forwarded>
  </result>
</message>)")));
  CHECK(result_id(a.results[1]) == "09af3-cc343-b409f");
  CHECK(a.results[0].attr("id") != a.results[1].attr("id"));
  // Example 4: "Server returns the result IQ to signal the end" (complete: nothing was left out; count).
  CHECK(canonical(a.fin) == canonical(parse_xml(R"(<fin xmlns='urn:xmpp:mam:2' complete='true'>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <first index='0'>28482-98726-73623</first>
      <last>09af3-cc343-b409f</last>
      <count>2</count>
    </set>
  </fin>)")));
  // No queryid: no queryid attribute on the results.
  auto b = f.query("<iq type='set' id='juliet1'><query xmlns='urn:xmpp:mam:2'/></iq>");
  REQUIRE(b.results.size() == 2);
  CHECK_FALSE(b.results[0].child("result", mam::ns)->has_attr("queryid"));
}

TEST_CASE("mam: XEP-0313 §4.1.5 — the query form (IQ get) lists with, start, end, before-id, after-id and an open ids "
          "list",
          "[xep0313][spec]") {
  Fixture f;
  IqReply reply = f.iq("<iq type='get' id='form1'><query xmlns='urn:xmpp:mam:2'/></iq>");
  REQUIRE_FALSE(reply.is_error());
  // Example: "Server returns supported fields" (without the example's custom and include-groupchat fields).
  CHECK(canonical(*reply.payload()) == canonical(parse_xml(R"(<query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='form'>
      <field type='hidden' var='FORM_TYPE'>
        <value>urn:xmpp:mam:2</value>
      </field>
      <field type='jid-single' var='with'/>
      <field type='text-single' var='start'/>
      <field type='text-single' var='end'/>
      <field type='text-single' var='before-id'/>
      <field type='text-single' var='after-id'/>
      <field type='list-multi' var='ids'>
        <validate xmlns="http://jabber.org/protocol/xdata-validate" datatype="xs:string">
          <open/>
        </validate>
      </field>
    </x>
  </query>)")));
  // "Servers MUST NOT mark any fields in the form as being required".
  for (const auto& fld : mam::query_form().fields) {
    CHECK_FALSE(fld.required);
  }
}

TEST_CASE("mam: filters — with (bare and full JID), start, end, after-id, before-id, ids (XEP-0313 §4.1)",
          "[xep0313][spec]") {
  Fixture f;
  seed_conversation(f, 10); // m000..m009; even from romeo, odd from benvolio; 00:00:00..00:00:09
  auto ids = [&](std::string fields) {
    return result_ids(
        f.query("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>" + form(fields) + "</query></iq>").results);
  };
  using V = std::vector<std::string>;
  // §4.1.1 "Querying for all messages to/from a particular JID" — a bare JID matches every resource.
  CHECK(ids(field("with", "romeo@montague.lit")) == V{"m000", "m002", "m004", "m006", "m008"});
  // A full JID matches exactly that address.
  CHECK(ids(field("with", "benvolio@montague.lit/street")) == V{"m001", "m003", "m005", "m007", "m009"});
  CHECK(ids(field("with", "benvolio@montague.lit/elsewhere")).empty());
  // §4.1.2: start and end are inclusive ("equal to or later", "equal to or earlier").
  CHECK(ids(field("start", "2010-07-10T00:00:07Z")) == V{"m007", "m008", "m009"});
  CHECK(ids(field("end", "2010-07-10T00:00:01Z")) == V{"m000", "m001"});
  CHECK(ids(field("start", "2010-07-10T00:00:03Z") + field("end", "2010-07-10T00:00:04Z")) == V{"m003", "m004"});
  CHECK(ids(field("start", "2010-07-10T02:00:03+02:00") + field("end", "2010-07-10T00:00:03Z")) == V{"m003"});
  // §4.1.3: after-id / before-id (exclusive), and both for "all messages between two known messages".
  CHECK(ids(field("after-id", "m007")) == V{"m008", "m009"});
  CHECK(ids(field("before-id", "m002")) == V{"m000", "m001"});
  CHECK(ids(field("after-id", "m002") + field("before-id", "m006")) == V{"m003", "m004", "m005"});
  // "Fetching a specific message from the archive", and several.
  CHECK(ids(field("ids", "m004")) == V{"m004"});
  CHECK(ids("<field var='ids'><value>m006</value><value>m001</value></field>") == V{"m001", "m006"});
  // Filters combine.
  CHECK(ids(field("with", "romeo@montague.lit") + field("after-id", "m004")) == V{"m006", "m008"});
}

TEST_CASE("mam: errors — unknown ids are item-not-found, unknown fields feature-not-implemented, bad values "
          "not-acceptable, malformed forms bad-request, another user's archive forbidden",
          "[xep0313][spec]") {
  Fixture f;
  seed_conversation(f, 3);
  auto q = [&](std::string inner) {
    return f.error("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>" + inner + "</query></iq>");
  };
  // §4.1.3: "If any UID requested by the client in any of the 'before-id', 'after-id' or 'ids' form fields is not
  // present in the archive, the server MUST return an item-not-found error".
  CHECK(q(form(field("after-id", "nope"))) == "item-not-found");
  CHECK(q(form(field("before-id", "nope"))) == "item-not-found");
  CHECK(q(form("<field var='ids'><value>m001</value><value>nope</value></field>")) == "item-not-found");
  // §4.3.2 Example: "Message id not found in archive" (RSM <after/> / <before/>).
  CHECK(q("<set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set>") == "item-not-found");
  CHECK(q("<set xmlns='http://jabber.org/protocol/rsm'><before>nope</before></set>") == "item-not-found");
  // §4.1.5: "If a client includes a form field that the server does not recognise, the server MUST respond with a
  // 'feature-not-implemented' error."
  CHECK(q(form(field("{http://example.com/}free-text-search", "x"))) == "feature-not-implemented");
  CHECK(q(form(field("include-groupchat", "true"))) == "feature-not-implemented");
  // Values that are not of their type (XEP-0004 §4: not-acceptable).
  CHECK(q(form(field("start", "yesterday"))) == "not-acceptable");
  CHECK(q(form(field("end", "2010-07-10"))) == "not-acceptable");
  CHECK(q(form(field("with", "@montague.lit"))) == "not-acceptable");
  // Malformed: a form of the wrong type or FORM_TYPE, an RSM <max/> that is no number, both <before/> and <after/>.
  CHECK(q("<x xmlns='jabber:x:data' type='form'/>") == "bad-request");
  CHECK(q("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:1"
          "</value></field></x>") == "bad-request");
  CHECK(q("<set xmlns='http://jabber.org/protocol/rsm'><max>many</max></set>") == "bad-request");
  CHECK(q("<set xmlns='http://jabber.org/protocol/rsm'><after>m000</after><before>m002</before></set>") ==
        "bad-request");
  // §7.1: another user's archive → forbidden (and prefs, form, metadata likewise).
  CHECK(f.error("<iq type='set' id='q' from='romeo@montague.lit/orchard' to='juliet@capulet.lit'>"
                "<query xmlns='urn:xmpp:mam:2'/></iq>") == "forbidden");
  CHECK(f.error("<iq type='get' id='q' from='romeo@montague.lit/orchard' to='juliet@capulet.lit'>"
                "<prefs xmlns='urn:xmpp:mam:2'/></iq>") == "forbidden");
  CHECK(f.error("<iq type='get' id='q' from='romeo@montague.lit/orchard' to='juliet@capulet.lit'>"
                "<metadata xmlns='urn:xmpp:mam:2'/></iq>") == "forbidden");
  CHECK(f.error("<iq type='get' id='q' from='romeo@montague.lit/orchard' to='juliet@capulet.lit'>"
                "<query xmlns='urn:xmpp:mam:2'/></iq>") == "forbidden");
}

TEST_CASE("mam: RSM paging forwards and backwards, the last page, count, index, complete and flip-page "
          "(XEP-0313 §4.3)",
          "[xep0313][spec]") {
  Fixture f({{"max_page_size", std::int64_t{4}}});
  seed_conversation(f, 10);
  using V = std::vector<std::string>;
  auto page = [&](std::string set, std::string extra = "") {
    return f.query("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>" +
                   set + "</set>" + extra + "</query></iq>");
  };
  // "A query using Result Set Management": max 3.
  auto p1 = page("<max>3</max>");
  CHECK(result_ids(p1.results) == V{"m000", "m001", "m002"});
  CHECK_FALSE(p1.fin.has_attr("complete")); // "If it is not the last page ... MUST either omit the 'complete'"
  CHECK(set_text(p1.fin, "first") == "m000");
  CHECK(set_text(p1.fin, "last") == "m002");
  CHECK(set_text(p1.fin, "count") == "10");
  // "A page query using Result Set Management": <after/> the last id.
  auto p2 = page("<max>3</max><after>m002</after>");
  CHECK(result_ids(p2.results) == V{"m003", "m004", "m005"});
  CHECK(p2.fin.child("set", "http://jabber.org/protocol/rsm")
            ->child("first", "http://jabber.org/protocol/rsm")
            ->attr("index") == "3");
  auto p4 = page("<max>3</max><after>m008</after>");
  CHECK(result_ids(p4.results) == V{"m009"});
  CHECK(p4.fin.attr("complete") == "true");
  // The server's limit (max_page_size 4) applies whatever the client asks, and without <max/>.
  CHECK(page("<max>100</max>").results.size() == 4);
  CHECK(f.query("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'/></iq>").results.size() == 4);
  // §4.3.3 "A request for the last page in an archive": an empty <before/>; the results stay in chronological order.
  auto last = page("<max>3</max><before/>");
  CHECK(result_ids(last.results) == V{"m007", "m008", "m009"});
  CHECK_FALSE(last.fin.has_attr("complete"));
  CHECK(set_text(last.fin, "first") == "m007");
  // Backwards from there with <before>first</before>, to the start.
  auto back = page("<max>3</max><before>m007</before>");
  CHECK(result_ids(back.results) == V{"m004", "m005", "m006"});
  auto start = page("<max>3</max><before>m001</before>");
  CHECK(result_ids(start.results) == V{"m000"});
  CHECK(start.fin.attr("complete") == "true");
  // §4.3.4 "Requesting a page that is flipped": the same page, sent newest first.
  auto flipped = page("<max>3</max><after>m002</after>", "<flip-page/>");
  CHECK(result_ids(flipped.results) == V{"m005", "m004", "m003"});
  CHECK(set_text(flipped.fin, "first") == "m003");
  // XEP-0059 §2.7: <max>0</max> gives the count only.
  auto count = page("<max>0</max>");
  CHECK(count.results.empty());
  CHECK(set_text(count.fin, "count") == "10");
  CHECK(count.fin.child("set", "http://jabber.org/protocol/rsm")->child("first", "http://jabber.org/protocol/rsm") ==
        nullptr);
  // XEP-0059 §2.6: <index/>.
  auto indexed = page("<max>2</max><index>5</index>");
  CHECK(result_ids(indexed.results) == V{"m005", "m006"});
  CHECK(indexed.fin.child("set", "http://jabber.org/protocol/rsm")
            ->child("first", "http://jabber.org/protocol/rsm")
            ->attr("index") == "5");
  // RSM paging inside a range given by the form (the tighter bound wins).
  auto ranged =
      f.query("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>" +
              form(field("after-id", "m001") + field("before-id", "m008")) +
              "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><after>m003</after></set></query></iq>");
  CHECK(result_ids(ranged.results) == V{"m004", "m005"});
  auto ranged_early = f.query("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>" + form(field("after-id", "m004")) +
                              "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><after>m001</after></set>"
                              "</query></iq>");
  CHECK(result_ids(ranged_early.results) == V{"m005", "m006"});
  // A full-JID 'with' pages too.
  auto full = f.query("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'>" +
                      form(field("with", "romeo@montague.lit/orchard")) +
                      "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set></query></iq>");
  CHECK(result_ids(full.results) == V{"m006", "m008"});
  CHECK_FALSE(full.fin.has_attr("complete"));
}

TEST_CASE("mam: XEP-0313 §5 — archive metadata gives the first and last archived message", "[xep0313][spec]") {
  Fixture f;
  IqReply empty = f.iq("<iq type='get' id='jui8921rr9'><metadata xmlns='urn:xmpp:mam:2'/></iq>");
  REQUIRE_FALSE(empty.is_error());
  CHECK(empty.payload()->element_count() == 0);
  f.seed("YWxwaGEg", "2008-08-22T21:09:04Z",
         "<message from='romeo@montague.lit/orchard' to='juliet@capulet.lit' type='chat'><body>a</body></message>",
         "romeo@montague.lit");
  f.seed("b21lZ2Eg", "2020-04-20T14:34:21Z",
         "<message from='romeo@montague.lit/orchard' to='juliet@capulet.lit' type='chat'><body>z</body></message>",
         "romeo@montague.lit");
  IqReply reply = f.iq("<iq type='get' id='jui8921rr9'><metadata xmlns='urn:xmpp:mam:2'/></iq>");
  REQUIRE_FALSE(reply.is_error());
  // Example: "Server returns archive metadata".
  CHECK(canonical(*reply.payload()) == canonical(parse_xml(R"(<metadata xmlns='urn:xmpp:mam:2'>
    <start id='YWxwaGEg' timestamp='2008-08-22T21:09:04Z' />
    <end id='b21lZ2Eg' timestamp='2020-04-20T14:34:21Z' />
  </metadata>)")));
}

TEST_CASE("mam: XEP-0441 preferences — examples, storage, and their effect (always, never, roster)",
          "[xep0313][xep0441][spec]") {
  Fixture f;
  // Example 1-2: "Retrieving archiving preferences" — the server default, with (empty) <always/> and <never/>.
  IqReply current = f.iq("<iq type='get' id='juliet2'><prefs xmlns='urn:xmpp:mam:2'/></iq>");
  REQUIRE_FALSE(current.is_error());
  CHECK(canonical(*current.payload()) ==
        canonical(parse_xml("<prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never/></prefs>")));

  // Example 4-5: "Updating archiving preferences" and the applied preferences in the answer.
  const char* prefs = R"(<prefs xmlns='urn:xmpp:mam:2' default='roster'>
    <always>
      <jid>romeo@montague.lit</jid>
    </always>
    <never>
      <jid>montague@montague.lit</jid>
    </never>
  </prefs>)";
  IqReply set = f.iq(std::string("<iq type='set' id='juliet3'>") + prefs + "</iq>");
  REQUIRE_FALSE(set.is_error());
  CHECK(canonical(*set.payload()) == canonical(parse_xml(prefs)));
  IqReply again = f.iq("<iq type='get' id='juliet2'><prefs xmlns='urn:xmpp:mam:2'/></iq>");
  CHECK(canonical(*again.payload()) == canonical(parse_xml(prefs)));
  // Stored (keyval "mam_prefs"): read back at the next start (see the next test case).
  auto stored = f.host.storage().keyval(mam::prefs_store)->get("capulet.lit", "juliet");
  REQUIRE(stored);
  CHECK(canonical(*cg::api::parse_xml(*stored)) == canonical(parse_xml(prefs)));

  auto archived = [&](std::string from) {
    const auto before = f.all().items.size();
    f.incoming("<message to='juliet@capulet.lit' from='" + from + "' type='chat'><body>x</body></message>");
    return f.all().items.size() > before;
  };
  // 'always' and 'never' lists (a bare entry matches every resource), then the roster for everyone else.
  CHECK(archived("romeo@montague.lit/orchard"));
  CHECK_FALSE(archived("montague@montague.lit/home"));
  CHECK_FALSE(archived("tybalt@capulet.lit/sword")); // not in the roster

  // Put tybalt in the roster and announce it as the roster module does.
  cg::xep::roster::Item tybalt;
  tybalt.jid = *Jid::parse("tybalt@capulet.lit");
  cg::xep::roster::Store(f.host.storage()).put("capulet.lit", "juliet", tybalt);
  cg::xep::roster::ItemChanged changed{kJulietBare, tybalt, "1", false};
  f.host.fire(changed);
  CHECK(archived("tybalt@capulet.lit/sword"));

  // default='never': nothing but the 'always' list.
  REQUIRE_FALSE(f.iq("<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>"
                     "romeo@montague.lit/orchard</jid></always></prefs></iq>")
                    .is_error());
  CHECK(archived("romeo@montague.lit/orchard"));
  CHECK_FALSE(archived("romeo@montague.lit/garden")); // a full JID entry matches only that resource
  CHECK_FALSE(archived("tybalt@capulet.lit/sword"));
  // Outgoing messages follow the same rules (target: the 'to').
  const auto before = f.all().items.size();
  f.outgoing("<message to='tybalt@capulet.lit' type='chat'><body>x</body></message>");
  CHECK(f.all().items.size() == before);

  // Errors: a default that is not one of the three, a JID that is not one.
  CHECK(f.error("<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='sometimes'/></iq>") == "bad-request");
  CHECK(f.error("<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='always'><never><jid>@x</jid></never>"
                "</prefs></iq>") == "jid-malformed");
}

TEST_CASE("mam: preferences stored earlier are in effect once the module has loaded", "[xep0441]") {
  FakeHost host("capulet.lit");
  host.storage()
      .keyval(mam::prefs_store)
      ->set("capulet.lit", "juliet", "<prefs xmlns='urn:xmpp:mam:2' default='never'/>");
  auto module = mam::make_module();
  host.load(*module);
  host.run();
  Element m = parse_stanza("<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat'>"
                           "<body>x</body></message>");
  const Origin origin{OriginKind::Client, kRomeo};
  StanzaEvent ev{m, kRomeo, kJulietBare, origin, StanzaKind::Message, Route::Bare, nullptr};
  host.run_stanza(ev);
  host.run();
  CHECK(m.children("stanza-id", mam::ns_sid).empty());
  CHECK(host.storage().archive(mam::store_name)->count("capulet.lit", "juliet") == 0);
}

TEST_CASE("mam: server default 'never' (modules.mam.default)", "[xep0441]") {
  Fixture f({{"default", std::string("never")}});
  f.incoming("<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat'><body>x</body>"
             "</message>");
  CHECK(f.all().items.empty());
}

TEST_CASE("mam: max_messages keeps the newest — retention_days removes the old (XEP-0313 §3.2: oldest first, no "
          "holes)",
          "[xep0313]") {
  SECTION("per-user limit") {
    Fixture f({{"max_messages", std::int64_t{3}}});
    for (int i = 0; i < 5; ++i) {
      f.incoming("<message to='juliet@capulet.lit' from='romeo@montague.lit/orchard' type='chat'><body>" +
                 std::to_string(i) + "</body></message>");
    }
    auto page = f.all();
    REQUIRE(page.items.size() == 3);
    for (int i = 0; i < 3; ++i) {
      CHECK(cg::api::parse_xml(page.items[static_cast<std::size_t>(i)].payload)->child_text("body") ==
            std::to_string(i + 2));
    }
  }
  SECTION("retention") {
    Fixture f({{"retention_days", std::int64_t{7}}});
    const auto now = cg::api::now_micros();
    f.seed("old", cg::api::format_datetime(now - 8 * 86'400'000'000LL),
           "<message from='romeo@montague.lit/orchard' to='juliet@capulet.lit' type='chat'><body>old</body></message>",
           "romeo@montague.lit");
    f.seed("recent", cg::api::format_datetime(now - 6 * 86'400'000'000LL),
           "<message from='romeo@montague.lit/orchard' to='juliet@capulet.lit' type='chat'><body>new</body></message>",
           "romeo@montague.lit");
    auto a = f.query("<iq type='set' id='q'><query xmlns='urn:xmpp:mam:2'/></iq>");
    CHECK(result_ids(a.results) == std::vector<std::string>{"recent"});
  }
}

TEST_CASE("mam: query parsing — payload structs", "[xep0313]") {
  auto parsed = mam::Query::parse(
      parse_xml("<query xmlns='urn:xmpp:mam:2' queryid='f27'>" +
                form(field("with", "Juliet@Capulet.lit") + field("start", "2010-06-07T00:00:00Z") +
                     field("end", "2010-07-07T13:23:54Z")) +
                "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set><flip-page/></query>"));
  REQUIRE(std::holds_alternative<mam::Query>(parsed));
  const auto& q = std::get<mam::Query>(parsed);
  CHECK(q.queryid == "f27");
  CHECK(q.with == Jid::parse("juliet@capulet.lit"));
  CHECK(q.start == cg::api::parse_datetime("2010-06-07T00:00:00Z"));
  CHECK(q.end == cg::api::parse_datetime("2010-07-07T13:23:54Z"));
  CHECK(q.rsm.max == 10u);
  CHECK(q.rsm.last_page());
  CHECK(q.flip_page);
  // Example: "Client uses two discovered query fields" — fields this server does not offer.
  auto unknown = mam::Query::parse(parse_xml(
      "<query xmlns='urn:xmpp:mam:2'>" +
      form("<field type='text-single' var='urn:example:xmpp:free-text-search'><value>Where arth thou, my Juliet?"
           "</value></field>") +
      "</query>"));
  REQUIRE(std::holds_alternative<StanzaError>(unknown));
  CHECK(std::get<StanzaError>(unknown).condition == "feature-not-implemented");
}
