// XEP-0050 ad-hoc commands against the real chatgroupd, through libstrophe: the command list in disco, the built-in
// uptime command, and the protocol's errors as a client sees them on the wire.
#include "tests/integration/harness.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

using namespace it;

namespace {

constexpr const char* kCommands = "http://jabber.org/protocol/commands";
constexpr const char* kDiscoInfo = "http://jabber.org/protocol/disco#info";
constexpr const char* kDiscoItems = "http://jabber.org/protocol/disco#items";
constexpr const char* kData = "jabber:x:data";
constexpr const char* kUptime = "http://chatgroup.im/commands#uptime";

ServerOptions users_alice_bob() {
  ServerOptions opts;
  opts.users = {{"alice", "alice-pw"}, {"bob", "bob-pw"}};
  return opts;
}

std::optional<Element> command(StropheClient& c, const std::string& id, const std::string& attrs) {
  return c.iq("<iq type='set' id='" + id + "' to='localhost'><command xmlns='" + kCommands + "' " + attrs + "/></iq>",
              id);
}

// The XEP-0050 specific condition of an error reply ("" when none).
std::string specific_condition(const Element& reply) {
  const Element* error = reply.child("error");
  if (error == nullptr) {
    return "";
  }
  const Element* specific = error->child_ns(kCommands);
  return specific == nullptr ? "" : specific->name();
}

std::string field_value(const Element& x, const std::string& var) {
  for (const auto* f : x.children("field", kData)) {
    if (f->attr("var") == var) {
      return f->child_text("value", kData);
    }
  }
  return "";
}

} // namespace

TEST_CASE("XEP-0050: the server lists its commands in disco and runs the uptime command", "[modules][adhoc]") {
  TestServer server(users_alice_bob());
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  // XEP-0050 §2.1: the feature.
  auto info =
      alice.iq("<iq type='get' id='i1' to='localhost'><query xmlns='" + std::string(kDiscoInfo) + "'/></iq>", "i1");
  REQUIRE(info);
  bool feature = false;
  for (const auto* f : info->child("query", kDiscoInfo)->children("feature")) {
    feature = feature || f->attr("var") == kCommands;
  }
  CHECK(feature);

  // XEP-0050 §2.2: the command list, an item per command with the server's JID, a node and a name.
  auto items = alice.iq("<iq type='get' id='i2' to='localhost'><query xmlns='" + std::string(kDiscoItems) + "' node='" +
                            kCommands + "'/></iq>",
                        "i2");
  REQUIRE(items);
  REQUIRE(items->attr("type") == "result");
  const Element* query = items->child("query", kDiscoItems);
  REQUIRE(query);
  CHECK(query->attr("node") == kCommands);
  bool listed = false;
  for (const auto* item : query->children("item")) {
    CHECK(item->attr("jid") == "localhost");
    CHECK_FALSE(item->attr("name").empty());
    listed = listed || (item->attr("node") == kUptime && item->attr("name") == "Server uptime");
  }
  CHECK(listed);

  // disco#info on the command node.
  auto node_info = alice.iq("<iq type='get' id='i3' to='localhost'><query xmlns='" + std::string(kDiscoInfo) +
                                "' node='" + kUptime + "'/></iq>",
                            "i3");
  REQUIRE(node_info);
  REQUIRE(node_info->attr("type") == "result");
  const Element* identity = node_info->child("query", kDiscoInfo)->child("identity");
  REQUIRE(identity);
  CHECK(identity->attr("category") == "automation");
  CHECK(identity->attr("type") == "command-node");

  // Execute: one stage, completed at once, with a session id, a result form and a note.
  auto r = command(alice, "x1", "node='" + std::string(kUptime) + "' action='execute'");
  REQUIRE(r);
  REQUIRE(r->attr("type") == "result");
  const Element* cmd = r->child("command", kCommands);
  REQUIRE(cmd);
  CHECK(cmd->attr("node") == kUptime);
  CHECK(cmd->attr("status") == "completed");
  const std::string sessionid(cmd->attr("sessionid"));
  CHECK_FALSE(sessionid.empty());
  CHECK(cmd->child("actions") == nullptr);
  const Element* x = cmd->child("x", kData);
  REQUIRE(x);
  CHECK(x->attr("type") == "result");
  const std::string seconds = field_value(*x, "seconds");
  REQUIRE_FALSE(seconds.empty());
  CHECK(std::all_of(seconds.begin(), seconds.end(), [](char c) { return c >= '0' && c <= '9'; }));
  const Element* note = cmd->child("note");
  REQUIRE(note);
  CHECK(note->attr("type") == "info");
  CHECK(note->text().find("has been up for") != std::string::npos);

  // The session ended with the result: continuing it is session-expired; another user cannot even see it.
  auto again = command(alice, "x2", "node='" + std::string(kUptime) + "' sessionid='" + sessionid + "'");
  REQUIRE(again);
  CHECK(error_condition(*again) == "not-allowed");
  CHECK(specific_condition(*again) == "session-expired");
  StropheClient bob("bob@localhost/desk", "bob-pw");
  REQUIRE(bob.connect(server.port(), server.cert_path()));
  auto foreign = command(bob, "x3", "node='" + std::string(kUptime) + "' sessionid='" + sessionid + "'");
  REQUIRE(foreign);
  CHECK(error_condition(*foreign) == "bad-request");
  CHECK(specific_condition(*foreign) == "bad-sessionid");
}

TEST_CASE("XEP-0050: the protocol's errors on the wire", "[modules][adhoc]") {
  TestServer server(users_alice_bob());
  server.start();
  StropheClient alice("alice@localhost/phone", "alice-pw");
  REQUIRE(alice.connect(server.port(), server.cert_path()));

  auto unknown = command(alice, "e1", "node='urn:example:no-such-command'");
  REQUIRE(unknown);
  CHECK(unknown->attr("type") == "error");
  CHECK(error_condition(*unknown) == "item-not-found");

  auto malformed = command(alice, "e2", "node='" + std::string(kUptime) + "' action='jump'");
  REQUIRE(malformed);
  CHECK(error_condition(*malformed) == "bad-request");
  CHECK(specific_condition(*malformed) == "malformed-action");

  auto no_session = command(alice, "e3", "node='" + std::string(kUptime) + "' sessionid='nosuch'");
  REQUIRE(no_session);
  CHECK(error_condition(*no_session) == "bad-request");
  CHECK(specific_condition(*no_session) == "bad-sessionid");

  auto no_node = command(alice, "e4", "action='execute'");
  REQUIRE(no_node);
  CHECK(error_condition(*no_node) == "bad-request");

  // The server still serves the client after all that.
  CHECK(sync_ping(alice));
}
