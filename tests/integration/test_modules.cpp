// The modules against the real chatgroupd: XEP-0030 service discovery, XEP-0199 ping (both directions), XEP-0092
// software version, XEP-0202 entity time.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>

#include <sys/utsname.h>

#include <algorithm>
#include <ctime>
#include <regex>

using namespace it;

namespace {

constexpr const char* kDiscoInfo = "http://jabber.org/protocol/disco#info";
constexpr const char* kDiscoItems = "http://jabber.org/protocol/disco#items";

ServerOptions users_alice_bob(ServerOptions opts = {}) {
  opts.users = {{"alice", "alice-pw"}, {"bob", "bob-pw"}};
  return opts;
}

std::vector<std::string> features_of(const Element& query) {
  std::vector<std::string> out;
  for (const auto* f : query.children("feature")) {
    out.emplace_back(f->attr("var"));
  }
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

std::optional<Element> disco_info(StropheClient& c, const std::string& to, const std::string& id,
                                  const std::string& node = "") {
  std::string q =
      "<query xmlns='" + std::string(kDiscoInfo) + "'" + (node.empty() ? "" : " node='" + node + "'") + "/>";
  return c.iq("<iq type='get' id='" + id + "' to='" + to + "'>" + q + "</iq>", id);
}

// The version the binary reports (`chatgroupd --version` → "chatgroupd X.Y.Z").
std::string project_version() {
  auto [status, out] = run_program({chatgroupd_path(), "--version"});
  REQUIRE(status == 0);
  auto space = out.find(' ');
  REQUIRE(space != std::string::npos);
  std::string v = out.substr(space + 1);
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) {
    v.pop_back();
  }
  return v;
}

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// XEP-0030

TEST_CASE("XEP-0030: disco#info to the server names it and lists every loaded module's features", "[modules][disco]") {
  TestServer server(users_alice_bob());
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  auto r = disco_info(alice, "localhost", "i1");
  REQUIRE(r);
  REQUIRE(r->attr("type") == "result");
  CHECK(r->attr("from") == "localhost");
  const Element* q = r->child("query", kDiscoInfo);
  REQUIRE(q);
  // XEP-0030 §3.1: at least one identity; a server is category "server", type "im".
  bool server_im = false;
  for (const auto* id : q->children("identity")) {
    server_im = server_im || (id->attr("category") == "server" && id->attr("type") == "im");
  }
  CHECK(server_im);
  auto features = features_of(*q);
  for (const char* f : {kDiscoInfo, kDiscoItems, "urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time"}) {
    INFO(f);
    CHECK(contains(features, f));
  }
  // XEP-0030 §3.1: each feature appears once.
  auto sorted = features;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());

  // XEP-0030 §3.2: a node the server does not know → item-not-found.
  auto node = disco_info(alice, "localhost", "i2", "urn:example:no-such-node");
  REQUIRE(node);
  CHECK(node->attr("type") == "error");
  CHECK(error_condition(*node) == "item-not-found");

  // disco#items: no items (yet), but a well-formed empty result.
  auto items =
      alice.iq("<iq type='get' id='i3' to='localhost'><query xmlns='" + std::string(kDiscoItems) + "'/></iq>", "i3");
  REQUIRE(items);
  REQUIRE(items->attr("type") == "result");
  const Element* iq = items->child("query", kDiscoItems);
  REQUIRE(iq);
  CHECK(iq->children("item").empty());
}

TEST_CASE("XEP-0030: disco#info to a bare JID — the own account answers, another user's does not", "[modules][disco]") {
  TestServer server(users_alice_bob());
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  auto own = disco_info(alice, "alice@localhost", "a1");
  REQUIRE(own);
  REQUIRE(own->attr("type") == "result");
  CHECK(own->attr("from") == "alice@localhost");
  const Element* q = own->child("query", kDiscoInfo);
  REQUIRE(q);
  bool registered = false;
  for (const auto* id : q->children("identity")) {
    registered = registered || (id->attr("category") == "account" && id->attr("type") == "registered");
  }
  CHECK(registered);
  CHECK(contains(features_of(*q), kDiscoInfo));

  // Another user's account: nothing is revealed without a subscription (no rosters yet).
  auto other = disco_info(alice, "bob@localhost", "a2");
  REQUIRE(other);
  CHECK(other->attr("type") == "error");
  CHECK(other->attr("from") == "bob@localhost");
  CHECK(error_condition(*other) == "service-unavailable");
}

