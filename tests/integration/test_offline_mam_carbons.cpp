// Offline messages (XEP-0160), the message archive (XEP-0313) and carbons (XEP-0280) against the real chatgroupd:
// libstrophe for the ordinary client path, the raw client where many stanzas are pipelined or exact bytes matter.
#include "tests/integration/harness.hpp"

#include "server/xml/writer.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <regex>
#include <set>

using namespace it;

namespace {

constexpr const char* kMam = "urn:xmpp:mam:2";
constexpr const char* kRsm = "http://jabber.org/protocol/rsm";
constexpr const char* kSid = "urn:xmpp:sid:0";
constexpr const char* kDelay = "urn:xmpp:delay";
constexpr const char* kCarbons = "urn:xmpp:carbons:2";
constexpr const char* kForward = "urn:xmpp:forward:0";

ServerOptions with_users(std::vector<std::string> names, ServerOptions opts = {}) {
  for (const auto& n : names) {
    opts.users[n] = n + "-pw";
  }
  return opts;
}

// A raw client logged in and bound; sends available presence (with <priority/> unless 0) unless `presence` is false,
// then syncs with a ping so that the presence is in effect.
std::unique_ptr<RawClient> online(const TestServer& server, const std::string& user, const std::string& resource,
                                  int priority = 0, bool presence = true) {
  auto c = std::make_unique<RawClient>();
  c->login(server.port(), user, user + "-pw", resource);
  if (presence) {
    c->send(priority == 0 ? std::string("<presence/>")
                          : "<presence><priority>" + std::to_string(priority) + "</priority></presence>");
  }
  REQUIRE(sync_ping(*c, "online"));
  return c;
}

auto message_with_id(const std::string& id) {
  return [id](const Element& e) { return e.name() == "message" && e.attr("id") == id; };
}

// The <body/> of a message (libstrophe hands stanzas over without the stream's default namespace).
const Element* body_of(const Element& e) {
  for (const Element* c : e.children()) {
    if (c->name() == "body") {
      return c;
    }
  }
  return nullptr;
}

bool is_chat_message(const Element& e) {
  return e.name() == "message" && body_of(e) != nullptr;
}

int count_ids(const std::vector<Element>& elements, const std::string& prefix) {
  return static_cast<int>(std::count_if(elements.begin(), elements.end(), [&](const Element& e) {
    return e.name() == "message" && e.attr("id").rfind(prefix, 0) == 0;
  }));
}

const Element* stanza_id(const Element& m, std::string_view by) {
  for (const Element* s : m.children("stanza-id", kSid)) {
    if (s->attr("by") == by) {
      return s;
    }
  }
  return nullptr;
}

bool is_datetime(std::string_view s) {
  static const std::regex re(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)");
  return std::regex_match(s.begin(), s.end(), re);
}

// --- MAM over the raw client ---------------------------------------------------------------------------------------

struct MamAnswer {
  std::vector<Element> results; // the <message/>s carrying <result/>, in arrival order
  Element iq;                   // the IQ result or error
  std::vector<std::string> ids() const {
    std::vector<std::string> out;
    for (const auto& r : results) {
      out.emplace_back(r.child("result", kMam)->attr("id"));
    }
    return out;
  }
  const Element& fin() const { return *iq.child("fin", kMam); }
  std::string set(std::string_view name) const {
    const Element* s = fin().child("set", kRsm);
    return s == nullptr ? "" : s->child_text(name, kRsm);
  }
  bool complete() const { return fin().attr("complete") == "true"; }
  // The delay stamp of each result.
  std::vector<std::string> stamps() const {
    std::vector<std::string> out;
    for (const auto& r : results) {
      out.emplace_back(r.child("result", kMam)->child("forwarded", kForward)->child("delay", kDelay)->attr("stamp"));
    }
    return out;
  }
};

std::string form(const std::string& fields) {
  return "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value>"
         "</field>" +
         fields + "</x>";
}

std::string field(const std::string& var, const std::string& value) {
  return "<field var='" + var + "'><value>" + value + "</value></field>";
}

std::string rsm(const std::string& inner) {
  return "<set xmlns='http://jabber.org/protocol/rsm'>" + inner + "</set>";
}

int query_seq = 0;

// Sends a MAM query (the <query/>'s children given) and collects its results until the IQ answer.
MamAnswer mam_query(RawClient& c, const std::string& inner) {
  const std::string id = "mam" + std::to_string(++query_seq);
  const std::string queryid = "q" + std::to_string(query_seq);
  c.send("<iq type='set' id='" + id + "'><query xmlns='urn:xmpp:mam:2' queryid='" + queryid + "'>" + inner +
         "</query></iq>");
  MamAnswer a;
  while (true) {
    auto e = c.next_element();
    REQUIRE(e);
    if (e->name() == "iq" && e->attr("id") == id) {
      a.iq = std::move(*e);
      break;
    }
    const Element* result = e->child("result", kMam);
    if (e->name() == "message" && result != nullptr && result->attr("queryid") == queryid) {
      a.results.push_back(std::move(*e));
    } else {
      c.skipped.push_back(std::move(*e));
    }
  }
  return a;
}

MamAnswer mam_ok(RawClient& c, const std::string& inner) {
  auto a = mam_query(c, inner);
  INFO(cg::xml::to_string(a.iq));
  REQUIRE(a.iq.attr("type") == "result");
  REQUIRE(a.iq.child("fin", kMam) != nullptr);
  return a;
}

std::size_t archive_count(RawClient& c) {
  auto a = mam_ok(c, rsm("<max>0</max>"));
  return static_cast<std::size_t>(std::stoul(a.set("count")));
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// Offline messages

TEST_CASE("offline: messages to an offline account are kept across a restart and delivered at the next login, in "
          "order, with delay stamps — then they are gone (XEP-0160)",
          "[offline]") {
  TestServer server;
  server.add_user("alice", "alice-pw");
  server.add_user("bob", "bob-pw");
  server.start();
  {
    StropheClient alice("alice@localhost/phone", "alice-pw");
    REQUIRE(alice.connect(server.port(), server.cert_path()));
    for (int i = 0; i < 4; ++i) {
      alice.send("<message to='bob@localhost' type='chat' id='off" + std::to_string(i) + "'><body>offline " +
                 std::to_string(i) + "</body></message>");
    }
    alice.send("<message to='bob@localhost/gone' id='off4'><body>offline 4</body></message>"); // normal, to a resource
    alice.send("<message to='bob@localhost' type='headline' id='head'><body>news</body></message>");
    REQUIRE(sync_ping(alice));
    // Accepted: no error came back (before this module, RFC 6121 §8.5.2.2 gave service-unavailable).
    for (const auto& e : alice.received) {
      INFO(cg::xml::to_string(e));
      CHECK(e.attr("type") != "error");
    }
    REQUIRE(wait_for_log(server, "offline: stored a message for bob@localhost (5 on disk)"));
    alice.disconnect();
  }
  REQUIRE(server.stop() == 0);
  server.start();

  // bob logs in with the raw client (no stream management: what the server sends counts as delivered).
  RawClient bob;
  bob.login(server.port(), "bob", "bob-pw", "desk");
  bob.send("<presence/>");
  std::string previous_stamp;
  for (int i = 0; i < 5; ++i) {
    auto m = bob.wait_for(is_chat_message);
    REQUIRE(m);
    INFO(cg::xml::to_string(*m));
    // In the order they were sent.
    CHECK(m->attr("id") == "off" + std::to_string(i));
    CHECK(body_of(*m)->text() == "offline " + std::to_string(i));
    CHECK(m->attr("from") == "alice@localhost/phone");
    CHECK(m->attr("to") == "bob@localhost/desk");
    // XEP-0203 stamp from the server, at the time the message was received.
    const Element* delay = m->child("delay", kDelay);
    REQUIRE(delay != nullptr);
    CHECK(delay->attr("from") == "localhost");
    CHECK(is_datetime(delay->attr("stamp")));
    CHECK(std::string(delay->attr("stamp")) >= previous_stamp);
    previous_stamp = delay->attr("stamp");
    // Archived when it arrived: the id of bob's archive came along.
    CHECK(stanza_id(*m, "bob@localhost") != nullptr);
  }
  REQUIRE(sync_ping(bob));
  CHECK(count_ids(bob.skipped, "head") == 0); // headline messages are not stored (XEP-0160 §4)
  bob.send("</stream:stream>");
  REQUIRE(bob.wait_closed());

  // Delivered once: the next login finds nothing.
  RawClient again;
  again.login(server.port(), "bob", "bob-pw", "again");
  again.send("<presence/>");
  REQUIRE(wait_for_log(server, "offline: delivered 0 message(s) to bob@localhost/again"));
  REQUIRE(sync_ping(again));
  CHECK(count_ids(again.skipped, "off") == 0);
}

TEST_CASE("offline: a full queue answers <resource-constraint/> — an account with only negative priorities gets its "
          "messages stored and delivered when a session raises its priority",
          "[offline]") {
  TestServer server(with_users({"alice", "bob"}, ServerOptions().set("modules.offline", "max_messages", "3")));
  server.start();
  // bob is online, but only with a negative priority: for messages to the bare JID he is offline
  // (RFC 6121 §8.5.2.1.1).
  auto bob = online(server, "bob", "shy", -1);
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");
  std::string batch;
  for (int i = 1; i <= 4; ++i) {
    batch += "<message to='bob@localhost' type='chat' id='q" + std::to_string(i) + "'><body>" + std::to_string(i) +
             "</body></message>";
  }
  alice.send(batch);
  auto err = alice.wait_for([](const Element& e) { return e.attr("id") == "q4"; });
  REQUIRE(err);
  CHECK(err->attr("type") == "error");
  CHECK(err->attr("from") == "bob@localhost");
  CHECK(error_condition(*err) == "resource-constraint");
  CHECK(err->child("error", cg::xml::ns::client)->attr("type") == "wait");
  REQUIRE(sync_ping(alice));
  for (const auto& e : alice.skipped) {
    CHECK(e.attr("type") != "error"); // q1..q3 were accepted
  }
  REQUIRE(wait_for_log(server, "offline: stored a message for bob@localhost (3 on disk)"));
  REQUIRE(sync_ping(*bob, "none-yet"));
  CHECK(count_ids(bob->skipped, "q") == 0);

  // The session's first available presence with priority >= 0 delivers the queue.
  bob->send("<presence><priority>1</priority></presence>");
  for (int i = 1; i <= 3; ++i) {
    auto m = bob->wait_for(is_chat_message);
    REQUIRE(m);
    CHECK(m->attr("id") == "q" + std::to_string(i));
    CHECK(m->child("delay", kDelay) != nullptr);
  }
  // Now online: the next message arrives at once, without a delay.
  alice.send("<message to='bob@localhost' type='chat' id='live'><body>live</body></message>");
  auto live = bob->wait_for(message_with_id("live"));
  REQUIRE(live);
  CHECK(live->child("delay", kDelay) == nullptr);
}

// ---------------------------------------------------------------------------------------------------------------
// Message archive

TEST_CASE("mam: 1,000 messages paged forwards and backwards with every filter — delivered messages carry their "
          "archive id (XEP-0313, XEP-0059, XEP-0359)",
          "[mam]") {
  TestServer server(with_users({"alice", "bob", "carol"}));
  server.start();
  auto bob = online(server, "bob", "desk");
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");
  RawClient carol;
  carol.login(server.port(), "carol", "carol-pw", "pad");

  // 1,000 messages from alice, pipelined, then 10 from carol once alice's have all arrived.
  constexpr int kAlice = 1000;
  constexpr int kCarol = 10;
  std::string batch;
  for (int i = 0; i < kAlice; ++i) {
    batch += "<message to='bob@localhost' type='chat' id='a" + std::to_string(i) + "'><body>" + std::to_string(i) +
             "</body></message>";
  }
  alice.send(batch);
  REQUIRE(sync_ping(alice));
  // Every delivered message carries exactly one <stanza-id by='bob@localhost'/> (XEP-0313 §3.5); the ids, in order.
  std::vector<std::string> delivered;
  for (int i = 0; i < kAlice; ++i) {
    auto m = bob->wait_for(is_chat_message);
    REQUIRE(m);
    REQUIRE(m->attr("id") == "a" + std::to_string(i));
    REQUIRE(m->children("stanza-id", kSid).size() == 1);
    const Element* sid = stanza_id(*m, "bob@localhost");
    REQUIRE(sid != nullptr);
    delivered.emplace_back(sid->attr("id"));
  }
  for (int i = 0; i < kCarol; ++i) {
    carol.send("<message to='bob@localhost/desk' type='chat' id='c" + std::to_string(i) + "'><body>c" +
               std::to_string(i) + "</body></message>");
  }
  for (int i = 0; i < kCarol; ++i) {
    auto m = bob->wait_for(is_chat_message);
    REQUIRE(m);
    REQUIRE(m->attr("id") == "c" + std::to_string(i));
    delivered.emplace_back(stanza_id(*m, "bob@localhost")->attr("id"));
  }
  CHECK(std::set<std::string>(delivered.begin(), delivered.end()).size() == delivered.size());
  // Everything delivered is in the archive, at once (XEP-0313 §3.5: the <stanza-id/> is added when the message is
  // archived).
  const std::size_t total = delivered.size();
  REQUIRE(archive_count(*bob) == total);
  REQUIRE(archive_count(alice) == kAlice); // alice's outgoing messages are in her own archive

  {
    // Forwards: <after/> the last id of each page, until complete; the archive ids are the stanza-ids.
    std::vector<std::string> all;
    std::optional<std::string> after;
    int pages = 0;
    while (true) {
      auto page = mam_ok(*bob, rsm("<max>250</max>" + (after ? "<after>" + *after + "</after>" : std::string())));
      ++pages;
      CHECK(page.set("count") == std::to_string(total));
      const Element* first = page.fin().child("set", kRsm)->child("first", kRsm);
      REQUIRE(first != nullptr);
      CHECK(first->attr("index") == std::to_string(all.size()));
      auto ids = page.ids();
      CHECK(page.set("first") == ids.front());
      CHECK(page.set("last") == ids.back());
      all.insert(all.end(), ids.begin(), ids.end());
      if (page.complete()) {
        break;
      }
      REQUIRE(pages < 10);
      after = ids.back();
    }
    CHECK(pages == 5);
    CHECK(all == delivered);
  }

  {
    // Backwards: an empty <before/> for the last page, then <before/> the first id of each page.
    std::vector<std::vector<std::string>> pages;
    std::string before;
    while (true) {
      auto page = mam_ok(*bob, rsm("<max>250</max><before>" + before + "</before>"));
      pages.push_back(page.ids());
      if (page.complete()) {
        break;
      }
      REQUIRE(pages.size() < 10);
      before = page.ids().front();
    }
    CHECK(pages.size() == 5);
    CHECK(pages.front().size() == 250);
    CHECK(pages.back().size() == total - 4 * 250);
    std::vector<std::string> all;
    for (auto it = pages.rbegin(); it != pages.rend(); ++it) {
      all.insert(all.end(), it->begin(), it->end());
    }
    CHECK(all == delivered);
  }

  {
    // Filters: with (bare, full, the sender's side), ids, after-id/before-id, start/end, flip-page, index.
    // with: a bare JID matches every resource; the results are carol's 10.
    auto with_carol = mam_ok(*bob, form(field("with", "carol@localhost")));
    CHECK(with_carol.ids() == std::vector<std::string>(delivered.end() - kCarol, delivered.end()));
    CHECK(with_carol.complete());
    CHECK(with_carol.set("count") == "10");
    // A full JID: exactly that address (paged by the server's limit of 250).
    auto with_full = mam_ok(*bob, form(field("with", "alice@localhost/phone")) + rsm("<max>5</max>"));
    CHECK(with_full.ids() == std::vector<std::string>(delivered.begin(), delivered.begin() + 5));
    CHECK_FALSE(with_full.complete());
    CHECK(mam_ok(*bob, form(field("with", "alice@localhost/other"))).results.empty());
    // The sender's archive holds the outgoing side, with=bob.
    auto sent = mam_ok(alice, form(field("with", "bob@localhost")) + rsm("<max>3</max><before/>"));
    REQUIRE(sent.results.size() == 3);
    const Element* original =
        sent.results.back().child("result", kMam)->child("forwarded", kForward)->child("message", cg::xml::ns::client);
    REQUIRE(original != nullptr);
    CHECK(original->attr("id") == "a999");
    CHECK(original->attr("from") == "alice@localhost/phone");
    CHECK(original->child("stanza-id", kSid) == nullptr);
    // ids (#extended): these, in archive order.
    auto by_ids = mam_ok(*bob, form("<field var='ids'><value>" + delivered[1009] + "</value><value>" + delivered[3] +
                                    "</value><value>" + delivered[500] + "</value></field>"));
    CHECK(by_ids.ids() == std::vector<std::string>{delivered[3], delivered[500], delivered[1009]});
    // after-id and before-id: the range between two known messages.
    auto between = mam_ok(*bob, form(field("after-id", delivered[100]) + field("before-id", delivered[110])));
    CHECK(between.ids() == std::vector<std::string>(delivered.begin() + 101, delivered.begin() + 110));
    CHECK(between.complete());
    // start and end (inclusive), from the stamps the archive reports.
    auto window = mam_ok(*bob, form("<field var='ids'><value>" + delivered[500] + "</value><value>" + delivered[509] +
                                    "</value></field>"));
    const auto stamps = window.stamps();
    REQUIRE(stamps.size() == 2);
    CHECK(is_datetime(stamps[0]));
    auto timed = mam_ok(*bob, form(field("start", stamps[0]) + field("end", stamps[1])));
    auto timed_ids = timed.ids();
    for (int i = 500; i <= 509; ++i) {
      CHECK(std::find(timed_ids.begin(), timed_ids.end(), delivered[static_cast<std::size_t>(i)]) != timed_ids.end());
    }
    for (const auto& s : timed.stamps()) {
      CHECK(s >= stamps[0]);
      CHECK(s <= stamps[1]);
    }
    // The results are contiguous in the archive.
    auto first_pos = std::find(delivered.begin(), delivered.end(), timed_ids.front()) - delivered.begin();
    CHECK(timed_ids ==
          std::vector<std::string>(delivered.begin() + first_pos,
                                   delivered.begin() + first_pos + static_cast<std::ptrdiff_t>(timed_ids.size())));
    auto since = mam_ok(*bob, form(field("start", stamps[1])) + rsm("<max>0</max>"));
    CHECK(std::stoul(since.set("count")) <= total - 509);
    CHECK(std::stoul(since.set("count")) >= total - 509 - 5);
    // flip-page: the same page, newest first.
    auto flipped = mam_ok(*bob, rsm("<max>5</max><after>" + delivered[99] + "</after>") + "<flip-page/>");
    CHECK(flipped.ids() ==
          std::vector<std::string>{delivered[104], delivered[103], delivered[102], delivered[101], delivered[100]});
    // RSM <index/>.
    auto indexed = mam_ok(*bob, rsm("<max>2</max><index>700</index>"));
    CHECK(indexed.ids() == std::vector<std::string>{delivered[700], delivered[701]});
    // The server's page limit (modules.mam.max_page_size, 250) whatever the client asks.
    auto capped = mam_ok(*bob, rsm("<max>100000</max>"));
    CHECK(capped.results.size() == 250);
    CHECK_FALSE(capped.complete());
    // Errors: an unknown id, an unknown field.
    auto unknown = mam_query(*bob, form(field("after-id", "no-such-id")));
    CHECK(error_condition(unknown.iq) == "item-not-found");
    CHECK(unknown.results.empty());
    auto unknown_rsm = mam_query(*bob, rsm("<max>5</max><before>no-such-id</before>"));
    CHECK(error_condition(unknown_rsm.iq) == "item-not-found");
    auto unknown_field = mam_query(*bob, form(field("full-text", "x")));
    CHECK(error_condition(unknown_field.iq) == "feature-not-implemented");
    // Metadata: the first and the last archived message.
    auto md = bob->iq("<iq type='get' id='md'><metadata xmlns='urn:xmpp:mam:2'/></iq>", "md");
    REQUIRE(md);
    REQUIRE(md->child("metadata", kMam) != nullptr);
    CHECK(md->child("metadata", kMam)->child("start", kMam)->attr("id") == delivered.front());
    CHECK(md->child("metadata", kMam)->child("end", kMam)->attr("id") == delivered.back());
  }
}

TEST_CASE("mam: archiving preferences never, always and roster (XEP-0441)", "[mam]") {
  TestServer server(with_users({"alice", "bob", "carol"}));
  server.start();
  auto bob = online(server, "bob", "desk");
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");
  RawClient carol;
  carol.login(server.port(), "carol", "carol-pw", "pad");
  int seq = 0;
  // Sends a message to bob and tells whether bob's copy says it was archived (a stanza-id of his archive).
  auto archived = [&](RawClient& from) {
    const std::string id = "p" + std::to_string(++seq);
    from.send("<message to='bob@localhost' type='chat' id='" + id + "'><body>x</body></message>");
    auto m = bob->wait_for(message_with_id(id));
    REQUIRE(m);
    return stanza_id(*m, "bob@localhost") != nullptr;
  };
  auto set_prefs = [&](const std::string& prefs) {
    auto r = bob->iq("<iq type='set' id='prefs'>" + prefs + "</iq>", "prefs");
    REQUIRE(r);
    REQUIRE(r->attr("type") == "result");
    return *r->child("prefs", kMam);
  };

  // The default: always.
  auto current = bob->iq("<iq type='get' id='get'><prefs xmlns='urn:xmpp:mam:2'/></iq>", "get");
  REQUIRE(current);
  CHECK(current->child("prefs", kMam)->attr("default") == "always");
  CHECK(archived(alice));

  // never, except carol.
  auto applied = set_prefs("<prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>carol@localhost</jid></always>"
                           "</prefs>");
  CHECK(applied.attr("default") == "never");
  CHECK(applied.child("always", kMam)->child_text("jid", kMam) == "carol@localhost");
  CHECK_FALSE(archived(alice));
  CHECK(archived(carol));

  // roster: alice is in bob's roster, carol is not.
  auto roster = bob->iq("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='alice@localhost'/></query>"
                        "</iq>",
                        "r1");
  REQUIRE(roster);
  REQUIRE(roster->attr("type") == "result");
  set_prefs("<prefs xmlns='urn:xmpp:mam:2' default='roster'/>");
  CHECK(archived(alice));
  CHECK_FALSE(archived(carol));

  // always, but never alice.
  set_prefs("<prefs xmlns='urn:xmpp:mam:2' default='always'><never><jid>alice@localhost</jid></never></prefs>");
  CHECK_FALSE(archived(alice));
  CHECK(archived(carol));

  // What the archive holds: exactly the messages that were marked — the last one received just now included.
  CHECK(archive_count(*bob) == 4);
}

TEST_CASE("mam: a delivered message is in the archive at once — a query right after it arrives finds it by its "
          "stanza-id, counts it, and the sender's archive holds it too (XEP-0313 §3.5, XEP-0359)",
          "[mam]") {
  TestServer server(with_users({"alice", "bob"}));
  server.start();
  auto bob = online(server, "bob", "desk");
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");

  // Bursts of pipelined messages; right after the last of each burst has arrived (nothing in between: no ping, no
  // wait) bob queries his archive by the ids he was just given, and alice hers.
  constexpr int kRounds = 8;
  constexpr int kBurst = 25;
  std::vector<std::string> delivered;
  for (int round = 0; round < kRounds; ++round) {
    INFO("round " << round);
    std::string batch;
    for (int i = 0; i < kBurst; ++i) {
      batch += "<message to='bob@localhost' type='chat' id='b" + std::to_string(round) + "-" + std::to_string(i) +
               "'><body>" + std::to_string(i) + "</body></message>";
    }
    alice.send(batch);
    for (int i = 0; i < kBurst; ++i) {
      auto m = bob->wait_for(is_chat_message);
      REQUIRE(m);
      REQUIRE(m->attr("id") == "b" + std::to_string(round) + "-" + std::to_string(i));
      const Element* sid = stanza_id(*m, "bob@localhost");
      REQUIRE(sid != nullptr);
      delivered.emplace_back(sid->attr("id"));
    }
    const std::string& last = delivered.back();
    const std::string& before_last = delivered[delivered.size() - 2];

    // RSM <after/> the last-but-one id: exactly the last message (an id the server handed out is never
    // item-not-found, XEP-0313 §4.3.2), and the count is everything delivered.
    auto next = mam_ok(*bob, rsm("<max>10</max><after>" + before_last + "</after>"));
    CHECK(next.ids() == std::vector<std::string>{last});
    CHECK(next.complete());
    CHECK(next.set("count") == std::to_string(delivered.size()));
    // The same through the form's after-id, and the last id alone through 'ids'.
    CHECK(mam_ok(*bob, form(field("after-id", before_last))).ids() == std::vector<std::string>{last});
    CHECK(mam_ok(*bob, form("<field var='ids'><value>" + last + "</value></field>")).ids() ==
          std::vector<std::string>{last});
    // The last page ends with it; the count does not change from one query to the next.
    auto tail = mam_ok(*bob, rsm("<max>3</max><before/>"));
    CHECK(tail.ids() == std::vector<std::string>(delivered.end() - 3, delivered.end()));
    CHECK(tail.set("count") == std::to_string(delivered.size()));
    // Metadata: the last archived message is the last delivered.
    auto md = bob->iq("<iq type='get' id='md" + std::to_string(round) + "'><metadata xmlns='urn:xmpp:mam:2'/></iq>",
                      "md" + std::to_string(round));
    REQUIRE(md);
    REQUIRE(md->child("metadata", kMam) != nullptr);
    REQUIRE(md->child("metadata", kMam)->child("end", kMam) != nullptr);
    CHECK(md->child("metadata", kMam)->child("end", kMam)->attr("id") == last);

    // The sender's archive: every message sent, the last one last.
    auto sent = mam_ok(alice, rsm("<max>1</max><before/>"));
    CHECK(sent.set("count") == std::to_string(delivered.size()));
    REQUIRE(sent.results.size() == 1);
    const Element* original =
        sent.results.front().child("result", kMam)->child("forwarded", kForward)->child("message", cg::xml::ns::client);
    REQUIRE(original != nullptr);
    CHECK(original->attr("id") == "b" + std::to_string(round) + "-" + std::to_string(kBurst - 1));
  }
  // And the whole archive, once, in delivery order.
  auto all = mam_ok(*bob, rsm("<max>250</max>"));
  CHECK(all.ids() == delivered);
  CHECK(all.complete());
}

// ---------------------------------------------------------------------------------------------------------------
// Carbons

TEST_CASE("carbons: three resources of one account — received and sent copies to the enabled ones, <private/> and "
          "<no-copy/>, negative priority, disable (XEP-0280)",
          "[carbons]") {
  TestServer server(with_users({"alice", "bob"}));
  server.start();
  StropheClient a1("alice@localhost/one", "alice-pw");
  StropheClient a2("alice@localhost/two", "alice-pw");
  StropheClient a3("alice@localhost/three", "alice-pw");
  for (auto* c : {&a1, &a2, &a3}) {
    REQUIRE(c->connect(server.port(), server.cert_path()));
    c->send("<presence/>");
  }
  for (auto* c : {&a1, &a2}) {
    auto r = c->iq("<iq type='set' id='en'><enable xmlns='urn:xmpp:carbons:2'/></iq>", "en");
    REQUIRE(r);
    REQUIRE(r->attr("type") == "result");
  }
  for (auto* c : {&a1, &a2, &a3}) {
    REQUIRE(sync_ping(*c, "ready"));
  }
  auto bob_session = online(server, "bob", "desk");
  RawClient& bob = *bob_session;

  // Two rounds of pings: after the first, everything each client sent has been routed (copies included); after the
  // second, all of it has reached its addressees.
  auto settle = [&] {
    for (int round = 0; round < 2; ++round) {
      REQUIRE(sync_ping(bob, "settle"));
      for (auto* c : {&a1, &a2, &a3}) {
        REQUIRE(sync_ping(*c, "settle"));
      }
    }
  };
  auto carbon = [](const Element& e, const char* kind, const std::string& id) {
    if (e.name() != "message" || e.attr("from") != "alice@localhost") {
      return false;
    }
    const Element* wrapper = e.child(kind, kCarbons);
    if (wrapper == nullptr) {
      return false;
    }
    const Element* inner = wrapper->child("forwarded", kForward)->child("message", cg::xml::ns::client);
    return inner != nullptr && inner->attr("id") == id;
  };
  auto carbons_of = [&](StropheClient& c, const std::string& id) {
    return std::count_if(c.received.begin(), c.received.end(),
                         [&](const Element& e) { return carbon(e, "received", id) || carbon(e, "sent", id); });
  };

  // bob → alice/one: one gets the original, two a <received/> copy, three (not enabled) nothing.
  bob.send("<message to='alice@localhost/one' type='chat' id='r1'><body>to one</body></message>");
  settle();
  CHECK(a1.wait_for(message_with_id("r1"), 1s));
  auto copy = a2.wait_for([&](const Element& e) { return carbon(e, "received", "r1"); }, 1s);
  REQUIRE(copy);
  CHECK(copy->attr("to") == "alice@localhost/two");
  CHECK(copy->attr("type") == "chat");
  const Element* inner =
      copy->child("received", kCarbons)->child("forwarded", kForward)->child("message", cg::xml::ns::client);
  CHECK(inner->attr("from") == "bob@localhost/desk");
  CHECK(inner->child("stanza-id", kSid) != nullptr); // the archive id comes along (XEP-0313 §3.5)
  CHECK(carbons_of(a1, "r1") == 0);
  CHECK(carbons_of(a3, "r1") == 0);
  CHECK(count_ids(a3.received, "r1") == 0);

  // bob → alice (bare): every resource with priority >= 0 gets the original, so nobody gets a copy.
  bob.send("<message to='alice@localhost' type='chat' id='r2'><body>to all</body></message>");
  settle();
  for (auto* c : {&a1, &a2, &a3}) {
    CHECK(c->wait_for(message_with_id("r2"), 1s));
    CHECK(carbons_of(*c, "r2") == 0);
  }

  // one → bob: two gets a <sent/> copy; neither the sender nor three.
  a1.send("<message to='bob@localhost' type='chat' id='s1'><body>from one</body></message>");
  settle();
  CHECK(count_ids(bob.skipped, "s1") == 1);
  auto sent = a2.wait_for([&](const Element& e) { return carbon(e, "sent", "s1"); }, 1s);
  REQUIRE(sent);
  CHECK(sent->child("sent", kCarbons)
            ->child("forwarded", kForward)
            ->child("message", cg::xml::ns::client)
            ->attr("from") == "alice@localhost/one");
  CHECK(carbons_of(a1, "s1") == 0);
  CHECK(carbons_of(a3, "s1") == 0);
  // three (carbons not enabled) sends: the enabled ones (one and two) get copies.
  a3.send("<message to='bob@localhost' type='chat' id='s2'><body>from three</body></message>");
  settle();
  CHECK(a1.wait_for([&](const Element& e) { return carbon(e, "sent", "s2"); }, 1s));
  CHECK(a2.wait_for([&](const Element& e) { return carbon(e, "sent", "s2"); }, 1s));

  // <private/> (§7) and XEP-0334 <no-copy/>: no copies in either direction; the recipient does not see <private/>.
  a1.send("<message to='bob@localhost' type='chat' id='p1'><body>secret</body>"
          "<private xmlns='urn:xmpp:carbons:2'/></message>");
  bob.send("<message to='alice@localhost/one' type='chat' id='p2'><body>secret</body>"
           "<private xmlns='urn:xmpp:carbons:2'/></message>");
  bob.send("<message to='alice@localhost/one' type='chat' id='p3'><body>secret</body>"
           "<no-copy xmlns='urn:xmpp:hints'/></message>");
  settle();
  auto p2 = a1.wait_for(message_with_id("p2"), 1s);
  REQUIRE(p2);
  CHECK(p2->child("private", kCarbons) == nullptr);
  for (const char* id : {"p1", "p2", "p3"}) {
    CHECK(carbons_of(a2, id) == 0);
    CHECK(carbons_of(a3, id) == 0);
  }

  // two goes to a negative priority: a message to the bare JID no longer reaches it, so it gets a copy.
  a2.send("<presence><priority>-1</priority></presence>");
  REQUIRE(sync_ping(a2, "neg"));
  bob.send("<message to='alice@localhost' type='chat' id='n1'><body>to all</body></message>");
  settle();
  CHECK(a2.wait_for([&](const Element& e) { return carbon(e, "received", "n1"); }, 1s));
  CHECK(count_ids(a2.received, "n1") == 0);
  CHECK(carbons_of(a1, "n1") == 0);

  // two disables carbons: no more copies.
  auto off = a2.iq("<iq type='set' id='dis'><disable xmlns='urn:xmpp:carbons:2'/></iq>", "dis");
  REQUIRE(off);
  CHECK(off->attr("type") == "result");
  bob.send("<message to='alice@localhost/one' type='chat' id='d1'><body>after</body></message>");
  a1.send("<message to='bob@localhost' type='chat' id='d2'><body>after</body></message>");
  settle();
  CHECK(carbons_of(a2, "d1") == 0);
  CHECK(carbons_of(a2, "d2") == 0);
}