TEST_CASE("XEP-0030: every feature the account advertises is answered by the account", "[modules][disco]") {
  TestServer server(users_alice_bob());
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  auto own = disco_info(alice, "alice@localhost", "a1");
  REQUIRE(own);
  REQUIRE(own->attr("type") == "result");
  auto features = features_of(*own->child("query", kDiscoInfo));
  REQUIRE(contains(features, "urn:xmpp:ping"));
  REQUIRE(contains(features, kDiscoItems));
  // XEP-0199 §3: an entity that advertises urn:xmpp:ping answers a ping with a result — here the account,
  // addressed by its bare JID or with no 'to' at all (RFC 6120 §10.3.3).
  auto bare = alice.iq("<iq type='get' id='p1' to='alice@localhost'><ping xmlns='urn:xmpp:ping'/></iq>", "p1");
  REQUIRE(bare);
  CHECK(bare->attr("type") == "result");
  auto no_to = alice.iq("<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>", "p2");
  REQUIRE(no_to);
  CHECK(no_to->attr("type") == "result");
  auto items = alice.iq(
      "<iq type='get' id='p3' to='alice@localhost'><query xmlns='" + std::string(kDiscoItems) + "'/></iq>", "p3");
  REQUIRE(items);
  CHECK(items->attr("type") == "result");
  // Another user's account is not pinged on its behalf (it reveals nothing, like disco#info).
  auto other = alice.iq("<iq type='get' id='p4' to='bob@localhost'><ping xmlns='urn:xmpp:ping'/></iq>", "p4");
  REQUIRE(other);
  CHECK(error_condition(*other) == "service-unavailable");
}

TEST_CASE("XEP-0030: with modules.enabled = [disco, ping] the version and time features are gone, and the name is "
          "configurable",
          "[modules][disco]") {
  TestServer server(users_alice_bob(ServerOptions()
                                        .set("modules", "enabled", "[\"disco\", \"ping\"]")
                                        .set("modules.disco", "name", "\"Family chat\"")));
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  auto r = disco_info(alice, "localhost", "i1");
  REQUIRE(r);
  REQUIRE(r->attr("type") == "result");
  // modules.disco.name names the server's identity.
  const Element* identity = r->child("query", kDiscoInfo)->child("identity");
  REQUIRE(identity);
  CHECK(identity->attr("name") == "Family chat");
  auto features = features_of(*r->child("query", kDiscoInfo));
  CHECK(contains(features, kDiscoInfo));
  CHECK(contains(features, "urn:xmpp:ping"));
  CHECK_FALSE(contains(features, "jabber:iq:version"));
  CHECK_FALSE(contains(features, "urn:xmpp:time"));

  // Not loaded → not handled: RFC 6120 §8.4 service-unavailable.
  auto v = alice.iq("<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>", "v1");
  REQUIRE(v);
  CHECK(v->attr("type") == "error");
  CHECK(error_condition(*v) == "service-unavailable");
  auto t = alice.iq("<iq type='get' id='t1' to='localhost'><time xmlns='urn:xmpp:time'/></iq>", "t1");
  REQUIRE(t);
  CHECK(error_condition(*t) == "service-unavailable");
  CHECK(sync_ping(alice));
}

// ---------------------------------------------------------------------------------------------------------------
// XEP-0199

TEST_CASE("XEP-0199: a ping to the server is answered with an empty result", "[modules][ping]") {
  TestServer server(users_alice_bob());
  server.start();
  RawClient alice;
  alice.login(server.port(), "alice", "alice-pw", "phone");
  auto r = alice.iq("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", "p1");
  REQUIRE(r);
  CHECK(r->attr("type") == "result");
  CHECK(r->attr("from") == "localhost");
  CHECK(r->attr("to") == "alice@localhost/phone");
  CHECK(r->element_count() == 0); // XEP-0199 §4.2: the result has no child
}

TEST_CASE("XEP-0199: an idle client that answers the server's pings stays connected", "[modules][ping]") {
  TestServer server(
      users_alice_bob(ServerOptions().set("modules.ping", "idle", "1").set("modules.ping", "timeout", "2")));
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  auto is_ping = [](const Element& e) {
    return e.name() == "iq" && e.attr("type") == "get" && has_child(e, "ping", "urn:xmpp:ping");
  };
  // Four rounds (≈ 4 s) outlast one idle period plus the timeout (3 s): an unanswered ping would have closed us.
  int pings = 0;
  for (int i = 0; i < 4; ++i) {
    auto p = alice.wait_for(is_ping, 5s);
    if (!p) {
      break;
    }
    CHECK(p->attr("from") == "localhost");
    CHECK(p->attr("to") == "alice@localhost/phone");
    ++pings;
  }
  CHECK(pings >= 2);
  CHECK(pings == 4);
  CHECK(alice.connected());
  CHECK(sync_ping(alice));
}

TEST_CASE("XEP-0199: an idle client that does not answer is closed with connection-timeout, and nobody else can "
          "answer for it",
          "[modules][ping]") {
  TestServer server(
      users_alice_bob(ServerOptions().set("modules.ping", "idle", "1").set("modules.ping", "timeout", "2")));
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  alice.answer_pings(false);
  REQUIRE(alice.connect(server.port(), server.cert_path()));
  auto started = Clock::now();
  RawClient bob;
  bob.login(server.port(), "bob", "bob-pw", "laptop");

  auto ping = alice.wait_for(
      [](const Element& e) {
        return e.name() == "iq" && e.attr("type") == "get" && has_child(e, "ping", "urn:xmpp:ping");
      },
      5s);
  REQUIRE(ping);
  // Another user answers in alice's place, with the right id: only the entity the ping went to may answer it
  // (RFC 6120 §8.2.3: the response comes from the requested entity), so this does not keep alice's session up.
  const std::string id(ping->attr("id"));
  bob.send("<iq type='result' id='" + id + "' to='localhost'/>");
  bob.send("<iq type='result' id='" + id + "' to='localhost' from='alice@localhost/phone'/>");
  REQUIRE(sync_ping(bob));

  REQUIRE(alice.wait_disconnected(10s));
  auto took = Clock::now() - started;
  CHECK(alice.stream_error == "connection-timeout");
  // Closed about idle + timeout (3 s) after the last data, long before c2s.idle_timeout (600 s).
  CHECK(took >= 2s);
  CHECK(took < 8s);
}

// ---------------------------------------------------------------------------------------------------------------
// XEP-0092

TEST_CASE("XEP-0092: the server's name and version, and no <os/> by default", "[modules][version]") {
  TestServer server(users_alice_bob());
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));
  auto r = alice.iq("<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>", "v1");
  REQUIRE(r);
  REQUIRE(r->attr("type") == "result");
  const Element* q = r->child("query", "jabber:iq:version");
  REQUIRE(q);
  CHECK(q->child_text("name") == "ChatGroup");
  CHECK(q->child_text("version") == project_version());
  CHECK_FALSE(project_version().empty());
  CHECK(q->child("os") == nullptr);
}

TEST_CASE("XEP-0092: modules.version.show_os = true adds <os/>", "[modules][version]") {
  TestServer server(users_alice_bob(ServerOptions().set("modules.version", "show_os", "true")));
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));
  auto r = alice.iq("<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>", "v1");
  REQUIRE(r);
  REQUIRE(r->attr("type") == "result");
  const Element* q = r->child("query", "jabber:iq:version");
  REQUIRE(q);
  CHECK(q->child_text("name") == "ChatGroup");
  utsname u{};
  REQUIRE(uname(&u) == 0);
  CHECK(q->child_text("os") == std::string(u.sysname) + " " + u.release);
}

// ---------------------------------------------------------------------------------------------------------------
// XEP-0202

TEST_CASE("XEP-0202: the server's time as a +hh:mm offset and a XEP-0082 UTC timestamp", "[modules][time]") {
  TestServer server(users_alice_bob());
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));
  auto r = alice.iq("<iq type='get' id='t1' to='localhost'><time xmlns='urn:xmpp:time'/></iq>", "t1");
  REQUIRE(r);
  REQUIRE(r->attr("type") == "result");
  const Element* t = r->child("time", "urn:xmpp:time");
  REQUIRE(t);

  const std::string tzo = t->child_text("tzo");
  const std::string utc = t->child_text("utc");
  INFO("tzo=" << tzo << " utc=" << utc);
  // XEP-0082 §3.2/§4: TZD is "Z" or (+|-)hh:mm; XEP-0202 §3 gives the offset as (+|-)hh:mm.
  REQUIRE(std::regex_match(tzo, std::regex(R"([+-]([01][0-9]|2[0-3]):[0-5][0-9])")));
  // XEP-0082 §3.2 DateTime in UTC: CCYY-MM-DDThh:mm:ss[.sss]Z.
  std::smatch m;
  REQUIRE(std::regex_match(utc, m, std::regex(R"((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z)")));
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  CHECK(tm.tm_mon < 12);
  CHECK(tm.tm_mday >= 1);
  CHECK(tm.tm_mday <= 31);
  CHECK(tm.tm_hour < 24);
  CHECK(tm.tm_sec <= 60);
  const std::time_t server_time = timegm(&tm);
  const std::time_t now = std::time(nullptr);
  CHECK(std::llabs(static_cast<long long>(server_time - now)) <= 5);

  // The offset is the machine's local offset (the test runs with the server's environment).
  std::tm local{};
  localtime_r(&now, &local);
  const long off = local.tm_gmtoff;
  char expected[64];
  std::snprintf(expected, sizeof expected, "%c%02ld:%02ld", off < 0 ? '-' : '+', std::labs(off) / 3600,
                (std::labs(off) % 3600) / 60);
  CHECK(tzo == expected);
}
